"""``python -m sandbox up|down|status``: the local fleet of emulated clusters.

Exit codes follow :class:`ringmaster.exitcodes.ExitCode`: 2 for an invalid fleet or settings file
(or a sandbox already running with another fleet), 3 when the emulator could not be started, or
for ``status`` when nothing runs. Errors are one readable message, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ringmaster.exitcodes import ExitCode
from sandbox import stack

sandbox_app = typer.Typer(
    name="python -m sandbox",
    help="The local stack: emulated Kubernetes clusters, traffic, Prometheus, for the demo and the tests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DirOption = Annotated[
    Path, typer.Option("--dir", help="Where the sandbox keeps its state, logs and kubeconfig.")
]


@sandbox_app.command()
def up(
    directory: DirOption = stack.DEFAULT_DIR,
    fleet: Annotated[Path, typer.Option("--fleet", help="The fleet to emulate.")] = stack.DEFAULT_FLEET,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Sandbox settings (default: DIR/sandbox.yaml when present)."),
    ] = None,
) -> None:
    """Start the emulated fleet, its traffic and Prometheus; write DIR/kubeconfig and DIR/fleet.yaml."""
    try:
        started = stack.up(directory, fleet, config)
    except stack.SandboxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    verb = "already running" if started.already_running else "started"
    typer.echo(f"sandbox {verb}: {len(started.clusters)} clusters served at {started.url}")
    typer.echo(f"  kubeconfig: {started.kubeconfig}  (contexts: {', '.join(started.clusters)})")
    typer.echo(f"  fleet:      {started.fleet}")
    if started.prometheus:
        servers = ", ".join(f"{j} {url}" for j, url in started.prometheus.items())
        typer.echo(f"  prometheus: {servers}")
        typer.echo(f"  traffic:    {started.traffic}/clusters/<cluster>/metrics")
    typer.echo(f"  export KUBECONFIG={started.kubeconfig.resolve()}")


@sandbox_app.command()
def down(directory: DirOption = stack.DEFAULT_DIR) -> None:
    """Stop everything the sandbox started in DIR, whatever state it is in (idempotent)."""
    stopped = stack.down(directory)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@sandbox_app.command()
def status(directory: DirOption = stack.DEFAULT_DIR) -> None:
    """Show the sandbox's processes; exit 3 when none is running."""
    found = stack.status(directory)
    for name, facts in found.items():
        state = "running" if facts["running"] else "stopped"
        where = f" at {facts['url']}" if "url" in facts else ""
        typer.echo(f"{name}: {state} (pid {facts['pid']}){where}, log {facts['log']}")
    if not any(facts["running"] for facts in found.values()):
        if not found:
            typer.echo(f"no sandbox in {directory}")
        raise typer.Exit(ExitCode.UNREACHABLE)


def main() -> None:
    """``python -m sandbox``."""
    sandbox_app()
