"""``ringmaster deployment current`` and ``drained``: roll the worker's versions forward and retire them.

With Worker Versioning (``RINGMASTER_WORKER_VERSIONING``), a new build's workers start beside the
old ones (``deploy/worker/rollout.sh``); ``current BUILD_ID`` makes it the deployment's current
version once its workers poll: new releases start on it, and running ones move to it at their next
workflow task (auto-upgrade, :data:`ringmaster.versioning.BEHAVIOUR`), except any an operator pinned
to their build (``temporal workflow update-options --versioning-override-behavior pinned``).
``drained BUILD_ID`` says whether an old version can go: it is no longer routed to, Temporal's
drainage check agrees, and visibility finds no open run pinned to it (it names the first ones). The
deployment is ``RINGMASTER_DEPLOYMENT_NAME``. ``docs/design.md``, "Upgrading the worker", has the procedure.

Exit codes (:mod:`ringmaster.exitcodes`): 0 done / drained; 7 not drained (keep its workers);
2 a version Temporal does not know, or refuses to make current (no worker of it polls); 3 Temporal
unreachable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ringmaster.cli.options import Output, OutputOpt
from ringmaster.exitcodes import ExitCode

if TYPE_CHECKING:
    from ringmaster.cli import _client
    from ringmaster.settings import Settings
    from ringmaster.versioning import VersionReport

app = typer.Typer(
    name="deployment",
    help="The worker's versions (Worker Versioning): make one current, tell when an old one is drained.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

BuildArg = Annotated[str, typer.Argument(help="The version's build id (<package version>-<commit>).")]


@app.callback()
def group() -> None:
    """The worker deployment's versions (``ringmaster deployment current|drained``)."""


@app.command()
def current(build_id: BuildArg, output: OutputOpt = Output.TEXT) -> NoReturn:
    """Make BUILD_ID the current version: every workflow moves to it, except runs pinned elsewhere."""
    from ringmaster import versioning  # noqa: PLC0415 - Temporal is imported when a client command runs
    from ringmaster.cli import _client  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        client = await _client.connect(settings)
        name = settings.deployment_name
        previous = await _client.call(
            f"set current version {name}.{build_id}",
            versioning.set_current(client, name, build_id, _client.identity()),
        )
        payload = {"deployment": name, "buildId": build_id, "previousBuildId": previous or None}
        text = f"{name}: current version {build_id} (was {previous or 'unversioned'})"
        return ExitCode.OK, payload, text

    _client.run(output, body)


@app.command()
def drained(build_id: BuildArg, output: OutputOpt = Output.TEXT) -> NoReturn:
    """Exit 0 when BUILD_ID's workers can go (no open run pinned to it), 7 while they are needed."""
    from ringmaster import versioning  # noqa: PLC0415 - see current
    from ringmaster.cli import _client  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        client = await _client.connect(settings)
        name = settings.deployment_name
        report = await _client.call(
            f"describe version {name}.{build_id}", versioning.describe(client, name, build_id)
        )
        return (ExitCode.OK if report.drained else ExitCode.IN_USE), report.as_json(), _text(report)

    _client.run(output, body)


def _text(report: VersionReport) -> str:
    head = (
        f"{report.deployment}.{report.build_id}: {report.status}, Temporal's drainage {report.drainage}, "
        f"{report.open_pinned} open run(s) pinned to it"
    )
    runs = [f"  {r['type']}  {r['workflowId']}  {r['runId']}" for r in report.open_runs]
    verdict = "drained: its workers can go" if report.drained else "not drained: keep its workers"
    return "\n".join([head, *runs, verdict])
