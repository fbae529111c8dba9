"""``ringmaster replay``: would this code replay every running release? Run it before deploying a worker.

It downloads the histories of ringmaster's workflows on ``RINGMASTER_TASK_QUEUE`` that are running or
closed within ``--closed-within`` (``--query`` narrows them, in Temporal's visibility syntax) from the
Temporal the ``temporal`` CLI would reach, and replays each against the workflow code installed here
(:mod:`ringmaster.replay`). A failure names the workflow, its run, its release and the event.

Exit codes (:mod:`ringmaster.exitcodes`): 0 every history replayed (also when none matched); 6 at
least one did not: do not deploy this code; 2 an invalid option or a query the server refuses;
3 Temporal unreachable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ringmaster.cli.options import Output, OutputOpt
from ringmaster.exitcodes import ExitCode

if TYPE_CHECKING:
    from ringmaster.cli import _client
    from ringmaster.settings import Settings


def replay(
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Only workflows matching this visibility query (ANDed)."),
    ] = None,
    closed_within: Annotated[
        str,
        typer.Option("--closed-within", help="Also replay runs closed this recently (0s: running only)."),
    ] = "7d",
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Replay running and recently closed releases against this code; exit 6 on any nondeterminism.

    Exit codes: 0 every history replayed; 6 one did not (named with its event); 2 an invalid option
    or query; 3 Temporal unreachable.
    """
    from policies.durations import parse_duration  # noqa: PLC0415 - Temporal is imported when it runs
    from ringmaster import replay as replaying  # noqa: PLC0415
    from ringmaster.cli import _client  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        try:
            within = parse_duration(closed_within)
        except ValueError as err:
            raise _client.Stop(ExitCode.INVALID, f"--closed-within: {err}") from None
        since = datetime.now(UTC) - within if within.total_seconds() > 0 else None
        visibility = replaying.query(settings.task_queue, closed_since=since, extra=query)
        replaying.core_logs_to_stderr()
        client = await _client.connect(settings)
        results = await _client.call("replay", replaying.replay(replaying.histories(client, visibility)))
        failed = [r for r in results if not r.ok]
        what = "running" + (f" or closed within {closed_within}" if since is not None else "")
        payload = {
            "query": visibility,
            "replayed": len(results),
            "failed": len(failed),
            "results": [r.as_json() for r in results],
        }
        code = ExitCode.NONDETERMINISTIC if failed else ExitCode.OK
        return code, payload, replaying.text(results, what)

    _client.run(output, body)


COMMANDS = (replay,)
"""The commands of this module, as the CLI registers them."""
