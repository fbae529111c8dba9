"""Replay before deploy: the histories of running (and recently closed) releases against this code.

``ringmaster replay`` lists the workflows of ringmaster's types on its task queue that are running,
or closed within ``--closed-within`` (default 7 days), optionally narrowed by ``--query`` (ANDed,
Temporal's visibility syntax), downloads each history and replays it with the SDK's replayer over
every workflow type the worker registers, its sandbox, data converter and interceptors
(:mod:`ringmaster.registry`). A history that does not replay is named: its workflow and run, the
release it belongs to (itself, or the release that started it), and the event the replay tripped on.

The same histories are what ``ringmaster patches`` reads (:func:`runs`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig
from temporalio.worker import Replayer

from ringmaster import registry

if TYPE_CHECKING:
    from temporalio.client import Client

CLOSED_WITHIN = timedelta(days=7)
"""Closed runs replayed by default: a week, as long as a release's rollback may still be asked for."""

_EVENT_ID = re.compile(r"(?:HistoryEvent\(id: |event(?: id)?[ :]+)(\d+)", re.IGNORECASE)


def query(task_queue: str, *, closed_since: datetime | None, extra: str | None = None) -> str:
    """Visibility query: ringmaster's workflows on ``task_queue``, running or closed since
    ``closed_since`` (None: running only), and ``extra`` when given."""
    types = ", ".join(f"'{t}'" for t in registry.WORKFLOW_TYPES)
    state = "ExecutionStatus = 'Running'"
    if closed_since is not None:
        state = f"({state} OR CloseTime > '{closed_since.isoformat()}')"
    found = f"WorkflowType IN ({types}) AND TaskQueue = '{task_queue}' AND {state}"
    return f"{found} AND ({extra})" if extra else found


async def histories(client: Client, visibility_query: str) -> AsyncIterator[WorkflowHistory]:
    """Each matching run's full history, one at a time (runs listed once, histories fetched lazily)."""
    async for history in client.list_workflows(visibility_query).map_histories():
        yield history


@dataclass
class Replayed:
    """One history replayed: which run, and what went wrong (``error`` empty when it replayed)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    release: str
    """The release's workflow id: the run's own for a release, its parent's for what a release started."""
    error: str = ""
    event_id: int | None = None
    event_type: str = ""

    @property
    def ok(self) -> bool:
        """Whether it replayed cleanly."""
        return not self.error

    def as_json(self) -> dict[str, Any]:
        """The documented JSON of one replayed run."""
        return {
            "workflowId": self.workflow_id,
            "runId": self.run_id,
            "type": self.workflow_type,
            "release": self.release,
            "ok": self.ok,
            "eventId": self.event_id,
            "eventType": self.event_type or None,
            "error": self.error or None,
        }


def started(history: WorkflowHistory) -> Any:
    """The history's ``WorkflowExecutionStarted`` attributes."""
    return history.events[0].workflow_execution_started_event_attributes


def _release_of(history: WorkflowHistory, workflow_type: str) -> str:
    if workflow_type == "ReleaseWorkflow":
        return history.workflow_id
    parent = started(history).parent_workflow_execution.workflow_id
    return parent or history.workflow_id


def core_logs_to_stderr() -> None:
    """Send the SDK core's errors through Python's logging, to stderr, so ``--output json`` stays one
    document on stdout; its warnings (one per failing replay, which the report names, and one per
    bisection step) are left out. Call before the first client."""
    forward = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    telemetry = TelemetryConfig(logging=LoggingConfig(filter="ERROR", forwarding=forward))
    Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)


def _task_ends(history: WorkflowHistory) -> list[int]:
    """Where each workflow task's commands end: the index of the next task's scheduled event (or the
    history's end), so ``events[:end]`` replays that task and every one before it."""
    scheduled = [
        i
        for i, event in enumerate(history.events)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    ]
    return [*scheduled[1:], len(history.events)]


async def _first_failing_task(replayer: Replayer, history: WorkflowHistory) -> int | None:
    """The index of the first event of the first workflow task whose commands do not replay: the
    shortest failing prefix, by bisection over the task boundaries (the replayer's message rarely
    names an event)."""
    ends = _task_ends(history)
    low, high = 0, len(ends) - 1
    while low < high:
        middle = (low + high) // 2
        prefix = WorkflowHistory(history.workflow_id, history.events[: ends[middle]])
        result = await replayer.replay_workflow(prefix, raise_on_replay_failure=False)
        if result.replay_failure is None:
            low = middle + 1
        else:
            high = middle
    # The failing task's commands follow its completed event, the last one before its end.
    completed = [
        i
        for i, event in enumerate(history.events[: ends[low]])
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    return completed[-1] + 1 if completed and completed[-1] + 1 < len(history.events) else None


async def failing_event(replayer: Replayer, history: WorkflowHistory, message: str) -> tuple[int | None, str]:
    """The event a replay failure is about: the one its message names, else the first command event
    of the first workflow task that does not replay; and its type."""
    found = _EVENT_ID.search(message)
    index: int | None = None
    if found is not None:
        wanted = int(found.group(1))
        index = next((i for i, e in enumerate(history.events) if e.event_id == wanted), None)
    if index is None:
        index = await _first_failing_task(replayer, history)
    if index is None:
        return None, ""
    event = history.events[index]
    return event.event_id, EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


async def replay(found: AsyncIterator[WorkflowHistory]) -> list[Replayed]:
    """Replay every history against this code; one result per history, in the order given."""
    results: list[Replayed] = []
    failed: list[tuple[Replayed, WorkflowHistory]] = []
    replayer = registry.replayer()
    async with replayer.workflow_replay_iterator(found) as replayed:
        async for result in replayed:
            history = result.history
            kind = started(history).workflow_type.name
            done = Replayed(history.workflow_id, history.run_id, kind, _release_of(history, kind))
            if result.replay_failure is not None:
                done.error = f"{type(result.replay_failure).__name__}: {result.replay_failure}"
                failed.append((done, history))
            results.append(done)
    for done, history in failed:
        done.event_id, done.event_type = await failing_event(replayer, history, done.error)
    return results


def text(results: list[Replayed], what: str) -> str:
    """The report for people: one line per history that failed, then the count."""
    failed = [r for r in results if not r.ok]
    lines = [
        f"NONDETERMINISTIC {r.workflow_type} {r.workflow_id} run {r.run_id} (release {r.release}): "
        f"event {r.event_id if r.event_id is not None else '?'} {r.event_type or ''}\n    {r.error}"
        for r in failed
    ]
    lines.append(
        f"replayed {len(results)} histories ({what}): {len(results) - len(failed)} ok, {len(failed)} failed"
    )
    return "\n".join(lines)
