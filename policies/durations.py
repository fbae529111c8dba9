"""Durations as users write them (``30s``, ``5m``, ``2h``, ``1d``, ``1h30m``) and the pydantic type for them.

``Duration`` is a :class:`~datetime.timedelta` that validates from those strings (and from a
timedelta or a number of seconds, so a model dumped in Python mode loads back) and serialises in
JSON mode to the same compact string, so plans round-trip through Temporal unchanged.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from policies import _errors

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PATTERN = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
_EXAMPLES = "30s, 5m, 2h, 1d or a combination such as 1h30m"
LONGEST = timedelta(days=366)
"""No pause, bake or interval is longer; beyond it a value is a mistake (and sums could overflow)."""


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``/``5m``/``2h``/``1d`` or a combination in that order (``1d2h``, ``1h30m``).

    Raises ValueError naming the accepted forms for anything else, including negative values.
    """
    cleaned = text.strip().lower()
    match = _PATTERN.fullmatch(cleaned)
    if not cleaned or match is None:
        raise ValueError(f"{_errors.quote(text)} is not a duration; write {_EXAMPLES}")
    days, hours, minutes, seconds = match.groups()
    try:
        return timedelta(
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
    except OverflowError:
        raise ValueError(f"{_errors.quote(text)} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    """The shortest string :func:`parse_duration` reads back as ``value`` (``0s`` for zero)."""
    if value < timedelta(0):
        raise ValueError(f"negative duration {value} has no textual form")
    whole = int(value.total_seconds())
    micros = value.microseconds
    parts: list[str] = []
    for unit, size in _UNITS.items():
        amount, whole = divmod(whole, size)
        if unit == "s" and micros:
            parts.append(f"{amount}.{micros:06d}".rstrip("0") + "s")
        elif amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def _coerce(value: object) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise PydanticCustomError(
            "duration", "expected a duration such as {examples}", {"examples": _EXAMPLES}
        )
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise PydanticCustomError("duration", "must be a finite number of seconds")
        try:
            result = timedelta(seconds=value)
        except OverflowError:
            raise PydanticCustomError("duration", "must be at most 366d") from None
    elif isinstance(value, str):
        try:
            result = parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
    else:
        raise PydanticCustomError(
            "duration", "expected a duration such as {examples}", {"examples": _EXAMPLES}
        )
    if result < timedelta(0):
        raise PydanticCustomError("duration", "cannot be negative")
    if result > LONGEST:
        raise PydanticCustomError("duration", "must be at most 366d")
    return result


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A timedelta from 0s to 366d, written ``30s``, ``5m``, ``2h``, ``1d`` or ``1h30m`` (its JSON form)."""
