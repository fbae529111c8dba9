"""What every command using a Temporal client shares: connecting, mapping errors to exit codes, printing.

A command body is a coroutine returning ``(exit code, JSON payload, text)``; :func:`run` prints the
payload or the text as ``--output`` asks and leaves through :func:`finish`, which flushes and calls
``os._exit``: short-lived processes using the Python SDK can crash at interpreter exit
(sdk-python#300), and a CI step must never see that.

Only the release commands import this module (when they run), so ``validate`` and ``plan`` never pay
for importing Temporal, and nothing here imports the worker or what it drives (the Kubernetes and
Prometheus clients, scipy): ``tests/cli/test_client_imports.py`` holds every client command to that.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from ringmaster import temporal
from ringmaster.cli.options import Output
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings, settings_problems
from workflows.release import release_id

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

T = TypeVar("T")

Outcome = tuple[ExitCode, dict[str, Any] | list[dict[str, Any]], str]
"""What a command body returns: its exit code, its JSON document (an object, or ``list``'s array)
and its text for people."""


class Stop(Exception):
    """Ends a command early with an exit code, a message, and optionally a JSON document."""

    def __init__(self, code: ExitCode, message: str = "", payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.payload = payload


def finish(code: int) -> NoReturn:
    """Flush and leave without interpreter shutdown (sdk-python#300)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def settings_or_stop() -> Settings:
    """The settings from the environment; invalid ones stop the command naming the variable (exit 2)."""
    try:
        return Settings()
    except ValidationError as err:
        raise Stop(ExitCode.INVALID, settings_problems(err)) from None


def run(output: Output, body: Callable[[Settings], Coroutine[Any, Any, Outcome]]) -> NoReturn:
    """Run a command body; print its result or error in the chosen form; exit with its code."""
    try:
        code, payload, text = asyncio.run(body(settings_or_stop()))
    except Stop as stop:
        code, payload, text = stop.code, (stop.payload or {"error": stop.message}), stop.message
        if output is Output.JSON:
            typer.echo(json.dumps(payload, indent=2, default=str))
        else:
            typer.echo(f"error: {text}" if code != ExitCode.TIMEOUT else text, err=code != ExitCode.TIMEOUT)
        finish(code)
    if output is Output.JSON:
        typer.echo(json.dumps(payload, indent=2, default=str))
    elif text:
        typer.echo(text)
    finish(code)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client (on ``runtime``: the worker's, with its metrics exporter), or exit 3 naming why
    Temporal cannot be reached."""
    try:
        return await temporal.connect(settings, runtime)
    except (RuntimeError, RPCError, OSError, ValueError) as err:
        raise Stop(ExitCode.UNREACHABLE, f"cannot reach Temporal: {err}") from None


async def call(what: str, fn: Awaitable[T]) -> T:
    """Map Temporal errors of one call to exit codes."""
    try:
        return await fn
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        raise Stop(ExitCode.INVALID, f"{what} rejected: {message}") from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise Stop(ExitCode.INVALID, f"{what}: not found ({err.message})") from None
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise Stop(ExitCode.UNREACHABLE, f"{what}: Temporal unreachable ({err.message})") from None
        raise Stop(ExitCode.INVALID, f"{what} rejected: {err.message}") from None


def operator(by: str | None) -> str:
    """The acting person: ``--by``, else the CI's user, else the system user."""
    for candidate in (by, os.environ.get("GITHUB_ACTOR"), os.environ.get("GITLAB_USER_LOGIN")):
        if candidate:
            return candidate
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def identity() -> str:
    """``user@host pid`` of this process, recorded beside the operator's name."""
    return temporal.client_identity()


def workflow_id_of(release: str) -> str:
    """``service:version`` or a workflow id, as the release workflow's id."""
    if release.startswith("release:"):
        return release
    service, sep, version = release.partition(":")
    if not sep or not service or not version:
        raise Stop(
            ExitCode.INVALID, f"release {release!r}: write service:version (e.g. api:v2) or a workflow id"
        )
    return release_id(service, version)


def url(settings: Settings, client: Client, workflow_id: str, run_id: str = "") -> str:
    """The release's page in the Temporal UI."""
    base = settings.ui_url.rstrip("/")
    tail = f"/{run_id}" if run_id else ""
    return f"{base}/namespaces/{client.namespace}/workflows/{workflow_id}{tail}"
