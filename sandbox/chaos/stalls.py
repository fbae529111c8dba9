"""What a workflow still open past a scenario's bound is doing, for the line that reports it.

A workflow open past its bound either waits (on an activity, a child, a timer, a person) or cannot
take a step at all: every attempt of its workflow task fails, say with a nondeterminism error, and
it waits on nothing. ``describe`` cannot tell the two apart; it shows ``activities [] children []``
for both. Chaos seed 2040's release was the second kind and read like the first, so the line also
names the workflow task failure that has repeated since the workflow's last completed task.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError


async def describe(client: Client, workflow_id: str) -> str:
    """``workflow_id`` (latest run): its status, what it waits on, and a workflow task that keeps failing."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as err:
        return f"{workflow_id} (describe failed: {err})"
    raw = described.raw_description
    pending = [
        f"{a.activity_type.name} attempt {a.attempt} {a.last_failure.message[:80]!r}"
        for a in raw.pending_activities
    ]
    children = [c.workflow_id for c in raw.pending_children]
    status = described.status.name if described.status else "unknown"
    line = f"{workflow_id} {status} activities {pending} children {children}"
    failing = await failing_task(handle)
    if failing and raw.HasField("pending_workflow_task"):
        failing = f"{failing} (attempt {raw.pending_workflow_task.attempt})"
    return f"{line}; {failing}" if failing else line


async def failing_task(handle: WorkflowHandle[Any, Any]) -> str:
    """The workflow task failure recorded since the last completed workflow task ("" when there is none).

    Temporal records the first failure of a run of attempts (and one more whenever new events arrive
    meanwhile); the attempts in between are not history, ``describe`` counts them.
    """
    last = None
    try:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                last = None
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                last = event.workflow_task_failed_event_attributes
    except RPCError:
        return ""
    if last is None:
        return ""
    cause = WorkflowTaskFailedCause.Name(last.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
    return f"workflow task failing, {cause}: {last.failure.message[:200]!r}"
