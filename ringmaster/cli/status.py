"""``ringmaster status`` and how a release's status reads: a progress line, a table, a report, JSON.

``submit --wait`` follows a release with :func:`progress_line` (a line per change) or
:func:`status_table` (a live table on a terminal). ``status`` adds the analyses running now, decoded
from their heartbeats as :class:`activities.models.AnalyzeProgress`, what the release waits for,
who submitted it, and each operator action with how its person was verified (``ssh`` and the key's
fingerprint, ``oidc`` and the token's issuer and subject, ``trusted`` for the client's word).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn

from rich.table import Table

from activities.models import AnalyzeProgress
from ringmaster.cli.options import Output, OutputOpt, ReleaseArg
from ringmaster.exitcodes import ExitCode
from workflows.models import ENDED_STATES, TERMINAL_PHASES, ClusterStatus, OperatorAction, ReleaseStatus

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from activities.children import ClusterWorkflowEnd
    from ringmaster.settings import Settings
    from workflows.undo import UndoStatus


def status(release: ReleaseArg, output: OutputOpt = Output.TEXT) -> NoReturn:
    """Phase, ring, every cluster, live gate measurements and the operator log of a release."""
    from activities import children  # noqa: PLC0415 - Temporal is imported when a client command runs
    from ringmaster.cli import _client, _query  # noqa: PLC0415
    from workflows.release import ReleaseWorkflow  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        from temporalio.client import WorkflowExecutionStatus  # noqa: PLC0415 - see _client

        client = await _client.connect(settings)
        handle = client.get_workflow_handle(_client.workflow_id_of(release), result_type=ReleaseStatus)
        described = await _client.call(f"status of {release}", handle.describe())
        ended = (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED)
        recorded = None
        if described.status in ended:
            # An ended release's status is its record: its result, or its outcome failure's detail
            # (activities.outcomes). No worker needs to answer (one may be deploying).
            recorded = await _client.call(f"status of {release}", ended_record(handle))
        if recorded is not None:
            st = recorded
        else:
            st = await _client.call(f"status of {release}", handle.query(ReleaseWorkflow.status))
            if described.status == WorkflowExecutionStatus.RUNNING:
                st = await live_clusters(client, st)
        if described.status != WorkflowExecutionStatus.RUNNING and recorded is None:
            # Terminated (or timed out): the query answers as of that moment, while the cluster
            # workflows went on to roll back or had promoted; their own results say how they ended.
            ends = await _client.call(
                f"cluster workflows of {release}",
                children.cluster_workflows(client, handle.id, described.run_id),
            )
            closed = described.status.name.lower() if described.status else "closed"
            st = with_cluster_workflows(st, closed, ends)
        undo = await undo_of(client, st)
        live = await live_gates(client, st)
        payload = status_json(st, live)
        payload["undo"] = undo.model_dump(mode="json") if undo else None
        payload["url"] = _client.url(settings, client, handle.id)
        text = status_text(st, live) + (undo_text(undo) if undo else "")
        if settings.ui_url:
            text += f"\n\nui  {payload['url']}"
            if st.phase in _PHASES_TO_LIST:
                # Where the others like it are: one click to every release in the same state.
                same = f"WorkflowType = 'ReleaseWorkflow' AND RingmasterPhase = '{st.phase}'"
                link = _query.ui_link(settings.ui_url, client.namespace, same)
                text += f"\nui  every release {st.phase} now: {link}"
        return ExitCode.OK, payload, text

    _client.run(output, body)


COMMANDS = (status,)
"""The commands of this module, as the CLI registers them."""


def with_cluster_workflows(st: ReleaseStatus, closed: str, ends: list[ClusterWorkflowEnd]) -> ReleaseStatus:
    """A release that closed without its record: each cluster as its own cluster workflow left it.

    The phase says how the release workflow closed (``terminated``, ``timed_out``), outside the
    release's own phases: no phase of its own describes it.
    """
    out = st.model_copy(deep=True, update={"phase": closed, "held": False, "hold_reason": ""})
    for end in ends:
        cluster = next((c for c in out.clusters if c.name == end.cluster), None)
        if cluster is None:
            continue
        cluster.state = end.state
        cluster.message = end.message or cluster.message
        cluster.version = end.version or cluster.version
        if end.needs_attention and end.cluster not in out.needs_attention:
            out.needs_attention.append(end.cluster)
    running = [e.cluster for e in ends if e.running]
    note = f"the release workflow was {closed}; each cluster is shown as its own cluster workflow left it"
    if running:
        note += f" ({', '.join(running)} still rolling back)"
    out.reason = f"{note}. {st.reason}" if st.reason else note
    return out


async def ended_record(handle: WorkflowHandle[Any, Any]) -> ReleaseStatus | None:
    """An ended release's final record: its result, or the detail of the failure it closed with when
    it did not succeed (:mod:`activities.outcomes`); None when it failed without one (older code)."""
    from temporalio.client import WorkflowFailureError  # noqa: PLC0415 - see status()

    from activities import outcomes  # noqa: PLC0415

    try:
        return await outcomes.ended(handle, ReleaseStatus)
    except WorkflowFailureError:
        return None


_PHASES_TO_LIST = frozenset({"holding", "awaiting-approval", "rolling-back", "waiting-window"})
"""Phases in which ``status`` links to every release in the same phase (those wanting a person)."""

_LIVE_QUERIES = 16
"""Cluster workflows queried at once by :func:`live_clusters`."""


async def live_clusters(client: Client, st: ReleaseStatus) -> ReleaseStatus:
    """The release with each running cluster as its own workflow says it stands now.

    A cluster workflow reports only its milestones to its release (awaiting approval, holding,
    rolling back, its end); its step, weight and gate are its own ``status`` query. A cluster whose
    query fails (no worker answers), or whose workflow has ended (the release may since be rolling
    it back), keeps the release's record of it.
    """
    from temporalio.client import WorkflowQueryFailedError  # noqa: PLC0415 - see status()
    from temporalio.service import RPCError  # noqa: PLC0415

    from workflows.cluster import ClusterRolloutWorkflow  # noqa: PLC0415

    running = [c for c in st.clusters if c.workflow_id and c.state not in _NOT_RUNNING]
    if not running:
        return st
    gate = asyncio.Semaphore(_LIVE_QUERIES)

    async def ask(c: ClusterStatus) -> ClusterStatus | None:
        async with gate:
            try:
                handle = client.get_workflow_handle(c.workflow_id)
                own: ClusterStatus = await handle.query(ClusterRolloutWorkflow.status)
            except (RPCError, WorkflowQueryFailedError):
                return None
        if own.state in ENDED_STATES:
            # Its workflow has ended: the release's record is the newer one (it may be rolling back
            # a cluster its cluster workflow promoted).
            return None
        return own.model_copy(update={"residency": own.residency or c.residency})

    answers = await asyncio.gather(*(ask(c) for c in running))
    now = {a.name: a for a in answers if a is not None}
    out = st.model_copy(deep=True)
    out.clusters = [now.get(c.name, c) for c in out.clusters]
    return out


_NOT_RUNNING = ENDED_STATES | {"pending"}


async def undo_of(client: Client, st: ReleaseStatus) -> UndoStatus | None:
    """The release's undo (``ringmaster rollback`` or ``retry``), the latest, if one was started."""
    from temporalio.client import WorkflowExecutionStatus  # noqa: PLC0415 - see status()
    from temporalio.service import RPCError, RPCStatusCode  # noqa: PLC0415

    from workflows.undo import UndoStatus, UndoWorkflow, undo_id  # noqa: PLC0415

    handle = client.get_workflow_handle(undo_id(st.service, st.version), result_type=UndoStatus)
    try:
        described = await handle.describe()
        if described.status == WorkflowExecutionStatus.COMPLETED:
            ended: UndoStatus = await handle.result(follow_runs=False)
            return ended
        if described.status == WorkflowExecutionStatus.RUNNING:
            running: UndoStatus = await handle.query(UndoWorkflow.status)
            return running
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return None


def undo_text(undo: UndoStatus) -> str:
    """The undo's part of the ``status`` report."""
    who = f" by {undo.by}" if undo.by else ""
    lines = ["", f"  {undo.mode}{who}: {undo.phase}" + (f" ({undo.reason})" if undo.reason else "")]
    if undo.problem:
        lines.append(f"    {undo.problem}")
    for c in undo.clusters:
        versions = f"{c.from_version} -> {c.to_version}" if c.to_version else c.from_version
        lines.append(f"    {c.name:<16}{c.outcome:<11}{versions:<16}{c.message}".rstrip())
    return "\n".join(lines)


async def live_gates(client: Client, st: ReleaseStatus) -> list[AnalyzeProgress]:
    """The progress of the analyses running now, in the release workflow and each cluster's."""
    from temporalio.api.enums.v1 import PendingActivityState  # noqa: PLC0415
    from temporalio.service import RPCError  # noqa: PLC0415

    ids = [st.workflow_id] + [
        c.workflow_id for c in st.clusters if c.workflow_id and c.state not in TERMINAL_PHASES
    ]
    gates: list[AnalyzeProgress] = []
    converter = client.data_converter.payload_converter
    for wid in ids:
        try:
            desc = await client.get_workflow_handle(wid).describe()
        except RPCError:
            continue
        for pending in desc.raw_description.pending_activities:
            if pending.activity_type.name != "analyze" or not pending.heartbeat_details.payloads:
                continue
            if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED:
                continue
            try:
                [progress] = converter.from_payloads(
                    list(pending.heartbeat_details.payloads[:1]), [AnalyzeProgress]
                )
            except (ValueError, RuntimeError):
                continue  # not progress this version can read; the recorded gates still show
            gates.append(progress)
    return gates


_COLORS = {"succeeded": "green", "rolled-back": "red", "failed": "red", "aborted": "yellow", "denied": "red"}


def progress_line(st: ReleaseStatus, *, color: bool = False) -> str:
    """A compact line that changes whenever something worth seeing changes."""
    clusters = " ".join(
        f"{c.name}={c.state}" + (f"@{c.weight}%" if c.state in ("deploying", "analyzing", "holding") else "")
        for c in st.clusters
        if c.state != "pending"
    )
    held = f" held: {st.hold_reason}" if st.held else ""
    line = f"[{st.phase}] ring={st.ring or '-'} {clusters}{held}".rstrip()
    if color and st.phase in _COLORS:
        return f"\x1b[1m{line}\x1b[0m"
    return line


def _gate_json(gate: Any) -> dict[str, Any] | None:
    return None if gate is None else gate.model_dump(mode="json")


def status_json(st: ReleaseStatus, live: list[AnalyzeProgress]) -> dict[str, Any]:
    """The documented JSON of ``ringmaster status`` (more keys may be added, none removed)."""
    recorded = [
        {
            "cluster": c.name,
            "ring": c.ring,
            "live": False,
            "verdict": _gate_json(c.gate),
            "measurements": [m.model_dump(mode="json") for m in c.measurements],
        }
        for c in st.clusters
        if c.gate is not None
    ]
    running = [
        {
            "cluster": g.cluster,
            "stage": g.stage,
            "live": True,
            "verdict": g.verdict.model_dump(mode="json"),
            "measurements": [c.model_dump(mode="json") for c in g.checks],
            "totalChecks": g.total_checks,
        }
        for g in live
    ]
    return {
        "release": st.release,
        "workflowId": st.workflow_id,
        "phase": st.phase,
        "reason": st.reason,
        "omitted": st.omitted,
        "ring": st.ring,
        "held": st.held,
        "holdReason": st.hold_reason,
        "waitingFor": st.waiting_for,
        "submittedBy": st.submitted_by,
        "rollbackScope": st.rollback_scope,
        "needsAttention": st.needs_attention,
        "flagsFullyOn": st.flags_fully_on,
        "clusters": [
            {
                "name": c.name,
                "ring": c.ring,
                "region": c.region,
                "jurisdiction": c.jurisdiction,
                "state": c.state,
                "version": c.version,
                "weight": c.weight,
                "flagRollout": c.flag_rollout,
                "step": c.step,
                "message": c.message,
                "nextWindow": c.next_window.isoformat() if c.next_window else None,
                "residency": [
                    {"rule": d.rule, "verdict": d.verdict, "reason": d.reason} for d in c.residency
                ],
            }
            for c in st.clusters
        ],
        "gates": running + recorded,
        "actions": [a.model_dump(mode="json") for a in st.actions],
    }


def status_text(st: ReleaseStatus, live: list[AnalyzeProgress]) -> str:
    """A readable report for people."""
    lines = [f"{st.release}  phase {st.phase}  ring {st.ring or '-'}"]
    if st.reason:
        lines.append(f"  {st.reason}")
    if st.submitted_by:
        lines.append(f"  submitted by {st.submitted_by}")
    if st.waiting_for:
        lines.append(f"  waiting for {st.waiting_for}")
    if st.held:
        lines.append(f"  held: {st.hold_reason}")
    if st.needs_attention:
        lines.append(f"  NEEDS ATTENTION: {', '.join(st.needs_attention)}")
    for flag in st.flags_fully_on:
        lines.append(
            f"  flag {flag} is fully on in every ring: remove it from the code and from Unleash "
            "(`ringmaster flags stale` lists such flags)"
        )
    if st.omitted:
        lines.append(f"  not in this record: {st.omitted}")
    lines.append("")
    lines.append(f"  {'cluster':<16}{'ring':<10}{'state':<20}{'version':<12}{'weight':>6}  step")
    for c in st.clusters:
        flag = "" if c.flag_rollout is None else f"  flag {c.flag_rollout}%"
        lines.append(f"  {c.name:<16}{c.ring:<10}{c.state:<20}{c.version:<12}{c.weight:>5}%  {c.step}{flag}")
    gates = [(c.name, c.gate) for c in st.clusters if c.gate is not None]
    if live or gates:
        lines.append("")
        lines.append("  gates")
        for g in live:
            lines.append(
                f"    {g.cluster} ({g.stage}, live, {g.total_checks} checks): "
                f"{g.verdict.status} {g.verdict.reason}"
            )
        for name, gate in gates:
            lines.append(f"    {name}: {gate.status} {gate.reason}")
    if st.actions:
        lines.append("")
        lines.append("  operator actions")
        for a in st.actions:
            verdict = "" if a.accepted else f" REJECTED: {a.rejection}"
            what = a.reason or a.cluster or a.ring or ""
            lines.append(
                f"    {a.at:%Y-%m-%d %H:%M:%S} {a.kind} by {a.by}{_how(a)} via {a.via} {what}{verdict}"
            )
    return "\n".join(lines)


def _how(action: OperatorAction) -> str:
    """How the worker established who acted: `` (ssh, SHA256:...)``; empty in older histories."""
    if not action.method:
        return ""
    return f" ({action.method}, {action.verification})" if action.verification else f" ({action.method})"


_STATE_STYLE = {
    "promoted": "green",
    "rolled-back": "red",
    "failed": "bold red",
    "denied": "red",
    "rolling-back": "yellow",
    "holding": "yellow",
    "left-in-place": "yellow",
    "awaiting-approval": "cyan",
    "waiting-window": "cyan",
}


def status_table(st: ReleaseStatus) -> Table:
    """The live view of ``submit --wait`` on a terminal: one row per cluster."""
    held = f"  held: {st.hold_reason}" if st.held else ""
    table = Table(
        title=f"{st.release}  [bold]{st.phase}[/bold]  ring {st.ring or '-'}{held}", title_justify="left"
    )
    for column in ("cluster", "ring", "state", "version", "weight", "step", "gate"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for c in st.clusters:
        gate = f"{c.gate.status}: {c.gate.reason}" if c.gate else ""
        style = _STATE_STYLE.get(c.state, "")
        table.add_row(
            c.name,
            c.ring,
            f"[{style}]{c.state}[/]" if style else c.state,
            c.version,
            f"{c.weight}%",
            c.step,
            gate,
        )
    return table
