"""Release commands: ``submit``, ``status``, ``hold``, ``resume``, ``abort``, ``approve`` and ``worker``.

Every command prints a short human form, or with ``--output json`` a JSON document scripts rely on,
and exits with a documented code (:mod:`ringmaster.exitcodes`). Commands that use a Temporal client
leave through :func:`_finish`, which flushes and calls ``os._exit``: short-lived processes using the
Python SDK can crash at interpreter exit (sdk-python#300), and a CI step must never see that.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from policies import loading, residency, schedule
from ringmaster import _release_view as view
from ringmaster import temporal, worker
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings
from workflows.lane import ReleaseLaneWorkflow, lane_id
from workflows.models import (
    TERMINAL_PHASES,
    AbortRequest,
    ApproveRequest,
    ControlResult,
    HoldRequest,
    LaneState,
    ReleaseInput,
    ReleaseStatus,
    ResumeRequest,
    SubmitRequest,
    SubmitResult,
)
from workflows.release import ReleaseWorkflow, release_id

T = TypeVar("T")

OutputOpt = Annotated[str, typer.Option("--output", "-o", help="text or json")]
ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Who acts; default $GITHUB_ACTOR, $GITLAB_USER_LOGIN, else the system user."),
]


class _Exit(Exception):
    def __init__(self, code: ExitCode, message: str = "", payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.payload = payload


def _finish(code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def operator(by: str | None) -> str:
    """The acting person: ``--by``, else the CI's user, else the system user."""
    for candidate in (by, os.environ.get("GITHUB_ACTOR"), os.environ.get("GITLAB_USER_LOGIN")):
        if candidate:
            return candidate
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def workflow_id_of(release: str) -> str:
    """``service:version`` or a workflow id, as the release workflow's id."""
    if release.startswith("release:"):
        return release
    service, sep, version = release.partition(":")
    if not sep or not service or not version:
        raise _Exit(
            ExitCode.INVALID, f"release {release!r}: write service:version (e.g. api:v2) or a workflow id"
        )
    return release_id(service, version)


def _run(
    output: str, body: Callable[[Settings], Coroutine[Any, Any, tuple[ExitCode, dict[str, Any], str]]]
) -> NoReturn:
    """Run a command body; print its result or error in the chosen form; exit with its code."""
    if output not in ("text", "json"):
        typer.echo(f"--output: {output!r} is not allowed; use text or json", err=True)
        _finish(ExitCode.INVALID)
    try:
        code, payload, text = asyncio.run(body(Settings()))
    except _Exit as stop:
        code, payload, text = stop.code, (stop.payload or {"error": stop.message}), stop.message
        if output == "json":
            typer.echo(json.dumps(payload, indent=2, default=str))
        else:
            typer.echo(f"error: {text}" if code != ExitCode.TIMEOUT else text, err=code != ExitCode.TIMEOUT)
        _finish(code)
    if output == "json":
        typer.echo(json.dumps(payload, indent=2, default=str))
    elif text:
        typer.echo(text)
    _finish(code)


async def _connect(settings: Settings) -> Client:
    try:
        return await temporal.connect(settings)
    except (RuntimeError, RPCError, OSError, ValueError) as err:
        raise _Exit(ExitCode.UNREACHABLE, f"cannot reach Temporal: {err}") from None


async def _call(what: str, fn: Awaitable[T]) -> T:
    """Map Temporal errors of one call to exit codes."""
    try:
        return await fn
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        raise _Exit(ExitCode.INVALID, f"{what} rejected: {message}") from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise _Exit(ExitCode.INVALID, f"{what}: not found ({err.message})") from None
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise _Exit(ExitCode.UNREACHABLE, f"{what}: Temporal unreachable ({err.message})") from None
        raise _Exit(ExitCode.INVALID, f"{what} rejected: {err.message}") from None


def _url(settings: Settings, client: Client, workflow_id: str, run_id: str = "") -> str:
    base = settings.ui_url.rstrip("/")
    tail = f"/{run_id}" if run_id else ""
    return f"{base}/namespaces/{client.namespace}/workflows/{workflow_id}{tail}"


# --- submit ---------------------------------------------------------------------------------------


def _validate_locally(plan_path: Path, fleet_path: Path | None, version: str) -> str:
    """The plan's text after local validation (full when the fleet is given); exit 2 if invalid."""
    try:
        text = plan_path.read_text()
    except OSError as err:
        raise _Exit(ExitCode.INVALID, f"{plan_path}: cannot read: {err.strerror}") from None
    try:
        plan = loading.parse_plan(text, str(plan_path))
        if fleet_path is not None:
            fleet = loading.load_fleet(fleet_path)
            loading.check_plan_against_fleet(plan, fleet, str(plan_path))
            sched = schedule.build(plan, fleet, version)
            denied = residency.denials(residency.static_decisions(plan, fleet, sched))
            if denied:
                lines = [f"{d.cluster}: {d.rule}: {d.reason}" for d in denied]
                raise _Exit(ExitCode.INVALID, "denied by residency rules:\n  " + "\n  ".join(lines))
    except loading.ConfigError as err:
        raise _Exit(ExitCode.INVALID, str(err)) from None
    return text


async def _existing(client: Client, inp: ReleaseInput, rerun: bool) -> SubmitResult | None:
    """An ended release of the same version: returned as is (same image) or rejected (other image)."""
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
        raise _Exit(
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
    """Print a line per change until the release ends; None when it failed to end normally."""
    deadline = None if limit is None else time.monotonic() + limit
    last = ""
    while True:
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            try:
                result = await handle.result()
                return ReleaseStatus.model_validate(result)
            except Exception as err:
                typer.echo(
                    f"release workflow ended {desc.status.name if desc.status else '?'}: {err}", err=True
                )
                return None
        try:
            status = await handle.query(ReleaseWorkflow.status)
        except RPCError:
            status = None
        if status is not None:
            line = view.progress_line(status)
            if line != last:
                typer.echo(line if not live else view.progress_line(status, color=True), err=True)
                last = line
        if deadline is not None and time.monotonic() >= deadline:
            raise _Exit(ExitCode.TIMEOUT, f"--timeout passed; the release is still running ({last})")
        await asyncio.sleep(1.0)


def _phase_code(phase: str) -> ExitCode:
    if phase == "succeeded":
        return ExitCode.OK
    if phase == "denied":
        return ExitCode.INVALID
    return ExitCode.RELEASE_FAILED


def register(app: typer.Typer) -> None:
    """Add the release commands to the ringmaster CLI."""

    @app.command()
    def submit(
        plan: Annotated[Path, typer.Argument(help="The release plan (YAML).")],
        version: Annotated[str, typer.Option("--version", help="The version to release, e.g. v2.")],
        image: Annotated[str, typer.Option("--image", help="The container image of that version.")],
        wait: Annotated[bool, typer.Option("--wait", help="Follow the release until it ends.")] = False,
        timeout: Annotated[
            str | None,
            typer.Option("--timeout", help="With --wait: give up waiting after this long (e.g. 30m)."),
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
        output: OutputOpt = "text",
    ) -> None:
        """Validate a plan and start its release; with --wait, follow it to the end."""

        async def body(settings: Settings) -> tuple[ExitCode, dict[str, Any], str]:
            wait_seconds = _parse_timeout(timeout)
            text = _validate_locally(plan, fleet, version)
            service = loading.parse_plan(text, str(plan)).service
            client = await _connect(settings)
            inp = ReleaseInput(
                service=service,
                version=version,
                image=image,
                plan_text=text,
                plan_source=plan.name,
                submitted_by=operator(by),
                submitted_identity=temporal.client_identity(),
            )
            result = await _existing(client, inp, rerun)
            if result is None:
                result = await _call(
                    "submission",
                    client.execute_update_with_start_workflow(
                        ReleaseLaneWorkflow.submit,
                        SubmitRequest(release=inp, supersede=supersede, rerun=rerun),
                        start_workflow_operation=WithStartWorkflowOperation(
                            ReleaseLaneWorkflow.run,
                            LaneState(service=service),
                            id=lane_id(service),
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
                "url": _url(settings, client, result.workflow_id, result.run_id),
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
            typer.echo("\n".join(lines), err=output == "json")
            handle = client.get_workflow_handle(result.workflow_id)
            final = await _follow(client, handle, wait_seconds, live=sys.stderr.isatty())
            if final is None:
                payload["phase"] = "failed"
                return ExitCode.RELEASE_FAILED, payload, "release failed"
            payload["phase"] = final.phase
            payload["reason"] = final.reason
            return _phase_code(final.phase), payload, f"{final.phase}: {final.reason}"

        _run(output, body)

    @app.command()
    def status(
        release: Annotated[str, typer.Argument(help="service:version, or the release's workflow id.")],
        output: OutputOpt = "text",
    ) -> None:
        """Phase, ring, every cluster, live gate measurements and the operator log of a release."""

        async def body(settings: Settings) -> tuple[ExitCode, dict[str, Any], str]:
            client = await _connect(settings)
            handle = client.get_workflow_handle(workflow_id_of(release))
            st = await _call(f"status of {release}", handle.query(ReleaseWorkflow.status))
            live = await _live_gates(client, st)
            payload = view.status_json(st, live)
            payload["url"] = _url(settings, client, handle.id)
            return ExitCode.OK, payload, view.status_text(st, live)

        _run(output, body)

    def _control(
        release: str,
        output: str,
        name: str,
        call: Callable[[WorkflowHandle[Any, Any]], Awaitable[ControlResult]],
    ) -> None:
        async def body(settings: Settings) -> tuple[ExitCode, dict[str, Any], str]:
            client = await _connect(settings)
            handle = client.get_workflow_handle(workflow_id_of(release))
            result = await _call(name, call(handle))
            payload = {"release": release, "control": name, **result.model_dump(mode="json")}
            return ExitCode.OK, payload, f"{name}: {result.message} (phase {result.phase})"

        _run(output, body)

    @app.command()
    def hold(
        release: Annotated[str, typer.Argument(help="service:version or workflow id.")],
        reason: Annotated[str, typer.Option("--reason", help="Why; shown in status and the UI.")],
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Start no new step, wave, ring or promotion until resumed; gates keep judging."""
        req = HoldRequest(reason=reason, by=operator(by), identity=temporal.client_identity())
        _control(release, output, "hold", lambda h: h.execute_update(ReleaseWorkflow.hold, req))

    @app.command()
    def resume(
        release: Annotated[str, typer.Argument(help="service:version or workflow id.")],
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Lift a hold."""
        req = ResumeRequest(by=operator(by), identity=temporal.client_identity())
        _control(release, output, "resume", lambda h: h.execute_update(ReleaseWorkflow.resume, req))

    @app.command()
    def abort(
        release: Annotated[str, typer.Argument(help="service:version or workflow id.")],
        reason: Annotated[str, typer.Option("--reason", help="Why; recorded with the rollback.")],
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Roll back every touched cluster, newest first, and end the release aborted."""
        req = AbortRequest(reason=reason, by=operator(by), identity=temporal.client_identity())
        _control(release, output, "abort", lambda h: h.execute_update(ReleaseWorkflow.abort, req))

    @app.command()
    def approve(
        release: Annotated[str, typer.Argument(help="service:version or workflow id.")],
        ring: Annotated[str, typer.Option("--ring", help="The ring waiting for approval.")],
        cluster: Annotated[
            str | None,
            typer.Option("--cluster", help="A cluster waiting at pause: {} or a manual promotion."),
        ] = None,
        by: ByOpt = None,
        output: OutputOpt = "text",
    ) -> None:
        """Approve a ring, or one cluster's approval step."""
        req = ApproveRequest(ring=ring, cluster=cluster, by=operator(by), identity=temporal.client_identity())
        _control(release, output, "approve", lambda h: h.execute_update(ReleaseWorkflow.approve, req))

    @app.command(name="worker")
    def worker_command() -> None:
        """Run a worker: the release workflows and every activity, against the fleet in the settings."""
        settings = Settings()
        try:
            fleet = loading.load_fleet(settings.fleet)
        except loading.ConfigError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(ExitCode.INVALID) from None

        async def main() -> None:
            client = await _connect(settings)
            await worker.run(client, settings, fleet)

        try:
            asyncio.run(main())
        except _Exit as stop:
            typer.echo(f"error: {stop.message}", err=True)
            _finish(stop.code)
        _finish(ExitCode.OK)


def _parse_timeout(text: str | None) -> float | None:
    if text is None:
        return None
    from policies.durations import parse_duration  # noqa: PLC0415 - only submit --timeout needs it

    try:
        return parse_duration(text).total_seconds()
    except ValueError as err:
        raise _Exit(ExitCode.INVALID, f"--timeout: {err}") from None


async def _live_gates(client: Client, st: ReleaseStatus) -> list[dict[str, Any]]:
    """Heartbeat details of the analysis activities running now, in the parent and each cluster."""
    ids = [st.workflow_id] + [
        c.workflow_id for c in st.clusters if c.workflow_id and c.state not in TERMINAL_PHASES
    ]
    gates: list[dict[str, Any]] = []
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
            details = converter.from_payloads(list(pending.heartbeat_details.payloads))
            if details and isinstance(details[0], dict):
                gates.append(details[0])
    return gates
