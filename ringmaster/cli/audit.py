"""``ringmaster audit``: a release run's audit record, from history while Temporal keeps it, else the archive.

The record (:class:`activities.audit.AuditRecord`) is built from the release's history and its
children's exactly as the worker's archive activity builds it, so both sources say the same. Once
Temporal's retention has removed the history, the record comes from the archive
(``RINGMASTER_ARCHIVE_URL`` or ``--archive``), which the worker wrote when the run ended. The output
names the source. ``--output markdown`` (the default) is for people and reports; ``json`` is the
record itself. Exit codes: 0 printed; 2 no such release in history or archive, or a bad option;
3 Temporal unreachable (with ``--source history``).
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ringmaster.cli.options import ReleaseArg
from ringmaster.exitcodes import ExitCode

if TYPE_CHECKING:
    from activities.archive import ArchiveStore
    from activities.audit import AuditRecord
    from ringmaster.settings import Settings


class AuditOutput(StrEnum):
    """How ``audit`` prints the record."""

    MARKDOWN = "markdown"
    JSON = "json"


class Source(StrEnum):
    """Where ``audit`` reads the record."""

    AUTO = "auto"
    HISTORY = "history"
    ARCHIVE = "archive"


def audit(
    release: ReleaseArg,
    output: Annotated[
        AuditOutput, typer.Option("--output", "-o", help="markdown (for people) or json (the record).")
    ] = AuditOutput.MARKDOWN,
    source: Annotated[
        Source,
        typer.Option(
            "--source", help="history, archive, or auto: history while Temporal keeps it, else archive."
        ),
    ] = Source.AUTO,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="One run of the release (default: the latest).")
    ] = None,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            help="The archive to read (default $RINGMASTER_ARCHIVE_URL): a path or s3://bucket/prefix.",
        ),
    ] = None,
) -> NoReturn:
    """Who did what, which residency rules and gates decided, and where each cluster was left."""
    from ringmaster.cli import _client  # noqa: PLC0415 - Temporal is imported when a client command runs

    async def body(settings: Settings) -> _client.Outcome:
        workflow_id = _client.workflow_id_of(release)
        found: tuple[AuditRecord, str] | None = None
        if source is not Source.ARCHIVE:
            found = await _from_history(settings, workflow_id, run_id, required=source is Source.HISTORY)
        if found is None:
            found = await _from_archive(settings, archive, workflow_id, run_id)
        record, where = found
        payload: dict[str, Any] = {"source": where, "record": record.model_dump(mode="json")}
        if output is AuditOutput.JSON:
            return ExitCode.OK, payload, json.dumps(payload, indent=2)
        return ExitCode.OK, payload, markdown(record, where)

    from ringmaster.cli.options import Output  # noqa: PLC0415

    # Under --output json, errors are JSON documents too ({"error": ...}), as in every other command.
    _client.run(Output.JSON if output is AuditOutput.JSON else Output.TEXT, body)


async def _from_history(
    settings: Settings, workflow_id: str, run_id: str | None, *, required: bool
) -> tuple[AuditRecord, str] | None:
    """The record built from history; None when history has no such run (and it is not required)."""
    from temporalio.service import RPCError, RPCStatusCode  # noqa: PLC0415 - see _client

    from activities import _history  # noqa: PLC0415
    from activities import audit as audits  # noqa: PLC0415
    from ringmaster.cli import _client  # noqa: PLC0415

    try:
        client = await _client.connect(settings)
    except _client.Stop:
        if required:
            raise
        return None

    async def read() -> _history.Histories | None:
        try:
            return await _history.read_release(client, workflow_id, run_id)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND and not required:
                return None
            raise

    try:
        histories = await _client.call(f"history of {workflow_id}", read())
    except _client.Stop as stop:
        if required or stop.code != ExitCode.UNREACHABLE:
            raise
        return None
    if histories is None:
        return None
    run = histories.release
    record: Any = run.result
    if not run.closed:
        handle = client.get_workflow_handle(workflow_id, run_id=run.run_id)
        record = await _client.call(f"status of {workflow_id}", handle.query("status"))
    built = audits.build(histories, record if isinstance(record, dict) else None)
    state = run.closed or "running"
    return built, f"history (workflow {workflow_id}, run {run.run_id}, {state})"


async def _from_archive(
    settings: Settings, given: str | None, workflow_id: str, run_id: str | None
) -> tuple[AuditRecord, str]:
    """The record the worker archived; Stop(2) naming what was looked for when there is none."""
    from pydantic import ValidationError  # noqa: PLC0415

    from activities import archiving  # noqa: PLC0415
    from activities.archive import ArchiveError, open_archive  # noqa: PLC0415
    from activities.audit import FORMAT, AuditRecord  # noqa: PLC0415
    from policies import messages  # noqa: PLC0415
    from ringmaster.cli._client import Stop  # noqa: PLC0415

    url = given or settings.archive_url
    if not url:
        raise Stop(
            ExitCode.INVALID,
            f"{workflow_id}: not in Temporal's history, and no archive to read "
            "(set RINGMASTER_ARCHIVE_URL or pass --archive)",
        )
    _, service, version = workflow_id.split(":", 2) if workflow_id.count(":") >= 2 else ("", "", "")
    try:
        store = open_archive(url)
        key, body = await asyncio.to_thread(_latest, store, archiving.prefix(service, version), run_id)
    except ArchiveError as err:
        raise Stop(ExitCode.INVALID, f"archive: {err}") from None
    if key is None or body is None:
        which = f"run {run_id} of " if run_id else ""
        raise Stop(
            ExitCode.INVALID,
            f"{which}{workflow_id}: in neither Temporal's history nor the archive {store.where}",
        )
    try:
        record = messages.decode_json(AuditRecord, body)
    except ValidationError as err:
        raise Stop(
            ExitCode.INVALID,
            f"archive {store.where}/{key}: not an audit record of format {FORMAT} "
            f"({err.error_count()} problem(s))",
        ) from None
    return record, f"archive ({store.where}/{key})"


def _latest(store: ArchiveStore, prefix: str, run_id: str | None) -> tuple[str | None, bytes | None]:
    """The record of ``run_id``, else of the run that started last."""
    keys = [k for k in store.keys(prefix) if k.endswith(".json")]
    if run_id is not None:
        keys = [k for k in keys if k == f"{prefix}{run_id}.json"]
    best: tuple[str, str, bytes] | None = None
    for key in keys:
        body = store.get(key)
        if body is None:
            continue
        try:
            started = str(json.loads(body).get("started_at") or "")
        except ValueError:
            continue
        if best is None or started > best[0]:
            best = (started, key, body)
    return (best[1], best[2]) if best else (None, None)


# --- markdown ---------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    """A measured value as people read it: six significant digits (the JSON keeps every digit)."""
    return "" if value is None else f"{value:.6g}"


def _code(text: str) -> str:
    """PromQL on one line, for inline code (line breaks would end the Markdown span)."""
    return " ".join(text.split())


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if hasattr(value, "strftime") else ""


def markdown(record: AuditRecord, where: str) -> str:
    """The record as a Markdown report."""
    r = record
    submitter = (
        f"{r.submitter.principal} ({r.submitter.method}: {r.submitter.verification})"
        if r.submitter
        else f"{r.submitted_by} (unverified)"
    )
    lines = [
        f"# Audit: {r.release}",
        "",
        f"Source: {where}",
        "",
        "| | |",
        "|---|---|",
        f"| release | {r.release} |",
        f"| image | {_cell(r.image)} |",
        f"| outcome | **{r.phase or 'running'}**: {_cell(r.reason)} |",
        f"| submitted by | {_cell(submitter)} |",
        f"| started / ended | {_when(r.started_at)} / {_when(r.ended_at)} |",
        f"| workflow / run | {r.workflow_id} / {r.run_id} |",
        f"| plan / fleet digest | {r.plan_digest[:16]} / {r.fleet_digest[:16]} |",
        "",
        "## Rings",
        "",
    ]
    for ring in r.rings:
        waves = "; ".join(f"wave {i + 1}: {', '.join(w)}" for i, w in enumerate(ring.waves))
        lines.append(f"- **{ring.name}** ({ring.strategy}): {waves}")
    lines += ["", "## Timeline", "", "| at | ring | cluster | what |", "|---|---|---|---|"]
    lines += [f"| {_when(e.at)} | {e.ring} | {e.cluster} | {_cell(e.text)} |" for e in r.timeline]
    lines += [
        "",
        "## Residency decisions",
        "",
        "| at | cluster | stage | rule | verdict | reason | rule set | worker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {_when(d.at)} | {d.cluster} | {d.stage} | {d.rule} | **{d.verdict}** | {_cell(d.reason)} "
        f"| {d.ruleset_digest[:19]} | {_cell(d.worker)} |"
        for d in r.residency
    ]
    lines += ["", "## Gates", ""]
    for g in r.gates:
        lines.append(f"### {g.cluster} · {g.stage} · {g.verdict.status} ({_when(g.at)})")
        lines += ["", _cell(g.verdict.reason), ""]
        for q in g.queries:
            lines.append(
                f"- `{q.metric}`: `{_code(q.promql)}`"
                + (f" against `{_code(q.baseline_promql)}`" if q.baseline_promql else "")
            )
        if g.checks:
            lines += ["", "| at | metric | value | baseline | error |", "|---|---|---|---|---|"]
            lines += [
                f"| {_when(c.at)} | {m.metric} | {_number(m.value)} | {_number(m.baseline)} "
                f"| {_cell(m.error)} |"
                for c in g.checks
                for m in c.measurements
            ]
        lines.append("")
    lines += ["## Operator actions", ""]
    if not r.actions:
        lines.append("None: nobody approved, held, resumed or aborted this run.")
    else:
        lines += ["| at | action | by | verified | reason | accepted |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {_when(a.at)} | {a.kind} {a.ring or ''} {a.cluster or ''} | {_cell(a.by)} "
        f"| {a.method or 'unverified'} {_cell(a.verification)} | {_cell(a.reason)} "
        f"| {'yes' if a.accepted else 'refused: ' + _cell(a.rejection)} |"
        for a in r.actions
    ]
    lines += [
        "",
        "## Clusters",
        "",
        "| cluster | ring | region | state | image before | image after |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.cluster} | {c.ring} | {c.region} | {c.state} "
        f"| {_cell(c.image_before) or '-'} | {_cell(c.image_after) or '-'} |"
        for c in r.clusters
    ]
    lines += ["", "## Notifications", ""]
    if r.deliveries:
        lines += ["| webhook | kind | outcome | attempts | last |", "|---|---|---|---|---|"]
        lines += [
            f"| {d.get('webhook', '')} | {d.get('kind', '')} | {d.get('outcome', '')} "
            f"| {d.get('attempts', '')} "
            f"| {_cell(d.get('error') or d.get('status') or '')} |"
            for d in r.deliveries
        ]
    else:
        lines.append("None sent.")
    if r.missing:
        lines += ["", f"Child histories no longer readable: {', '.join(r.missing)}"]
    return "\n".join(lines) + "\n"


COMMANDS = (audit,)
"""The commands of this module, as the CLI registers them."""
