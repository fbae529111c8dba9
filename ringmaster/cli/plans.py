"""``ringmaster validate`` and ``ringmaster plan``: check a release plan against a fleet before submitting.

Both read the two files and hand them to :func:`policies.judgement.judge` (every problem of both
files at once, each with its file and path; the static residency rules judged on the schedule).
``plan`` also shows the waves, each cluster's next window and the least time the release takes, and
for a plan moving a feature flag each ring's flag steps and the Unleash strategy each cluster gets
(server, project/environment and its ``cluster IN [...]`` constraint).
``validate`` warns on stderr when a ring requires four eyes but the identity settings here say the
worker takes the client's word for who approves (:mod:`ringmaster.cli._four_eyes`).
Exit codes follow ``ringmaster.exitcodes``: 0 valid, 2 invalid or statically denied. No input,
however broken, ends in a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from policies import flags, judgement, loading, residency, schedule, windows
from policies.durations import format_duration
from policies.strategy import FeatureFlag
from ringmaster.cli import _four_eyes
from ringmaster.cli.options import Output, OutputOpt
from ringmaster.exitcodes import ExitCode

P = ParamSpec("P")


PlanArg = Annotated[Path, typer.Argument(metavar="PLAN", help="The release plan (YAML).", show_default=False)]
FleetOpt = Annotated[
    Path, typer.Option("--fleet", "-f", metavar="FLEET", help="The fleet file (YAML).", show_default=False)
]


def _never_traceback(command: Callable[P, None]) -> Callable[P, None]:
    """Report an unexpected exception as one line and exit 2: bad input must never show a traceback.

    The loader turns every known kind of bad input into ``ConfigError``; reaching this is a bug,
    so the message asks for a report, but CI still gets a plain line and a documented exit code.
    """

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors (typer vendors click)
            raise
        except Exception as exc:
            typer.echo(f"error: internal error ({type(exc).__name__}: {exc}); please report it", err=True)
            raise typer.Exit(ExitCode.INVALID) from None

    return guarded


def validate(plan_file: PlanArg, fleet: FleetOpt, output: OutputOpt = Output.TEXT) -> None:
    """Check PLAN and FLEET: structure, references, and the residency rules judged before running."""
    errors: list[loading.ConfigError] = []
    denials: tuple[residency.Decision, ...] = ()
    summary = warning = ""
    try:
        judged = _judge(plan_file, fleet, "0.0.0")
    except loading.ConfigError as err:
        errors.append(err)
    else:
        denials = judged.denials
        summary = f"{len(judged.schedule.rings)} rings, {len(judged.schedule.all_clusters())} clusters"
        try:
            warning = _four_eyes.warning(judged.plan)
        except loading.ConfigError as err:  # the identity policy the settings name is invalid
            errors.append(err)
    if warning:
        typer.echo(warning, err=True)
    valid = not errors and not denials
    if output is Output.JSON:
        _echo_json({"valid": valid, "problems": _problems_json(errors), "denials": _denials_json(denials)})
    elif valid:
        typer.echo(f"{plan_file}: valid against {fleet} ({summary}; every static residency rule allows)")
    else:
        _report(errors, denials)
    raise typer.Exit(ExitCode.OK if valid else ExitCode.INVALID)


def plan(
    plan_file: PlanArg,
    fleet: FleetOpt,
    version: Annotated[
        str, typer.Option("--version", "-v", help="The version to release.", show_default=False)
    ],
    output: OutputOpt = Output.TEXT,
    at: Annotated[
        str | None,
        typer.Option(help="Instant (ISO 8601 with offset) to compute windows from; default now."),
    ] = None,
) -> None:
    """Show the rollout of VERSION: rings, waves, residency verdicts, next windows, minimum duration."""
    instant = _instant(at, output)
    try:
        judged = _judge(plan_file, fleet, version)
    except loading.ConfigError as err:
        if output is Output.JSON:
            _echo_json({"valid": False, "problems": _problems_json([err]), "denials": []})
        else:
            _report([err], ())
        raise typer.Exit(ExitCode.INVALID) from None
    document = _plan_json(judged, instant)
    if output is Output.JSON:
        _echo_json(document)
    else:
        _print_plan(document)
    if judged.denials and output is Output.TEXT:
        _report([], judged.denials)
    raise typer.Exit(ExitCode.INVALID if judged.denials else ExitCode.OK)


COMMANDS = (_never_traceback(validate), _never_traceback(plan))
"""The commands of this module, as the CLI registers them."""


# --- loading and failing ----------------------------------------------------------------------------


def _judge(plan_file: Path, fleet_file: Path, version: str) -> judgement.Judgement:
    """Both files read and judged; ConfigError with every problem of either, or across them."""
    return judgement.judge(loading.read(plan_file), loading.read(fleet_file), version)


def _fail(message: str, output: Output) -> NoReturn:
    if output is Output.JSON:
        _echo_json(
            {
                "valid": False,
                "problems": [{"source": "", "path": "", "line": None, "column": None, "message": message}],
                "denials": [],
            }
        )
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.INVALID)


def _instant(text: str | None, output: Output) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        _fail("--at is not an ISO 8601 instant such as 2026-03-30T09:00:00Z", output)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        _fail("--at has no UTC offset; add Z or +HH:MM", output)
    if not windows.in_range(parsed):
        _fail(f"--at is out of range: {windows.INSTANTS}", output)
    return parsed.astimezone(UTC)


def _problems_json(errors: list[loading.ConfigError]) -> list[dict[str, str | int | None]]:
    return [
        {"source": e.source_of(p), "path": p.path, "line": p.line, "column": p.column, "message": p.message}
        for e in errors
        for p in e.problems
    ]


def _denials_json(denials: tuple[residency.Decision, ...]) -> list[dict[str, str]]:
    return [{"cluster": d.cluster, "rule": d.rule, "reason": d.reason} for d in denials]


def _report(errors: list[loading.ConfigError], denials: tuple[residency.Decision, ...]) -> None:
    count = sum(len(e.found) + e.omitted for e in errors)
    if count:
        typer.echo(f"invalid: {count} problem(s)", err=True)
        for error in errors:
            typer.echo(str(error), err=True)
    if denials:
        typer.echo(f"denied by residency rules: {len(denials)} decision(s)", err=True)
        for decision in denials:
            typer.echo(f"{decision.cluster}: {decision.rule}: {decision.reason}", err=True)


def _echo_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2))


# --- the plan ---------------------------------------------------------------------------------------


def _plan_json(judged: judgement.Judgement, at: datetime) -> dict[str, Any]:
    """The schedule in the documented JSON shape: ``service``, ``version``, ``rings[].waves[].clusters[]``."""
    built, decisions = judged.schedule, judged.decisions
    states = windows.states(judged.plan, judged.fleet, {c.region: None for c in built.all_clusters()}, at)

    def cluster_json(cluster: schedule.ScheduledCluster, ring: schedule.ScheduledRing) -> dict[str, Any]:
        state = states[cluster.region]
        return {
            "name": cluster.name,
            "region": cluster.region,
            "jurisdiction": cluster.jurisdiction,
            "timezone": cluster.timezone,
            "regulated": cluster.regulated,
            "strategy": ring.strategy.kind,
            "flag": _flag_json(judged, cluster, ring),
            "residency": [
                {"rule": d.rule, "verdict": d.verdict, "reason": d.reason, "inputs": d.inputs}
                for d in decisions[cluster.name]
            ],
            "window": {
                "open": state.open,
                "nextOpen": _iso(state.next_open),
                "nextClose": _iso(state.next_close),
                "reason": state.reason,
            },
        }

    return {
        "service": built.service,
        "version": built.version,
        "at": _iso(at),
        "minimumDurationSeconds": int(built.minimum_duration.total_seconds()),
        "minimumDuration": format_duration(built.minimum_duration),
        "policyDigest": residency.policy_digest(),
        "denied": bool(judged.denials),
        "rings": [
            {
                "name": ring.name,
                "index": ring.index,
                "strategy": ring.strategy.kind,
                "strategyDetail": ring.strategy.describe(),
                "featureFlag": _feature_flag_json(ring.strategy.feature_flag),
                "approval": {"required": ring.approval.required, "fourEyes": ring.approval.four_eyes},
                "maxParallel": ring.max_parallel,
                "bakeTimeSeconds": int(ring.bake_time.total_seconds()),
                "minimumDurationSeconds": int(ring.minimum_duration.total_seconds()),
                "waves": [
                    {"index": wave.index, "clusters": [cluster_json(c, ring) for c in wave.clusters]}
                    for wave in ring.waves
                ],
            }
            for ring in built.rings
        ],
    }


def _feature_flag_json(flag: FeatureFlag | None) -> dict[str, Any] | None:
    """The ring's flag steps as written, and the percentages they set (ending at 100)."""
    if flag is None:
        return None
    return {
        "flag": flag.flag,
        "stickiness": flag.stickiness,
        "rollouts": flag.rollouts,
        "steps": [s.model_dump(mode="json", exclude_none=True) for s in flag.steps],
    }


def _flag_json(
    judged: judgement.Judgement, cluster: schedule.ScheduledCluster, ring: schedule.ScheduledRing
) -> dict[str, Any] | None:
    """Where and how a flag step in ``cluster`` writes: the region's Unleash and the strategy's constraint."""
    flag = ring.strategy.feature_flag
    server = judged.fleet.region(cluster.region).flags
    if flag is None or server is None:
        return None
    written = flags.rollout_strategy(server, flag.flag, cluster.name, flag.rollouts[0], flag.stickiness)
    constraint = written.constraints[0]
    return {
        "server": server.host,
        "project": server.project,
        "environment": server.environment,
        "title": written.title,
        "constraint": constraint.model_dump(mode="json"),
        "stickiness": flag.stickiness,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _window_cell(window: dict[str, Any], timezone: str, at: datetime) -> Text:
    if window["open"]:
        return Text("open now", style="green")
    if window["nextOpen"] is None:
        return Text("none within a year", style="red")
    opens = datetime.fromisoformat(window["nextOpen"])
    local = opens.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %H:%M %Z")
    minutes = int((opens - at).total_seconds() // 60)
    wait = format_duration(timedelta(minutes=minutes)) if minutes else "<1m"
    return Text(f"{local} (in {wait})", style="yellow")


def _residency_cell(found: list[dict[str, Any]]) -> Text:
    denied = [d["rule"] for d in found if d["verdict"] == "deny"]
    if denied:
        return Text("DENY " + ", ".join(denied), style="bold red")
    return Text(f"allow ({len(found)} rules)", style="green")


def _flag_cell(flag: dict[str, Any] | None) -> Text:
    """``unleash.eu.example.com default/eu-west-1`` over ``cluster IN [euw1-internal]``, or a dash."""
    if flag is None:
        return Text("-")
    constraint = flag["constraint"]
    values = ", ".join(constraint["values"])
    where = f"{flag['server']} {flag['project']}/{flag['environment']}"
    return Text(f"{where}\n{constraint['contextName']} {constraint['operator']} [{values}]")


def _print_plan(document: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = max(console.width, 250 if any(r["featureFlag"] for r in document["rings"]) else 200)
    at = datetime.fromisoformat(document["at"])
    console.print(
        Text(
            f"{document['service']} {document['version']}: minimum duration {document['minimumDuration']} "
            "(timed pauses and bakes; approvals and windows add to it)",
            style="bold",
        )
    )
    moves_flags = any(ring["featureFlag"] for ring in document["rings"])
    columns = ["Ring", "Wave", "Cluster", "Region", "Jurisdiction", "Strategy", "Residency", "Next window"]
    table = Table(*columns, *(["Flag strategy"] if moves_flags else []))
    for ring in document["rings"]:
        approval = ring["approval"]
        gate = (
            " · four-eyes approval"
            if approval["fourEyes"]
            else (" · approval" if approval["required"] else "")
        )
        bake = format_duration(timedelta(seconds=ring["bakeTimeSeconds"]))
        label = f"{ring['name']}\nmax {ring['maxParallel']} · bake {bake}{gate}"
        for wave in ring["waves"]:
            for position, cluster in enumerate(wave["clusters"]):
                first = wave["index"] == 0 and position == 0
                name = cluster["name"] + (" (regulated)" if cluster["regulated"] else "")
                table.add_row(
                    Text(label if first else ""),
                    Text(str(wave["index"] + 1) if position == 0 else ""),
                    Text(name),
                    Text(cluster["region"]),
                    Text(cluster["jurisdiction"]),
                    Text(ring["strategyDetail"].replace(", then ", ",\nthen ") if first else ""),
                    _residency_cell(cluster["residency"]),
                    _window_cell(cluster["window"], cluster["timezone"], at),
                    *([_flag_cell(cluster["flag"])] if moves_flags else []),
                )
        table.add_section()
    console.print(table)
    console.print(Text(f"residency policy {document['policyDigest']}", style="dim"))
