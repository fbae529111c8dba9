"""``ringmaster list``: the releases matching filters, as a table like ``kubectl get`` or as JSON.

Everything comes from Temporal's visibility store: one ``list_workflows`` call with the query
:mod:`ringmaster.cli._query` writes from the options, over the search attributes the release
workflows upsert (:mod:`workflows.search`) and the memo the lane starts them with (``image``,
``submitted_by``). No release workflow is queried or described, so listing a thousand releases costs
what listing one does, and needs no worker.

``--cluster`` makes one more list call first: the release's own ``RingmasterClusters`` is bounded in
size (a release of hundreds of clusters lists only the first), so the cluster workflows carrying
``RingmasterCluster`` name the runs that reached the cluster too, and the release query matches
either. ``--limit`` keeps the releases the store returns first (running ones, then the latest to
end: SQL visibility cannot order by start); they are shown newest start first. Visibility is
eventually consistent: a release started or changed a moment ago may show its
previous phase, or not yet show.

Exit codes (:mod:`ringmaster.exitcodes`): 0 listed (also when nothing matches); 2 an invalid
option (the message names the flag and what it allows) or a query the server refuses; 3 Temporal
unreachable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ringmaster.cli.options import Output, OutputOpt
from ringmaster.exitcodes import ExitCode

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecution

    from ringmaster.cli import _query
    from ringmaster.settings import Settings

LIMIT = 100
"""Releases listed unless ``--limit`` says otherwise."""
MOST = 1000
"""The largest ``--limit``: beyond it, narrow the filters."""
CLUSTER_RELEASES = 500
"""Releases ``--cluster`` takes from the cluster workflows (the newest first): the query names each
run, and a query must stay a reasonable size. Past it, ``list`` warns on stderr."""

COLUMNS = ("RELEASE", "PHASE", "RING", "SUBMITTER", "STARTED", "DURATION", "STATUS")
"""The table's columns, in order."""


def list_releases(
    service: Annotated[str | None, typer.Option("--service", help="Only this service's releases.")] = None,
    phase: Annotated[
        list[str] | None,
        typer.Option("--phase", help="Only releases in this phase (repeat for several)."),
    ] = None,
    ring: Annotated[str | None, typer.Option("--ring", help="Only releases now at this ring.")] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Only releases that changed this cluster.")
    ] = None,
    submitter: Annotated[
        str | None,
        typer.Option("--submitter", help="Only releases this verified principal submitted."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only releases started since: a duration (2h, 1d) or an ISO time."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", help=f"At most this many (1-{MOST}): running ones, then the latest to end."),
    ] = LIMIT,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """List releases, newest first: phase, ring, submitter, age, duration and workflow status.

    Exit codes: 0 listed, also when none match; 2 an invalid option (or a query the server refuses);
    3 Temporal unreachable.
    """
    from ringmaster.cli import _client, _query  # noqa: PLC0415 - Temporal is imported when a client command runs

    async def body(settings: Settings) -> _client.Outcome:
        now = datetime.now(UTC)
        try:
            wanted = _query.filters(
                service=service,
                phases=phase or (),
                ring=ring,
                cluster=cluster,
                submitter=submitter,
                since=since,
                now=now,
            )
        except ValueError as err:
            raise _client.Stop(ExitCode.INVALID, str(err)) from None
        if not 1 <= limit <= MOST:
            raise _client.Stop(ExitCode.INVALID, f"--limit: {limit} is out of range; allowed: 1 to {MOST}")
        client = await _client.connect(settings)
        run_ids, workflow_ids = await _cluster_runs(client, wanted)
        query = _query.release_query(wanted, run_ids=run_ids, workflow_ids=workflow_ids)
        found = await _client.call("list", _listed(client, query, limit))
        # Newest first, whatever order the store answers in (SQL visibility cannot ORDER BY).
        found.sort(key=lambda w: w.start_time, reverse=True)
        rows = [await row(w) for w in found]
        text = table(rows, now) if rows else "no releases match"
        if settings.ui_url:
            text += "\n\nui  " + _query.ui_link(settings.ui_url, client.namespace, query)
        return ExitCode.OK, rows, text

    _client.run(output, body)


COMMANDS = (list_releases,)
"""The commands of this module, as the CLI registers them (as ``list``: a builtin's name in Python)."""


async def _listed(client: Client, query: str, limit: int) -> list[WorkflowExecution]:
    return [w async for w in client.list_workflows(query, limit=limit)]


async def _cluster_runs(client: Client, wanted: _query.Filters) -> tuple[list[str], list[str]]:
    """With ``--cluster``: the release runs (and, for a cluster workflow naming no parent, the
    release ids) whose cluster workflows deployed to the cluster; one list call, never a query."""
    from ringmaster.cli import _client, _query  # noqa: PLC0415 - see list_releases

    if wanted.cluster is None:
        return [], []

    async def collect() -> tuple[list[str], list[str]]:
        runs: dict[str, None] = {}
        ids: dict[str, None] = {}
        async for w in client.list_workflows(_query.cluster_query(wanted)):
            if w.parent_run_id:
                runs[w.parent_run_id] = None
            else:
                ids[_query.release_of(w.id)] = None
            if len(runs) + len(ids) >= CLUSTER_RELEASES:
                typer.echo(
                    f"warning: more than {CLUSTER_RELEASES} releases deployed to {wanted.cluster}; "
                    "beyond its own cluster list, only the newest are matched: narrow with --since "
                    "or --service",
                    err=True,
                )
                break
        return list(runs), list(ids)

    return await _client.call("list (cluster workflows)", collect())


def _status(w: WorkflowExecution) -> str:
    """The execution status as the Temporal UI writes it: ``Running``, ``TimedOut``."""
    if w.status is None:
        return "Unknown"
    return "".join(part.capitalize() for part in w.status.name.split("_"))


async def row(w: WorkflowExecution) -> dict[str, Any]:
    """One release's documented JSON object, from its visibility record alone."""
    from workflows import search  # noqa: PLC0415 - see list_releases

    attrs = w.typed_search_attributes
    fallback_service, _, fallback_version = w.id.removeprefix("release:").partition(":")
    svc = attrs.get(search.SERVICE) or fallback_service
    version = attrs.get(search.VERSION) or fallback_version
    memo = await w.memo()
    claimed = memo.get("submitted_by")
    image = memo.get("image")
    ended = w.close_time
    return {
        "release": f"{svc}:{version}",
        "service": svc,
        "version": version,
        "workflowId": w.id,
        "runId": w.run_id,
        "phase": attrs.get(search.PHASE),
        "ring": attrs.get(search.RING) or None,
        "submitter": attrs.get(search.SUBMITTER),
        "submittedBy": claimed if isinstance(claimed, str) else None,
        "image": image if isinstance(image, str) else None,
        "clusters": list(attrs.get(search.CLUSTERS) or []),
        "status": _status(w),
        "startedAt": w.start_time.isoformat(),
        "endedAt": ended.isoformat() if ended else None,
        "durationSeconds": (ended - w.start_time).total_seconds() if ended else None,
    }


def _submitter(r: dict[str, Any]) -> str:
    if r["submitter"]:
        return str(r["submitter"])
    if r["submittedBy"]:
        return f"{r['submittedBy']} (unverified)"
    return "-"


def table(rows: list[dict[str, Any]], now: datetime) -> str:
    """The rows as ``kubectl get`` prints them: upper-case headers, columns three spaces apart."""
    from datetime import timedelta  # noqa: PLC0415

    from ringmaster.cli import _query  # noqa: PLC0415 - see list_releases

    cells = [list(COLUMNS)]
    for r in rows:
        started = datetime.fromisoformat(r["startedAt"])
        took = r["durationSeconds"]
        cells.append(
            [
                r["release"],
                r["phase"] or "-",
                r["ring"] or "-",
                _submitter(r),
                _query.age(now - started),
                "-" if took is None else _query.age(timedelta(seconds=took)),
                r["status"],
            ]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )
