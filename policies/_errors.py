"""Turning pydantic validation errors into ``(path, message)`` pairs a person can act on.

Paths use the YAML (alias) names, ``.field`` for fields and ``[i]`` for list items
(``rings[1].strategy.canary.steps[2].setWeight``); messages say what is allowed, suggest the field
meant by a misspelt one, and never echo the rejected value (it may carry a credential). Names a
message does repeat (an unknown field, an unknown cluster) are clipped to :data:`ECHO_LIMIT`
characters by :func:`quote`, so no message grows with its input.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SCHEMA_TAG = re.compile(r"[a-z-]+\[.*\]")
_PATH_PART = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')
MAX_PROBLEMS = 100
"""At most this many problems of a run are reported (``loading.MAX_PROBLEMS``)."""
ECHO_LIMIT = 40
"""The most characters of a name or key any message repeats; longer ones end in an ellipsis."""


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value: object, limit: int = ECHO_LIMIT) -> str:
    """``value`` quoted as in Python (``'eu-west-1'``), clipped to about ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    return repr(text) if len(text) <= limit else repr(text[: limit - 1]) + "…"


def suggest(name: str, known: Sequence[str], *, closest: int = 3, listed: int = 10) -> str:
    """`` (did you mean 'a' or 'b'?)`` with the ``closest`` names nearest ``name``, and all of ``known``
    after it when there are at most ``listed`` (a fleet may know thousands of names)."""
    close = difflib.get_close_matches(name[: ECHO_LIMIT * 2], known, n=closest)
    hint = " (did you mean " + " or ".join(repr(c) for c in close) + "?)" if close else ""
    if len(known) <= listed:
        hint += f"; known: {', '.join(known)}"
    return hint


class Suggestions:
    """:func:`suggest` for the first :data:`MAX_PROBLEMS` names asked about, then nothing.

    Problems past that many are not reported, and each suggestion compares with every known name.
    """

    def __init__(self) -> None:
        self.left = MAX_PROBLEMS

    def __call__(self, name: str, known: Sequence[str]) -> str:
        """:func:`suggest`, while the budget lasts."""
        if self.left <= 0:
            return ""
        self.left -= 1
        return suggest(name, known)


def render_path(loc: Sequence[int | str]) -> str:
    """``("rings", 1, "name")`` → ``rings[1].name``; unusual keys are quoted: ``labels["a.b/c"]``.

    Keys longer than :data:`ECHO_LIMIT` are clipped (such a path no longer parses back exactly).
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part) and len(part) <= ECHO_LIMIT:
            out += f".{part}" if out else part
        else:
            key = clip(str(part))
            out += '["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


def parse_path(path: str) -> list[int | str]:
    """The parts of a path :func:`render_path` wrote (``rings[1].name`` → ``["rings", 1, "name"]``).

    Reading stops at the first part it cannot read, so a clipped key yields the path up to it.
    """
    parts: list[int | str] = []
    at = 0
    while at < len(path):
        match = _PATH_PART.match(path, at)
        if match is None or (match.group(1) is not None and at and path[at] != "."):
            break
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(re.sub(r"\\(.)", r"\1", quoted))
        at = match.end()
    return parts


def type_name(value: object) -> str:
    """How a YAML user would call the type of ``value``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


_TYPE_MESSAGES = {
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
    "dict_type": "must be a mapping (key: value)",
    "list_type": "must be a list",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "datetime_type": "must be an instant such as 2026-12-20T00:00:00Z",
    "datetime_parsing": "must be an instant such as 2026-12-20T00:00:00Z",
    "datetime_from_date_parsing": "must be an instant such as 2026-12-20T00:00:00Z",
    "timezone_aware": "must include a UTC offset, such as 2026-12-20T00:00:00Z or +01:00",
    "invalid_key": "keys must be text",
}


def describe(
    error: ValidationError, root: type[BaseModel], limit: int | None = None
) -> list[tuple[tuple[int | str, ...], str, str]]:
    """The first ``limit`` errors of ``error`` (raised validating ``root``) as ``(loc, path, message)``.

    ``loc`` is the path as keys and indices (to find the value in the document), ``path`` its YAML
    spelling; errors come in input order.
    """
    found: list[tuple[tuple[int | str, ...], str, str]] = []
    for item in error.errors(include_url=False)[:limit]:
        loc = [part for part in item["loc"] if not (isinstance(part, str) and _SCHEMA_TAG.fullmatch(part))]
        kind = item["type"]
        key_error = bool(loc) and loc[-1] == "[key]"
        if key_error:
            loc = loc[:-1]
        if kind == "extra_forbidden":
            message = _unknown_field(root, loc)
        elif kind == "missing":
            message = "required field is missing"
        elif kind in _TYPE_MESSAGES:
            message = _TYPE_MESSAGES[kind]
            if kind.endswith("_type"):
                given = item.get("input")
                message += f", got {type_name(given)}"
                if kind == "string_type" and isinstance(given, bool | int | float):
                    message += " (put it in quotes to make it text)"
                elif kind in ("float_type", "int_type") and isinstance(given, str):
                    message += " (write it without quotes)"
        else:
            message = item["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
            message = message.replace("String should", "text should").replace("List should", "list should")
            given = item.get("input")
            if isinstance(given, str) and len(given) > ECHO_LIMIT:
                # A validator that names the value it refuses (a host pattern) names it clipped.
                message = message.replace(repr(given), quote(given))
        if key_error:
            message = f"key: {message}"
        found.append((tuple(loc), render_path(loc), message))
    return found


def _unknown_field(root: type[BaseModel], loc: Sequence[int | str]) -> str:
    name = str(loc[-1]) if loc else ""
    model = _model_at(root, loc[:-1])
    if model is None:
        return f"unknown field {quote(name)}"
    allowed = [field.alias or key for key, field in model.model_fields.items()]
    close = difflib.get_close_matches(name[: ECHO_LIMIT * 2], allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {quote(name)}{hint}; allowed: {', '.join(allowed)}"


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class found by following ``loc`` (aliases, list indices, dict keys) from ``root``."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            fields = {field.alias or key: field for key, field in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        elif origin is list and isinstance(part, int):
            current = get_args(current)[0]
        elif origin is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None
