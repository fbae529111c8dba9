"""The analysis activity: judge one cluster over one stretch (canary steps, a preview, a bake).

One activity per stretch, looping inside and heartbeating, so history stays flat however long the
stretch runs (a timer per poll would add about 11 events a poll). Each check's measurements go into
the heartbeat details: ``ringmaster status`` reads them while the stretch runs, and a retried attempt
resumes from them instead of starting the count again. Providers measure, :mod:`policies.gates`
judges; a failed query is a measurement error, never an activity failure.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

from temporalio import activity

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


def heartbeat_timeout(interval: timedelta) -> timedelta:
    """How long the server waits for a heartbeat before it retries the stretch elsewhere."""
    return max(timedelta(seconds=5), min(timedelta(seconds=30), 3 * interval))


def _judged(check: Check) -> bool:
    return any(m.error is None and m.value is not None for m in check.measurements)


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
        verdict = gates.judge(inp.analysis, checks, final=False)
        interval = inp.analysis.interval.total_seconds()
        beat = heartbeat_timeout(inp.analysis.interval).total_seconds() / 3
        recovered_from = total
        try:
            if not resumed and not inp.prior_checks:
                await self._initial_delay(inp, checks, total, verdict, beat)
            while True:
                at = self._clock.now()
                checks.append(Check(at=at, measurements=await self._source.measure(inp, at)))
                total += 1
                checks = checks[-self._retained(inp) :]
                verdict = gates.judge(inp.analysis, checks, final=False)
                self._heartbeat(inp, checks, total, verdict)
                # Waiting for data to return, an inconclusive verdict is the state being waited out, not
                # an answer: returning on it would start a new stretch (and add history) every interval.
                waiting = inp.mode == "until-recovered" and verdict.status == "inconclusive"
                if verdict.status in ("failed", "inconclusive") and not waiting:
                    return self._result(inp, checks, total, verdict)
                if inp.mode == "until-enough" and self._enough(inp, checks):
                    return self._result(inp, checks, total, gates.judge(inp.analysis, checks, final=True))
                if inp.mode == "until-recovered" and total > recovered_from and _judged(checks[-1]):
                    return self._result(inp, checks, total, verdict)
                slept = 0.0
                while slept < interval:
                    step = min(beat, interval - slept)
                    await self._clock.sleep(step)
                    slept += step
                    self._heartbeat(inp, checks, total, verdict)
        except asyncio.CancelledError:
            # The workflow ends the stretch by cancelling: answer with the final verdict instead of
            # failing, so the promotion decision is made on every check taken.
            return self._result(inp, checks, total, gates.judge(inp.analysis, checks, final=True))

    async def _initial_delay(
        self, inp: AnalyzeInput, checks: list[Check], total: int, verdict: GateVerdict, beat: float
    ) -> None:
        """Heartbeat through ``initialDelay`` before a stretch's first check."""
        remaining = inp.analysis.initial_delay.total_seconds()
        while remaining > 0:
            step = min(beat, remaining)
            await self._clock.sleep(step)
            remaining -= step
            self._heartbeat(inp, checks, total, verdict)

    @staticmethod
    def _retained(inp: AnalyzeInput) -> int:
        a = inp.analysis
        return max(RETAINED_CHECKS, a.threshold, a.consecutive_error_limit, a.min_data_points)

    @staticmethod
    def _enough(inp: AnalyzeInput, checks: list[Check]) -> bool:
        return sum(1 for c in checks if _judged(c)) >= inp.analysis.min_data_points

    @staticmethod
    def _heartbeat(inp: AnalyzeInput, checks: list[Check], total: int, verdict: GateVerdict) -> None:
        progress = AnalyzeProgress(
            cluster=inp.cluster.name, stage=inp.stage, checks=checks, total_checks=total, verdict=verdict
        )
        activity.heartbeat(progress)

    @staticmethod
    def _result(inp: AnalyzeInput, checks: list[Check], total: int, verdict: GateVerdict) -> AnalyzeResult:
        return AnalyzeResult(
            cluster=inp.cluster.name,
            stage=inp.stage,
            verdict=verdict,
            checks=checks[-RETAINED_CHECKS:],
            total_checks=total,
        )
