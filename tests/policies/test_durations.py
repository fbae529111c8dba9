"""Durations: the strings users write, the pydantic type, and the JSON round trip."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from policies.durations import Duration, format_duration, parse_duration


class _Holder(BaseModel):
    value: Duration


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("30s", timedelta(seconds=30)),
            ("5m", timedelta(minutes=5)),
            ("2h", timedelta(hours=2)),
            ("1d", timedelta(days=1)),
            ("1h30m", timedelta(hours=1, minutes=30)),
            ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
            ("0s", timedelta(0)),
            (" 5M ", timedelta(minutes=5)),
            ("1.5s", timedelta(seconds=1.5)),
        ],
    )
    def test_accepts_the_documented_forms(self, text: str, expected: timedelta) -> None:
        """Every documented form, combinations in d-h-m-s order, and stray case or spaces parse exactly."""
        assert parse_duration(text) == expected

    @pytest.mark.parametrize("text", ["soon", "", "5", "-5m", "1m1h", "5 m", "1.5h", "m", "P1D", "5min"])
    def test_rejects_anything_else_naming_the_forms(self, text: str) -> None:
        """An unparsable duration raises ValueError whose message shows what to write instead."""
        with pytest.raises(ValueError, match="30s, 5m, 2h, 1d"):
            parse_duration(text)


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (timedelta(0), "0s"),
            (timedelta(minutes=5), "5m"),
            (timedelta(hours=1, minutes=30), "1h30m"),
            (timedelta(days=2, seconds=1), "2d1s"),
            (timedelta(seconds=1.25), "1.25s"),
        ],
    )
    def test_writes_the_shortest_form(self, value: timedelta, expected: str) -> None:
        """Formatting gives the compact form users write."""
        assert format_duration(value) == expected

    @settings(max_examples=60)
    @given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)))
    def test_round_trips_through_parse(self, value: timedelta) -> None:
        """Any non-negative timedelta formats to a string that parses back to the same value."""
        assert parse_duration(format_duration(value)) == value


class TestDurationType:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("5m", timedelta(minutes=5)),
            (timedelta(hours=2), timedelta(hours=2)),
            (90, timedelta(seconds=90)),
            (1.5, timedelta(seconds=1.5)),
        ],
    )
    def test_validates_strings_timedeltas_and_seconds(self, raw: object, expected: timedelta) -> None:
        """A Duration field accepts the string form, a timedelta, or a number of seconds."""
        assert _Holder(value=raw).value == expected  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "raw", ["soon", True, -1, float("nan"), float("inf"), [], None, timedelta(seconds=-1)]
    )
    def test_rejects_invalid_values(self, raw: object) -> None:
        """Unparsable, boolean, negative, non-finite and non-scalar inputs are validation errors."""
        with pytest.raises(ValidationError):
            _Holder(value=raw)  # type: ignore[arg-type]

    def test_serialises_to_the_string_form_in_json_mode(self) -> None:
        """JSON mode writes "1h30m" (and Python mode keeps a timedelta), so both load back unchanged."""
        holder = _Holder(value="90m")  # type: ignore[arg-type]
        assert holder.model_dump(mode="json") == {"value": "1h30m"}
        assert _Holder.model_validate(holder.model_dump(mode="json")) == holder
        assert _Holder.model_validate(holder.model_dump()) == holder

    @pytest.mark.parametrize("raw", ["367d", "99999999999d", 10**12, timedelta(days=400)])
    def test_rejects_durations_longer_than_a_year(self, raw: object) -> None:
        """Absurdly long durations are a validation error, never an OverflowError."""
        with pytest.raises(ValidationError, match=r"366d|too long"):
            _Holder(value=raw)  # type: ignore[arg-type]
