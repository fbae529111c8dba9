"""The window models of a plan: weekly deployment windows per region and one-off freezes.

Weekly windows are wall-clock times in each region's own time zone (``windows`` does the DST-correct
arithmetic); freezes are absolute instants. ``plan`` re-exports these models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from policies._model import Model, Name, require_exactly_one

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
"""Day names in ``datetime.weekday()`` order."""
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)")
MINUTES_PER_DAY = 24 * 60
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest instant a freeze or a schedule may name (windows look a year around an instant)."""
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""The latest such instant: far from ``datetime.max``, so a year's look-ahead never overflows."""
INSTANTS = "instants must be from 1970-01-01 to 9000-01-01 (UTC)"


def in_range(at: datetime) -> bool:
    """Whether timezone-aware ``at`` lies from :data:`EARLIEST` to :data:`LATEST`."""
    try:
        return EARLIEST <= at.astimezone(UTC) <= LATEST
    except OverflowError:  # year 1 or 9999 with an offset that moves it off the calendar
        return False


def _day(value: object) -> object:
    if isinstance(value, str):
        lowered = value.strip().lower()
        for short, full in zip(DAYS, _FULL_DAYS, strict=True):
            if lowered in (short.lower(), full):
                return short
    return value


Day = Annotated[Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], BeforeValidator(_day)]
"""A weekday, written ``Mon`` … ``Sun`` (full names and any case are accepted)."""


def clock_minutes(text: str) -> int:
    """Minutes since midnight of an ``HH:MM`` wall-clock time (``24:00`` is 1440)."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(value: str) -> str:
    match = _CLOCK.fullmatch(value.strip())
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise PydanticCustomError("clock", "write a time of day as HH:MM, from 00:00 to 24:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


Clock = Annotated[str, AfterValidator(_clock)]
"""A wall-clock time ``HH:MM`` in the region's time zone; ``24:00`` means the end of the day."""


class WeeklyWindow(Model):
    """Open from ``start`` to ``end`` (exclusive) on each of ``days``, local time.

    An ``end`` at or before ``start`` runs past midnight into the next day (``22:00``-``06:00``).
    """

    days: list[Day] = Field(min_length=1)
    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _length(self) -> WeeklyWindow:
        if self.start == "24:00":
            raise PydanticCustomError("clock", "start must be before 24:00; use 00:00 of the next day")
        if self.start == self.end:
            raise PydanticCustomError(
                "clock", "start and end are equal; use start 00:00, end 24:00 for a whole day"
            )
        return self

    @cached_property
    def start_minute(self) -> int:
        """``start`` as minutes since midnight."""
        return clock_minutes(self.start)

    @cached_property
    def end_minute(self) -> int:
        """``end`` as minutes since midnight (1440 for ``24:00``)."""
        return clock_minutes(self.end)

    @property
    def overnight(self) -> bool:
        """Whether the window ends on the day after it starts."""
        return self.end_minute <= self.start_minute

    def covers(self, weekday: int, minute: int) -> bool:
        """Whether local wall-clock ``minute`` of ``weekday`` (0 = Monday) falls inside this window."""
        today = DAYS[weekday] in self.days
        if not self.overnight:
            return today and self.start_minute <= minute < self.end_minute
        yesterday = DAYS[(weekday - 1) % 7] in self.days
        return (today and minute >= self.start_minute) or (yesterday and minute < self.end_minute)


class Freeze(Model):
    """No cluster starts between ``from`` (inclusive) and ``to`` (exclusive); instants need an offset."""

    start: AwareDatetime = Field(alias="from")
    end: AwareDatetime = Field(alias="to")
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if not (in_range(self.start) and in_range(self.end)):
            raise PydanticCustomError("freeze", "{instants}", {"instants": INSTANTS})
        if self.end <= self.start:
            raise PydanticCustomError("freeze", "'to' must be after 'from'")
        return self

    def covers(self, at: datetime) -> bool:
        """Whether instant ``at`` is inside the freeze."""
        return self.start <= at < self.end


class Window(Model):
    """Either ``weekly`` windows or a ``freeze``, for ``regions`` (every region when left out).

    A region with weekly windows is open only inside one of them; a region with none is always
    open. A freeze closes its regions whatever the weekly windows say.
    """

    regions: list[Name] | None = Field(default=None, min_length=1)
    weekly: list[WeeklyWindow] | None = Field(default=None, min_length=1)
    freeze: Freeze | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        require_exactly_one("a window", {"weekly": self.weekly, "freeze": self.freeze})
        return self

    @cached_property
    def _regions(self) -> frozenset[str] | None:
        return None if self.regions is None else frozenset(self.regions)

    def applies_to(self, region: str) -> bool:
        """Whether this window governs ``region``."""
        return self._regions is None or region in self._regions
