"""Every model survives JSON (and Temporal's pydantic converter) unchanged, in YAML spelling."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from policies import gates, residency, schedule, windows
from policies.fleet import Fleet
from policies.plan import ReleasePlan
from ringmaster.converter import data_converter


def _documents(plan: ReleasePlan, fleet: Fleet, built: schedule.Schedule) -> list[BaseModel]:
    decisions = residency.static_decisions(plan, fleet, built)
    return [
        plan,
        fleet,
        built,
        decisions["euc1-prod"][3],
        residency.LiveEvidence(node_regions=["eu-west-1"], env_hosts=["db.eu.example.com"]),
        gates.GateVerdict(
            status="failed", reason="r", metric="m", value=1.5, bound=">= 2", consecutive=3, checks=4
        ),
        gates.Check(
            at=datetime(2026, 3, 2, tzinfo=UTC), measurements=[gates.Measurement(metric="m", value=None)]
        ),
        windows.state(plan, fleet, "eu-west-1", datetime(2026, 3, 2, tzinfo=UTC)),
    ]


class TestSerialisation:
    def test_json_round_trip(
        self, plan: ReleasePlan, fleet: Fleet, example_schedule: schedule.Schedule
    ) -> None:
        """model_dump(mode='json', by_alias=True) then model_validate gives an equal model."""
        for document in _documents(plan, fleet, example_schedule):
            dumped = document.model_dump(mode="json", by_alias=True)
            assert type(document).model_validate(dumped) == document

    def test_python_round_trip(
        self, plan: ReleasePlan, fleet: Fleet, example_schedule: schedule.Schedule
    ) -> None:
        """model_dump() (Python mode, field names) also loads back, for callers passing models in memory."""
        for document in _documents(plan, fleet, example_schedule):
            assert type(document).model_validate(document.model_dump()) == document

    def test_temporal_converter_round_trip(
        self, plan: ReleasePlan, fleet: Fleet, example_schedule: schedule.Schedule
    ) -> None:
        """Temporal's pydantic data converter carries every model through a payload unchanged."""
        converter = data_converter.payload_converter
        for document in _documents(plan, fleet, example_schedule):
            payload = converter.to_payload(document)
            assert converter.from_payload(payload, type(document)) == document

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            (("rings", 0, "bakeTime"), "30m"),
            (("rings", 0, "strategy", "canary", "steps", 1, "pause", "duration"), "5m"),
            (("analysis", "metrics", 2, "baseline", "maxDegradation"), "50%"),
            (("rings", 1, "approval", "fourEyes"), True),
            (("windows", 1, "freeze", "from"), "2026-12-20T00:00:00Z"),
            (("dataResidency", "dataEndpoints", "EU", 0), "orders.db.eu.example.com"),
        ],
    )
    def test_json_reads_like_the_yaml(
        self, plan: ReleasePlan, path: tuple[Any, ...], expected: object
    ) -> None:
        """The JSON form uses the YAML's camelCase names and its duration and percent strings."""
        value: Any = plan.model_dump(mode="json")
        for part in path:
            value = value[part]
        assert value == expected
