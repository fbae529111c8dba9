"""The audit record of one release run: what a compliance team reads months later, when history is gone.

Built from the release's workflow histories (:mod:`activities._history`: the release run, every
cluster workflow and bake workflow it started) and its final record (the ``ReleaseStatus`` it
returned or closed with, as a dict): a timeline of rings, waves and clusters; every residency
decision with its rule, inputs, verdict, rule-set digest and the worker build that judged it; every
gate verdict with the measurements it kept and the PromQL that produced them; every operator action
with the verified principal, how it was verified, when and why; each cluster's image before and
after; every notification delivery. The same :func:`build` serves the archive activity
(:mod:`activities.archiving`, at the end of each run) and ``ringmaster audit`` (from history while
it lasts), so both say the same.

The record is data about the release, never a credential: it is made of workflow inputs and activity
results, which carry none (cluster credentials and webhook URLs live with the worker).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from activities._history import Histories, Run
from activities.models import (
    AnalyzeInput,
    AnalyzeResult,
    ClusterSnapshot,
    PreparedRelease,
    ResidencyResult,
    RollbackResult,
    StepInput,
    StepResult,
)
from policies import gates, messages
from policies.gates import Check, GateVerdict
from policies.residency import Decision

FORMAT = "ringmaster.dev/audit/v1"
"""The record's ``format``: readers refuse what they do not know."""

M = TypeVar("M", bound=BaseModel)


class _Model(messages.Message):
    """Strict when built, tolerant when decoded from a payload (``policies.messages``)."""


class Event(_Model):
    """One line of the timeline."""

    at: datetime
    what: str
    ring: str = ""
    cluster: str = ""
    text: str


class ResidencyEntry(_Model):
    """One residency rule's verdict on one cluster, as the audit keeps it."""

    at: datetime | None = None
    cluster: str
    ring: str = ""
    stage: Literal["static", "live"]
    """``static``: judged on the plan and fleet when the release was prepared; ``live``: on the
    cluster's live evidence just before the release entered it."""
    rule: str
    verdict: Literal["allow", "deny"]
    reason: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    ruleset_digest: str
    worker: str = ""
    """The worker build that judged it (``ringmaster <version> (<commit>)``); empty in histories
    from before builds were recorded."""


class Query(_Model):
    """A metric's PromQL as it ran for this cluster and version (and for the stable version)."""

    metric: str
    promql: str
    baseline_promql: str = ""


class GateEntry(_Model):
    """One stretch of analysis: the verdict it returned and the measurements it kept."""

    at: datetime | None = None
    cluster: str
    ring: str = ""
    stage: str
    verdict: GateVerdict
    checks: list[Check] = Field(default_factory=list)
    total_checks: int = 0
    queries: list[Query] = Field(default_factory=list)


class Action(_Model):
    """An operator action (hold, resume, abort, approve, ...) as the release or a cluster recorded it."""

    at: datetime | None = None
    kind: str
    by: str
    method: str = ""
    """How ``by`` was verified: ``ssh``, ``oidc``, ``attested``, ``trusted`` (the client's word)."""
    verification: str = ""
    reason: str = ""
    ring: str = ""
    cluster: str = ""
    accepted: bool = True
    rejection: str = ""
    recorded_by: str = "release"
    """``release``, or the cluster workflow that received it."""


class ClusterEnd(_Model):
    """Where a cluster was left, and what it ran before and after."""

    cluster: str
    ring: str
    region: str = ""
    jurisdiction: str = ""
    state: str
    image_before: str = ""
    image_after: str = ""
    version_before: str = ""
    version_after: str = ""
    message: str = ""


class Ring(_Model):
    """A ring of the schedule: its waves, each a list of cluster names."""

    name: str
    strategy: str = ""
    waves: list[list[str]] = Field(default_factory=list)


class Principal(_Model):
    """A verified principal (or the client's word, ``method: trusted``)."""

    principal: str
    method: str = ""
    verification: str = ""


class AuditRecord(_Model):
    """Everything the audit keeps of one release run."""

    format: str = FORMAT
    release: str
    service: str
    version: str
    image: str
    workflow_id: str
    run_id: str
    phase: str = ""
    reason: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    submitted_by: str = ""
    submitter: Principal | None = None
    plan_digest: str = ""
    fleet_digest: str = ""
    plan: str = ""
    """The plan as submitted (its text: what every decision below was made on)."""
    rings: list[Ring] = Field(default_factory=list)
    timeline: list[Event] = Field(default_factory=list)
    residency: list[ResidencyEntry] = Field(default_factory=list)
    gates: list[GateEntry] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    clusters: list[ClusterEnd] = Field(default_factory=list)
    deliveries: list[dict[str, Any]] = Field(default_factory=list)
    """Every notification delivery (``activities.notify.Delivery``): delivered or given up."""
    missing: list[str] = Field(default_factory=list)
    """Child workflows whose history could not be read when the record was built."""


def _as(model: type[M], value: Any) -> M | None:
    """``value`` validated as ``model``; None when absent or written by code with other fields."""
    if value is None:
        return None
    try:
        return messages.decode(model, value)
    except ValidationError:
        return None


def build(histories: Histories, record: dict[str, Any] | None) -> AuditRecord:
    """The audit record of a release run, from its histories and its final (or current) record."""
    run = histories.release
    inp = run.input if isinstance(run.input, dict) else {}
    record = record or {}
    prepared = next((p for a in run.ran("prepare_release") if (p := _as(PreparedRelease, a.result))), None)
    rings = _rings(prepared)
    ring_of = {c: r.name for r in rings for wave in r.waves for c in wave}
    submitter = inp.get("submitter")
    audit = AuditRecord(
        release=f"{inp.get('service', '')}:{inp.get('version', '')}",
        service=str(inp.get("service", "")),
        version=str(inp.get("version", "")),
        image=str(inp.get("image", "")),
        workflow_id=run.workflow_id,
        run_id=run.run_id,
        phase=str(record.get("phase", "")),
        reason=str(record.get("reason", "")),
        started_at=run.started_at,
        ended_at=run.closed_at or _datetime(record.get("ended_at")),
        submitted_by=str(inp.get("submitted_by", "")),
        submitter=Principal(
            principal=submitter["principal"],
            method=submitter.get("method", ""),
            verification=submitter.get("detail", ""),
        )
        if isinstance(submitter, dict) and submitter.get("principal")
        else None,
        plan_digest=prepared.plan_digest if prepared else "",
        fleet_digest=prepared.fleet_digest if prepared else "",
        plan=str(inp.get("plan_text", "")),
        rings=rings,
        missing=list(histories.missing),
    )
    runs = [run, *histories.children.values()]
    audit.residency = _residency(prepared, run, histories, ring_of)
    audit.gates = [g for r in runs for g in _gates(r, ring_of, audit.service)]
    audit.gates.sort(key=lambda g: (g.at is None, g.at))
    audit.actions = _actions(record)
    audit.clusters = _clusters(record, histories, audit.image)
    audit.deliveries = [
        d for a in run.ran("notify") if isinstance(a.result, dict) for d in a.result.get("deliveries", [])
    ]
    audit.timeline = _timeline(audit, histories, ring_of)
    return audit


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _rings(prepared: PreparedRelease | None) -> list[Ring]:
    if prepared is None:
        return []
    return [
        Ring(
            name=r.name,
            strategy=next(iter(r.strategy.model_dump(exclude_none=True, by_alias=True)), ""),
            waves=[[c.name for c in w.clusters] for w in r.waves],
        )
        for r in prepared.schedule.rings
    ]


def _residency(
    prepared: PreparedRelease | None, release: Run, histories: Histories, ring_of: dict[str, str]
) -> list[ResidencyEntry]:
    found: list[ResidencyEntry] = []
    if prepared is not None:
        at = next((a.closed_at for a in release.ran("prepare_release") if a.result is not None), None)
        for cluster, decisions in prepared.static_decisions.items():
            found += [
                _decision(d, "static", at, ring_of.get(cluster, ""), prepared.worker) for d in decisions
            ]
    for run in histories.children.values():
        for act in run.ran("check_residency"):
            result = _as(ResidencyResult, act.result)
            if result is None:
                continue
            ring = ring_of.get(result.cluster, "")
            found += [_decision(d, "live", act.closed_at, ring, result.worker) for d in result.decisions]
    found.sort(key=lambda e: (e.at is None, e.at, e.cluster, e.rule))
    return found


def _decision(
    d: Decision, stage: Literal["static", "live"], at: datetime | None, ring: str, worker: str
) -> ResidencyEntry:
    return ResidencyEntry(
        at=at,
        cluster=d.cluster,
        ring=ring,
        stage=stage,
        rule=d.rule,
        verdict=d.verdict,
        reason=d.reason,
        inputs=d.inputs,
        ruleset_digest=d.policy_digest,
        worker=worker,
    )


def _gates(run: Run, ring_of: dict[str, str], service: str) -> list[GateEntry]:
    found = []
    for act in run.ran("analyze"):
        inp, result = _as(AnalyzeInput, act.input), _as(AnalyzeResult, act.result)
        if inp is None or result is None:
            continue
        found.append(
            GateEntry(
                at=act.closed_at,
                cluster=result.cluster,
                ring=inp.release.ring or ring_of.get(result.cluster, ""),
                stage=result.stage,
                verdict=result.verdict,
                checks=result.checks,
                total_checks=result.total_checks,
                queries=_queries(inp, service),
            )
        )
    return found


def _queries(inp: AnalyzeInput, service: str) -> list[Query]:
    found = []
    for metric in inp.analysis.metrics:

        def render(version: str, template: str = metric.query) -> str:
            try:
                return gates.render_query(
                    template,
                    service=inp.release.service or service,
                    namespace=inp.namespace,
                    cluster=inp.cluster.name,
                    region=inp.cluster.region,
                    version=version,
                    interval=inp.analysis.interval,
                )
            except ValueError as err:
                return f"{template}  (not rendered: {err})"

        stable = inp.stable_version if metric.baseline is not None else ""
        found.append(
            Query(
                metric=metric.name,
                promql=render(inp.release.version),
                baseline_promql=render(stable) if stable else "",
            )
        )
    return found


def _actions(record: dict[str, Any]) -> list[Action]:
    found = [_action(a, "release") for a in record.get("actions", []) if isinstance(a, dict)]
    for c in record.get("clusters", []):
        if not isinstance(c, dict):
            continue
        for a in c.get("controls", []):
            if isinstance(a, dict):
                found.append(_action(a, str(c.get("name", ""))))
    found.sort(key=lambda a: (a.at is None, a.at))
    return found


def _action(a: dict[str, Any], recorded_by: str) -> Action:
    return Action(
        at=_datetime(a.get("at")),
        kind=str(a.get("kind", "")),
        by=str(a.get("by", "")),
        method=str(a.get("method", "")),
        verification=str(a.get("verification", "")),
        reason=str(a.get("reason", "")),
        ring=str(a.get("ring") or ""),
        cluster=str(a.get("cluster") or ""),
        accepted=bool(a.get("accepted", True)),
        rejection=str(a.get("rejection", "")),
        recorded_by=recorded_by,
    )


def _snapshots(histories: Histories) -> dict[str, ClusterSnapshot]:
    """Each cluster's state before the release, as its cluster workflow (or the release) recorded it."""
    found: dict[str, ClusterSnapshot] = {}
    for run in [histories.release, *histories.children.values()]:
        for act in run.ran("snapshot_cluster"):
            if (snap := _as(ClusterSnapshot, act.result)) is not None:
                found.setdefault(snap.cluster, snap)
        for act in run.ran("find_snapshots"):
            result = act.result if isinstance(act.result, dict) else {}
            for name, value in (result.get("found") or {}).items():
                if (snap := _as(ClusterSnapshot, value)) is not None:
                    found.setdefault(name, snap)
    return found


def _restored(histories: Histories) -> dict[str, str]:
    """Clusters a rollback restored, and the version it restored."""
    found: dict[str, str] = {}
    for run in [histories.release, *histories.children.values()]:
        for act in run.ran("rollback_cluster"):
            if (result := _as(RollbackResult, act.result)) is not None:
                found[result.cluster] = result.restored_version
    return found


def _clusters(record: dict[str, Any], histories: Histories, image: str) -> list[ClusterEnd]:
    snapshots, restored = _snapshots(histories), _restored(histories)
    found = []
    for c in record.get("clusters", []):
        if not isinstance(c, dict):
            continue
        name, state = str(c.get("name", "")), str(c.get("state", ""))
        snap = snapshots.get(name)
        before = snap.image if snap else ""
        if state == "promoted":
            after, version_after = image, str(c.get("version", ""))
        elif name in restored or state == "rolled-back":
            after, version_after = before, restored.get(name) or (snap.version if snap else "")
        elif snap is None:
            after, version_after = "", ""  # never touched: not read, not changed
        else:
            after, version_after = (
                (f"{before} and {image} (left in place)" if state == "left-in-place" else before),
                "",
            )
        found.append(
            ClusterEnd(
                cluster=name,
                ring=str(c.get("ring", "")),
                region=str(c.get("region", "")),
                jurisdiction=str(c.get("jurisdiction", "")),
                state=state,
                image_before=before,
                image_after=after,
                version_before=snap.version if snap else "",
                version_after=version_after,
                message=str(c.get("message", "")),
            )
        )
    return found


def _timeline(audit: AuditRecord, histories: Histories, ring_of: dict[str, str]) -> list[Event]:
    run = histories.release
    events: list[Event] = []
    if run.started_at is not None:
        who = audit.submitter.principal if audit.submitter else audit.submitted_by
        events.append(
            Event(
                at=run.started_at, what="submitted", text=f"{audit.release} submitted by {who or 'unknown'}"
            )
        )
    for act in run.ran("prepare_release"):
        if act.closed_at is not None:
            text = (
                "plan validated and scheduled" if act.result is not None else f"plan refused: {act.failure}"
            )
            events.append(Event(at=act.closed_at, what="prepared", text=text))
    for child in run.children:
        cluster = _child_cluster(child.input)
        ring = ring_of.get(cluster, "") if cluster else _bake_ring(child.workflow_id)
        label = f"cluster workflow {cluster}" if cluster else f"bake workflow {child.workflow_id}"
        events.append(
            Event(at=child.initiated_at, what="started", ring=ring, cluster=cluster, text=f"{label} started")
        )
        if child.closed_at is not None:
            outcome = (child.result or {}).get("outcome") if isinstance(child.result, dict) else None
            text = f"{label} ended {outcome or child.outcome}"
            events.append(Event(at=child.closed_at, what="ended", ring=ring, cluster=cluster, text=text))
    for r in [run, *histories.children.values()]:
        events += _steps(r, ring_of)
    events += [
        Event(
            at=g.at,
            what="gate",
            ring=g.ring,
            cluster=g.cluster,
            text=f"gate {g.verdict.status} ({g.stage}): {g.verdict.reason}",
        )
        for g in audit.gates
        if g.at is not None
    ]
    events += [
        Event(
            at=a.at,
            what=a.kind,
            ring=a.ring,
            cluster=a.cluster,
            text=f"{a.kind} by {a.by} ({a.method or 'unverified'})"
            + (f": {a.reason}" if a.reason else "")
            + ("" if a.accepted else f" (refused: {a.rejection})"),
        )
        for a in audit.actions
        if a.at is not None
    ]
    denied = [e for e in audit.residency if e.verdict == "deny" and e.at is not None]
    events += [
        Event(
            at=e.at,
            what="denied",
            ring=e.ring,
            cluster=e.cluster,
            text=f"residency {e.rule} denied: {e.reason}",
        )
        for e in denied
        if e.at is not None
    ]
    if audit.ended_at is not None and audit.phase:
        events.append(
            Event(at=audit.ended_at, what=audit.phase, text=f"release {audit.phase}: {audit.reason}")
        )
    events.sort(key=lambda e: e.at)
    return events


def _steps(run: Run, ring_of: dict[str, str]) -> list[Event]:
    events = []
    for act in run.activities:
        if act.closed_at is None:
            continue
        if act.type == "apply_step" and (step := _as(StepInput, act.input)) is not None:
            done = _as(StepResult, act.result)
            cluster = step.cluster.name
            weight = f" at {done.weight}%" if done and done.weight else ""
            text = f"{step.action}{weight}" + (f" failed: {act.failure}" if act.failure else "")
            events.append(
                Event(
                    at=act.closed_at, what="step", ring=ring_of.get(cluster, ""), cluster=cluster, text=text
                )
            )
        elif act.type == "rollback_cluster" and (result := _as(RollbackResult, act.result)) is not None:
            cluster = result.cluster
            text = f"rolled back to {result.restored_version or 'its previous state'}"
            events.append(
                Event(
                    at=act.closed_at,
                    what="rollback",
                    ring=ring_of.get(cluster, ""),
                    cluster=cluster,
                    text=text,
                )
            )
        elif act.type == "snapshot_cluster" and (snap := _as(ClusterSnapshot, act.result)) is not None:
            text = f"recorded before the release: {snap.image or 'no workload'}"
            events.append(
                Event(
                    at=act.closed_at,
                    what="snapshot",
                    ring=ring_of.get(snap.cluster, ""),
                    cluster=snap.cluster,
                    text=text,
                )
            )
    return events


def _child_cluster(value: Any) -> str:
    """The cluster a cluster workflow's input names (bake workflows name several: empty)."""
    if isinstance(value, dict) and isinstance(value.get("cluster"), dict):
        return str(value["cluster"].get("name", ""))
    return ""


def _bake_ring(workflow_id: str) -> str:
    """The ring of a bake workflow, from its id (``...:bake:<ring>:<round>:<i>:<run>``)."""
    head, sep, tail = workflow_id.rpartition(":bake:")
    return tail.split(":", 1)[0] if sep and head else ""
