"""Deployment windows: a cluster waits for its region's window, durably, and waiting is never failing."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import yaml

from tests.support import fleets
from tests.support.waiting import assert_eventually
from tests.workflows.support import cluster_state, ended, plan, running_worker, unique_service
from workflows.models import ApproveRequest
from workflows.release import ReleaseWorkflow


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
            result = await ended(handle)
            assert result.phase == "succeeded"
            assert result.ended_at >= until
            assert h.versions() == {**h.versions(), "euw1-internal": "v2", "use1-prod": "v2"}
            # The Temporal UI names the wait's timer with the opening in the region's own time.
            child = time_env.client.get_workflow_handle(result.cluster("euw1-internal").workflow_id)
            summaries = [
                json.loads(e.user_metadata.summary.data)
                async for e in child.fetch_history_events()
                if e.HasField("timer_started_event_attributes") and e.user_metadata.HasField("summary")
            ]
            local = until.astimezone(ZoneInfo("Europe/Dublin"))
            assert f"waiting for the eu-west-1 window, opens {local:%a %H:%M} Europe/Dublin" in summaries


class TestExamplePlan:
    async def test_the_example_plan_runs_to_its_end(self, time_env, tmp_path):
        """The example plan (gates aside): windows, four-eyes approval, pauses and bakes, then success.

        The analysis is left out because the time-skipping server cannot skip time while an activity
        runs; gates are covered on the dev server in real time.
        """
        doc = yaml.safe_load(fleets.EXAMPLE_PLAN.read_text())
        doc["service"] = svc = unique_service("api")
        doc.pop("analysis")
        async with running_worker(time_env.client, tmp_path) as h:
            handle = await h.start(
                yaml.safe_dump(doc), service=svc, submitted_by="alice", search_attributes=False
            )
            for _ in range(200):  # skip server time in 30m steps until the beta ring asks
                status = await handle.query(ReleaseWorkflow.status)
                if status.phase == "awaiting-approval":
                    break
                await time_env.sleep(timedelta(minutes=30))
            assert status.ring == "beta"
            assert status.cluster("euw1-internal").state == "promoted"
            await handle.signal("approve-signal", ApproveRequest(ring="beta", by="bob"))
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            assert set(h.versions().values()) == {"v2"}
            # 25m of pauses + 30m bake in internal, 1h bake in beta, 20m per wave x 3 + 2h bake in broad.
            assert result.ended_at - result.started_at >= timedelta(hours=4, minutes=55)
