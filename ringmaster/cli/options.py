"""Options and arguments shared by the ``ringmaster`` commands, declared once."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Output(StrEnum):
    """How a command prints its result: a short human form, or the JSON document scripts rely on."""

    TEXT = "text"
    JSON = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text (for people) or json (for scripts).")]
ReleaseArg = Annotated[str, typer.Argument(help="service:version, or the release's workflow id.")]
ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Who acts; default $GITHUB_ACTOR, $GITLAB_USER_LOGIN, else the system user."),
]


def command_group(name: str, summary: str) -> typer.Typer:
    """A group of subcommands (``ringmaster NAME ...``), listed even while it holds a single command."""
    group = typer.Typer(name=name, help=summary, no_args_is_help=True, pretty_exceptions_enable=False)
    # Without a callback, Typer would run a group's only command as the group itself.
    group.callback()(_no_options)
    return group


def _no_options() -> None:
    """A group's own options: none."""


def timeout_seconds(text: str | None) -> float | None:
    """``--timeout`` in seconds (None: wait as long as it takes), or exit 2 (release commands only)."""
    from policies.durations import parse_duration  # noqa: PLC0415
    from ringmaster.cli._client import Stop  # noqa: PLC0415 - see _client
    from ringmaster.exitcodes import ExitCode  # noqa: PLC0415

    if text is None:
        return None
    try:
        return parse_duration(text).total_seconds()
    except ValueError as err:
        raise Stop(ExitCode.INVALID, f"--timeout: {err}") from None
