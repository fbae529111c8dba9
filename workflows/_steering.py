"""Waiting the way a release waits: hold-aware, abort-aware, gate-aware. Shared by both workflows.

Everything here is deterministic workflow code. Waits are ``workflow.wait_condition`` calls, which
cost no history events unless they carry a timeout (then one timer). A pause or a bake measured in
hours is one timer per hold, never one per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.analysis import AnalysisActivities
    from activities.models import AnalysisMode, AnalyzeInput, AnalyzeResult
    from policies.gates import Check, GateVerdict
    from workflows import _metrics, _patches, queues
    from workflows import _options as options

T = TypeVar("T")


class Interrupted(Exception):
    """Raised out of a wait when the release must stop what it is doing."""


class Aborted(Interrupted):
    """An operator aborted (or superseded) the release."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GateFailed(Interrupted):
    """A metric gate failed: the cluster must roll back."""

    def __init__(self, cluster: str, verdict: GateVerdict) -> None:
        super().__init__(f"{cluster}: {verdict.reason}")
        self.cluster = cluster
        self.verdict = verdict


class Steering:
    """Hold and abort state, and the waits that honour them."""

    def __init__(self) -> None:
        self.held = False
        self.hold_reason = ""
        self.gate_holds: dict[str, str] = {}
        """Holds placed by inconclusive gates, by cluster: lifted when data returns or by resume."""
        self.gate_failures: dict[str, str] = {}
        """Failed gates holding a release that may not roll back (``rollback.mode: freeze``), by
        cluster: lifted only by resume, after which the gate judges again from fresh data."""
        self.abort_reason: str | None = None
        self.freeze_hold = ""
        """The freezes holding the release, described; lifted only by ``unfreeze`` (never by resume)."""

    # --- state --------------------------------------------------------------------------------

    def is_held(self) -> bool:
        """An operator's hold, a freeze or an inconclusive gate stops new steps."""
        return self.held or bool(self.gate_holds) or bool(self.gate_failures) or bool(self.freeze_hold)

    def hold_text(self) -> str:
        """Why the release is held, for status and the UI."""
        reasons = [self.freeze_hold] if self.freeze_hold else []
        reasons += [self.hold_reason] if self.held else []
        reasons += [f"gate inconclusive in {c}: {r}" for c, r in sorted(self.gate_holds.items())]
        reasons += [
            f"gate failed in {c}: {r}; held, not rolled back (rollback.mode: freeze): resume judges again,"
            " abort ends the release where it stands"
            for c, r in sorted(self.gate_failures.items())
        ]
        return "; ".join(reasons)

    def interruption(self) -> Interrupted | None:
        """What stops the current activity, if anything. Subclasses add gate failures."""
        if self.abort_reason is not None:
            return Aborted(self.abort_reason)
        return None

    def raise_if_interrupted(self) -> None:
        """Raise the pending interruption, if any."""
        stop = self.interruption()
        if stop is not None:
            raise stop

    # --- waits --------------------------------------------------------------------------------

    async def until(
        self, condition: Callable[[], bool], limit: timedelta | None = None, *, summary: str = ""
    ) -> bool:
        """Wait for ``condition``; raise on interruption; return False when ``limit`` passed first.

        ``summary`` names the timer of ``limit`` in the Temporal UI's timeline ("bake 30m ring broad").
        """
        try:
            await workflow.wait_condition(
                lambda: condition() or self.interruption() is not None,
                timeout=limit,
                timeout_summary=summary or None,
            )
        except TimeoutError:
            return False
        self.raise_if_interrupted()
        return True

    async def unheld(self) -> None:
        """Return once no hold stands (raise on interruption)."""
        await self.until(lambda: not self.is_held())

    async def sleep(self, duration: timedelta, summary: str = "") -> None:
        """Sleep for ``duration``, raising early on interruption. Holds do not stop this clock."""
        if duration > timedelta(0):
            await self.until(lambda: False, limit=duration, summary=summary)

    async def held_clock_wait(self, duration: timedelta, summary: str = "") -> None:
        """Wait ``duration`` of unheld time: time held does not count toward a pause or a bake."""
        remaining = duration
        while remaining > timedelta(0):
            await self.unheld()
            started = workflow.now()
            left = f" ({remaining} left)" if remaining != duration else ""
            if not await self.until(self.is_held, limit=remaining, summary=f"{summary}{left}"):
                return
            remaining -= workflow.now() - started

    async def interruptible(self, handle: workflow.ActivityHandle[T]) -> T:
        """Await an activity, cancelling it (and waiting for the cancellation) on interruption.

        The same when the workflow itself is cancelled: the activity is cancelled and its end awaited
        before the ``CancelledError`` goes on, so the rollback that follows never races a step still
        writing to the cluster.
        """
        try:
            await workflow.wait_condition(lambda: handle.done() or self.interruption() is not None)
        except asyncio.CancelledError:
            if not handle.done() and _patches.patched("cancel-waits-for-step"):
                handle.cancel()
                with contextlib.suppress(ActivityError, asyncio.CancelledError):
                    await handle
            raise
        if handle.done():
            return await handle
        handle.cancel()
        with contextlib.suppress(ActivityError, asyncio.CancelledError):
            await handle
        self.raise_if_interrupted()
        raise AssertionError("unreachable: interruption vanished")  # pragma: no cover


class AnalysisRun:
    """One cluster's analysis across stretches: start, watch for failure, stop and conclude.

    The stretch is one long ``analyze`` activity. The workflow ends it by cancelling it, and the
    activity answers the cancellation with its final verdict. Inconclusive verdicts place a gate
    hold on ``steering`` and keep judging until data returns. With ``hold_on_failure``
    (``rollback.mode: freeze``) a failed verdict is no ending either: it holds until an operator
    resumes, then judging starts over from fresh data (the checks that failed are not counted again).

    Timed stretches (``timed``, patch ``timed-stretches``): where the workflow knows when judging
    ends (a bake, a canary's timed pause: :meth:`until`), the stretch gets that end as its deadline
    and answers at it by itself, so a promotion never waits for a cancellation, which reaches the
    activity only in a heartbeat's reply, up to about one interval late. A stretch that reached its
    deadline is followed by another only when the workflow asks for one (a later end, or judging
    until stopped) or a hold extends the wait it judged (then until stopped): the number of stretches
    does not grow with the length of the wait.
    """

    def __init__(
        self,
        steering: Steering,
        make_input: Callable[[AnalysisMode, list[Check]], AnalyzeInput],
        on_result: Callable[[AnalyzeResult], None],
        *,
        hold_on_failure: bool = False,
        timed: bool = False,
    ) -> None:
        self._steering = steering
        self._make_input = make_input
        self._on_result = on_result
        self._hold_on_failure = hold_on_failure
        self._timed = timed
        self._checks: list[Check] = []
        self._handle: workflow.ActivityHandle[AnalyzeResult] | None = None
        self._task: asyncio.Task[GateVerdict | None] | None = None
        self._stopping = False
        self._until: datetime | None = None
        """When the stretches started from now on end (None: when stopped); only when ``timed``."""
        self._stretch: AnalyzeInput | None = None
        """The input of the stretch ``_handle`` runs."""
        self._retiming = False
        self.failed: GateVerdict | None = None
        self.cluster = ""

    def start(self, until: datetime | None = None) -> None:
        """Begin judging (idempotent), until ``until`` when the run is timed."""
        if self._task is None:
            if self._timed:
                self._until = until
            self._task = asyncio.create_task(self._loop())
        else:
            self.until(until)

    def until(self, end: datetime | None) -> None:
        """Judge until ``end`` (None: until stopped) from now on; only a timed run keeps ends.

        A stretch running until stopped is ended (cancelled) and followed by one with this deadline;
        a stretch with a deadline runs to it, and is followed by one to ``end``. An end less than one
        interval after the current one is the same end: the stretch would take at most one check more.
        """
        if not self._timed or self._stopping:
            return
        current = self._until
        if end is not None and current is not None:
            interval = self._analysis_interval()
            if current <= end < current + interval:
                return
        self._until = end
        running = self._stretch
        if (
            end is not None
            and running is not None
            and running.mode == "until-stopped"
            and running.deadline is None
            and self._handle is not None
            and not self._handle.done()
        ):
            self._retiming = True
            self._handle.cancel()

    def _analysis_interval(self) -> timedelta:
        stretch = self._stretch or self._make_input("until-stopped", [])
        return stretch.analysis.interval

    def _start_stretch(self, mode: AnalysisMode) -> workflow.ActivityHandle[AnalyzeResult]:
        inp = self._make_input(mode, self._checks)
        self.cluster = inp.cluster.name
        if mode == "until-stopped" and self._until is not None and self._until > workflow.now():
            inp = inp.model_copy(update={"deadline": self._until})
        self._stretch = inp
        return workflow.start_activity_method(
            AnalysisActivities.analyze,
            inp,
            summary=f"analyze {inp.stage} in {inp.cluster.name} ({mode})",
            task_queue=queues.analysis_queue(workflow.info().task_queue),
            **options.analyze(inp.analysis, timed=inp.deadline is not None),
        )

    def _record(self, result: AnalyzeResult) -> None:
        self._checks = list(result.checks)
        _metrics.gate_verdict(result.verdict.metric, result.verdict.status)
        self._on_result(result)

    async def _loop(self) -> GateVerdict | None:
        mode: AnalysisMode = "until-stopped"
        while True:
            self._handle = self._start_stretch(mode)
            try:
                result = await self._handle
            except ActivityError:
                # Cancelled between attempts: no verdict from this stretch.
                if self._retimed():
                    mode = "until-stopped"
                    continue
                return None
            except asyncio.CancelledError:
                # stop() cancelled a stretch whose result had just arrived, unseen: the SDK then raises
                # CancelledError instead of returning it. Without this the whole cluster read it as the
                # release being cancelled; with it, stop() judges again from the checks it has.
                if self._retimed():
                    mode = "until-stopped"
                    continue
                if _patches.patched("analysis-stop-race"):
                    return None
                raise
            self._record(result)
            retimed = self._retimed()
            verdict = result.verdict
            if verdict.status == "failed":
                self._steering.gate_holds.pop(self.cluster, None)
                if self._hold_on_failure:
                    await self._held_by_failure(verdict)
                    if self._stopping or self._steering.abort_reason is not None:
                        return None
                    mode = "until-stopped"
                    continue
                self.failed = verdict
                return verdict
            if self._stopping:
                return verdict
            if retimed:
                # Ended by until() to start one with a deadline: its final verdict decides nothing.
                mode = "until-stopped"
                continue
            if result.deadline_reached:
                # What comes next is the workflow's to say: a stop (the usual end, awaiting no
                # cancellation), another end, or a hold that extends the wait: judge on until stopped.
                await workflow.wait_condition(self._after(self._stretch.deadline if self._stretch else None))
                if self._stopping:
                    return verdict
                mode = "until-stopped"
                continue
            if verdict.status == "inconclusive":
                self._steering.gate_holds[self.cluster] = verdict.reason
                mode = "until-recovered"
                continue
            # A recovered stretch: data is back, lift the gate hold and judge on.
            self._steering.gate_holds.pop(self.cluster, None)
            mode = "until-stopped"

    async def stop(self) -> GateVerdict:
        """End the stretch and return the verdict that decides promotion: ``passed`` or ``failed``.

        Too few judged checks at the stop means judging goes on until ``minDataPoints`` are in. An
        inconclusive verdict (errors, no data) holds until data returns, or until an operator
        resumes, which accepts the verdict as it stands and lets the release go on.
        """
        if self.failed is not None:
            return self.failed
        verdict: GateVerdict | None = None
        if self._task is not None:
            self._stopping = True
            if self._handle is not None and not self._handle.done() and not self._answering():
                self._handle.cancel()
            if self._timed:
                # A cancellation can take an interval to reach the stretch: an abort or a failed gate
                # meanwhile must not wait for it (the caller's rollback abandons the stretch).
                task = self._task
                await self._steering.until(task.done)
            verdict = await self._task
        while True:
            while verdict is None or verdict.status not in ("passed", "failed"):
                result = await self._steering.interruptible(self._start_stretch("until-enough"))
                self._record(result)
                verdict = result.verdict
                if verdict.status == "inconclusive":
                    self._steering.gate_holds[self.cluster] = verdict.reason
                    if await self._wait_recovery(self._start_stretch("until-recovered")):
                        return verdict
                    verdict = None
            if verdict.status == "failed" and self._hold_on_failure:
                self._steering.gate_holds.pop(self.cluster, None)
                await self._held_by_failure(verdict)
                self._steering.raise_if_interrupted()
                verdict = None
                continue
            break
        self._steering.gate_holds.pop(self.cluster, None)
        if verdict.status == "failed":
            self.failed = verdict
        return verdict

    def _after(self, ended: datetime | None) -> Callable[[], bool]:
        """When a stretch that reached its deadline (``ended``) is followed: see :meth:`_loop`."""
        return lambda: self._stopping or self._until != ended or self._steering.is_held()

    def _answering(self) -> bool:
        """The running stretch's deadline has come: it answers by itself, no cancellation needed
        (which would reach it only with a heartbeat's reply, up to an interval later)."""
        stretch = self._stretch
        return stretch is not None and stretch.deadline is not None and stretch.deadline <= workflow.now()

    def _retimed(self) -> bool:
        """Whether the stretch just ended was cancelled by :meth:`until` (and forget it)."""
        retimed, self._retiming = self._retiming, False
        return retimed and not self._stopping

    async def _held_by_failure(self, verdict: GateVerdict) -> None:
        """Hold on a failed verdict until an operator resumes (or the release aborts), then forget
        the checks, so judging starts over from what the fixed version does."""
        self._steering.gate_failures[self.cluster] = verdict.reason
        workflow.logger.warning(
            "gate failed in %s and rollback.mode is freeze: held, not rolled back: %s",
            self.cluster,
            verdict.reason,
        )
        await workflow.wait_condition(
            lambda: (
                self.cluster not in self._steering.gate_failures or self._steering.abort_reason is not None
            )
        )
        self._steering.gate_failures.pop(self.cluster, None)
        self._checks = []

    async def _wait_recovery(self, handle: workflow.ActivityHandle[AnalyzeResult]) -> bool:
        """Wait until data returns (False) or an operator resumes (True), whichever comes first."""
        try:
            await self._steering.until(lambda: handle.done() or self.cluster not in self._steering.gate_holds)
        finally:
            if not handle.done():
                handle.cancel()
            with contextlib.suppress(ActivityError, asyncio.CancelledError):
                self._record(await handle)
        resumed = self.cluster not in self._steering.gate_holds
        self._steering.gate_holds.pop(self.cluster, None)
        return resumed

    def abandon(self) -> None:
        """Stop judging without a verdict and without waiting for the stretch to acknowledge it.

        What a rollback does: it starts at once, while the stretch's cancellation travels to the
        analysis worker (which may be slow, busy or gone).
        """
        self._stopping = True
        if self._handle is not None and not self._handle.done():
            self._handle.cancel()
        self._steering.gate_holds.pop(self.cluster, None)
        self._steering.gate_failures.pop(self.cluster, None)

    async def cancel(self) -> None:
        """Stop judging without a verdict, and wait until the stretch has ended."""
        self._stopping = True
        if self._handle is not None and not self._handle.done():
            self._handle.cancel()
        if self._task is not None:
            with contextlib.suppress(ActivityError, asyncio.CancelledError):
                await self._task
        self._steering.gate_holds.pop(self.cluster, None)
        self._steering.gate_failures.pop(self.cluster, None)
