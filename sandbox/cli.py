"""``python -m sandbox up|down|status|token|fleet``: the local stack a user explores (``make sandbox``).

``up`` starts emulated clusters, traffic, Prometheus, Unleash (on PostgreSQL), a Temporal dev server
and a ringmaster worker, and prints ``source DIR/env``; ``--no-temporal`` stops short of Temporal
(for tests and scripts that bring their own). Exit codes follow
:class:`ringmaster.exitcodes.ExitCode`: 2 for an invalid fleet or settings file (or a sandbox already
running with another fleet), 3 when a process could not be started (or is not installed), or for
``status`` when nothing runs. ``fleet --clusters N`` prints (or ``--out`` writes) a generated fleet
of N clusters (:mod:`sandbox.fleets`) for ``up --fleet``, to try the sandbox at
scale. Errors are one readable message, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ringmaster.exitcodes import ExitCode
from sandbox import fleets, stack, unleashclient
from sandbox import identity as sandbox_identity
from sandbox import prometheus as sandbox_prometheus
from sandbox import unleash as sandbox_unleash

sandbox_app = typer.Typer(
    name="python -m sandbox",
    help="The local stack: emulated Kubernetes clusters, traffic, Prometheus, Temporal and a worker.",
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
    temporal: Annotated[
        bool,
        typer.Option("--temporal/--no-temporal", help="Also run a Temporal dev server and a worker."),
    ] = True,
) -> None:
    """Start (or reuse) the local stack; write DIR/kubeconfig, DIR/fleet.yaml and DIR/env."""
    try:
        started = stack.up(directory, fleet, config, temporal=temporal)
    except stack.SandboxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if started.already_running:
        typer.echo(f"sandbox already running in {directory}: reused as it is")
    else:
        typer.echo(f"sandbox started in {directory}: {', '.join(started.started)}")
    for reason in started.reasons:
        typer.echo(f"  restarted because {reason}")
    typer.echo(f"  clusters:   {len(started.clusters)} served at {started.url}")
    typer.echo(f"  kubeconfig: {started.kubeconfig.resolve()}  (contexts: {', '.join(started.clusters)})")
    typer.echo(f"  fleet:      {started.fleet.resolve()}")
    if started.prometheus:
        servers = ", ".join(f"{j} {url}" for j, url in started.prometheus.items())
        typer.echo(f"  prometheus: {servers}")
        typer.echo(f"  traffic:    {started.traffic}/clusters/<cluster>/metrics")
    if started.unleash:
        servers = ", ".join(f"{j} {server.url}" for j, server in started.unleash.items())
        typer.echo(f"  unleash:    {servers}  (tokens in {(directory / sandbox_unleash.FILE).resolve()})")
    if started.env is None:
        typer.echo(f"  export KUBECONFIG={started.kubeconfig.resolve()}")
        return
    typer.echo(f"  temporal:   {started.temporal}   UI: {started.ui}")
    typer.echo("  worker:     ringmaster worker on task queue ringmaster")
    if started.identity is not None:
        typer.echo(f"  identity:   {started.identity.policy.resolve()}  (issuer {started.identity.issuer})")
        typer.echo(f"              requests signed with {started.identity.key('alice').resolve()}")
    typer.echo(f"Use it from your shell:  source {started.env}")
    typer.echo(
        f"  then e.g.  kubectl --kubeconfig {started.kubeconfig.resolve()} --context {started.clusters[0]}"
        " get deploy -n api"
    )


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
        where = facts.get("url") or facts.get("address") or facts.get("temporal")
        at = f" at {where}" if where else ""
        typer.echo(f"{name}: {state} (pid {facts['pid']}){at}, log {facts['log']}")
        if "ui" in facts:
            typer.echo(f"  UI: {facts['ui']}")
        if "code" in facts:
            typer.echo(f"  code: {str(facts['code'])[:12]}")
        if facts["running"] and sandbox_prometheus.is_server(name) and "url" in facts:
            stats = sandbox_prometheus.scrape_stats(str(facts["url"]))
            typer.echo(f"  scrapes: {stats.summary() if stats else 'no answer'}")
        if facts["running"] and sandbox_unleash.is_server(name) and "url" in facts:
            answers = unleashclient.healthy(str(facts["url"]))
            typer.echo(f"  health: {'GOOD' if answers else 'no answer'}")
    if not any(facts["running"] for facts in found.values()):
        if not found:
            typer.echo(f"no sandbox in {directory}")
        raise typer.Exit(ExitCode.UNREACHABLE)
    env = directory / stack.ENV_FILE
    if env.exists():
        typer.echo(f"source {env.resolve()}")


@sandbox_app.command()
def token(
    person: Annotated[str, typer.Option("--as", help="Who the token names (sub and actor): alice, bob.")],
    audience: Annotated[
        str, typer.Option("--audience", help="The statement's audience, ringmaster:<digest>.")
    ],
    directory: DirOption = stack.DEFAULT_DIR,
) -> None:
    """Print an ID token of the sandbox's OIDC issuer, as a CI job would be handed one (5 minutes)."""
    files = directory / sandbox_identity.FOLDER
    try:
        issuer = sandbox_identity.issuer_of(directory)
        signed = sandbox_identity.token(files / "issuer-key.pem", issuer, person, audience)
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        typer.echo(f"error: {files}: no sandbox identity here ({exc}); run `python -m sandbox up`", err=True)
        raise typer.Exit(ExitCode.INVALID) from None
    typer.echo(signed)


@sandbox_app.command()
def fleet(
    clusters: Annotated[
        int, typer.Option("--clusters", min=1, max=10_000, help="How many clusters (c0000, c0001 ...).")
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Write it here instead of printing it.")] = None,
) -> None:
    """Print a fleet of N clusters over four regions (one internal, a tenth beta, the rest public)."""
    text = fleets.generated(clusters)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: {out}: cannot write the fleet: {exc.strerror or exc}", err=True)
        raise typer.Exit(ExitCode.INVALID) from None
    typer.echo(f"wrote a fleet of {clusters} clusters to {out}")


def main() -> None:
    """``python -m sandbox``."""
    sandbox_app()
