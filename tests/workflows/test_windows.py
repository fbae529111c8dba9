"""Deployment windows: a cluster waits for its region's window, durably, and waiting is never failing."""

from __future__ import annotations

from datetime import UTC, timedelta

from tests.conftest import assert_eventually
from tests.workflows.support import cluster_state, plan, running_worker, unique_service


class TestWindowWait:
    async def test_a_cluster_waits_out_a_freeze_then_proceeds(self, time_env, tmp_path):
        """During a freeze the cluster shows waiting-window with the opening time, then deploys after it."""
        async with running_worker(time_env.client, tmp_path) as h:
            now = (await time_env.get_current_time()).astimezone(UTC).replace(microsecond=0)
            until = now + timedelta(hours=6)
            windows = [
                {
                    "regions": ["eu-west-1"],
                    "freeze": {"from": (now - timedelta(hours=1)).isoformat(), "to": until.isoformat()},
                }
            ]
            svc = unique_service()
            rings = [
                {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
                {"name": "broad", "clusters": ["use1-prod"], "strategy": {"rolling": {}}},
            ]
            handle = await h.start(
                plan(svc, rings, metrics=False, windows=windows), service=svc, search_attributes=False
            )
            waiting = await assert_eventually(
                lambda: cluster_state(handle, "euw1-internal"),
                lambda c: c is not None and c.state == "waiting-window",
            )
            assert waiting.next_window == until
            assert h.versions()["euw1-internal"] == "v1"
            result = await handle.result()
            assert result.phase == "succeeded"
            assert result.ended_at >= until
            assert h.versions() == {**h.versions(), "euw1-internal": "v2", "use1-prod": "v2"}
