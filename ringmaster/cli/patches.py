"""``ringmaster patches``: which ``workflow.patched`` ids the open runs of a Temporal still need.

It reads the history of every running workflow of ringmaster's types on ``RINGMASTER_TASK_QUEUE``
(``--query`` narrows them) and says, for each patch of ``workflows/_patches.py``, whether an open run
started before it, so that replaying it may take its old branch (:mod:`ringmaster.patches`). A patch
no open run needs may be retired (``docs/design.md``, "Retiring a patch").

Exit codes (:mod:`ringmaster.exitcodes`): 0 reported (and every ``--check`` patch is retirable);
7 a ``--check`` patch is still needed; 2 an unknown ``--check`` patch or a query the server refuses;
3 Temporal unreachable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ringmaster.cli.options import Output, OutputOpt
from ringmaster.exitcodes import ExitCode

if TYPE_CHECKING:
    from ringmaster.cli import _client
    from ringmaster.settings import Settings


def patches(
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Only open workflows matching this visibility query (ANDed)."),
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option("--check", help="Exit 7 if this patch is still needed (repeat for several)."),
    ] = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Which patches open runs still need, and which may be retired.

    Exit codes: 0 reported (every --check patch retirable); 7 a --check patch is still needed;
    2 an unknown patch or invalid query; 3 Temporal unreachable.
    """
    from ringmaster import patches as reading  # noqa: PLC0415 - Temporal is imported when it runs
    from ringmaster import replay  # noqa: PLC0415
    from ringmaster.cli import _client  # noqa: PLC0415
    from workflows import _patches  # noqa: PLC0415

    async def body(settings: Settings) -> _client.Outcome:
        unknown = sorted(set(check or ()) - set(_patches.SINCE))
        if unknown:
            raise _client.Stop(
                ExitCode.INVALID,
                f"--check: unknown patch {', '.join(unknown)}; known: {', '.join(sorted(_patches.SINCE))}",
            )
        visibility = replay.query(settings.task_queue, closed_since=None, extra=query)
        client = await _client.connect(settings)
        read, reports = await _client.call("patches", reading.report(replay.histories(client, visibility)))
        still = [r.patch for r in reports if r.needed and r.patch in (check or ())]
        payload = {
            "query": visibility,
            "openRuns": read,
            "patches": [r.as_json() for r in reports],
            "stillNeeded": still,
        }
        return (ExitCode.IN_USE if still else ExitCode.OK), payload, reading.text(read, reports)

    _client.run(output, body)


COMMANDS = (patches,)
"""The commands of this module, as the CLI registers them."""
