"""A release's record across a thousand clusters still travels: under Temporal's 2 MB per payload."""

from __future__ import annotations

import pytest

from policies.residency import Decision
from ringmaster.converter import data_converter
from workflows.models import ClusterStatus, ReleaseStatus
from workflows.release import DECISIONS_KEPT_UP_TO, _within_payload_limit

PAYLOAD_LIMIT = 2 * 1024 * 1024


def _decisions(name: str, *, denied: bool = False) -> list[Decision]:
    rules = ["jurisdiction-scope", "data-endpoints", "telemetry-locality", "cluster-location", "regulated"]
    return [
        Decision(
            rule=rule,
            cluster=name,
            verdict="deny" if denied and rule == "data-endpoints" else "allow",
            reason=f"{rule}: all 1 data endpoint(s) are in EU, evidence as read from the cluster",
            inputs={"jurisdiction": "EU", "declared": ["orders.db.eu.example.com"], "nodes": 3},
            policy_digest="sha256:" + "a" * 64,
        )
        for rule in rules
    ]


def _record(n: int, denied: frozenset[int] = frozenset()) -> ReleaseStatus:
    return ReleaseStatus(
        release="api:v2",
        service="api",
        version="v2",
        image="r/api:v2",
        clusters=[
            ClusterStatus(
                name=f"c{i:04d}",
                ring="broad",
                region="eu-west-1",
                jurisdiction="EU",
                state="promoted",
                workflow_id=f"release:api:v2:broad:c{i:04d}",
                residency=_decisions(f"c{i:04d}", denied=i in denied),
            )
            for i in range(n)
        ],
    )


def _size(st: ReleaseStatus) -> int:
    [payload] = data_converter.payload_converter.to_payloads([st])
    return len(payload.data)


class TestRecordSize:
    def test_a_fleet_within_the_bound_keeps_every_decision(self):
        """Up to the bound the record is what it always was: every cluster's decisions, nothing omitted."""
        st = _within_payload_limit(_record(DECISIONS_KEPT_UP_TO))
        assert all(len(c.residency) == 5 for c in st.clusters) and st.omitted == ""
        assert _size(st) < PAYLOAD_LIMIT

    def test_past_a_thousand_clusters_the_record_keeps_the_denials_and_say_what_they_left_out(self):
        """Past the bound the allowed clusters' decisions stay with their cluster workflows; the
        denied ones stay in the record, which says what it omits and fits one payload."""
        whole = _record(1200, denied=frozenset({7, 512}))
        assert _size(whole) > PAYLOAD_LIMIT, "the case this guards against"
        st = _within_payload_limit(whole)
        kept = {c.name for c in st.clusters if c.residency}
        assert kept == {"c0007", "c0512"}
        assert "residency decisions" in st.omitted
        assert _size(st) < PAYLOAD_LIMIT


class TestClusterLookup:
    def test_entries_are_found_after_one_is_replaced(self):
        """The index follows the list: an entry replaced in place is found; an unknown name raises."""
        st = _record(300)
        assert st.cluster("c0299").name == "c0299"
        st.clusters[5] = st.clusters[5].model_copy(update={"state": "rolled-back"})
        assert st.cluster("c0005").state == "rolled-back"
        with pytest.raises(KeyError):
            st.cluster("nope")
