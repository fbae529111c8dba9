"""The worker's capacity and its edges: slots that analyses cannot starve, shutdowns, aborts mid-step.

Real dev server, in-process workers (both queues) over the file-backed fake clusters.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any

from structlog.testing import capture_logs
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from ringmaster.converter import data_converter
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    ScriptedMetrics,
    canary,
    ended,
    plan,
    running_worker,
    unique_service,
    worker_settings,
)
from workflows import queues
from workflows.models import AbortRequest
from workflows.release import ReleaseWorkflow, cluster_workflow_id

CLUSTER = "euw1-internal"


def _one_ring(*steps: Any) -> list[dict[str, Any]]:
    return [{"name": "internal", "clusters": [CLUSTER], "strategy": canary(*steps)}]


async def _started(client: Client, workflow_id: str, activity_type: str) -> bool:
    """Whether the workflow has an attempt of ``activity_type`` running on a worker right now."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False  # not started yet
    return any(
        p.activity_type.name == activity_type
        and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for p in described.raw_description.pending_activities
    )


async def _results(handles: list[WorkflowHandle[Any, Any]]) -> list[Any]:
    # A bound so a deadlock fails the test instead of hanging the session.
    return await asyncio.wait_for(asyncio.gather(*(ended(h) for h in handles)), timeout=180)


class TestSlots:
    async def test_more_concurrent_canaries_than_slots_all_complete(self, client, tmp_path):
        """Four canaries under analysis with 2 analysis and 2 cluster-change slots: every one promotes.

        With one pool of 2 slots, two stretches took both and their canaries' next setWeight never
        started: every release stuck forever.
        """
        settings = worker_settings(max_concurrent_activities=2, max_concurrent_analyses=2)
        rings = _one_ring(("w", 20), ("p", "2s"), ("w", 60), ("p", "1s"))
        with capture_logs() as logs:
            async with running_worker(client, tmp_path, settings=settings) as h:
                services = [unique_service("slots") for _ in range(4)]
                handles = [await h.start(plan(svc, rings), service=svc) for svc in services]
                results = await _results(handles)
        assert [r.phase for r in results] == ["succeeded"] * 4, [r.reason for r in results]
        started = [e for e in logs if e["event"] in ("activity started", "activity started late")]
        analyses = [e for e in started if e["activity"] == "analyze"]
        assert analyses, "every analysis start is logged"
        assert {e["task_queue"] for e in analyses} == {queues.analysis_queue(settings.task_queue)}
        assert all(e["schedule_to_start_ms"] >= 0 and e["cluster"] == CLUSTER for e in analyses)
        steps = [e for e in started if e["activity"] == "apply_step"]
        assert steps and {e["task_queue"] for e in steps} == {settings.task_queue}


class TestWorkerShutdown:
    async def test_a_stretch_resumes_on_another_worker_from_its_heartbeat(self, client, tmp_path):
        """Worker 1 shuts down mid-stretch: the same stretch resumes on worker 2 with its checks, no verdict.

        Before, the shutdown cancelled the stretch and it answered with a verdict as if finished.
        """
        settings = worker_settings(graceful_shutdown_seconds=1)
        first, second = ScriptedMetrics(), ScriptedMetrics()
        svc = unique_service("handover")
        child = cluster_workflow_id(svc, "v2", "internal", CLUSTER)
        async with AsyncExitStack() as stack:
            worker_1 = AsyncExitStack()
            stack.push_async_callback(worker_1.aclose)  # closing twice is harmless
            h = await worker_1.enter_async_context(
                running_worker(client, tmp_path, metrics=first, settings=settings)
            )
            handle = await h.start(plan(svc, _one_ring(("w", 20), ("p", "12s"))), service=svc)
            await assert_eventually(lambda: _started(client, child, "analyze"), what="a stretch on worker 1")

            async def checks_taken() -> int:
                return first.calls

            await assert_eventually(checks_taken, lambda n: n >= 3, what="three checks on worker 1")
            # Another process, as far as Temporal knows: one client may not run two workers on a queue.
            other = await Client.connect(
                client.service_client.config.target_host,
                namespace=client.namespace,
                data_converter=data_converter,
            )
            await stack.enter_async_context(
                running_worker(other, tmp_path, metrics=second, settings=settings)
            )
            await worker_1.aclose()
            checks_on_worker_1 = first.calls
            result = await ended(handle)
        assert result.phase == "succeeded", result.reason
        assert second.calls >= 1, "worker 2 judged on"
        history = await client.get_workflow_handle(child).fetch_history()
        stretch = next(
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == "analyze"
        )
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.scheduled_event_id == stretch
        ]
        assert attempts == [2], "the stretch was retried by worker 2, never answered by worker 1's shutdown"
        done = next(
            e.activity_task_completed_event_attributes
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and e.activity_task_completed_event_attributes.scheduled_event_id == stretch
        )
        answer = json.loads(done.result.payloads[0].data)
        assert answer["total_checks"] > checks_on_worker_1, "worker 1's checks were carried over"
        assert answer["verdict"]["status"] == "passed", "ended by the pause, judged on every check"


class TestAbortDuringAStep:
    async def test_an_abort_stops_a_long_step_before_it_writes(self, client, tmp_path):
        """A step waiting (heartbeating) for pods is stopped by an abort: it never writes, the rollback runs.

        Before, the step had no heartbeat: the abort waited for the whole step, which then wrote its
        change after the release had decided to roll back.
        """
        async with running_worker(client, tmp_path) as h:
            h.clusters.configure(CLUSTER, apply_delay=30.0)
            svc = unique_service("abort")
            child = cluster_workflow_id(svc, "v2", "internal", CLUSTER)
            handle = await h.start(plan(svc, _one_ring(("w", 20), ("p", None))), service=svc)
            await assert_eventually(lambda: _started(client, child, "apply_step"), what="the step to run")
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="stop", by="bob"))
            result = await ended(handle)
            assert result.phase == "aborted", result.reason
            ops = [op["op"] for op in h.clusters.read()[CLUSTER]["ops"]]
            assert "set-weight" not in ops, ops
            assert h.versions()[CLUSTER] == "v1"
