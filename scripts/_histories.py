"""Reading workflow histories for the benchmarks: billable actions, activities, task latencies, decisions.

Shared by ``bench_history.py`` (how histories grow with the fleet) and ``bench_scale.py`` (many
releases at once). Everything here reads a fetched ``WorkflowHistory``; nothing talks to a server.

Billable actions follow Temporal Cloud's list: a workflow started, each activity attempt, a timer, a
child started, a signal sent or received, an update accepted, a search-attribute upsert. Heartbeats
are billed too but never reach a history: ``bench_scale.py`` reads them from the server's metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.client import WorkflowHistory

BILLED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "starts",
    EventType.EVENT_TYPE_TIMER_STARTED: "timers",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "children",
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "signals",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signals",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "upserts",
}
"""Events that are each one billable action, by the kind they are counted under (activity attempts
are counted from their started events' attempt numbers)."""

PATCHES = "TemporalChangeVersion"
"""The search attribute the SDK upserts the first time a run meets each ``workflow.patched`` (its
own billed action, counted as ``patch upserts`` apart from the workflow's own upserts)."""

_T = EventType


def _time(event: Any) -> float:
    return float(event.event_time.ToMicroseconds()) / 1e6


def billable(history: WorkflowHistory) -> Counter[str]:
    """The billable actions one history records, by kind (``activities`` counts every attempt;
    ``patch upserts`` are the SDK's, ``upserts`` the workflow's own)."""
    found: Counter[str] = Counter()
    for event in history.events:
        kind = BILLED.get(event.event_type)
        if kind == "upserts" and set(
            event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        ) == {PATCHES}:
            found["patch upserts"] += 1
        elif kind is not None:
            found[kind] += 1
        elif event.event_type == _T.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            found["activities"] += event.activity_task_started_event_attributes.attempt
    return found


@dataclass
class Activity:
    """One activity of a history: its type, queue, times (unix seconds) and payloads."""

    type: str
    queue: str
    scheduled: float
    scheduled_event: int
    started: float | None = None
    attempt: int = 0
    closed: float | None = None
    outcome: str = ""
    """``completed``, ``failed``, ``timed-out``, ``canceled``, or empty while open."""
    input: Any = None
    result: Any = None


def _payload(payloads: Any) -> Any:
    if not payloads.payloads:
        return None
    try:
        return json.loads(payloads.payloads[0].data)
    except ValueError:
        return None


_CLOSED = {
    f"activity_task_{name.replace('-', '_')}_event_attributes": name
    for name in ("failed", "timed-out", "canceled")
}
"""How an activity ended other than completed, by the attributes of the event that ended it."""


def activities(history: WorkflowHistory) -> list[Activity]:
    """Every activity the history scheduled, in order, with what became of it."""
    found: dict[int, Activity] = {}
    for event in history.events:
        t = event.event_type
        if t == _T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = event.activity_task_scheduled_event_attributes
            found[event.event_id] = Activity(
                a.activity_type.name, a.task_queue.name, _time(event), event.event_id, input=_payload(a.input)
            )
        elif t == _T.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            s = event.activity_task_started_event_attributes
            found[s.scheduled_event_id].started = _time(event)
            found[s.scheduled_event_id].attempt = s.attempt
        elif t == _T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            c = event.activity_task_completed_event_attributes
            act = found[c.scheduled_event_id]
            act.closed, act.outcome, act.result = _time(event), "completed", _payload(c.result)
        elif (outcome := _CLOSED.get(event.WhichOneof("attributes") or "")) is not None:
            act = found[
                getattr(
                    event, f"activity_task_{outcome.replace('-', '_')}_event_attributes"
                ).scheduled_event_id
            ]
            act.closed, act.outcome = _time(event), outcome
    return list(found.values())


def schedule_to_start(history: WorkflowHistory, into: dict[str, list[float]]) -> None:
    """Add the history's schedule-to-start latencies (seconds) to ``into``, by task queue.

    Activities count their first attempt only (a retry's wait includes its backoff); workflow tasks
    are keyed ``<queue> (workflow tasks)``, and ``(sticky)`` when the task went to a worker's cache.
    """
    scheduled: dict[int, tuple[str, float]] = {}
    for event in history.events:
        t = event.event_type
        if t == _T.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            q = event.workflow_task_scheduled_event_attributes.task_queue
            sticky = q.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
            name = (q.normal_name if sticky else q.name) + (
                " (workflow tasks, sticky)" if sticky else " (workflow tasks)"
            )
            scheduled[event.event_id] = (name, _time(event))
        elif t == _T.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            queue, at = scheduled[event.workflow_task_started_event_attributes.scheduled_event_id]
            into.setdefault(queue, []).append(_time(event) - at)
    for act in activities(history):
        if act.started is not None and act.attempt == 1:
            into.setdefault(act.queue, []).append(act.started - act.scheduled)


@dataclass
class Decisions:
    """What a cluster workflow's history says about its decisions and its steps."""

    latencies: list[tuple[str, float]] = field(default_factory=list)
    """(kind, seconds) from a verdict or an approval to the next ``apply_step`` being scheduled."""
    first_step: float | None = None
    """When its first ``apply_step`` was scheduled."""


def cluster_decisions(history: WorkflowHistory) -> Decisions:
    """Gate verdicts (an ``analyze`` completed) and approvals (signal ``approve``) in a cluster workflow,
    each paired with the next ``apply_step`` scheduled after it."""
    out = Decisions()
    types: dict[int, str] = {}
    pending: tuple[str, float] | None = None
    for event in history.events:
        t = event.event_type
        if t == _T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
            types[event.event_id] = kind
            if kind == "apply_step":
                at = _time(event)
                out.first_step = at if out.first_step is None else out.first_step
                if pending is not None:
                    out.latencies.append((pending[0], at - pending[1]))
                    pending = None
        elif t == _T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            if types.get(done.scheduled_event_id) == "analyze":
                pending = ("gate", _time(event))
        elif (
            t == _T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == "approve"
        ):
            pending = ("approval", _time(event))
    return out


def release_decisions(history: WorkflowHistory) -> list[tuple[str, float, str]]:
    """Decisions of a release workflow that start a ring: (kind, when, the child it started next).

    ``bake`` is a bake's gate verdict (an ``analyze`` completed in the release), ``approval`` a
    ring's approval (update or signal); the latency is measured to that child's first step.
    """
    types: dict[int, str] = {}
    pending: tuple[str, float] | None = None
    found: list[tuple[str, float, str]] = []
    for event in history.events:
        t = event.event_type
        if t == _T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif t == _T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            if types.get(event.activity_task_completed_event_attributes.scheduled_event_id) == "analyze":
                pending = ("bake", _time(event))
        elif t == _T.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            name = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            if name == "approve":
                pending = ("approval", _time(event))
        elif t == _T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            if event.workflow_execution_signaled_event_attributes.signal_name == "approve-signal":
                pending = ("approval", _time(event))
        elif t == _T.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            if pending is not None:
                child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
                found.append((pending[0], pending[1], child))
            pending = None
    return found


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]
