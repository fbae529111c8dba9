"""``ringmaster rollback`` and ``ringmaster retry``: undo a release that already ended.

Both prove a ``rollback`` statement on the release's workflow id and its run (with the cluster and
reason, when given) and start ``workflows.undo.UndoWorkflow`` (``undo:<service>:<version>``), which
verifies it, reads the release's record itself and restores clusters newest first. Without ``--wait``
they exit 0 once it started; with ``--wait`` they exit as it ends: 0 every chosen cluster restored,
1 some could not be (refused because a newer release changed it, or its rollback failed and it
needs attention), 2 the request was refused (unverified, not authorized, nothing to undo) and
nothing changed. Exit codes: :mod:`ringmaster.exitcodes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from ringmaster.cli import _proof, options
from ringmaster.cli._proof import SignOpt
from ringmaster.cli.options import ByOpt, Output, OutputOpt, ReleaseArg
from ringmaster.exitcodes import ExitCode

if TYPE_CHECKING:
    from ringmaster.settings import Settings
    from workflows.undo import UndoStatus

WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until every chosen cluster is done.")]
TimeoutOpt = Annotated[
    str | None, typer.Option("--timeout", help="With --wait: stop waiting after this long (e.g. 30m).")
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; recorded with each cluster's rollback.")]


def rollback(
    release: ReleaseArg,
    cluster: Annotated[
        str, typer.Option("--cluster", help="Only this cluster (default: every promoted one, newest first).")
    ] = "",
    reason: ReasonOpt = "",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Undo an ended release: restore what each promoted cluster ran before it, newest first."""
    _start("rollback", release, cluster, reason, wait, timeout, by, sign_with, output)


def retry(
    release: ReleaseArg,
    cluster: Annotated[
        str, typer.Option("--cluster", help="A cluster the release lists as needing attention.")
    ],
    reason: ReasonOpt = "",
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Re-run the failed rollback of a cluster needing attention, once its cause is fixed."""
    _start("retry", release, cluster, reason, wait, timeout, by, sign_with, output)


COMMANDS = (rollback, retry)
"""The commands of this module, as the CLI registers them."""


def _start(
    mode: Literal["rollback", "retry"],
    release: str,
    cluster: str,
    reason: str,
    wait: bool,
    timeout: str | None,
    by: str | None,
    sign_with: Path | None,
    output: Output,
) -> NoReturn:
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError  # noqa: PLC0415 - see _client
    from temporalio.exceptions import WorkflowAlreadyStartedError  # noqa: PLC0415

    from ringmaster.cli import _client  # noqa: PLC0415
    from workflows.undo import UndoInput, UndoWorkflow, undo_id  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        limit = options.timeout_seconds(timeout)
        wid = _client.workflow_id_of(release)
        service, _, version = wid.removeprefix("release:").partition(":")
        client = await _client.connect(settings)
        desc = await _client.call(mode, client.get_workflow_handle(wid).describe())
        if desc.status == WorkflowExecutionStatus.RUNNING:
            raise _client.Stop(
                ExitCode.INVALID, f"{wid} is still running: abort it instead (ringmaster abort)"
            )
        # The proof names the run the person saw: it never undoes a rerun started since.
        said = _proof.statement("rollback", wid, run_id=desc.run_id, cluster=cluster, reason=reason)
        inp = UndoInput(
            release_workflow_id=wid,
            release_run_id=desc.run_id,
            mode=mode,
            cluster=cluster,
            reason=reason,
            by=_client.operator(by),
            identity=_client.identity(),
            proof=_proof.proved(said, sign_with),
        )
        try:
            handle = await client.start_workflow(
                UndoWorkflow.run, inp, id=undo_id(service, version), task_queue=settings.task_queue
            )
        except WorkflowAlreadyStartedError:
            raise _client.Stop(
                ExitCode.INVALID,
                f"an undo of {service}:{version} is already running ({undo_id(service, version)})",
            ) from None
        payload: dict[str, Any] = {
            "release": f"{service}:{version}",
            "mode": mode,
            "workflowId": handle.id,
            "runId": handle.result_run_id,
            "url": _client.url(settings, client, handle.id, handle.result_run_id or ""),
        }
        lines = [f"{mode}  {service}:{version}", f"workflow  {handle.id}", f"ui        {payload['url']}"]
        if not wait:
            return ExitCode.OK, payload, "\n".join(lines)
        typer.echo("\n".join(lines), err=True)
        try:
            final = await _client.call(mode, _within(handle.result(), limit))
        except TimeoutError:
            raise _client.Stop(ExitCode.TIMEOUT, f"--timeout passed; {handle.id} is still running") from None
        except WorkflowFailureError as err:
            message = f"{handle.id} ended without a result: {err.cause or err}; see {payload['url']}"
            raise _client.Stop(ExitCode.RELEASE_FAILED, message) from None
        payload.update(final.model_dump(mode="json", include={"phase", "problem", "by", "clusters"}))
        return _code(final), payload, _text(final)

    _client.run(output, body)


async def _within(work: Any, limit: float | None) -> UndoStatus:
    import asyncio  # noqa: PLC0415

    result: UndoStatus = await asyncio.wait_for(work, limit)
    return result


def _code(final: UndoStatus) -> ExitCode:
    if final.phase == "restored":
        return ExitCode.OK
    if final.phase == "refused":
        return ExitCode.INVALID
    return ExitCode.RELEASE_FAILED


def _text(final: UndoStatus) -> str:
    if final.phase == "refused":
        return f"refused: {final.problem}"
    lines = [f"{final.phase} (by {final.by})"]
    lines += [f"  {c.name:<20} {c.outcome:<9} {c.message}" for c in final.clusters]
    return "\n".join(lines)
