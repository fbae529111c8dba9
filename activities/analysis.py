"""The analysis activity: judge one cluster over one stretch (canary steps, a preview, a bake).

One activity per stretch, looping inside and heartbeating, so history stays flat however long the
stretch runs (a timer per poll would add about 11 events a poll). Each check's measurements go into
the heartbeat details: ``ringmaster status`` reads them while the stretch runs, and a retried attempt
resumes from them instead of starting the count again. Providers measure, :mod:`policies.gates`
judges; a failed query is a measurement error, never an activity failure.

How a stretch ends: the workflow cancels it, and only that cancellation is answered with the final
verdict. A worker shutting down is not an answer: as soon as the worker begins its shutdown the
stretch heartbeats its checks and fails retryably (``WorkerShutdown``), and another worker resumes
it from that heartbeat. While the metrics are queried (a baseline metric makes two queries, each up
to the Prometheus timeout) a side task keeps heartbeating, so a slow Prometheus becomes recorded
errors, never a heartbeat timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from temporalio import activity

from activities import errors
from activities.models import AnalyzeInput, AnalyzeProgress, AnalyzeResult
from policies import gates
from policies.gates import Check, GateVerdict, Measurement

RETAINED_CHECKS = 10
"""Checks kept in results and heartbeats, as Argo's measurementRetention (the series stays in Prometheus)."""


class MetricsSource(Protocol):
    """Runs every metric of an analysis once for one cluster."""

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        """One measurement per metric; errors and missing data are values, never exceptions."""
        ...


class Clock(Protocol):
    """Wall time and sleeping, injectable so tests can run long stretches quickly."""

    def now(self) -> datetime:
        """The current instant (timezone-aware)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep; cancellation must interrupt it."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current UTC instant."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


HEARTBEAT_TIMEOUT_FLOOR = timedelta(seconds=15)
"""The shortest heartbeat timeout of a stretch: longer than one Prometheus query may take (the
worker's ``prometheus_timeout_seconds`` is bounded below it), so even a query that blocked the
heartbeat would not time the stretch out."""

HEARTBEAT_TIMEOUT_CEILING = timedelta(seconds=30)
"""The longest: a lost worker is noticed, and its stretch resumed elsewhere, within this."""


def heartbeat_timeout(interval: timedelta) -> timedelta:
    """How long the server waits for a heartbeat before it retries the stretch elsewhere."""
    return max(HEARTBEAT_TIMEOUT_FLOOR, min(HEARTBEAT_TIMEOUT_CEILING, 3 * interval))


def heartbeat_every(interval: timedelta) -> float:
    """Seconds between a stretch's heartbeats: three per heartbeat timeout."""
    return heartbeat_timeout(interval).total_seconds() / 3


def _judged(check: Check) -> bool:
    return any(m.error is None and m.value is not None for m in check.measurements)


@dataclass
class _Stretch:
    """Where a stretch stands: what it heartbeats, and what it answers with."""

    inp: AnalyzeInput
    checks: list[Check]
    total: int
    verdict: GateVerdict

    def heartbeat(self) -> None:
        activity.heartbeat(
            AnalyzeProgress(
                cluster=self.inp.cluster.name,
                stage=self.inp.stage,
                checks=self.checks,
                total_checks=self.total,
                verdict=self.verdict,
            )
        )

    def result(self, verdict: GateVerdict) -> AnalyzeResult:
        return AnalyzeResult(
            cluster=self.inp.cluster.name,
            stage=self.inp.stage,
            verdict=verdict,
            checks=self.checks[-RETAINED_CHECKS:],
            total_checks=self.total,
        )


async def _stop(task: asyncio.Task[AnalyzeResult]) -> None:
    task.cancel()
    await asyncio.wait([task])


class AnalysisActivities:
    """The ``analyze`` activity over a metrics source."""

    def __init__(self, source: MetricsSource, clock: Clock | None = None) -> None:
        self._source = source
        self._clock: Clock = clock or SystemClock()

    @activity.defn(name="analyze")
    async def analyze(self, inp: AnalyzeInput) -> AnalyzeResult:
        """Check every interval until the verdict is decided, the mode's condition holds, or a stop."""
        checks = list(inp.prior_checks)
        total = len(checks)
        resumed = activity.info().heartbeat_details
        if resumed:
            # The SDK hands details over without a type hint (a dict after a real retry); the model
            # decodes either that or an AnalyzeProgress given directly.
            progress = AnalyzeProgress.model_validate(resumed[0])
            checks, total = list(progress.checks), progress.total_checks
        stretch = _Stretch(inp, checks, total, gates.judge(inp.analysis, checks, final=False))
        judging = asyncio.create_task(self._judge(stretch, first=not resumed and not inp.prior_checks))
        shutdown = asyncio.create_task(activity.wait_for_worker_shutdown())
        try:
            await asyncio.wait([judging, shutdown], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _stop(judging)
            if errors.worker_shut_down():
                stretch.heartbeat()
                raise errors.worker_shutdown_error() from None
            details = activity.cancellation_details()
            if details is not None and not details.cancel_requested:
                raise  # timed out, paused or reset: not the workflow ending the stretch
            # The workflow ends the stretch by cancelling: answer with the final verdict instead of
            # failing, so the promotion decision is made on every check taken.
            return stretch.result(gates.judge(inp.analysis, stretch.checks, final=True))
        finally:
            shutdown.cancel()
        if judging.done():
            return judging.result()
        # The worker is shutting down: hand the stretch over with its checks instead of waiting out
        # the graceful period (a stretch outlasts it) and being cancelled into a verdict.
        await _stop(judging)
        stretch.heartbeat()
        raise errors.worker_shutdown_error()

    async def _judge(self, stretch: _Stretch, *, first: bool) -> AnalyzeResult:
        inp = stretch.inp
        interval = inp.analysis.interval.total_seconds()
        beat = heartbeat_every(inp.analysis.interval)
        recovered_from = stretch.total
        if first:
            await self._initial_delay(stretch, beat)
        while True:
            at = self._clock.now()
            measurements = await self._measure(stretch, at, beat)
            stretch.checks.append(Check(at=at, measurements=measurements))
            stretch.total += 1
            stretch.checks = stretch.checks[-self._retained(inp) :]
            checks = stretch.checks
            verdict = stretch.verdict = gates.judge(inp.analysis, checks, final=False)
            stretch.heartbeat()
            # Waiting for data to return, an inconclusive verdict is the state being waited out, not
            # an answer: returning on it would start a new stretch (and add history) every interval.
            waiting = inp.mode == "until-recovered" and verdict.status == "inconclusive"
            if verdict.status in ("failed", "inconclusive") and not waiting:
                return stretch.result(verdict)
            if inp.mode == "until-enough" and self._enough(inp, checks):
                return stretch.result(gates.judge(inp.analysis, checks, final=True))
            if inp.mode == "until-recovered" and stretch.total > recovered_from and _judged(checks[-1]):
                return stretch.result(verdict)
            slept = 0.0
            while slept < interval:
                step = min(beat, interval - slept)
                await self._clock.sleep(step)
                slept += step
                stretch.heartbeat()

    async def _measure(self, stretch: _Stretch, at: datetime, beat: float) -> list[Measurement]:
        """Query every metric, heartbeating from a side task meanwhile (queries may take seconds)."""

        async def pulse() -> None:
            while True:
                await asyncio.sleep(beat)  # real time: a liveness signal, whatever the injected clock
                stretch.heartbeat()

        pulsing = asyncio.create_task(pulse())
        try:
            return await self._source.measure(stretch.inp, at)
        finally:
            pulsing.cancel()

    async def _initial_delay(self, stretch: _Stretch, beat: float) -> None:
        """Heartbeat through ``initialDelay`` before a stretch's first check."""
        remaining = stretch.inp.analysis.initial_delay.total_seconds()
        while remaining > 0:
            step = min(beat, remaining)
            await self._clock.sleep(step)
            remaining -= step
            stretch.heartbeat()

    @staticmethod
    def _retained(inp: AnalyzeInput) -> int:
        a = inp.analysis
        return max(RETAINED_CHECKS, a.threshold, a.consecutive_error_limit, a.min_data_points)

    @staticmethod
    def _enough(inp: AnalyzeInput, checks: list[Check]) -> bool:
        return sum(1 for c in checks if _judged(c)) >= inp.analysis.min_data_points
