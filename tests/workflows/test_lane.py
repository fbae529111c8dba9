"""One release per service at a time: submissions meet in the service's lane."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError

from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    Harness,
    canary,
    cluster_state,
    ended,
    plan,
    running_worker,
    submit_to_lane,
    unique_service,
)
from workflows.lane import ReleaseLaneWorkflow, lane_id
from workflows.models import ReleaseInput, SubmitResult
from workflows.release import ReleaseWorkflow

SLOW = [{"name": "internal", "clusters": ["euw1-internal"], "strategy": canary(("w", 10), ("p", None))}]
FAST = [{"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}}]


async def submit(
    h: Harness,
    svc: str,
    version: str,
    rings,
    *,
    image: str | None = None,
    supersede=False,
    rerun=False,
    releases_per_run=0,
) -> SubmitResult:
    """Submit exactly as the CLI does: update-with-start on the service's lane."""
    inp = ReleaseInput(
        service=svc,
        version=version,
        image=image or f"registry.eu.example.com/{svc}:{version}",
        plan_text=plan(svc, rings, metrics=False),
        submitted_by="ci",
    )
    return await submit_to_lane(
        h.client, h.task_queue, inp, supersede=supersede, rerun=rerun, releases_per_run=releases_per_run
    )


async def rejection(submission) -> str:
    """The reason a submission was refused."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await submission
    return str(failed.value.cause)


class TestOneReleasePerService:
    async def test_concurrent_submissions_start_exactly_one_release(self, client, tmp_path):
        """Two CI jobs submitting different versions at once: one starts, the other is told which runs."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            outcomes = await asyncio.gather(
                submit(h, svc, "v2", SLOW), submit(h, svc, "v3", SLOW), return_exceptions=True
            )
            started = [o for o in outcomes if isinstance(o, SubmitResult)]
            rejected = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError)]
            assert len(started) == 1 and started[0].created
            assert len(rejected) == 1
            assert started[0].release in str(rejected[0].cause)

    async def test_the_same_version_and_image_returns_the_running_release(self, client, tmp_path):
        """A retried CI job gets the existing release back (created: false); another image is refused."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            first = await submit(h, svc, "v2", SLOW)
            again = await submit(h, svc, "v2", SLOW)
            assert (again.created, again.workflow_id, again.run_id) == (
                False,
                first.workflow_id,
                first.run_id,
            )
            refused = await rejection(submit(h, svc, "v2", SLOW, image="registry.eu.example.com/other:v2"))
            assert "image" in refused

    async def test_supersede_aborts_the_running_release_with_its_rollback_first(self, client, tmp_path):
        """--supersede: the running release rolls back and ends aborted before the new one starts."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            first = await submit(h, svc, "v2", SLOW)
            await assert_eventually(
                lambda: cluster_state(h.client.get_workflow_handle(first.workflow_id), "euw1-internal"),
                lambda c: c is not None and c.state == "awaiting-approval",
            )
            second = await submit(h, svc, "v3", FAST, supersede=True)
            assert second.created
            previous = await h.client.get_workflow_handle(first.workflow_id).query(ReleaseWorkflow.status)
            assert previous.phase == "aborted"
            assert "superseded by" in previous.reason
            final = await ended(h.client.get_workflow_handle(second.workflow_id))
            assert final.phase == "succeeded"
            assert h.versions()["euw1-internal"] == "v3"
            ops = h.clusters.read()["euw1-internal"]["ops"]
            assert [o["op"] for o in ops if o["release"] == f"{svc}:v2"][-1] == "rollback"

    async def test_an_ended_release_runs_again_only_with_rerun(self, client, tmp_path):
        """Submitting an ended release is refused unless --rerun, which runs it again under the same id."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            first = await submit(h, svc, "v2", FAST)
            await ended(h.client.get_workflow_handle(first.workflow_id))
            await assert_eventually(
                lambda: h.client.get_workflow_handle(lane_id(svc)).query(ReleaseLaneWorkflow.current),
                lambda lane: lane.current is None,
                what="the lane to see the release end",
            )
            assert "--rerun" in await rejection(submit(h, svc, "v2", FAST))
            again = await submit(h, svc, "v2", FAST, rerun=True)
            assert again.created and again.workflow_id == first.workflow_id and again.run_id != first.run_id


async def lane_runs(h: Harness, svc: str) -> list[WorkflowHistory]:
    """Every run of the service's lane, oldest first, followed back through continue-as-new."""
    runs: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await h.client.get_workflow_handle(lane_id(svc), run_id=run_id).fetch_history()
        runs.insert(0, history)
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not run_id:
            return runs


def children(history: WorkflowHistory) -> tuple[list[str], list[str]]:
    """The releases a lane run started, and those it saw end."""
    started = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    finished = [
        e.child_workflow_execution_completed_event_attributes.workflow_execution.workflow_id
        or e.child_workflow_execution_failed_event_attributes.workflow_execution.workflow_id
        for e in history.events
        if e.event_type
        in (
            EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
            EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
        )
    ]
    return started, finished


class TestContinueAsNew:
    async def test_a_release_started_while_the_lane_continues_as_new_stays_in_the_lane(
        self, client, tmp_path
    ):
        """A superseding release started while the lane waits to continue as new is awaited by the run
        that started it: the lane continues as new only idle, and then takes the next release."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            first = await submit(h, svc, "v2", SLOW, releases_per_run=1)
            await assert_eventually(
                lambda: cluster_state(h.client.get_workflow_handle(first.workflow_id), "euw1-internal"),
                lambda c: c is not None and c.state == "awaiting-approval",
            )
            # v2 ends (aborted) while this submission waits; the lane's run then reaches its
            # continue-as-new limit and waits for the handler, which starts v3 meanwhile.
            second = await submit(h, svc, "v3", FAST, supersede=True)
            assert second.created
            await ended(h.client.get_workflow_handle(second.workflow_id))
            lane = h.client.get_workflow_handle(lane_id(svc))
            await assert_eventually(
                lambda: lane.query(ReleaseLaneWorkflow.current),
                lambda state: state.current is None,
                what="the lane to see v3 end",
            )
            runs = await lane_runs(h, svc)
            assert len(runs) >= 2, "the lane continued as new"
            for run in runs:
                started, finished = children(run)
                assert sorted(started) == sorted(finished), "every release a run started ended in that run"
            third = await submit(h, svc, "v4", FAST)
            assert third.created
