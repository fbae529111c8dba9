"""A large ring's bake runs in bake workflows of its own, with the release's semantics unchanged.

Past ``bake_partition_clusters`` promoted clusters a release starts ``RingBakeWorkflow`` children
instead of judging every cluster's bake in its own history. These tests set the bound to 1, so a
ring of two clusters bakes in two bake workflows, and check what the release does with them: it
promotes on their verdicts, rolls back on a failed gate in any, holds while one holds, stretches
the bake past a hold with another round, and stops them all on an abort.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    ScriptedMetrics,
    ended,
    plan,
    running_worker,
    unique_service,
    worker_settings,
)
from workflows.models import AbortRequest, HoldRequest, ResumeRequest
from workflows.release import ReleaseWorkflow

PROD = ["euw1-prod", "use1-prod"]


def _rings(bake: str) -> list[dict[str, Any]]:
    return [
        {"name": "broad", "clusters": PROD, "strategy": {"rolling": {}}, "maxParallel": 2, "bakeTime": bake}
    ]


async def _bakers(client: Client, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The bake workflows the release has started, by id: the child's *started* event, not
    its *initiated* one, so each id names a workflow the server already knows."""
    found = []
    async for event in handle.fetch_history_events():
        if event.HasField("child_workflow_execution_started_event_attributes"):
            attrs = event.child_workflow_execution_started_event_attributes
            if attrs.workflow_type.name == "RingBakeWorkflow":
                found.append(attrs.workflow_execution.workflow_id)
    return sorted(found)  # two children start in either order


async def _bake_stretches_in(handle: WorkflowHandle[Any, Any]) -> int:
    """``analyze`` activities the release scheduled in its own history."""
    count = 0
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            count += event.activity_task_scheduled_event_attributes.activity_type.name == "analyze"
    return count


class TestPartitionedBake:
    async def test_a_ring_bakes_in_one_workflow_per_chunk_and_promotes_on_their_verdicts(
        self, client, tmp_path
    ):
        """Two clusters, chunks of one: two bake workflows judge, the release schedules no stretch of
        its own, and records each cluster's bake verdict."""
        async with running_worker(client, tmp_path, settings=worker_settings(bake_partition_clusters=1)) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _rings("3s")), service=svc)
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            bakers = await _bakers(client, handle)
            assert [b.rsplit(":", 4)[1:4] for b in bakers] == [["broad", "1", "1"], ["broad", "1", "2"]]
            assert await _bake_stretches_in(handle) == 0
            for name in PROD:
                gate = result.cluster(name).gate
                assert gate is not None and gate.status == "passed", (name, gate)
            for baker in bakers:
                assert (
                    await client.get_workflow_handle(baker).describe()
                ).status == WorkflowExecutionStatus.COMPLETED

    async def test_without_the_bound_the_release_bakes_in_its_own_history(self, client, tmp_path):
        """At the default bound, two clusters bake as before: stretches in the release, no bake workflow."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _rings("2s")), service=svc)
            assert (await ended(handle)).phase == "succeeded"
            assert await _bakers(client, handle) == []
            assert await _bake_stretches_in(handle) >= 2

    async def test_a_gate_failing_in_one_bake_workflow_rolls_the_ring_back(self, client, tmp_path):
        """A gate failing during the bake in one chunk: the release rolls back every cluster of the
        ring and ends rolled back, naming the cluster; the other bake workflow stops."""
        metrics = ScriptedMetrics(failing={"use1-prod"}, stage="bake")
        settings = worker_settings(bake_partition_clusters=1)
        async with running_worker(client, tmp_path, metrics=metrics, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _rings("1m")), service=svc)
            result = await ended(handle)
            assert result.phase == "rolled-back", result.reason
            assert "use1-prod" in result.reason and "bake of ring broad" in result.reason
            assert {n: h.versions()[n] for n in PROD} == {"euw1-prod": "v1", "use1-prod": "v1"}
            gate = result.cluster("use1-prod").gate
            assert gate is not None and gate.status == "failed"
            for baker in await _bakers(client, handle):
                assert (
                    await client.get_workflow_handle(baker).describe()
                ).status != WorkflowExecutionStatus.RUNNING

    async def test_an_inconclusive_gate_in_a_bake_workflow_holds_the_release_until_resumed(
        self, client, tmp_path
    ):
        """Metrics erroring in one cluster mid-bake: the bake workflow reports the gate hold, the release
        holds (phase and cluster state), a resume reaches the bake through the release, and it ends."""
        metrics = ScriptedMetrics()
        settings = worker_settings(bake_partition_clusters=1)
        async with running_worker(client, tmp_path, metrics=metrics, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _rings("20s")), service=svc)
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status), lambda s: s.phase == "baking", what="the bake"
            )
            metrics.errors.add("use1-prod")
            held = await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status),
                lambda s: s.phase == "holding" and s.cluster("use1-prod").state == "holding",
                what="the release held by the bake's inconclusive gate",
                timeout=60,
            )
            assert "use1-prod" in held.hold_reason
            metrics.errors.clear()
            answer = await handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            assert answer.accepted, answer
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason

    async def test_a_hold_stretches_the_bake_with_another_round(self, client, tmp_path):
        """Held during the bake, the release's bake clock stops; once resumed, a second round of bake
        workflows judges the time that was left, and the release succeeds."""
        settings = worker_settings(bake_partition_clusters=1)
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _rings("6s")), service=svc)
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status), lambda s: s.phase == "baking", what="the bake"
            )
            await handle.execute_update(ReleaseWorkflow.hold, HoldRequest(reason="look first", by="bob"))
            await assert_eventually(
                lambda: _bakers(client, handle), lambda b: len(b) >= 4, what="a second round", timeout=60
            )
            await handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason

    async def test_an_abort_during_the_bake_stops_every_bake_workflow_and_rolls_back(self, client, tmp_path):
        """Aborted mid-bake: every bake workflow ends, and the ring's clusters are back on v1."""
        settings = worker_settings(bake_partition_clusters=1)
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _rings("10m")), service=svc)
            await assert_eventually(lambda: _bakers(client, handle), lambda b: len(b) == 2, what="the bake")
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="enough", by="bob"))
            result = await ended(handle)
            assert result.phase == "aborted"
            assert {n: h.versions()[n] for n in PROD} == {"euw1-prod": "v1", "use1-prod": "v1"}

            async def running() -> list[str]:
                return [
                    b
                    for b in await _bakers(client, handle)
                    if (await client.get_workflow_handle(b).describe()).status
                    == WorkflowExecutionStatus.RUNNING
                ]

            await assert_eventually(running, lambda r: r == [], what="every bake workflow to end")

    async def test_a_bake_workflow_cancelled_from_outside_fails_the_bake(self, client, tmp_path):
        """Cancelling one bake workflow (anyone with Temporal access can) never skips the bake of its
        clusters: the release reads it as a failed gate and rolls the ring back."""
        settings = worker_settings(bake_partition_clusters=1)
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _rings("10m")), service=svc)
            bakers = await assert_eventually(
                lambda: _bakers(client, handle), lambda b: len(b) == 2, what="the bake"
            )
            await client.get_workflow_handle(bakers[0]).cancel()
            result = await ended(handle)
            assert result.phase == "rolled-back", result.reason
            assert "was stopped before the bake's end" in result.reason
            assert {n: h.versions()[n] for n in PROD} == {"euw1-prod": "v1", "use1-prod": "v1"}
