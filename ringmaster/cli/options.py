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
