"""Judging and measuring one ``bench_scale.py`` run from its histories and the emulator's logs.

Correctness: each completed ``apply_step`` of every cluster workflow is held to the writes the
emulator logged in its namespace while it ran. A step is *lost* when it completed yet no write of
it succeeded, or when a promoted release's cluster does not run the new image alone at the end (read
through the Kubernetes API); a step is *duplicated* when one object got two distinct specs during
it (a retried identical apply changes nothing, and is correct). Figures: decision latencies,
schedule-to-start per queue, events and billable actions, from :mod:`scripts._histories`.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowHistory

from sandbox.chaos import clusters as kube
from scripts import _histories
from scripts._scale_stack import VERSION, WRITES, Bench, image, workload
from workflows.lane import lane_id
from workflows.models import TERMINAL_PHASES, ReleaseStatus

KINDS = ("Deployment", "Service", "HTTPRoute")
RESOURCES = ("deployments", "services", "httproutes")


@dataclass
class Run:
    """What one N needs while it runs, and what it found."""

    n: int
    workers: int
    services: list[str]
    started: float = 0.0
    approved: set[str] = field(default_factory=set)
    killed_at: float | None = None
    statuses: dict[str, ReleaseStatus] = field(default_factory=dict)


async def _history(client: Client, workflow_id: str) -> WorkflowHistory:
    return await client.get_workflow_handle(workflow_id).fetch_history()


def _spec_changes(changes: Iterable[dict[str, Any]]) -> list[tuple[float, str, str]]:
    """(time, object, spec) for each change of a Deployment, Service or HTTPRoute's spec (or deletion),
    leaving out writes that changed only metadata."""
    last: dict[str, str] = {}
    found = []
    for change in changes:
        if change["kind"] not in KINDS:
            continue
        key = f"{change['kind']}/{change['name']}"
        spec = (
            "deleted"
            if change["op"] == "deleted"
            else json.dumps(change["object"].get("spec"), sort_keys=True)
        )
        if last.get(key) != spec:
            last[key] = spec
            found.append((float(change["time"]), key, spec))
    return found


@dataclass
class StepCheck:
    """What the logs say about the steps of one cluster workflow."""

    steps: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    writes: int = 0
    spec_changes: int = 0


def check_steps(
    steps: list[_histories.Activity],
    writes: list[dict[str, Any]],
    changes: list[tuple[float, str, str]],
    where: str,
) -> StepCheck:
    """Each completed ``apply_step`` against the writes and spec changes made while it ran.

    Lost: completed, yet no successful write reached the namespace while it ran. Duplicated: an
    object got two distinct specs during one step (a retried identical apply changes nothing, so it
    is not counted).
    """
    found = StepCheck()
    for step in steps:
        if step.outcome != "completed" or step.closed is None:
            continue
        found.steps += 1
        begin, end = step.scheduled, step.closed
        made = [w for w in writes if begin <= float(w["time"]) <= end and 200 <= int(w["status"]) < 300]
        changed = Counter(key for at, key, _ in changes if begin <= at <= end)
        found.writes += len(made)
        found.spec_changes += sum(changed.values())
        label = f"{where} {step.input.get('action')}" + (
            f" {step.input['weight']}" if step.input.get("weight") is not None else ""
        )
        if not made and not changed:
            found.lost.append(label)
        for key, count in changed.items():
            if count > 1:
                found.duplicated.append(f"{label}: {key} changed {count} times")
    return found


def final_state(bench: Bench, promoted: dict[str, list[str]]) -> list[str]:
    """Clusters of promoted releases whose workload does not run the new image alone (or still has a
    canary or preview beside it)."""
    wrong = []
    for cluster_name in bench.sandbox.clusters:
        cluster = kube.Cluster(bench.sandbox.kubeconfig, cluster_name)
        try:
            # Unparsed (the raw response): the client's models are slow and drop nothing we need here.
            listed: Any = cluster.apps.list_deployment_for_all_namespaces(
                _preload_content=False, _request_timeout=30
            )
            items = json.loads(listed.data)["items"]
        finally:
            cluster.close()
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            by_namespace.setdefault(item["metadata"]["namespace"], []).append(item)
        for service, clusters in promoted.items():
            if cluster_name not in clusters:
                continue
            deployments = by_namespace.get(service, [])
            names = sorted(d["metadata"]["name"] for d in deployments)
            stable = next(
                (d for d in deployments if d["metadata"]["name"] == workload(service)["deployment"]), None
            )
            images = [
                c.get("image")
                for c in (stable or {})
                .get("spec", {})
                .get("template", {})
                .get("spec", {})
                .get("containers", [])
            ]
            if image(service, VERSION) not in images or len(names) != 1:
                wrong.append(f"{service} in {cluster_name}: deployments {names}, images {images}")
    return wrong


async def measure(bench: Bench, run: Run, ids: dict[str, str]) -> dict[str, Any]:
    """Read every history of the run and judge its steps against the emulator's logs."""
    client = bench.client
    phases = Counter(s.phase for s in run.statuses.values())
    unfinished = [
        s for s in run.services if s not in run.statuses or run.statuses[s].phase not in TERMINAL_PHASES
    ]
    billable: Counter[str] = Counter()
    events = 0
    waits: dict[str, list[float]] = {}
    decisions: list[tuple[str, float]] = []
    release_walls = []
    activity_count = timer_count = 0
    checks = StepCheck()
    requests: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in bench.log.records:
        if r.get("resource") in RESOURCES and r.get("namespace"):
            requests.setdefault((r["cluster"], r["namespace"]), []).append(r)
    changes: dict[tuple[str, str], list[tuple[float, str, str]]] = {}
    for cluster in bench.sandbox.clusters:
        for service in run.services:
            found = await asyncio.to_thread(bench.admin.changes, cluster, namespace=service)
            changes[(cluster, service)] = _spec_changes(found)
    promoted: dict[str, list[str]] = {}
    bake_events: list[int] = []

    def count(history: WorkflowHistory) -> None:
        nonlocal events, activity_count, timer_count
        events += len(history.events)
        billable.update(_histories.billable(history))
        _histories.schedule_to_start(history, waits)
        acts = _histories.activities(history)
        activity_count += len(acts)
        timer_count += sum(1 for e in history.events if e.HasField("timer_started_event_attributes"))
        for act in acts:
            if act.type == "analyze" and isinstance(act.input, dict) and act.input.get("stage") == "bake":
                bake_events.append(_activity_events(history, act.scheduled_event))

    for service in run.services:
        count(await _history(client, lane_id(service)))
        if service not in ids:
            continue
        release = await _history(client, ids[service])
        count(release)
        status = run.statuses.get(service)
        if status is None:
            continue
        if status.ended_at is not None and status.started_at is not None:
            release_walls.append((status.ended_at - status.started_at).total_seconds())
        first_steps: dict[str, float | None] = {}
        for child in status.clusters:
            if not child.workflow_id:
                continue
            history = await _history(client, child.workflow_id)
            count(history)
            decided = _histories.cluster_decisions(history)
            decisions += decided.latencies
            first_steps[child.workflow_id] = decided.first_step
            steps = [a for a in _histories.activities(history) if a.type == "apply_step"]
            key = (child.name, service)
            writes = [w for w in requests.get(key, []) if w.get("verb") in WRITES]
            judged = check_steps(steps, writes, changes.get(key, []), f"{service}/{child.name}")
            checks.steps += judged.steps
            checks.writes += judged.writes
            checks.spec_changes += judged.spec_changes
            checks.lost += judged.lost
            checks.duplicated += judged.duplicated
        for kind, at, started in _histories.release_decisions(release):
            first = first_steps.get(started)
            if first is not None:
                decisions.append((kind, first - at))
        if status.phase == "succeeded":
            promoted[service] = [c.name for c in status.clusters if c.state == "promoted"]
    wrong = await asyncio.to_thread(final_state, bench, promoted)
    clusters = run.n * len(bench.sandbox.clusters)
    return {
        "releases": run.n,
        "finished": run.n - len(unfinished),
        "phases": dict(phases),
        "approved": len(run.approved),
        "steps_checked": checks.steps,
        "writes": checks.writes,
        "spec_changes": checks.spec_changes,
        "lost": checks.lost + [f"final state: {w}" for w in wrong],
        "duplicated": checks.duplicated,
        "decisions": _quantiles([d for _, d in decisions]),
        "decisions_by_kind": {
            kind: _quantiles([d for k, d in decisions if k == kind])
            for kind in sorted({k for k, _ in decisions})
        },
        "schedule_to_start": {queue: _quantiles(values) for queue, values in sorted(waits.items())},
        "release_wall": _quantiles(release_walls),
        "events_per_cluster": events / clusters,
        "billable": dict(billable),
        "activities": activity_count,
        "timers": timer_count,
        "bake_stretch_events": _quantiles([float(e) for e in bake_events]),
    }


def _activity_events(history: WorkflowHistory, scheduled_event: int) -> int:
    """Events one activity added to its history (scheduled, started, cancel requested, closed)."""
    total = 1
    for event in history.events:
        for attr in (
            "activity_task_started_event_attributes",
            "activity_task_completed_event_attributes",
            "activity_task_failed_event_attributes",
            "activity_task_timed_out_event_attributes",
            "activity_task_canceled_event_attributes",
            "activity_task_cancel_requested_event_attributes",
        ):
            if event.HasField(attr) and getattr(event, attr).scheduled_event_id == scheduled_event:
                total += 1
    return total


def _quantiles(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": _histories.percentile(values, 0.5),
        "p99": _histories.percentile(values, 0.99),
        "max": max(values) if values else math.nan,
    }
