"""Deployment windows: is a region open at an instant, and when does it next open or close.

Weekly windows are wall-clock times in the region's own IANA time zone, so "09:00-16:00" follows
daylight-saving changes: it opens at 09:00 local in winter and in summer alike. On a spring-forward
day a window starting inside the skipped hour opens when the clocks jump; on a fall-back night a
repeated hour is inside a window both times it is lived. A region no weekly window lists is always
open; a freeze closes its regions (all of them when it lists none) whatever the weekly windows say.

Waiting is never failing: callers wait until :func:`next_open`. All instants must be timezone-aware;
results are in UTC. Searches look :data:`HORIZON` ahead; None means "not within a year".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from policies._calendar import INSTANTS as INSTANTS  # noqa: PLC0414 (re-exported for mypy --strict)
from policies._calendar import MINUTES_PER_DAY, Freeze, WeeklyWindow
from policies._calendar import in_range as in_range  # noqa: PLC0414 (re-exported for mypy --strict)
from policies._model import Model
from policies.fleet import Fleet
from policies.plan import ReleasePlan

HORIZON = timedelta(days=366)
"""How far :func:`next_open` and :func:`next_close` look ahead before answering None."""
_CHUNK_DAYS = 7


class WindowState(Model):
    """A region's window at one instant, for status displays and workflow queries."""

    region: str
    at: datetime
    open: bool
    next_open: datetime | None
    """The first instant at or after ``at`` when the region is open (None: not within a year)."""
    next_close: datetime | None
    """The first instant at or after ``at`` when the region is closed (None: open all year)."""
    reason: str


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive datetime has no defined instant; pass a timezone-aware datetime")
    if not in_range(at):
        raise ValueError(INSTANTS)
    return at.astimezone(UTC)


def _rules(plan: ReleasePlan, region: str) -> tuple[list[WeeklyWindow], list[Freeze]]:
    weekly = [w for win in plan.windows if win.weekly and win.applies_to(region) for w in win.weekly]
    freezes = [win.freeze for win in plan.windows if win.freeze and win.applies_to(region)]
    return weekly, freezes


@dataclass(frozen=True)
class _Calendar:
    """What decides one region's windows: the rules that apply to it and its time zone."""

    weekly: list[WeeklyWindow]
    freezes: list[Freeze]
    zone: ZoneInfo


def _calendar(plan: ReleasePlan, fleet: Fleet, region: str) -> _Calendar:
    weekly, freezes = _rules(plan, region)
    return _Calendar(weekly, freezes, fleet.region(region).zone)


def _open(calendar: _Calendar, at: datetime) -> bool:
    if any(f.covers(at) for f in calendar.freezes):
        return False
    if not calendar.weekly:
        return True
    local = at.astimezone(calendar.zone)
    minute = local.hour * 60 + local.minute
    return any(w.covers(local.weekday(), minute) for w in calendar.weekly)


def is_open(plan: ReleasePlan, fleet: Fleet, region: str, at: datetime) -> bool:
    """Whether a cluster of ``region`` may start a step at instant ``at``."""
    return _open(_calendar(plan, fleet, region), _aware(at))


def _instants(day: date, minute: int, zone: ZoneInfo) -> set[datetime]:
    """Both readings (DST folds) of local wall-clock ``minute`` of ``day``, in UTC."""
    day = day + timedelta(days=minute // MINUTES_PER_DAY)
    wall = datetime.combine(day, time(minute % MINUTES_PER_DAY // 60, minute % 60), tzinfo=zone)
    return {wall.replace(fold=fold).astimezone(UTC) for fold in (0, 1)}


def _transition(start: datetime, end: datetime, zone: ZoneInfo) -> datetime | None:
    """The instant in [start, end) when ``zone``'s UTC offset changes, to the second, if it does."""
    if start.astimezone(zone).utcoffset() == end.astimezone(zone).utcoffset():
        return None
    before = start.astimezone(zone).utcoffset()
    low, high = start, end
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    # The transition is on a whole second in [low, high], and high - low <= 1s.
    return high.replace(microsecond=0)


def _boundaries(day: date, weekly: list[WeeklyWindow], zone: ZoneInfo) -> set[datetime]:
    """Every instant of local ``day`` at which a weekly window may open or close."""
    found = _instants(day, 0, zone)
    name = day.strftime("%a")
    yesterday = (day - timedelta(days=1)).strftime("%a")
    for window in weekly:
        if name in window.days:
            found |= _instants(day, window.start_minute, zone)
            if not window.overnight:
                found |= _instants(day, window.end_minute, zone)
        if window.overnight and yesterday in window.days:
            found |= _instants(day, window.end_minute, zone)
    shift = _transition(min(_instants(day, 0, zone)), min(_instants(day, MINUTES_PER_DAY, zone)), zone)
    if shift is not None:
        found.add(shift)
    return found


def _candidates(calendar: _Calendar, at: datetime) -> Iterator[datetime]:
    """In time order, every instant after ``at`` (within the horizon) where the open state may change."""
    zone, weekly = calendar.zone, calendar.weekly
    edges = {edge.astimezone(UTC) for f in calendar.freezes for edge in (f.start, f.end)}
    first = at.astimezone(zone).date()
    for offset in range(0, HORIZON.days + _CHUNK_DAYS, _CHUNK_DAYS):
        start = first + timedelta(days=offset)
        low = min(_instants(start, 0, zone))
        high = min(_instants(start + timedelta(days=_CHUNK_DAYS), 0, zone))
        found = set(edges)
        for day in range(-1, _CHUNK_DAYS + 1):
            found |= _boundaries(start + timedelta(days=day), weekly, zone)
        for instant in sorted(found):
            if low <= instant < high and at < instant <= at + HORIZON:
                yield instant


def _next(calendar: _Calendar, at: datetime, *, want_open: bool) -> datetime | None:
    at = _aware(at)
    if _open(calendar, at) == want_open:
        return at
    for instant in _candidates(calendar, at):
        if _open(calendar, instant) == want_open:
            return instant
    return None


def next_open(plan: ReleasePlan, fleet: Fleet, region: str, at: datetime) -> datetime | None:
    """The first instant at or after ``at`` when ``region`` is open; None if not within :data:`HORIZON`."""
    return _next(_calendar(plan, fleet, region), at, want_open=True)


def next_close(plan: ReleasePlan, fleet: Fleet, region: str, at: datetime) -> datetime | None:
    """The first instant at or after ``at`` when ``region`` is closed; None if open all :data:`HORIZON`."""
    return _next(_calendar(plan, fleet, region), at, want_open=False)


def state(plan: ReleasePlan, fleet: Fleet, region: str, at: datetime) -> WindowState:
    """Open or not at ``at``, the next opening and closing, and why, in one record."""
    return _state(region, _calendar(plan, fleet, region), _aware(at))


def states(plan: ReleasePlan, fleet: Fleet, regions: Iterable[str], at: datetime) -> dict[str, WindowState]:
    """:func:`state` of each of ``regions``, by region.

    Regions in one time zone under the same windows share one computation: a fleet of hundreds of
    regions has far fewer distinct calendars.
    """
    at = _aware(at)
    shared: dict[tuple[str, tuple[int, ...]], WindowState] = {}
    found: dict[str, WindowState] = {}
    for region in regions:
        applying = tuple(i for i, window in enumerate(plan.windows) if window.applies_to(region))
        key = (fleet.region(region).timezone, applying)
        if key not in shared:
            shared[key] = _state(region, _calendar(plan, fleet, region), at)
        found[region] = shared[key].model_copy(update={"region": region})
    return found


def _state(region: str, calendar: _Calendar, at: datetime) -> WindowState:
    opened = _next(calendar, at, want_open=True)
    closed = _next(calendar, at, want_open=False)
    frozen = [f for f in calendar.freezes if f.covers(at)]
    if frozen:
        why = frozen[0].reason or "no reason given"
        reason = f"frozen until {frozen[0].end.astimezone(UTC).isoformat()} ({why})"
    elif not calendar.weekly:
        reason = "no weekly window applies: open outside freezes"
    elif opened == at:
        reason = "inside a weekly window"
    else:
        reason = "outside the weekly windows"
    if opened is None:
        reason += "; no opening within a year"
    return WindowState(
        region=region, at=at, open=opened == at, next_open=opened, next_close=closed, reason=reason
    )
