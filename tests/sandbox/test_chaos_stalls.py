"""The line that names a workflow still open past a scenario's bound says why it is open.

Chaos seed 2040's release was still open at its bound and waited on nothing: every attempt of its
workflow task failed with a nondeterminism error. The line read ``RUNNING activities [] children []``,
as a release waiting on a timer would. Two small workflows on the dev server stand for both cases:
one whose workflow task fails on every attempt, one that waits.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from sandbox.chaos import stalls
from tests.support.waiting import assert_eventually


@workflow.defn(name="StallsWedged")
class _Wedged:
    @workflow.run
    async def run(self) -> None:
        # Not a Temporal failure: the SDK fails the workflow task, and retries it without end.
        raise RuntimeError("Update machine does not handle this event (stand-in)")


@workflow.defn(name="StallsWaiting")
class _Waiting:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@asynccontextmanager
async def _started(client: Client, workflow: type) -> AsyncIterator[WorkflowHandle[object, None]]:
    queue = f"stalls-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=queue, workflows=[workflow], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await client.start_workflow(workflow.run, id=f"stalls-{uuid.uuid4()}", task_queue=queue)
        try:
            yield handle
        finally:
            await handle.terminate(reason="test over")


async def _types(handle: WorkflowHandle[object, None]) -> list[EventType.ValueType]:
    return [event.event_type async for event in handle.fetch_history_events()]


class TestStillOpen:
    async def test_a_workflow_whose_task_keeps_failing_is_named_with_the_failure(self, client):
        """A wedged workflow's line names the repeated workflow task failure and its message."""
        async with _started(client, _Wedged) as handle:
            await assert_eventually(
                lambda: _types(handle),
                lambda types: types.count(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) >= 1,
                what="the workflow task to fail",
            )
            line = await stalls.describe(client, handle.id)
        plain = f"{handle.id} RUNNING activities [] children []"
        assert line.startswith(f"{plain}; workflow task failing, "), line
        assert "Update machine does not handle this event (stand-in)" in line, line

    async def test_a_workflow_that_waits_is_not_reported_as_failing(self, client):
        """A workflow waiting on a condition gets the plain line: no failure is invented."""
        async with _started(client, _Waiting) as handle:
            await assert_eventually(
                lambda: _types(handle),
                lambda types: EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in types,
                what="the first workflow task to complete",
            )
            line = await stalls.describe(client, handle.id)
        assert line == f"{handle.id} RUNNING activities [] children []", line
