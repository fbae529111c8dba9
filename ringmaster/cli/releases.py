"""``ringmaster submit`` and the operator controls ``hold``, ``resume``, ``abort`` and ``approve``.

``submit`` reads the plan once, checks it locally (fully, through :func:`policies.judgement.judge`,
when ``--fleet`` is given) and starts the release through the service's lane; with ``--wait`` it
follows the release with the views of :mod:`ringmaster.cli.status`. It warns on stderr when a ring
requires four eyes but the identity settings here take the client's word for who approves
(:mod:`ringmaster.cli._four_eyes`). Each control is one validated update of the release workflow.
Temporal is imported when one of these commands runs (see :mod:`ringmaster.cli._client`). Exit
codes: :mod:`ringmaster.exitcodes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.live import Live

from policies import judgement, loading
from policies.identity import Action, plan_digest
from policies.plan import ReleasePlan
from ringmaster.cli import _four_eyes, _proof, options
from ringmaster.cli import status as view
from ringmaster.cli._proof import SignOpt
from ringmaster.cli.options import ByOpt, Output, OutputOpt, ReleaseArg
from ringmaster.exitcodes import ExitCode
from workflows.models import (
    AbortRequest,
    ApproveRequest,
    ControlResult,
    HoldRequest,
    ReleaseInput,
    ReleaseStatus,
    ResumeRequest,
    SubmitResult,
)

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle
    from temporalio.workflow import UpdateMethodMultiParam

    from ringmaster.settings import Settings
    from workflows.release import ReleaseWorkflow


def submit(
    plan: Annotated[Path, typer.Argument(help="The release plan (YAML).")],
    version: Annotated[str, typer.Option("--version", help="The version to release, e.g. v2.")],
    image: Annotated[str, typer.Option("--image", help="The container image of that version.")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the release until it ends.")] = False,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="With --wait: stop waiting after this long (e.g. 30m)."),
    ] = None,
    supersede: Annotated[
        bool,
        typer.Option("--supersede", help="Abort the service's running release (with rollback) first."),
    ] = False,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Run an ended release of this version again.")
    ] = False,
    fleet: Annotated[
        Path | None, typer.Option("--fleet", help="Validate fully against this fleet before submitting.")
    ] = None,
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Validate a plan and start its release; with --wait, follow it to the end."""
    from temporalio.client import WithStartWorkflowOperation  # noqa: PLC0415 - see _client
    from temporalio.common import WorkflowIDConflictPolicy  # noqa: PLC0415

    from ringmaster.cli import _client  # noqa: PLC0415
    from workflows.lane import ReleaseLaneWorkflow, lane_id  # noqa: PLC0415
    from workflows.models import LaneState, SubmitRequest  # noqa: PLC0415
    from workflows.release import release_id  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        wait_seconds = options.timeout_seconds(timeout)
        text = loading.read(plan)
        release_plan = _checked(text, fleet, version)
        _warn_unverified_four_eyes(release_plan, settings)
        client = await _client.connect(settings)
        inp = ReleaseInput(
            service=release_plan.service,
            version=version,
            image=image,
            plan_text=text.content,
            plan_source=plan.name,
            submitted_by=_client.operator(by),
            submitted_identity=_client.identity(),
        )
        result = await _existing(client, inp, rerun)
        if result is None:
            said = _proof.statement(
                "submit",
                release_id(inp.service, inp.version),
                image=inp.image,
                plan_digest=plan_digest(inp.plan_text),
                reason=",".join(n for n, on in (("rerun", rerun), ("supersede", supersede)) if on),
            )
            proof = _proof.proved(said, sign_with)
            result = await _client.call(
                "submission",
                client.execute_update_with_start_workflow(
                    ReleaseLaneWorkflow.submit,
                    SubmitRequest(release=inp, supersede=supersede, rerun=rerun, proof=proof),
                    start_workflow_operation=WithStartWorkflowOperation(
                        ReleaseLaneWorkflow.run,
                        LaneState(service=release_plan.service),
                        id=lane_id(release_plan.service),
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        task_queue=settings.task_queue,
                    ),
                ),
            )
        payload: dict[str, Any] = {
            "release": result.release,
            "workflowId": result.workflow_id,
            "runId": result.run_id,
            "created": result.created,
            "url": _client.url(settings, client, result.workflow_id, result.run_id),
        }
        if result.message:
            payload["message"] = result.message
        lines = [
            f"release   {result.release}" + ("" if result.created else f" (existing: {result.message})"),
            f"workflow  {result.workflow_id}",
            f"ui        {payload['url']}",
        ]
        if not wait:
            return ExitCode.OK, payload, "\n".join(lines)
        typer.echo("\n".join(lines), err=output is Output.JSON)
        handle = client.get_workflow_handle(result.workflow_id)
        final = await _follow(client, handle, wait_seconds, live=sys.stderr.isatty())
        if final is None:
            payload["phase"] = "failed"
            return ExitCode.RELEASE_FAILED, payload, "release failed"
        payload["phase"] = final.phase
        payload["reason"] = final.reason
        code = ExitCode.INVALID if final.invalid else _phase_code(final.phase)
        return code, payload, f"{final.phase}: {final.reason}"

    _client.run(output, body)


def hold(
    release: ReleaseArg,
    reason: Annotated[str, typer.Option("--reason", help="Why; shown in status and the UI.")],
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Start no new step, wave, ring or promotion until resumed; gates keep judging."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client
    from workflows.release import ReleaseWorkflow  # noqa: PLC0415

    request = HoldRequest(reason=reason, by=_client.operator(by), identity=_client.identity())
    _control(release, output, ReleaseWorkflow.hold, request, sign_with, reason=reason)


def resume(
    release: ReleaseArg, by: ByOpt = None, sign_with: SignOpt = None, output: OutputOpt = Output.TEXT
) -> NoReturn:
    """Lift a hold (an operator's, or one placed by an inconclusive gate)."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client
    from workflows.release import ReleaseWorkflow  # noqa: PLC0415

    request = ResumeRequest(by=_client.operator(by), identity=_client.identity())
    _control(release, output, ReleaseWorkflow.resume, request, sign_with)


def abort(
    release: ReleaseArg,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded with the rollback.")],
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Roll back every touched cluster, newest first, and end the release aborted."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client
    from workflows.release import ReleaseWorkflow  # noqa: PLC0415

    request = AbortRequest(reason=reason, by=_client.operator(by), identity=_client.identity())
    _control(release, output, ReleaseWorkflow.abort, request, sign_with, reason=reason)


def approve(
    release: ReleaseArg,
    ring: Annotated[str, typer.Option("--ring", help="The ring waiting for approval.")],
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="A cluster waiting at pause: {} or a manual promotion."),
    ] = None,
    by: ByOpt = None,
    sign_with: SignOpt = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Approve a ring, or one cluster's approval step."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client
    from workflows.release import ReleaseWorkflow  # noqa: PLC0415

    request = ApproveRequest(ring=ring, cluster=cluster, by=_client.operator(by), identity=_client.identity())
    _control(release, output, ReleaseWorkflow.approve, request, sign_with, ring=ring, cluster=cluster or "")


COMMANDS = (submit, hold, resume, abort, approve)
"""The commands of this module, as the CLI registers them."""


Request = TypeVar("Request", HoldRequest, ResumeRequest, AbortRequest, ApproveRequest)


def _control(
    release: str,
    output: Output,
    update: UpdateMethodMultiParam[[ReleaseWorkflow, Request], ControlResult],
    request: Request,
    sign_with: Path | None,
    *,
    ring: str = "",
    cluster: str = "",
    reason: str = "",
) -> NoReturn:
    """Send one control, proved for this run of the release, as the release workflow's update."""
    from ringmaster.cli import _client  # noqa: PLC0415 - see _client

    name: Action = request_action(request)

    async def body(settings: Settings) -> _client.Outcome:
        client = await _client.connect(settings)
        handle = client.get_workflow_handle(_client.workflow_id_of(release))
        # The proof names the run it acts on: a control signed for one run never acts on a rerun.
        run_id = (await _client.call(name, handle.describe())).run_id
        said = _proof.statement(name, handle.id, run_id=run_id, ring=ring, cluster=cluster, reason=reason)
        signed = request.model_copy(update={"proof": _proof.proved(said, sign_with)})
        result = await _client.call(name, handle.execute_update(update, signed))
        payload = {"release": release, "control": name, **result.model_dump(mode="json")}
        return ExitCode.OK, payload, f"{name}: {result.message} (phase {result.phase})"

    _client.run(output, body)


def request_action(request: HoldRequest | ResumeRequest | AbortRequest | ApproveRequest) -> Action:
    """The action a control request states."""
    if isinstance(request, HoldRequest):
        return "hold"
    if isinstance(request, ResumeRequest):
        return "resume"
    if isinstance(request, AbortRequest):
        return "abort"
    return "approve"


def _checked(text: loading.Text, fleet: Path | None, version: str) -> ReleasePlan:
    """The plan parsed, and judged against ``fleet`` when given; exit 2 if invalid or denied."""
    from ringmaster.cli._client import Stop  # noqa: PLC0415 - see _client

    try:
        if fleet is None:
            return loading.parse(text, ReleasePlan)
        judged = judgement.judge(text, loading.read(fleet), version)
    except loading.ConfigError as err:
        raise Stop(ExitCode.INVALID, str(err)) from None
    if judged.denials:
        lines = [f"{d.cluster}: {d.rule}: {d.reason}" for d in judged.denials]
        raise Stop(ExitCode.INVALID, "denied by residency rules:\n  " + "\n  ".join(lines))
    return judged.plan


def _warn_unverified_four_eyes(plan: ReleasePlan, settings: Settings) -> None:
    """Warn on stderr when a four-eyes ring's approver would be the client's word; exit 2 if the
    identity policy the settings name is invalid."""
    from ringmaster.cli._client import Stop  # noqa: PLC0415 - see _client

    try:
        warning = _four_eyes.warning(plan, settings)
    except loading.ConfigError as err:
        raise Stop(ExitCode.INVALID, str(err)) from None
    if warning:
        typer.echo(warning, err=True)


async def _existing(client: Client, inp: ReleaseInput, rerun: bool) -> SubmitResult | None:
    """An ended release of the same version: returned as is (same image) or rejected (other image)."""
    from temporalio.client import WorkflowExecutionStatus  # noqa: PLC0415 - see _client
    from temporalio.service import RPCError, RPCStatusCode  # noqa: PLC0415

    from ringmaster.cli._client import Stop  # noqa: PLC0415
    from workflows.release import release_id  # noqa: PLC0415

    handle = client.get_workflow_handle(release_id(inp.service, inp.version))
    try:
        desc = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if desc.status == WorkflowExecutionStatus.RUNNING or rerun:
        return None  # the lane decides about running releases
    image = (await desc.memo()).get("image")
    if image != inp.image:
        raise Stop(
            ExitCode.INVALID,
            f"{inp.release} already ran with image {image}; a version's image never changes "
            f"(submitted {inp.image}). Use a new version.",
        )
    return SubmitResult(
        release=inp.release,
        workflow_id=handle.id,
        run_id=desc.run_id,
        created=False,
        message="this release already ran; submit with --rerun to run it again",
    )


async def _follow(
    client: Client, handle: WorkflowHandle[Any, Any], limit: float | None, *, live: bool
) -> ReleaseStatus | None:
    """Follow the release until it ends: a live table on a terminal, else a line per change.

    Returns None when the workflow ended without a status (terminated, failed)."""
    from temporalio.client import WorkflowExecutionStatus  # noqa: PLC0415 - see _client
    from temporalio.service import RPCError  # noqa: PLC0415

    from activities import outcomes  # noqa: PLC0415
    from ringmaster.cli._client import Stop  # noqa: PLC0415
    from workflows.release import ReleaseWorkflow  # noqa: PLC0415

    deadline = None if limit is None else time.monotonic() + limit
    last = ""
    console = Console(stderr=True)
    with (
        Live(console=console, auto_refresh=False, transient=False)
        if live
        else contextlib.nullcontext() as board
    ):
        while True:
            desc = await handle.describe()
            if desc.status != WorkflowExecutionStatus.RUNNING:
                try:
                    return await outcomes.ended(handle, ReleaseStatus)
                except Exception as err:
                    name = desc.status.name if desc.status else "?"
                    typer.echo(f"release workflow ended {name}: {err}", err=True)
                    return None
            try:
                status = await view.live_clusters(client, await handle.query(ReleaseWorkflow.status))
            except RPCError:
                status = None
            if status is not None:
                line = view.progress_line(status)
                if isinstance(board, Live):
                    board.update(view.status_table(status), refresh=True)
                elif line != last:
                    typer.echo(line, err=True)
                last = line
            if deadline is not None and time.monotonic() >= deadline:
                raise Stop(ExitCode.TIMEOUT, f"--timeout passed; the release is still running ({last})")
            await asyncio.sleep(1.0)


def _phase_code(phase: str) -> ExitCode:
    if phase == "succeeded":
        return ExitCode.OK
    if phase == "denied":
        return ExitCode.INVALID
    return ExitCode.RELEASE_FAILED
