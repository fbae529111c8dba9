"""The analysis activity: judge one cluster over one stretch (canary steps, a preview, a bake).

One activity per stretch, looping inside and heartbeating, so history stays flat however long the
stretch runs (a timer per poll would add about 11 events a poll). Each check's measurements go into
the heartbeat details: ``ringmaster status`` reads them while the stretch runs, and a retried attempt
resumes from them instead of starting the count again. Providers measure, :mod:`policies.gates`
judges; a failed query is a measurement error, never an activity failure.

How a stretch ends: at its ``deadline`` when the workflow knows when the stretch ends (a bake, a
canary's timed pause), or when the workflow cancels it; both are answered with the final verdict.
A cancellation reaches the activity only in a heartbeat's reply, and heartbeats reach the server at
most once per interval (each is billable on Temporal Cloud: see :func:`heartbeat_timeout`), so a
deadline spares a promotion that wait. A worker shutting down is not an answer: as soon as the
worker begins its shutdown the stretch heartbeats its checks and fails retryably
(``WorkerShutdown``), and another worker resumes it from that heartbeat. While the metrics are
queried (a baseline metric makes two queries, each up to the Prometheus timeout) a side task keeps
heartbeating, so a slow Prometheus becomes recorded errors, never a heartbeat timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from temporalio import activity

from activities import errors
from activities.models import AnalyzeInput, AnalyzeProgress, AnalyzeResult
from policies import gates, messages
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

HEARTBEAT_TIMEOUT_PER_INTERVAL = 1.25
"""A stretch's heartbeat timeout in analysis intervals: the SDK sends an activity's heartbeats to the
server at most once per 0.8 x its heartbeat timeout (when the worker's own throttle, the analysis
worker's ``analysis_heartbeat_throttle_seconds``, is longer), so 1.25 intervals make that once per
interval."""

HEARTBEAT_TIMEOUT_PER_INTERVAL_TIMED = 2.5
"""The same for a stretch with a deadline (a bake, a timed pause): two heartbeats fewer in every
five intervals. Nothing waits on such a stretch's cancellation (it answers at its deadline, and a
rollback abandons it), so its heartbeats only show that its worker lives: a lost analysis worker
is noticed after about 2.5 intervals, and the retried stretch resumes from checks at most two
intervals old."""

HEARTBEAT_THROTTLE_SHARE = 0.8
"""The share of an activity's heartbeat timeout the SDK waits between two heartbeats it sends."""


def heartbeat_timeout(interval: timedelta, *, timed: bool = False) -> timedelta:
    """How long the server waits for a heartbeat before it retries the stretch elsewhere.

    ``max(15 s, 1.25 x interval)``, so the heartbeats that reach the server are at most one per
    interval (at most one per 12 s under the floor). The trade: a lost analysis worker is noticed
    after about 1.25 intervals, and a stretch ended by cancellation learns of it up to about one
    interval (at least 12 s) late; a rollback never waits for that (``AnalysisRun.abandon``) and a
    promotion does only where the workflow cannot give the stretch a deadline.
    """
    share = HEARTBEAT_TIMEOUT_PER_INTERVAL_TIMED if timed else HEARTBEAT_TIMEOUT_PER_INTERVAL
    return max(HEARTBEAT_TIMEOUT_FLOOR, share * interval)


def heartbeat_throttle(interval: timedelta, *, timed: bool = False) -> timedelta:
    """The least time between two heartbeats the SDK sends to the server for a stretch (given the
    analysis worker's throttle is longer): at least ``interval``."""
    return HEARTBEAT_THROTTLE_SHARE * heartbeat_timeout(interval, timed=timed)


def heartbeat_every(interval: timedelta, *, timed: bool = False) -> float:
    """Seconds between a stretch's heartbeat calls while it waits or measures: once per throttle
    window (the SDK would hold back more), well inside the heartbeat timeout."""
    return heartbeat_throttle(interval, timed=timed).total_seconds()


def _judged(check: Check) -> bool:
    return any(m.error is None and m.value is not None for m in check.measurements)


def _outcomes(inp: AnalyzeInput, check: Check) -> list[str]:
    given = {m.metric: m for m in check.measurements}
    return [gates.assess(metric, given.get(metric.name)).outcome for metric in inp.analysis.metrics]


def _complete(inp: AnalyzeInput, check: Check) -> bool:
    """Every metric of the check has data (a value it passes or fails on)."""
    return all(o in ("pass", "fail") for o in _outcomes(inp, check))


def _gap(inp: AnalyzeInput, check: Check) -> bool:
    """A check some metric had no data or an error in, and none failed: it says nothing once the data
    is back. (With one metric measured and another without data, a stretch waiting for data used to
    return at once, and the verdict, still decided by that run of empty checks, was inconclusive
    again: stretches in a loop without an interval between them, seen in e2e under load.)"""
    outcomes = _outcomes(inp, check)
    return "fail" not in outcomes and any(o in ("nodata", "error") for o in outcomes)


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

    def result(self, verdict: GateVerdict, *, deadline_reached: bool = False) -> AnalyzeResult:
        return AnalyzeResult(
            cluster=self.inp.cluster.name,
            stage=self.inp.stage,
            verdict=verdict,
            checks=self.checks[-RETAINED_CHECKS:],
            total_checks=self.total,
            deadline_reached=deadline_reached,
        )

    def final(self) -> AnalyzeResult:
        """The answer at the stretch's deadline: the final verdict, as at a stop by cancellation."""
        return self.result(gates.judge(self.inp.analysis, self.checks, final=True), deadline_reached=True)


def _without_flag_metrics(inp: AnalyzeInput) -> AnalyzeInput:
    """Outside a ``flag`` stage (code stages, bakes) a flag metric cannot be filled (no flag side to
    ask for): it is not run, and the other metrics judge the version. Kept when no other metric is
    left, so such an analysis still says why it cannot measure rather than pass with nothing."""
    if inp.feature is not None:
        return inp
    kept = [m for m in inp.analysis.metrics if not gates.is_flag_metric(m.query)]
    if not kept or len(kept) == len(inp.analysis.metrics):
        return inp
    return inp.model_copy(update={"analysis": inp.analysis.model_copy(update={"metrics": kept})})


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
        inp = _without_flag_metrics(inp)
        checks = list(inp.prior_checks)
        total = len(checks)
        resumed = activity.info().heartbeat_details
        if resumed:
            # The SDK hands details over without a type hint (a dict after a real retry); the model
            # decodes either that or an AnalyzeProgress given directly.
            progress = messages.decode(AnalyzeProgress, resumed[0])
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
        beat = heartbeat_every(inp.analysis.interval, timed=inp.deadline is not None)
        recovered_from = stretch.total
        if first and not await self._wait(stretch, inp.analysis.initial_delay.total_seconds(), beat):
            return stretch.final()
        while True:
            if self._left(inp) == 0:
                return stretch.final()
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
            if (
                inp.mode == "until-recovered"
                and stretch.total > recovered_from
                and _complete(inp, checks[-1])
            ):
                # Judging goes on from the data that came back: the checks without it would keep the
                # verdict inconclusive (a run of them decides it) long after the data returned.
                stretch.checks = [c for c in checks if not _gap(inp, c)]
                return stretch.result(gates.judge(inp.analysis, stretch.checks, final=False))
            if not await self._wait(stretch, interval, beat):
                return stretch.final()

    async def _wait(self, stretch: _Stretch, seconds: float, beat: float) -> bool:
        """Sleep ``seconds`` (the initial delay, or until the next check), heartbeating every ``beat``;
        False when the stretch's deadline came first."""
        slept = 0.0
        while slept < seconds:
            step = min(beat, seconds - slept)
            left = self._left(stretch.inp)
            if left is not None:
                if left == 0:
                    return False
                step = min(step, left)
            await self._clock.sleep(step)
            slept += step
            stretch.heartbeat()
        return self._left(stretch.inp) != 0

    def _left(self, inp: AnalyzeInput) -> float | None:
        """Seconds until the stretch's deadline (0 once reached), None without one."""
        if inp.deadline is None:
            return None
        return max(0.0, (inp.deadline - self._clock.now()).total_seconds())

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

    @staticmethod
    def _retained(inp: AnalyzeInput) -> int:
        a = inp.analysis
        return max(RETAINED_CHECKS, a.threshold, a.consecutive_error_limit, a.min_data_points)

    @staticmethod
    def _enough(inp: AnalyzeInput, checks: list[Check]) -> bool:
        return sum(1 for c in checks if _judged(c)) >= inp.analysis.min_data_points
