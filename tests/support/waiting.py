"""The one way tests wait: poll a probe until a check holds, failing with the last value after a timeout.

:func:`assert_eventually` is for async tests (Temporal queries, Prometheus); :func:`eventually` is its
synchronous twin (the emulator through the official client, processes). Both treat an
``AssertionError`` raised by the probe as "not yet", and re-raise the last one on timeout, so a probe
may assert on what it reads. A fixed sleep where a condition can be awaited is a defect: use these.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _truthy(value: Any) -> bool:
    return bool(value)


def _timed_out(what: str, timeout: float, value: Any, last: AssertionError | None) -> AssertionError:
    if last is not None:
        return last
    return AssertionError(f"{what} did not happen within {timeout}s; last value: {value!r}")


async def assert_eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool] = _truthy,
    *,
    timeout: float = 30.0,
    every: float = 0.2,
    what: str = "condition",
) -> T:
    """Await ``probe`` until ``check`` holds on its value; return that value, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value: Any = None
        last: AssertionError | None = None
        try:
            value = await probe()
            if check(value):
                return value  # type: ignore[no-any-return]
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout, value, last)
        await asyncio.sleep(every)


def eventually(
    probe: Callable[[], T],
    check: Callable[[T], bool] = _truthy,
    *,
    timeout: float = 20.0,
    every: float = 0.02,
    what: str = "condition",
) -> T:
    """Call ``probe`` until ``check`` holds on its value; return that value, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value: Any = None
        last: AssertionError | None = None
        try:
            value = probe()
            if check(value):
                return value  # type: ignore[no-any-return]
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout, value, last)
        time.sleep(every)
