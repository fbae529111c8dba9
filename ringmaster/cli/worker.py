"""``ringmaster worker``: run the release workflows and every activity against the configured fleet.

``ringmaster worker --check`` loads what the worker would load at start (settings, fleet,
kubeconfig contexts, identity and authorization policies, archive URL) and exits 0, or 2 naming
what is wrong, without connecting to Temporal: a container image's or a Secret's smoke test.

The only command that imports :mod:`ringmaster.worker`, and with it the Kubernetes and Prometheus
clients and scipy; it imports them when it runs, so no other command pays for them.
"""

from __future__ import annotations

import asyncio
from typing import NoReturn

import typer

from ringmaster.exitcodes import ExitCode


def worker(
    check: bool = typer.Option(
        False, "--check", help="Check the settings, fleet, kubeconfig and policies, then exit (0 or 2)."
    ),
) -> NoReturn:
    """Run a worker: the release workflows and every activity, against the fleet in the settings."""
    from activities.archive import ArchiveError, open_archive  # noqa: PLC0415 - this command's alone
    from activities.identity import IdentityMisconfigured  # noqa: PLC0415
    from policies import loading  # noqa: PLC0415 - every import here is this command's alone
    from ringmaster import health, logs, telemetry, versioning  # noqa: PLC0415
    from ringmaster import worker as release_worker  # noqa: PLC0415 - heavy: the clients and scipy
    from ringmaster.cli import _client  # noqa: PLC0415
    from ringmaster.searchattributes import SearchAttributesMissing  # noqa: PLC0415

    try:
        settings = _client.settings_or_stop()
    except _client.Stop as stop:
        typer.echo(f"error: {stop.message}", err=True)
        _client.finish(stop.code)
    try:
        # The process's one runtime: its exporter serves /metrics. ``--check`` binds no port.
        runtime = None if check else telemetry.runtime(settings)
    except telemetry.TelemetryUnavailable as err:
        typer.echo(f"error: {err}", err=True)
        _client.finish(ExitCode.INVALID)
    try:
        versioning.version(settings)
        fleet = loading.load_fleet(settings.fleet)
        identity = release_worker.identity_activities(settings)
        backend, metrics = release_worker.backends(settings, fleet)
        if settings.archive_url:
            open_archive(settings.archive_url)
    except (versioning.VersioningMisconfigured, loading.ConfigError, IdentityMisconfigured) as err:
        typer.echo(f"error: {err}", err=True)
        _client.finish(ExitCode.INVALID)
    except ArchiveError as err:
        typer.echo(f"error: RINGMASTER_ARCHIVE_URL: {err}", err=True)
        _client.finish(ExitCode.INVALID)
    except ValueError as err:
        typer.echo(f"error: kubeconfig: {err}", err=True)
        _client.finish(ExitCode.INVALID)

    if check:
        typer.echo(
            f"ok: settings, fleet {settings.fleet} ({len(fleet.clusters)} clusters, each with its "
            f"kubeconfig context), identity ({identity.policy.mode}) and archive can be used"
        )
        _client.finish(ExitCode.OK)

    logs.configure()

    async def main() -> None:
        client = await _client.connect(settings, runtime)
        await release_worker.run(client, settings, fleet, backend, metrics, identity=identity)

    try:
        asyncio.run(main())
    except _client.Stop as stop:
        typer.echo(f"error: {stop.message}", err=True)
        _client.finish(stop.code)
    except (health.HealthUnavailable, SearchAttributesMissing) as err:
        typer.echo(f"error: {err}", err=True)
        _client.finish(ExitCode.INVALID)
    _client.finish(ExitCode.OK)


COMMANDS = (worker,)
"""The commands of this module, as the CLI registers them."""
