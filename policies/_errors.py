"""Turning pydantic validation errors into ``(path, message)`` pairs a person can act on.

Paths use the YAML (alias) names, ``.field`` for fields and ``[i]`` for list items
(``rings[1].strategy.canary.steps[2].setWeight``); messages say what is allowed, suggest the field
meant by a misspelt one, and never echo the rejected value (it may carry a credential).
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


def render_path(loc: Sequence[int | str]) -> str:
    """``("rings", 1, "name")`` → ``rings[1].name``; unusual keys are quoted: ``labels["a.b/c"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


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


def describe(error: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """Every error of ``error`` (raised validating ``root``) as ``(path, message)``, in input order."""
    found: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
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
        else:
            message = item["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
            message = message.replace("String should", "text should").replace("List should", "list should")
        if key_error:
            message = f"key: {message}"
        found.append((render_path(loc), message))
    return found


def _unknown_field(root: type[BaseModel], loc: Sequence[int | str]) -> str:
    name = str(loc[-1]) if loc else ""
    model = _model_at(root, loc[:-1])
    if model is None:
        return f"unknown field {name!r}"
    allowed = [field.alias or key for key, field in model.model_fields.items()]
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field {name!r}{hint}; allowed: {', '.join(allowed)}"


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
