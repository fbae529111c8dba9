"""The scale benchmark's CI share: ten releases at once on the sandbox stack, judged for correctness.

``scripts/bench_scale.py`` runs N = 10 to 500 and prints timings; here its core runs once for N = 10
with one worker process, and the tests hold it to what must not depend on the machine: every
release succeeds, no cluster step is lost or applies two distinct spec changes (the emulator's
request and change logs against the histories, the workloads read back), and every figure the
script prints was computed. Timings are never asserted.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from sandbox import prometheus as sandbox_prometheus
from scripts import bench_scale

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RELEASES = 10


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of ten releases at once (the stack is stopped before the tests judge it)."""
    try:
        sandbox_prometheus.binary()
    except sandbox_prometheus.PrometheusError as exc:
        pytest.skip(str(exc))
    directory = tmp_path_factory.mktemp("scale")
    _, rows = asyncio.run(bench_scale.scale(directory, [RELEASES], 1, raw=False, limit=600.0))
    [(_, found)] = rows
    return found


class TestScaleCorrectness:
    def test_every_release_succeeds(self, figures: dict[str, Any]) -> None:
        """Ten releases of the demo plan at once all end succeeded, each approved once into beta."""
        assert figures["finished"] == RELEASES
        assert figures["phases"] == {"succeeded": RELEASES}
        assert figures["approved"] == RELEASES

    def test_no_step_is_lost_or_duplicated(self, figures: dict[str, Any]) -> None:
        """Every completed cluster step wrote, none applied two distinct specs to one object, and every
        promoted cluster runs the new image alone."""
        assert figures["lost"] == []
        assert figures["duplicated"] == []
        assert figures["steps_checked"] >= RELEASES * 7 * 2  # at least two steps in every cluster
        assert figures["spec_changes"] >= figures["steps_checked"]


class TestScaleFigures:
    def test_decision_latencies_cover_every_kind(self, figures: dict[str, Any]) -> None:
        """Gate verdicts in clusters, bake verdicts and approvals each meet the change that follows them."""
        kinds = figures["decisions_by_kind"]
        assert set(kinds) == {"gate", "bake", "approval"}
        assert kinds["approval"]["count"] == RELEASES
        assert all(math.isfinite(q["p50"]) and q["p50"] >= 0 for q in kinds.values())

    def test_queues_workers_and_costs_are_measured(self, figures: dict[str, Any]) -> None:
        """Schedule-to-start per task queue, the worker's CPU and memory, events and billable actions
        (heartbeats included) are all read."""
        assert {"ringmaster", "ringmaster-analysis"} <= set(figures["schedule_to_start"])
        [worker] = figures["workers"].values()
        assert worker["cpu_seconds"] > 0
        assert worker["peak_rss_mb"] > 0
        assert figures["events_per_cluster"] > 0
        assert figures["heartbeats"] > 0
        billed = figures["billable"]
        assert billed["activities"] > 0
        assert billed["timers"] > 0
        assert billed["children"] == RELEASES * 8  # the lane starts the release, the release its 7 clusters
        assert billed["updates"] >= RELEASES * 2  # a submission and an approval per release
        assert figures["bake_stretch_events"]["count"] > 0
