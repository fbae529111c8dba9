"""The safety core on a real dev server: a rollback, once started, completes whatever happens around it.

Each test is a combination the paths tested one at a time never tried: a cancel during a rollback, a
release workflow terminated or reset while a cluster is mid-canary, a cluster API that stays down
longer than a step's retries, a rollback that fails permanently in one cluster of several. Every
outcome is judged on the clusters (the fake fleet's state file), not only on the workflow's word.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.converter import PayloadCodec
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.models import PreparedRelease, PrepareInput
from ringmaster.converter import data_converter
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    Harness,
    ScriptedMetrics,
    canary,
    cluster_state,
    ended,
    ended_cluster,
    plan,
    running_worker,
    small_rings,
    unique_service,
    worker_settings,
)
from workflows.cluster import ClusterRolloutWorkflow
from workflows.models import (
    AbortRequest,
    ApproveRequest,
    ClusterRolloutResult,
    ReleaseInput,
    ReleaseStatus,
    ResumeRequest,
)
from workflows.release import ReleaseWorkflow, cluster_workflow_id

INTERNAL = "euw1-internal"


def _awaiting_approval_rings() -> list[dict[str, Any]]:
    """One canary cluster that stops at weight 20 until approved: a release parked mid-canary."""
    return [{"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 20), ("p", None))}]


async def _status(handle: WorkflowHandle[Any, Any]) -> ReleaseStatus:
    return await handle.query(ReleaseWorkflow.status)


async def _mid_canary(h: Harness, *, metrics: bool = False) -> WorkflowHandle[Any, ReleaseStatus]:
    svc = unique_service()
    handle = await h.start(plan(svc, _awaiting_approval_rings(), metrics=metrics), service=svc)
    await assert_eventually(
        lambda: cluster_state(handle, INTERNAL),
        lambda c: c is not None and c.state == "awaiting-approval",
        what="the canary to reach its pause",
    )
    return handle


def _child(client: Client, handle: WorkflowHandle[Any, Any]) -> WorkflowHandle[Any, ClusterRolloutResult]:
    _, service, version = handle.id.split(":")
    return client.get_workflow_handle(
        cluster_workflow_id(service, version, "internal", INTERNAL), result_type=ClusterRolloutResult
    )


def _restored(h: Harness, cluster: str = INTERNAL) -> bool:
    c = h.clusters.read()[cluster]
    return c["version"] == "v1" and c["canary"] is None and c["weight"] == 0


class TestRollbackThroughCancellation:
    async def test_a_cancel_during_the_release_rollback_lets_it_finish(self, client, tmp_path):
        """Cancelled while rolling back earlier rings: every cluster is restored; it ends rolled-back."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={"use1-prod"})) as h:
            h.clusters.configure("euc1-beta", rollback_delay=3)
            svc = unique_service()
            handle = await h.start(plan(svc, small_rings()), service=svc)
            await assert_eventually(
                lambda: cluster_state(handle, "euc1-beta"),
                lambda c: c is not None and c.state == "rolling-back",
                what="the release to roll back euc1-beta",
                timeout=60,
            )
            await handle.cancel()
            result = await ended(handle)
        assert result.phase == "rolled-back", result.reason
        assert set(h.versions().values()) == {"v1"}, "no cluster is left on the new version"
        assert result.needs_attention == []

    async def test_a_cancel_during_a_cluster_rollback_lets_it_finish(self, client, tmp_path):
        """The cluster workflow cancelled mid-rollback still restores its cluster and reports it aborted."""
        async with running_worker(client, tmp_path) as h:
            h.clusters.configure(INTERNAL, rollback_delay=3)
            handle = await _mid_canary(h)
            await handle.execute_update(
                ReleaseWorkflow.abort, AbortRequest(reason="bad dashboards", by="bob")
            )
            await assert_eventually(
                lambda: cluster_state(handle, INTERNAL),
                lambda c: c is not None and c.state == "rolling-back",
                what="the cluster's rollback to start",
            )
            child = _child(client, handle)
            await child.cancel()
            await handle.cancel()
            outcome = await ended_cluster(child)
            result = await ended(handle)
        assert outcome.outcome == "aborted" and not outcome.rollback_failed, outcome
        assert result.phase == "aborted", result.reason
        assert _restored(h), h.clusters.read()[INTERNAL]


class TestReleaseClosedMidCanary:
    async def test_a_terminated_release_leaves_no_canary_behind(self, client, tmp_path):
        """Terminating the release mid-canary: its cluster workflow rolls back (no workflow code of the
        release runs, and the cluster's reports to it fail)."""
        async with running_worker(client, tmp_path) as h:
            handle = await _mid_canary(h)
            await handle.terminate(reason="operator cleanup")
            outcome = await ended_cluster(_child(client, handle))
            assert outcome.outcome == "aborted" and not outcome.rollback_failed, outcome
            assert _restored(h), h.clusters.read()[INTERNAL]

    @pytest.mark.usefixtures("fast_retries")
    async def test_a_reset_release_waits_for_the_old_cluster_workflow_then_runs_again(self, client, tmp_path):
        """Reset to just after preparing: the old run's child, still holding the id the new run needs, rolls
        back; the new run starts its child once the id is free, and the release completes."""
        async with running_worker(client, tmp_path) as h:
            h.clusters.configure(INTERNAL, rollback_delay=2)
            handle = await _mid_canary(h)
            event_id = await _task_after_prepare(handle)
            reset = await _reset(client, handle, event_id)
            new = client.get_workflow_handle(handle.id, run_id=reset, result_type=ReleaseStatus)
            await assert_eventually(
                lambda: cluster_state(new, INTERNAL),
                lambda c: c is not None and c.state == "awaiting-approval",
                what="the new run's cluster to reach the pause",
                timeout=60,
            )
            ops = [o["op"] for o in h.clusters.read()[INTERNAL]["ops"]]
            assert ops == ["set-weight", "rollback", "set-weight"], (
                "the old child rolled back before the new one began"
            )
            await new.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster=INTERNAL, by="bob")
            )
            result = await ended(new)
        assert result.phase == "succeeded", result.reason
        assert h.versions()[INTERNAL] == "v2"

    @pytest.mark.usefixtures("fast_retries")
    async def test_an_abort_after_a_reset_rolls_back_what_the_old_run_promoted(self, client, tmp_path):
        """The old run promoted beta and parked prod; the reset run, back in ring one, is aborted: every
        cluster is restored, beta included, though the new run never reached it (found by chaos seed 94);
        a cluster neither run reached is not written to; the old run's child in prod, still rolling back when
        the new run is aborted, has ended before the release ends (seed 126)."""
        rings = [
            {"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 20), ("p", None))},
            {"name": "beta", "clusters": ["euc1-beta"], "strategy": {"rolling": {}}},
            {"name": "prod", "clusters": ["use1-prod"], "strategy": canary(("w", 20), ("p", None))},
            {"name": "last", "clusters": ["usw2-prod"], "strategy": {"rolling": {}}},
        ]
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, rings), service=svc)
            await assert_eventually(
                lambda: cluster_state(handle, INTERNAL),
                lambda c: c is not None and c.state == "awaiting-approval",
                what="the internal canary at its pause",
            )
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster=INTERNAL, by="bob")
            )
            await assert_eventually(
                lambda: cluster_state(handle, "use1-prod"),
                lambda c: c is not None and c.state == "awaiting-approval",
                what="the old run to promote beta and park prod",
            )
            assert h.versions()["euc1-beta"] == "v2"
            # A reset leaves the old run's child parked in prod running. Aborted by the sweep, its rollback
            # is the slow one: the sweep's own restore there comes first unless it waits for that child.
            h.clusters.configure("use1-prod", rollback_delay=[0, 10])
            reset = await _reset(client, handle, await _task_after_prepare(handle))
            new = client.get_workflow_handle(handle.id, run_id=reset, result_type=ReleaseStatus)
            await assert_eventually(
                lambda: cluster_state(new, INTERNAL),
                lambda c: c is not None and c.state == "awaiting-approval",
                what="the new run back at ring one's pause",
                timeout=60,
            )
            await new.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="incident", by="bob"))
            result = await ended(new)
            _, _, version = handle.id.split(":")
            old_prod = client.get_workflow_handle(cluster_workflow_id(svc, version, "prod", "use1-prod"))
            old_closed, release_closed = (
                (await old_prod.describe()).close_time,
                (await new.describe()).close_time,
            )
        assert old_closed is not None and release_closed is not None
        assert old_closed <= release_closed, "the release ended before the old run's child in prod (seed 126)"
        assert result.phase == "aborted", result.reason
        assert h.versions() == {**h.versions(), INTERNAL: "v1", "euc1-beta": "v1", "use1-prod": "v1"}
        assert result.cluster("euc1-beta").state == "rolled-back"
        assert h.clusters.read()["usw2-prod"]["ops"] == [], "nothing is written where nobody deployed"

    @pytest.mark.usefixtures("fast_retries")
    @pytest.mark.parametrize(
        ("gated", "command"),
        [
            # chaos seed 3128: the cancel cuts short the start that meets the old child
            (b'"promoted_before"', EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED),
            # after the start met it: the abort the retry sends the old child, then its pause
            (b"replaced by a new run", EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED),
            # before the start: reading the freezes
            (b'"regions"', EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        ],
        ids=["the-start-meeting-it", "the-retrys-abort", "a-freeze-read-before-the-start"],
    )
    async def test_a_cancel_after_a_reset_stops_the_old_child_before_the_release_ends(
        self, client, tmp_path, gated, command
    ):
        """The old run's child is still taking its snapshot when the reset run is cancelled, wherever the
        cancel meets the reset run on its way to that cluster: the release ends only after that child,
        told to abort, has ended without promoting, and the cluster is on its previous version (chaos
        seed 3128: the child, never told, promoted after the release ended aborted)."""
        gate = _Gate(gated)
        gated_client = Client(
            **{**client.config(), "data_converter": replace(data_converter, payload_codec=gate)}
        )
        rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": {"rolling": {}}}]
        async with running_worker(gated_client, tmp_path) as h:
            # Slow enough that the old child has recorded nothing when the reset run's sweep looks.
            h.clusters.configure(INTERNAL, snapshot_delay=5)
            svc = unique_service()
            handle = await h.start(plan(svc, rings), service=svc)
            child = _child(gated_client, handle)
            await assert_eventually(
                lambda: _pending(child),
                lambda names: "snapshot_cluster" in names,
                what="the old run's child taking its snapshot",
            )
            old_child = gated_client.get_workflow_handle(
                child.id, run_id=(await child.describe()).run_id, result_type=ClusterRolloutResult
            )
            gate.armed = True
            reset = await _reset(gated_client, handle, await _task_after_prepare(handle))
            new = gated_client.get_workflow_handle(handle.id, run_id=reset, result_type=ReleaseStatus)
            try:
                await asyncio.wait_for(gate.holding.wait(), timeout=30)
                # The server appends the cancel right behind the held workflow task's commands.
                await new.cancel()
            finally:
                gate.opened.set()
            result = await ended(new)
            release_closed = (await new.describe()).close_time
            outcome = await ended_cluster(old_child)
            old_closed = (await old_child.describe()).close_time
            events = [e.event_type async for e in new.fetch_history_events()]
        cancel = events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
        task = max(
            i for i, e in enumerate(events[:cancel]) if e == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        assert command in events[task:cancel], "the cancel met the reset run where this case means it to"
        assert old_closed is not None and release_closed is not None
        assert old_closed <= release_closed, "the release ended before the old run's child (seed 3128)"
        # Stopped mid-snapshot it never deploys; on a slow machine it may promote first, and then the
        # sweep, having outlasted it, finds its snapshot and restores the cluster.
        assert outcome.outcome != "promoted" or result.cluster(INTERNAL).state == "rolled-back", outcome
        assert result.phase == "aborted", result.reason
        assert h.versions()[INTERNAL] == "v1", h.clusters.read()[INTERNAL]["ops"]

    @pytest.mark.usefixtures("fast_retries")
    async def test_a_cancel_in_the_reset_runs_first_task_still_stops_the_old_child(self, client, tmp_path):
        """The cancel reaches the reset run together with the replayed prepare result, in its first
        workflow task (no worker polls between the reset and the cancel): the run still learns its
        schedule, stops the old run's child parked mid-canary and restores its cluster before it ends
        (it ended `aborted` "before anything was deployed", leaving that child running)."""
        settings = worker_settings()
        rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 20), ("p", None))}]
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, rings), service=svc)
            await assert_eventually(
                lambda: cluster_state(handle, INTERNAL),
                lambda c: c is not None and c.state == "awaiting-approval",
                what="the old run's child parked at its pause",
            )
        reset = await _reset(client, handle, await _task_after_prepare(handle))
        new = client.get_workflow_handle(handle.id, run_id=reset, result_type=ReleaseStatus)
        await new.cancel()
        old_child = _child(client, handle)
        async with running_worker(client, tmp_path, settings=settings) as h:
            result = await ended(new)
            release_closed = (await new.describe()).close_time
            old_closed = (await old_child.describe()).close_time
            events = [e.event_type async for e in new.fetch_history_events()]
        reset_at = events.index(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        first_task = events.index(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, reset_at)
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in events[reset_at:first_task]
        assert result.phase == "aborted", result.reason
        assert old_closed is not None and release_closed is not None, "the old run's child still runs"
        assert old_closed <= release_closed, "the release ended before the old run's child"
        assert _restored(h), h.clusters.read()[INTERNAL]


class _Gate(PayloadCodec):
    """Once armed, holds the worker's next workflow task whose commands carry ``marker`` (as it encodes
    them) until opened: what a test sends the workflow meanwhile lands right behind those commands."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.armed = False
        self.holding = asyncio.Event()
        self.opened = asyncio.Event()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.armed and any(self.marker in p.data for p in payloads):
            self.armed = False
            self.holding.set()
            await self.opened.wait()
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


async def _pending(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activity types ``handle`` is running (none while the workflow does not exist yet)."""
    try:
        described = await handle.describe()
    except RPCError:
        return []
    return [a.activity_type.name for a in described.raw_description.pending_activities]


async def _task_after_prepare(handle: WorkflowHandle[Any, Any]) -> int:
    """The id of the workflow task that handled prepare_release's result (where a reset re-runs from)."""
    prepared = False
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            prepared = True
        elif prepared and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return event.event_id
    raise AssertionError("no workflow task after prepare_release")


async def _reset(client: Client, handle: WorkflowHandle[Any, Any], event_id: int) -> str:
    answer = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            reason="test: reset mid-canary",
            workflow_task_finish_event_id=event_id,
            request_id=f"reset-{handle.id}",
        )
    )
    return answer.run_id


class TestResumeLiftsClusterHolds:
    async def test_resume_lifts_a_hold_placed_by_a_cluster_gate(self, client, tmp_path):
        """An inconclusive gate holds one cluster; `resume` is accepted and the release goes on."""
        metrics = ScriptedMetrics(errors={INTERNAL})
        async with running_worker(client, tmp_path, metrics=metrics) as h:
            svc = unique_service()
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 20), ("p", "1s"))}]
            handle = await h.start(plan(svc, rings), service=svc)
            resumed = 0
            while True:
                status = await assert_eventually(
                    lambda: _status(handle), lambda s: s.phase in ("holding", "succeeded"), timeout=60
                )
                if status.phase == "succeeded":
                    break
                assert status.cluster(INTERNAL).state == "holding"
                assert not status.actions or status.actions[-1].kind == "resume"
                answer = await handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
                assert answer.accepted
                resumed += 1
                await assert_eventually(
                    lambda: _status(handle), lambda s: s.phase != "holding", what="the hold to lift"
                )
            assert resumed >= 1
            assert h.versions()[INTERNAL] == "v2"


@pytest.mark.usefixtures("fast_retries")
class TestUnreachableCluster:
    async def test_an_outage_longer_than_the_retries_holds_the_cluster_and_it_goes_on_by_itself(
        self, client, tmp_path
    ):
        """A cluster API down past a step's retries: the cluster holds as unreachable, naming the error,
        and the release continues when the API answers again, without anyone resuming it."""
        async with running_worker(client, tmp_path) as h:
            handle = await _mid_canary(h)
            h.clusters.configure(INTERNAL, unreachable=True)
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster=INTERNAL, by="bob")
            )
            status = await assert_eventually(
                lambda: _status(handle),
                lambda s: s.phase == "holding" and "cluster unreachable" in s.cluster(INTERNAL).step,
                what="the cluster to hold as unreachable",
            )
            assert "ConnectionRefusedError" in status.hold_reason
            await assert_eventually(
                lambda: _status(handle),
                lambda s: "trying again" in s.cluster(INTERNAL).step and s.phase == "holding",
                what="another round to fail while the API is down",
            )
            h.clusters.configure(INTERNAL, unreachable=False)
            result = await ended(handle)
        assert result.phase == "succeeded", result.reason
        assert [a.kind for a in result.actions] == ["approve"], "nobody had to resume it"
        assert h.versions()[INTERNAL] == "v2"

    async def test_a_rollback_never_gives_up_on_an_unreachable_cluster(self, client, tmp_path):
        """Aborted while the API is down: the rollback retries, visible in status, until it completes."""
        async with running_worker(client, tmp_path) as h:
            handle = await _mid_canary(h)
            h.clusters.configure(INTERNAL, unreachable=True)
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="incident", by="bob"))
            await assert_eventually(
                lambda: cluster_state(handle, INTERNAL),
                lambda c: c is not None and c.state == "rolling-back" and "round 3 failed" in c.step,
                what="three rounds of the rollback to fail",
            )
            assert (await _child(client, handle).describe()).status == WorkflowExecutionStatus.RUNNING
            h.clusters.configure(INTERNAL, unreachable=False)
            result = await ended(handle)
        assert result.phase == "aborted", result.reason
        assert result.needs_attention == []
        assert _restored(h), h.clusters.read()[INTERNAL]

    async def test_a_permanent_rollback_failure_lists_exactly_the_unrestored_clusters(self, client, tmp_path):
        """The last ring fails; one earlier cluster refuses its rollback (403) and another is down for a
        while: the release ends failed with only the refusing cluster needing attention."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={"use1-prod"})) as h:
            h.clusters.configure("euc1-beta", fail_rollback=True)
            svc = unique_service()
            handle = await h.start(plan(svc, small_rings()), service=svc)
            # Down from the moment its ring is over (nothing writes to it again until the rollback),
            # so however fast the last ring fails, the internal cluster's rollback finds it down.
            await assert_eventually(
                lambda: cluster_state(handle, "euc1-beta"),
                lambda c: c is not None and c.state != "pending",
                what="the second ring to start",
                timeout=60,
            )
            h.clusters.configure(INTERNAL, unreachable=True)
            await assert_eventually(
                lambda: cluster_state(handle, INTERNAL),
                lambda c: c is not None and "round 1 failed" in c.step,
                what="the internal cluster's rollback to wait for its API",
                timeout=60,
            )
            h.clusters.configure(INTERNAL, unreachable=False)
            result = await ended(handle)
        assert result.phase == "failed", result.reason
        assert result.needs_attention == ["euc1-beta"]
        versions = h.versions()
        assert versions == {**versions, "euc1-beta": "v2", INTERNAL: "v1", "use1-prod": "v1"}
        assert result.cluster("euc1-beta").state == "failed"
        assert result.cluster(INTERNAL).state == "rolled-back"


class TestCancelWhilePreparing:
    async def test_a_cancel_while_preparing_is_an_abort_not_invalid_input(self, client):
        """Cancelled before the plan was validated: the release ends aborted, not `invalid` (exit 2)."""
        started = asyncio.Event()

        @activity.defn(name="prepare_release")
        async def slow_prepare(_inp: PrepareInput) -> PreparedRelease:
            started.set()
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)

        task_queue = f"tq-{unique_service()}"
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ReleaseWorkflow, ClusterRolloutWorkflow],
            activities=[slow_prepare],
        ):
            svc = unique_service()
            handle = await client.start_workflow(
                ReleaseWorkflow.run,
                ReleaseInput(service=svc, version="v2", image=f"r/{svc}:v2", plan_text="{}"),
                id=f"release:{svc}:v2",
                task_queue=task_queue,
            )
            await asyncio.wait_for(started.wait(), 30)
            await handle.cancel()
            result = await ended(handle)
        assert result.phase == "aborted", result.reason
        assert not result.invalid
