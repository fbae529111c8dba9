"""A cancellation and a failed signal in one workflow task: the race that wedged chaos seed 1123.

A cluster workflow reports to its release by signal. When the release is terminated, Temporal's
parent-close policy asks the cluster workflow to cancel, and the report fails because its target has
closed. If both reach the worker in one workflow task, the SDK (1.35) answers the cancellation with a
``cancel_signal_workflow`` command for a signal already resolved, and every retry of the task fails
with ``[TMPRL1100]``: the cluster never rolls back.

These tests make that happen on purpose, on the real dev server, with a pair of small workflows: the
worker is held inside the workflow task that sends the signal while the parent is terminated, and
sends back a task with the cancellation alone, so the next attempt holds it and the signal's failure
together. A plain
``signal`` wedges (which shows the test reproduces the race); one sent through
``workflows._signals.send`` lets the workflow handle its cancellation and finish.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowInstance, WorkflowInstanceDetails

from tests.support.waiting import assert_eventually
from workflows import _signals

pytestmark = pytest.mark.timeout(120)


class _Gate:
    """The test's hands inside the worker: it holds one task and sends others back."""

    entered = threading.Event()
    released = threading.Event()
    commands: ClassVar[list[list[str]]] = []

    @classmethod
    def reset(cls) -> None:
        cls.entered.clear()
        cls.released.clear()
        cls.commands.clear()

    @classmethod
    def hold(cls) -> None:
        """Keep the task that sends the signal open while the test terminates the parent."""
        cls.entered.set()
        cls.released.wait(timeout=1.5)  # under the SDK's 2 s deadlock detection


class _RaceRunner(UnsandboxedWorkflowRunner):
    """Fails every reporter task that holds its cancellation but not yet the signal's outcome.

    Temporal retries a failed task with every event that arrived meanwhile, so the cancellation and
    the signal's failure end up in one task, as they did when a slow worker met them in seed 1123.
    The commands each task with both answers are kept for the test to read.
    """

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        if det.defn.name != "Reporter":
            return instance
        activate = instance.activate

        def gated(act: WorkflowActivation) -> WorkflowActivationCompletion:
            jobs = {job.WhichOneof("variant") for job in act.jobs}
            if "cancel_workflow" in jobs and "resolve_signal_external_workflow" not in jobs:
                raise RuntimeError("sent back until the signal's outcome is in the same task")
            completion = activate(act)
            if {"cancel_workflow", "resolve_signal_external_workflow"} <= jobs:
                _Gate.commands.append([c.WhichOneof("variant") for c in completion.successful.commands])
            return completion

        instance.activate = gated  # type: ignore[method-assign]
        return instance


@workflow.defn(sandboxed=False)
class Reporter:
    """A child that reports to its parent once told to, and cleans up if it is cancelled meanwhile."""

    def __init__(self) -> None:
        self._go = False

    @workflow.signal
    def go(self) -> None:
        self._go = True

    @workflow.run
    async def run(self, shielded: bool) -> str:
        await workflow.wait_condition(lambda: self._go)
        parent = workflow.info().parent
        assert parent is not None
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        if not workflow.unsafe.is_replaying():
            asyncio.get_running_loop().call_soon(_Gate.hold)
        try:
            if shielded:
                await _signals.send(lambda: handle.signal(Listener.report), "report")
            else:
                await handle.signal(Listener.report)
        except FailureError:
            return "not reported"
        except asyncio.CancelledError:
            return "cancelled, cleaned up"
        return "reported"


@workflow.defn(sandboxed=False)
class Listener:
    """A parent that starts the reporter, closing it by cancellation, and waits."""

    @workflow.signal
    def report(self) -> None:
        pass

    @workflow.run
    async def run(self, shielded: bool) -> None:
        await workflow.start_child_workflow(
            Reporter.run,
            shielded,
            id=f"{workflow.info().workflow_id}-reporter",
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
        )
        await workflow.wait_condition(lambda: False)


def _worker(client: Client, queue: str) -> Worker:
    # Unsandboxed so the gate is the test's own object (activations run on the worker's threads).
    return Worker(
        client, task_queue=queue, workflows=[Listener, Reporter], unsandboxed_workflow_runner=_RaceRunner()
    )


async def _events(handle: WorkflowHandle[object, str]) -> list[EventType.ValueType]:
    """The workflow's event types so far; none while it has not been started."""
    try:
        return [e.event_type for e in (await handle.fetch_history()).events]
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return []


@asynccontextmanager
async def _race(client: Client, *, shielded: bool) -> AsyncIterator[WorkflowHandle[object, str]]:
    """A worker running the reporter into the race; yields the reporter's handle once it is in it."""
    _Gate.reset()
    queue = f"signals-{uuid.uuid4().hex}"
    async with _worker(client, queue):
        parent = await client.start_workflow(
            Listener.run, shielded, id=f"listener-{uuid.uuid4().hex}", task_queue=queue
        )
        child: WorkflowHandle[object, str] = client.get_workflow_handle(
            f"{parent.id}-reporter", result_type=str
        )
        await assert_eventually(
            lambda: _events(child),
            lambda events: EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events,
            what="the reporter started",
        )
        await child.signal(Reporter.go)
        assert await asyncio.to_thread(_Gate.entered.wait, 30), "the reporter never sent its signal"
        await parent.terminate("terminated while its child reports")
        _Gate.released.set()
        await assert_eventually(
            lambda: asyncio.sleep(0, list(_Gate.commands)),
            bool,
            what="one task with both the cancellation and the signal's failure",
        )
        yield child


class TestCancelledWhileSignalling:
    async def test_a_plain_signal_wedges_the_workflow(self, client: Client) -> None:
        """Without the shield the SDK cancels a signal already resolved, and the task fails for good.

        This shows the test reproduces the race; once an SDK release fixes it, this test fails and
        ``workflows._signals`` can go (behind its patch).
        """
        async with _race(client, shielded=False) as child:
            assert "cancel_signal_workflow" in _Gate.commands[0]
            described = await assert_eventually(
                child.describe,
                lambda d: d.raw_description.pending_workflow_task.attempt >= 3,
                what="the task with both to fail again",
            )
            assert described.status == WorkflowExecutionStatus.RUNNING

    async def test_a_shielded_signal_lets_the_workflow_handle_its_cancellation(self, client: Client) -> None:
        """Through ``_signals.send`` the race reaches the workflow as its cancellation; it finishes."""
        async with _race(client, shielded=True) as child:
            assert "cancel_signal_workflow" not in _Gate.commands[0]
            assert await child.result() == "cancelled, cleaned up"
