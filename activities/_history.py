"""A release's workflow histories, read back as plain data: what the audit record is built from.

One :class:`Run` per workflow run (the release, each cluster workflow, each bake workflow), with its
input, every activity it ran (type, input, result or failure, when) and every child it started, all
decoded from the JSON payloads ringmaster's data converter writes (no codec is configured, so a
payload's bytes are its JSON). Decoded to dicts, not to the workflows' models: this layer sits below
``workflows``, and a record built from dicts also reads histories written by older code.

Used by :mod:`activities.audit` (the archive activity, on the worker) and by ``ringmaster audit``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

CHILD_READS = 16
"""Child histories read at once (a release spans up to a thousand cluster workflows)."""


def decode(payload: Payload) -> Any:
    """The JSON value of one payload; None for a null payload or one that is not JSON."""
    encoding = payload.metadata.get("encoding", b"")
    if encoding != b"json/plain":
        return None
    try:
        return json.loads(payload.data)
    except ValueError:
        return None


def _first(payloads: Payloads) -> Any:
    return decode(payloads.payloads[0]) if payloads.payloads else None


def failure_text(failure: Failure) -> str:
    """A failure's message with its causes' (``a: b: c``)."""
    parts, seen = [], 0
    node: Failure | None = failure
    while node is not None and seen < 10:
        if node.message and node.message not in parts:
            parts.append(node.message)
        node = node.cause if node.HasField("cause") else None
        seen += 1
    return ": ".join(parts)


def failure_record(failure: Failure) -> tuple[str, Any]:
    """The application failure type and first detail in ``failure``'s chain (an outcome's record)."""
    node: Failure | None = failure
    seen = 0
    while node is not None and seen < 10:
        if node.HasField("application_failure_info"):
            info = node.application_failure_info
            if info.details.payloads:
                return info.type, _first(info.details)
        node = node.cause if node.HasField("cause") else None
        seen += 1
    return "", None


def _at(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


@dataclass
class Activity:
    """One activity a run scheduled, and how it closed (``result`` or ``failure``; both empty while open)."""

    type: str
    input: Any
    scheduled_at: datetime
    closed_at: datetime | None = None
    result: Any = None
    failure: str = ""


@dataclass
class Child:
    """One child workflow a run started."""

    type: str
    workflow_id: str
    input: Any
    initiated_at: datetime
    run_id: str = ""
    closed_at: datetime | None = None
    outcome: str = ""
    """``completed``, ``failed``, ``canceled``, ``terminated``, ``timed-out``; empty while open."""
    result: Any = None
    """The result, or the record an outcome failure carries."""
    failure: str = ""


@dataclass
class Run:
    """One workflow run, decoded."""

    workflow_id: str
    run_id: str
    type: str = ""
    input: Any = None
    started_at: datetime | None = None
    closed_at: datetime | None = None
    closed: str = ""
    """How it closed (as :attr:`Child.outcome`); empty while it runs."""
    result: Any = None
    """The result, or the record its outcome failure carries."""
    failure: str = ""
    activities: list[Activity] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

    def ran(self, activity_type: str) -> list[Activity]:
        """This run's activities of one type, in schedule order."""
        return [a for a in self.activities if a.type == activity_type]


_CHILD_CLOSED = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "timed-out",
}
_RUN_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed-out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued-as-new",
}


def read_events(workflow_id: str, run_id: str, events: list[HistoryEvent]) -> Run:
    """Decode one run's events."""
    run = Run(workflow_id=workflow_id, run_id=run_id)
    scheduled: dict[int, Activity] = {}
    initiated: dict[int, Child] = {}
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            a = event.workflow_execution_started_event_attributes
            run.type, run.input, run.started_at = a.workflow_type.name, _first(a.input), _at(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            s = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = act = Activity(s.activity_type.name, _first(s.input), _at(event))
            run.activities.append(act)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            c = event.activity_task_completed_event_attributes
            if (done := scheduled.get(c.scheduled_event_id)) is not None:
                done.result, done.closed_at = _first(c.result), _at(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            f = event.activity_task_failed_event_attributes
            if (failed := scheduled.get(f.scheduled_event_id)) is not None:
                failed.failure, failed.closed_at = failure_text(f.failure), _at(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            t = event.activity_task_timed_out_event_attributes
            if (late := scheduled.get(t.scheduled_event_id)) is not None:
                late.failure, late.closed_at = failure_text(t.failure) or "timed out", _at(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            x = event.activity_task_canceled_event_attributes
            if (cancelled := scheduled.get(x.scheduled_event_id)) is not None:
                cancelled.failure, cancelled.closed_at = "cancelled", _at(event)
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            i = event.start_child_workflow_execution_initiated_event_attributes
            child = Child(i.workflow_type.name, i.workflow_id, _first(i.input), _at(event))
            initiated[event.event_id] = child
            run.children.append(child)
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            st = event.child_workflow_execution_started_event_attributes
            if (begun := initiated.get(st.initiated_event_id)) is not None:
                begun.run_id = st.workflow_execution.run_id
        elif kind in _CHILD_CLOSED:
            _close_child(initiated, event, _CHILD_CLOSED[kind])
        elif kind in _RUN_CLOSED:
            run.closed, run.closed_at = _RUN_CLOSED[kind], _at(event)
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                run.result = _first(event.workflow_execution_completed_event_attributes.result)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
                failure = event.workflow_execution_failed_event_attributes.failure
                run.failure = failure_text(failure)
                run.result = failure_record(failure)[1]
    return run


def _close_child(initiated: dict[int, Child], event: HistoryEvent, outcome: str) -> None:
    attrs: Any = {
        "completed": event.child_workflow_execution_completed_event_attributes,
        "failed": event.child_workflow_execution_failed_event_attributes,
        "canceled": event.child_workflow_execution_canceled_event_attributes,
        "terminated": event.child_workflow_execution_terminated_event_attributes,
        "timed-out": event.child_workflow_execution_timed_out_event_attributes,
    }[outcome]
    child = initiated.get(attrs.initiated_event_id)
    if child is None:
        return
    child.outcome, child.closed_at = outcome, _at(event)
    if outcome == "completed":
        child.result = _first(attrs.result)
    elif outcome == "failed":
        child.failure = failure_text(attrs.failure)
        child.result = failure_record(attrs.failure)[1]


@dataclass
class Histories:
    """A release run and the runs of every child it started (cluster and bake workflows)."""

    release: Run
    children: dict[str, Run] = field(default_factory=dict)
    """Child runs by workflow id; a child whose history is gone is missing here."""
    missing: list[str] = field(default_factory=list)
    """Children whose history could not be read (retention, or a namespace they are not in)."""


async def read_run(client: Client, workflow_id: str, run_id: str | None = None) -> Run:
    """One run's history (the latest run when ``run_id`` is None), decoded."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    if run_id is None:
        run_id = (await handle.describe()).run_id
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    history = await handle.fetch_history()
    return read_events(workflow_id, run_id or "", list(history.events))


async def read_release(
    client: Client,
    workflow_id: str,
    run_id: str | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Histories:
    """The release run's history and its children's; ``progress`` hears how many children were read."""
    from temporalio.service import RPCError, RPCStatusCode  # noqa: PLC0415 - beside its only use

    release = await read_run(client, workflow_id, run_id)
    found = Histories(release=release)
    gate = asyncio.Semaphore(CHILD_READS)

    async def one(child: Child) -> None:
        async with gate:
            try:
                found.children[child.workflow_id] = await read_run(client, child.workflow_id, child.run_id)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                found.missing.append(child.workflow_id)
            if progress is not None:
                progress(len(found.children) + len(found.missing))

    reads: list[Awaitable[None]] = [one(c) for c in release.children if c.run_id]
    await asyncio.gather(*reads)
    found.missing.sort()
    return found
