"""``ringmaster flags stale``: the feature flags fully on for the whole fleet for long, so teams remove them.

The flag servers are the fleet's (``--fleet``, default ``RINGMASTER_FLEET``): each region's
``flags:``, one server per URL and project, with the environments the regions name on it. Each is
read through its Admin API with the token the worker's settings hold for its host
(``RINGMASTER_UNLEASH_ADMIN_TOKENS``; never printed) by :mod:`activities.flag_audit`, and judged by
:mod:`policies.flag_audit`:

- fully on in an environment: enabled, and on for everyone there (an unconstrained ``default`` or
  100 % ``flexibleRollout``, no segments; or ringmaster's per-cluster strategies, ``cluster IN [c]``
  at 100 %, covering every fleet cluster the environment serves); a flag must be so in every
  environment the fleet names on its server;
- since: the latest change Unleash's event log holds to its strategies or toggle in any of them
  (strategy added, updated or removed; environment switched on or off). ``unknown`` when the log
  holds none for some environment; such flags are listed whatever ``--older-than`` says.

Exit codes (:mod:`ringmaster.exitcodes`): 0 listed, also when no flag is stale; 2 invalid input (an
``--older-than`` that is no duration, a fleet file with problems, settings or a token the server
refuses, a project it does not have); 3 a flag server could not be reached (the others are still
listed; each failure is named on stderr, or under ``errors`` in JSON).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from policies import durations, loading
from policies import flag_audit as judging
from policies.flag_audit import StaleFlag
from ringmaster.cli.options import Output, OutputOpt, command_group
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings, settings_problems

if TYPE_CHECKING:
    from activities._unleash import FlagError

COLUMNS = ("FLAG", "PROJECT", "SERVER", "ENVIRONMENTS", "FULLY ON SINCE", "AGE")
"""The table's columns, in order."""
DEFAULT_OLDER_THAN = "30d"

app = command_group("flags", "Feature flags on the fleet's Unleash servers.")


class _Stop(Exception):
    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@app.command()
def stale(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Only flags fully on and unchanged for at least this long: 90m, 12h, 30d, 1d12h.",
        ),
    ] = DEFAULT_OLDER_THAN,
    fleet: Annotated[
        Path | None,
        typer.Option("--fleet", "-f", metavar="FLEET", help="The fleet file; default $RINGMASTER_FLEET."),
    ] = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """List flags fully on in every environment of their server for longer than --older-than.

    Fully on in an environment: enabled, and on for everyone there.

    On for everyone: an unconstrained `default` or 100% `flexibleRollout` strategy (no segments),
    or ringmaster's per-cluster strategies (`cluster IN \\[c]` at 100%) covering every cluster the
    fleet has in that environment. A flag at 100% in some clusters only is not fully on.

    Since: the latest change to its strategies or toggle in any of those environments, from
    Unleash's event log ("unknown" when the log holds none: listed whatever --older-than says).

    Exit codes: 0 listed (also when none is stale); 2 invalid input, or a request a server
    refuses; 3 a flag server unreachable.
    """
    try:
        threshold = _older_than(older_than)
        settings = _settings()
        path = fleet or settings.fleet
        try:
            loaded = loading.load_fleet(path)
        except loading.ConfigError as err:
            raise _Stop(ExitCode.INVALID, str(err)) from None
    except _Stop as stop:
        _finish(stop.code, {"error": str(stop)}, f"error: {stop}", output)
    # Imported here, not at the top: every command loads this module, and the transport brings Temporal's
    # error types with it, which validate and policy check never import.
    from activities import _unleash, flag_audit  # noqa: PLC0415

    audited = judging.audited_servers(loaded)
    now = datetime.now(UTC)
    rows: list[StaleFlag] = []
    failures: list[tuple[str, FlagError]] = []
    admin = _unleash.UnleashAdmin(settings.unleash_admin_tokens, timeout=settings.unleash_timeout_seconds)
    try:
        for server in audited:
            try:
                rows += flag_audit.stale_flags(admin, server, now, threshold)
            except _unleash.FlagError as err:
                failures.append((server.server.host, err))
    finally:
        admin.close()
    document: dict[str, Any] = {
        "olderThan": durations.format_duration(threshold),
        "fleet": str(path),
        "servers": [_server_json(s) for s in audited],
        "flags": [r.model_dump(mode="json", by_alias=True) for r in rows],
        "errors": [{"server": host, "message": str(e), "kind": e.kind} for host, e in failures],
    }
    code = ExitCode.OK
    if failures:
        transient = any(e.kind == "transient" for _, e in failures)
        code = ExitCode.UNREACHABLE if transient else ExitCode.INVALID
    if output is Output.JSON:
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(_text(rows, threshold, len(audited) - len(failures), len(audited)))
        for _, failure in failures:
            typer.echo(f"error: {failure}", err=True)
    raise typer.Exit(code)


COMMANDS = (stale,)
"""The commands of this module (``ringmaster flags ...``)."""


def _older_than(text: str) -> timedelta:
    try:
        value = durations.parse_duration(text)
    except ValueError as err:
        raise _Stop(ExitCode.INVALID, f"--older-than: {err}") from None
    return value


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as err:
        raise _Stop(ExitCode.INVALID, settings_problems(err)) from None


def _server_json(audited: judging.AuditedServer) -> dict[str, Any]:
    return {
        "url": audited.server.url,
        "project": audited.server.project,
        "environments": [s.model_dump(mode="json", by_alias=True) for s in audited.environments],
    }


def _age(seconds: float | None) -> str:
    from ringmaster.cli import _query  # noqa: PLC0415 - only when there is an age to show

    return "unknown" if seconds is None else _query.age(timedelta(seconds=seconds))


def _text(rows: list[StaleFlag], threshold: timedelta, read: int, servers: int) -> str:
    """The rows as ``kubectl get`` prints them, or a sentence when there are none."""
    if not rows:
        return (
            f"no flag fully on everywhere for {durations.format_duration(threshold)} or more "
            f"({read} of {servers} flag server(s) read)"
        )
    cells = [list(COLUMNS)]
    for r in rows:
        since = "unknown" if r.since is None else r.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        cells.append([r.flag, r.project, r.server, ",".join(r.environments), since, _age(r.age_seconds)])
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _finish(code: ExitCode, document: dict[str, Any], text: str, output: Output) -> NoReturn:
    if output is Output.JSON:
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(text, err=code != ExitCode.OK)
    raise typer.Exit(code)
