"""Deployment windows: open or closed at an instant, next opening and closing, DST-correct, freezes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from policies import windows
from policies.fleet import Fleet
from policies.plan import ReleasePlan
from tests.policies.helpers import make_plan


def at(text: str) -> datetime:
    """An aware instant from ISO text ending in Z."""
    return datetime.fromisoformat(text)


def _plan(*items: dict[str, Any]) -> ReleasePlan:
    return make_plan(windows=list(items))


EXAMPLE = make_plan()


US_GAP = _plan({"regions": ["us-east-1"], "weekly": [{"days": ["Sun"], "start": "02:30", "end": "03:30"}]})
US_REPEAT = _plan({"regions": ["us-east-1"], "weekly": [{"days": ["Sun"], "start": "01:00", "end": "01:30"}]})
OVERNIGHT = _plan({"regions": ["us-east-1"], "weekly": [{"days": ["Fri"], "start": "22:00", "end": "06:00"}]})
WHOLE_MONDAY = _plan(
    {"regions": ["us-west-2"], "weekly": [{"days": ["monday"], "start": "00:00", "end": "24:00"}]}
)
REGIONAL_FREEZE = _plan(
    {"regions": ["us-west-2"], "freeze": {"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z"}}
)
LONG_FREEZE = _plan(
    {"freeze": {"from": "2026-01-01T00:00:00Z", "to": "2028-01-01T00:00:00Z", "reason": "migration"}}
)
NO_WINDOWS = _plan()


class TestIsOpen:
    @pytest.mark.parametrize(
        ("region", "instant", "expected"),
        [
            ("eu-central-1", "2026-03-02T08:00:00Z", True),
            ("eu-central-1", "2026-03-02T07:59:59Z", False),
            ("eu-central-1", "2026-03-02T14:59:59Z", True),
            ("eu-central-1", "2026-03-02T15:00:00Z", False),
            ("eu-central-1", "2026-03-30T07:00:00Z", True),
            ("eu-central-1", "2026-03-30T06:59:00Z", False),
            ("eu-central-1", "2026-03-30T14:00:00Z", False),
            ("eu-central-1", "2026-03-06T10:00:00Z", False),
            ("eu-west-1", "2026-03-02T09:00:00Z", True),
            ("eu-west-1", "2026-03-02T08:59:00Z", False),
            ("eu-west-1", "2026-06-01T08:00:00Z", True),
            ("eu-west-1", "2026-06-01T15:00:00Z", False),
            ("us-east-1", "2026-03-07T03:00:00Z", True),
            ("us-east-1", "2026-12-25T12:00:00Z", False),
            ("eu-central-1", "2026-12-21T09:00:00Z", False),
            ("eu-central-1", "2027-01-04T08:00:00Z", True),
        ],
        ids=[
            "berlin-winter-opens-0900-cet",
            "berlin-winter-before",
            "berlin-winter-last-second",
            "berlin-winter-end-exclusive",
            "berlin-summer-opens-0900-cest",
            "berlin-summer-before",
            "berlin-summer-closes-1600-cest",
            "friday-closed",
            "dublin-winter-gmt",
            "dublin-winter-before",
            "dublin-summer-ist",
            "dublin-summer-closed-1600-ist",
            "no-weekly-windows-always-open",
            "freeze-closes-every-region",
            "freeze-beats-weekly-window",
            "freeze-end-exclusive",
        ],
    )
    def test_example_plan(
        self, plan: ReleasePlan, fleet: Fleet, region: str, instant: str, expected: bool
    ) -> None:
        """Weekly windows follow each region's local clock through DST; freezes close every region."""
        assert windows.is_open(plan, fleet, region, at(instant)) is expected

    @pytest.mark.parametrize(
        ("window_plan", "region", "instant", "expected"),
        [
            (US_GAP, "us-east-1", "2026-03-08T06:59:59Z", False),
            (US_GAP, "us-east-1", "2026-03-08T07:00:00Z", True),
            (US_GAP, "us-east-1", "2026-03-08T07:30:00Z", False),
            (US_REPEAT, "us-east-1", "2026-11-01T05:10:00Z", True),
            (US_REPEAT, "us-east-1", "2026-11-01T05:40:00Z", False),
            (US_REPEAT, "us-east-1", "2026-11-01T06:10:00Z", True),
            (OVERNIGHT, "us-east-1", "2026-03-07T02:59:00Z", False),
            (OVERNIGHT, "us-east-1", "2026-03-07T03:30:00Z", True),
            (OVERNIGHT, "us-east-1", "2026-03-07T10:59:00Z", True),
            (OVERNIGHT, "us-east-1", "2026-03-07T11:00:00Z", False),
            (OVERNIGHT, "us-east-1", "2026-03-06T03:30:00Z", False),
            (WHOLE_MONDAY, "us-west-2", "2026-03-03T07:59:00Z", True),
            (WHOLE_MONDAY, "us-west-2", "2026-03-03T08:00:00Z", False),
            (REGIONAL_FREEZE, "us-west-2", "2026-05-01T12:00:00Z", False),
            (REGIONAL_FREEZE, "us-east-1", "2026-05-01T12:00:00Z", True),
        ],
        ids=[
            "gap-before-jump",
            "gap-window-opens-at-jump",
            "gap-window-closes-0330-edt",
            "repeated-hour-first-pass",
            "repeated-hour-between",
            "repeated-hour-second-pass",
            "overnight-before-friday-2200",
            "overnight-friday-late",
            "overnight-saturday-early",
            "overnight-ends-saturday-0600",
            "overnight-not-thursday-night",
            "whole-day-last-minute",
            "whole-day-ends-at-midnight",
            "regional-freeze-applies",
            "regional-freeze-spares-others",
        ],
    )
    def test_edge_cases(
        self, fleet: Fleet, window_plan: ReleasePlan, region: str, instant: str, expected: bool
    ) -> None:
        """Skipped and repeated DST hours, overnight and whole-day windows, and regional freezes."""
        assert windows.is_open(window_plan, fleet, region, at(instant)) is expected

    def test_naive_instants_are_rejected(self, plan: ReleasePlan, fleet: Fleet) -> None:
        """A datetime without an offset is refused, never guessed."""
        with pytest.raises(ValueError, match="timezone-aware"):
            windows.is_open(plan, fleet, "eu-west-1", datetime(2026, 3, 2, 9))


class TestNextOpen:
    @pytest.mark.parametrize(
        ("window_plan", "region", "instant", "expected"),
        [
            (EXAMPLE, "eu-central-1", "2026-03-27T18:00:00Z", "2026-03-30T07:00:00Z"),
            (EXAMPLE, "eu-west-1", "2026-03-27T18:00:00Z", "2026-03-30T08:00:00Z"),
            (EXAMPLE, "eu-central-1", "2026-10-23T12:00:00Z", "2026-10-26T08:00:00Z"),
            (EXAMPLE, "eu-central-1", "2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z"),
            (EXAMPLE, "eu-central-1", "2026-03-05T15:30:00Z", "2026-03-09T08:00:00Z"),
            (EXAMPLE, "eu-central-1", "2026-12-18T12:00:00Z", "2027-01-04T08:00:00Z"),
            (EXAMPLE, "us-east-1", "2026-12-21T00:00:00Z", "2027-01-04T00:00:00Z"),
            (US_GAP, "us-east-1", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"),
            (US_REPEAT, "us-east-1", "2026-11-01T05:45:00Z", "2026-11-01T06:00:00Z"),
            (OVERNIGHT, "us-east-1", "2026-03-04T12:00:00Z", "2026-03-07T03:00:00Z"),
            (LONG_FREEZE, "us-east-1", "2026-06-01T00:00:00Z", None),
        ],
        ids=[
            "berlin-over-spring-weekend",
            "dublin-over-spring-weekend",
            "berlin-over-autumn-weekend",
            "already-open",
            "thursday-after-close-to-monday",
            "after-the-freeze",
            "freeze-end-for-unwindowed-region",
            "skipped-hour-opens-at-jump",
            "repeated-hour-reopens",
            "overnight-window",
            "freeze-beyond-horizon",
        ],
    )
    def test_next_opening(
        self,
        fleet: Fleet,
        window_plan: ReleasePlan,
        region: str,
        instant: str,
        expected: str | None,
    ) -> None:
        """The first instant at or after the given one when the region is open, in UTC (None past a year)."""
        found = windows.next_open(window_plan, fleet, region, at(instant))
        assert found == (at(expected) if expected else None)

    def test_results_are_utc(self, plan: ReleasePlan, fleet: Fleet) -> None:
        """An instant given in another offset yields the same instant, expressed in UTC."""
        given = datetime(2026, 3, 2, 11, 0, tzinfo=timezone(timedelta(hours=2)))
        found = windows.next_open(plan, fleet, "eu-central-1", given)
        assert found == given
        assert found is not None
        assert found.tzinfo == UTC


class TestNextClose:
    @pytest.mark.parametrize(
        ("window_plan", "region", "instant", "expected"),
        [
            (EXAMPLE, "eu-central-1", "2026-03-02T10:00:00Z", "2026-03-02T15:00:00Z"),
            (EXAMPLE, "eu-central-1", "2026-07-02T10:00:00Z", "2026-07-02T14:00:00Z"),
            (EXAMPLE, "eu-central-1", "2026-03-06T10:00:00Z", "2026-03-06T10:00:00Z"),
            (EXAMPLE, "us-east-1", "2026-03-02T00:00:00Z", "2026-12-20T00:00:00Z"),
            (NO_WINDOWS, "us-east-1", "2026-03-02T00:00:00Z", None),
            (US_GAP, "us-east-1", "2026-03-08T07:10:00Z", "2026-03-08T07:30:00Z"),
        ],
        ids=["winter-close", "summer-close", "already-closed", "freeze-start", "never-closes", "gap-window"],
    )
    def test_next_closing(
        self,
        fleet: Fleet,
        window_plan: ReleasePlan,
        region: str,
        instant: str,
        expected: str | None,
    ) -> None:
        """The first instant at or after the given one when the region is closed (None if open all year)."""
        found = windows.next_close(window_plan, fleet, region, at(instant))
        assert found == (at(expected) if expected else None)


class TestState:
    @pytest.mark.parametrize(
        ("window_plan", "region", "instant", "is_open", "reason"),
        [
            (EXAMPLE, "eu-central-1", "2026-03-02T10:00:00Z", True, "inside a weekly window"),
            (EXAMPLE, "eu-central-1", "2026-03-06T10:00:00Z", False, "outside the weekly windows"),
            (EXAMPLE, "us-east-1", "2026-03-06T10:00:00Z", True, "no weekly window applies"),
            (EXAMPLE, "us-east-1", "2026-12-24T10:00:00Z", False, "frozen until 2027-01-04T00:00:00+00:00"),
            (
                LONG_FREEZE,
                "us-east-1",
                "2026-06-01T00:00:00Z",
                False,
                "(migration); no opening within a year",
            ),
        ],
    )
    def test_state_explains_itself(
        self,
        *,
        fleet: Fleet,
        window_plan: ReleasePlan,
        region: str,
        instant: str,
        is_open: bool,
        reason: str,
    ) -> None:
        """The window state carries whether it is open and a reason a person can act on."""
        state = windows.state(window_plan, fleet, region, at(instant))
        assert state.open is is_open
        assert reason in state.reason
