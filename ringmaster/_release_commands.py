"""What the release commands do: ``submit``, ``status``, the operator controls and ``worker``.

Every command prints a short human form, or with ``--output json`` a JSON document scripts rely on,
and exits with a documented code (:mod:`ringmaster.exitcodes`). Commands that use a Temporal client
leave through :func:`_finish`, which flushes and calls ``os._exit``: short-lived processes using the
Python SDK can crash at interpreter exit (sdk-python#300), and a CI step must never see that.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.live import Live
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
from policies.durations import parse_duration
from ringmaster import _release_view as view
from ringmaster import logs, temporal, worker
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
    """Follow the release until it ends: a live table on a terminal, else a line per change.

    Returns None when the workflow ended without a status (terminated, failed)."""
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
                    return ReleaseStatus.model_validate(await handle.result())
                except Exception as err:
                    name = desc.status.name if desc.status else "?"
                    typer.echo(f"release workflow ended {name}: {err}", err=True)
                    return None
            try:
                status = await handle.query(ReleaseWorkflow.status)
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
                raise _Exit(ExitCode.TIMEOUT, f"--timeout passed; the release is still running ({last})")
            await asyncio.sleep(1.0)


def _phase_code(phase: str) -> ExitCode:
    if phase == "succeeded":
        return ExitCode.OK
    if phase == "denied":
        return ExitCode.INVALID
    return ExitCode.RELEASE_FAILED


def submit(
    plan: Path,
    *,
    version: str,
    image: str,
    wait: bool,
    timeout: str | None,
    supersede: bool,
    rerun: bool,
    fleet: Path | None,
    by: str | None,
    output: str,
) -> NoReturn:
    """Validate a plan and start its release; with ``wait``, follow it to the end."""

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
        code = ExitCode.INVALID if final.invalid else _phase_code(final.phase)
        return code, payload, f"{final.phase}: {final.reason}"

    _run(output, body)


def status(release: str, output: str) -> NoReturn:
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


def control(  # noqa: PLR0917 - mirrors the command's options
    release: str,
    output: str,
    name: str,
    by: str | None,
    reason: str | None,
    ring: str | None,
    cluster: str | None,
) -> NoReturn:
    """Send ``hold``, ``resume``, ``abort`` or ``approve`` as a validated update."""
    who, identity = operator(by), temporal.client_identity()
    if name == "hold":
        call: Callable[[WorkflowHandle[Any, Any]], Awaitable[ControlResult]] = lambda h: h.execute_update(  # noqa: E731
            ReleaseWorkflow.hold, HoldRequest(reason=reason or "", by=who, identity=identity)
        )
    elif name == "resume":
        call = lambda h: h.execute_update(ReleaseWorkflow.resume, ResumeRequest(by=who, identity=identity))  # noqa: E731
    elif name == "abort":
        call = lambda h: h.execute_update(  # noqa: E731
            ReleaseWorkflow.abort, AbortRequest(reason=reason or "", by=who, identity=identity)
        )
    else:
        call = lambda h: h.execute_update(  # noqa: E731
            ReleaseWorkflow.approve,
            ApproveRequest(ring=ring or "", cluster=cluster, by=who, identity=identity),
        )

    async def body(settings: Settings) -> tuple[ExitCode, dict[str, Any], str]:
        client = await _connect(settings)
        handle = client.get_workflow_handle(workflow_id_of(release))
        result = await _call(name, call(handle))
        payload = {"release": release, "control": name, **result.model_dump(mode="json")}
        return ExitCode.OK, payload, f"{name}: {result.message} (phase {result.phase})"

    _run(output, body)


def run_worker() -> NoReturn:
    """Run a worker: the release workflows and every activity, against the fleet in the settings."""
    settings = Settings()
    try:
        fleet = loading.load_fleet(settings.fleet)
        backend, metrics = worker.backends(settings, fleet)
    except loading.ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        _finish(ExitCode.INVALID)
    except ValueError as err:
        typer.echo(f"error: kubeconfig: {err}", err=True)
        _finish(ExitCode.INVALID)

    logs.configure()

    async def main() -> None:
        client = await _connect(settings)
        await worker.run(client, settings, fleet, backend, metrics)

    try:
        asyncio.run(main())
    except _Exit as stop:
        typer.echo(f"error: {stop.message}", err=True)
        _finish(stop.code)
    _finish(ExitCode.OK)


def _parse_timeout(text: str | None) -> float | None:
    if text is None:
        return None
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
