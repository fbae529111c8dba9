"""The analysis loop itself, with an injected clock: when checks happen and how a stretch ends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import analysis, errors
from activities.analysis import AnalysisActivities
from activities.models import AnalyzeInput, AnalyzeProgress, ClusterTarget, ReleaseRef
from policies.gates import Measurement
from policies.plan import Analysis, Metric, ThresholdRange
from ringmaster.converter import data_converter
from tests.support.waiting import assert_eventually


class SteppedClock:
    """A clock that moves only when the activity sleeps."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class RecordingSource:
    """Good values, remembering when each check was taken."""

    def __init__(self) -> None:
        self.taken: list[datetime] = []

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        self.taken.append(at)
        return [Measurement(metric="ok", value=100.0)]


def _input(**analysis: object) -> AnalyzeInput:
    return AnalyzeInput(
        release=ReleaseRef(service="api", version="v2", image="r/api:v2"),
        cluster=ClusterTarget(name="euw1-prod", region="eu-west-1", jurisdiction="EU"),
        analysis=Analysis.model_validate(
            {
                "interval": "10s",
                "minDataPoints": 2,
                "metrics": [Metric(name="ok", query="up", threshold_range=ThresholdRange(min=99))],
                **analysis,
            }
        ),
        stage="canary",
        mode="until-enough",
    )


async def _retried_after_two_checks(clock: SteppedClock, source: RecordingSource) -> ActivityEnvironment:
    """An environment for a retried attempt, given (as JSON, like a real retry) the last heartbeat of a
    first attempt that took two checks; ``source`` forgets the first attempt's checks."""
    beats: list[AnalyzeProgress] = []
    first = ActivityEnvironment()
    first.on_heartbeat = lambda *details: beats.append(details[0])
    await first.run(AnalysisActivities(source, clock).analyze, _input(minDataPoints=2))
    sent = json.loads(data_converter.payload_converter.to_payload(beats[-1]).data)
    source.taken.clear()
    retried = ActivityEnvironment()
    retried.info = dataclasses.replace(retried.info, heartbeat_details=[sent])
    return retried


class TestInitialDelay:
    async def test_the_first_check_waits_for_the_initial_delay(self):
        """initialDelay 45s: the first check is 45s after the stretch starts, then one every interval."""
        clock, source = SteppedClock(), RecordingSource()
        start = clock.at
        result = await ActivityEnvironment().run(
            AnalysisActivities(source, clock).analyze, _input(initialDelay="45s")
        )
        assert result.verdict.status == "passed"
        assert [t - start for t in source.taken] == [timedelta(seconds=45), timedelta(seconds=55)]

    async def test_without_an_initial_delay_the_first_check_is_immediate(self):
        """The default: check at once."""
        clock, source = SteppedClock(), RecordingSource()
        start = clock.at
        await ActivityEnvironment().run(AnalysisActivities(source, clock).analyze, _input())
        assert source.taken[0] == start

    async def test_a_continued_stretch_does_not_wait_again(self):
        """A stretch that carries checks over (after a stop without enough data) checks at once."""
        clock, source = SteppedClock(), RecordingSource()
        first = await ActivityEnvironment().run(
            AnalysisActivities(source, clock).analyze, _input(initialDelay="45s", minDataPoints=1)
        )
        source.taken.clear()
        start = clock.at
        carried = _input(initialDelay="45s").model_copy(update={"prior_checks": first.checks})
        await ActivityEnvironment().run(AnalysisActivities(source, clock).analyze, carried)
        assert source.taken[0] == start


class TestHeartbeat:
    async def test_every_heartbeat_is_the_progress_model(self):
        """Each heartbeat carries one AnalyzeProgress with the cluster, stage and checks taken so far."""
        beats: list[Any] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: beats.append(details)
        clock, source = SteppedClock(), RecordingSource()
        await env.run(AnalysisActivities(source, clock).analyze, _input(minDataPoints=3))
        assert beats and all(len(b) == 1 and isinstance(b[0], AnalyzeProgress) for b in beats)
        last = beats[-1][0]
        assert (last.cluster, last.stage, last.total_checks) == ("euw1-prod", "canary", 3)
        assert [c.at for c in last.checks] == source.taken

    async def test_a_retried_attempt_resumes_from_the_heartbeated_progress(self):
        """An attempt given the previous attempt's heartbeat (as JSON, like a real retry) keeps counting."""
        clock, source = SteppedClock(), RecordingSource()
        retried = await _retried_after_two_checks(clock, source)
        result = await retried.run(AnalysisActivities(source, clock).analyze, _input(minDataPoints=3))
        assert result.total_checks == 3, "two checks carried over, one taken by this attempt"
        assert len(source.taken) == 1


class YieldingClock(SteppedClock):
    """A stepped clock whose sleeps let other tasks run, for stretches that run until stopped."""

    async def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class SlowSource(RecordingSource):
    """Good values, each check taking ``seconds`` of real time (a slow Prometheus)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        await asyncio.sleep(self.seconds)
        return await super().measure(inp, at)


async def _stretch_until(env: ActivityEnvironment, source: RecordingSource, checks: int) -> asyncio.Task[Any]:
    """An until-stopped stretch running in ``env``, once it has taken ``checks`` checks."""
    stretch = _input().model_copy(update={"mode": "until-stopped"})
    running = asyncio.create_task(env.run(AnalysisActivities(source, YieldingClock()).analyze, stretch))

    async def taken() -> int:
        return len(source.taken)

    await assert_eventually(taken, lambda n: n >= checks, every=0.01, what=f"{checks} checks")
    return running


class TestHowAStretchEnds:
    async def test_the_workflow_cancelling_gets_the_final_verdict(self):
        """A cancellation the workflow requested is answered with the verdict on every check."""
        env, source = ActivityEnvironment(), RecordingSource()
        running = await _stretch_until(env, source, 3)
        env.cancel(ActivityCancellationDetails(cancel_requested=True))
        result = await running
        assert result.verdict.status == "passed"
        assert result.total_checks == len(source.taken)

    async def test_a_worker_shutdown_hands_the_stretch_over_with_its_checks(self):
        """The worker's shutdown is no answer: the stretch fails retryably, its checks heartbeated."""
        beats: list[Any] = []
        env, source = ActivityEnvironment(), RecordingSource()
        env.on_heartbeat = lambda *details: beats.append(details[0])
        running = await _stretch_until(env, source, 3)
        env.worker_shutdown()
        with pytest.raises(ApplicationError) as failed:
            await running
        assert failed.value.type == errors.WORKER_SHUTDOWN and not failed.value.non_retryable
        assert beats[-1].total_checks == len(source.taken)

    async def test_a_cancellation_for_a_worker_shutdown_is_no_verdict_either(self):
        """Cancelled by the SDK after the graceful period of a shutdown: a retryable failure too."""
        env, source = ActivityEnvironment(), RecordingSource()
        running = await _stretch_until(env, source, 2)
        env.cancel(ActivityCancellationDetails(worker_shutdown=True))
        with pytest.raises(ApplicationError) as failed:
            await running
        assert failed.value.type == errors.WORKER_SHUTDOWN

    async def test_a_slow_query_does_not_stop_the_heartbeat(self, monkeypatch: pytest.MonkeyPatch):
        """While one check's queries take longer than a heartbeat period, heartbeats keep flowing."""
        monkeypatch.setattr(analysis, "heartbeat_every", lambda *_, **__: 0.05)
        beats: list[Any] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: beats.append(details)
        source = SlowSource(seconds=60)
        running = asyncio.create_task(env.run(AnalysisActivities(source, YieldingClock()).analyze, _input()))

        async def heartbeats() -> int:
            return len(beats)

        await assert_eventually(heartbeats, lambda n: n >= 3, what="heartbeats during the first check")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        assert not source.taken, "the heartbeats came while the first check was still unanswered"


class FailingSource(RecordingSource):
    """Bad values from the ``after``-th check on."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        await super().measure(inp, at)
        value = 50.0 if len(self.taken) > self.after else 100.0
        return [Measurement(metric="ok", value=value)]


class TestDeadline:
    async def test_a_stretch_ends_itself_at_its_deadline_with_the_final_verdict(self):
        """Until stopped, with a deadline 35s away at a 10s interval: checks at 0, 10, 20 and 30s, then
        at 35s the answer a stop by cancellation gives (the final verdict), without a cancellation."""
        clock, source = SteppedClock(), RecordingSource()
        start = clock.at
        stretch = _input().model_copy(
            update={"mode": "until-stopped", "deadline": start + timedelta(seconds=35)}
        )
        result = await ActivityEnvironment().run(AnalysisActivities(source, clock).analyze, stretch)
        assert result.deadline_reached
        assert result.verdict.status == "passed", "judged final, as at a stop"
        assert clock.at == start + timedelta(seconds=35)
        assert [int((t - start).total_seconds()) for t in source.taken] == [0, 10, 20, 30]
        assert result.total_checks == 4

    async def test_too_few_checks_at_the_deadline_are_inconclusive_as_at_a_stop(self):
        """An initial delay past the deadline: no check taken, the final verdict says so."""
        clock, source = SteppedClock(), RecordingSource()
        stretch = _input(initialDelay="1m").model_copy(
            update={"mode": "until-stopped", "deadline": clock.at + timedelta(seconds=20)}
        )
        result = await ActivityEnvironment().run(AnalysisActivities(source, clock).analyze, stretch)
        assert result.deadline_reached and result.verdict.status == "inconclusive"
        assert not source.taken

    async def test_a_failing_gate_answers_at_once_not_at_the_deadline(self):
        """The deadline never delays a failure: the stretch answers on the failing check."""
        clock, source = SteppedClock(), FailingSource(after=2)
        start = clock.at
        stretch = _input().model_copy(
            update={"mode": "until-stopped", "deadline": start + timedelta(hours=4)}
        )
        result = await ActivityEnvironment().run(AnalysisActivities(source, clock).analyze, stretch)
        assert result.verdict.status == "failed" and not result.deadline_reached
        assert clock.at == start + timedelta(seconds=20), "the third check failed, hours before the deadline"

    async def test_an_attempt_started_after_its_deadline_answers_from_its_heartbeated_checks(self):
        """A stretch retried after its deadline (its worker was lost) answers at once from the checks
        the lost attempt heartbeated, taking none."""
        clock, source = SteppedClock(), RecordingSource()
        retried = await _retried_after_two_checks(clock, source)
        late = _input().model_copy(
            update={"mode": "until-stopped", "deadline": clock.at - timedelta(seconds=1)}
        )
        result = await retried.run(AnalysisActivities(source, clock).analyze, late)
        assert result.deadline_reached and result.verdict.status == "passed"
        assert result.total_checks == 2 and not source.taken


class HalfSource(RecordingSource):
    """``ok`` always measured; ``gone`` without data until the ``back``-th check."""

    def __init__(self, back: int) -> None:
        super().__init__()
        self.back = back

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        await super().measure(inp, at)
        gone = 100.0 if len(self.taken) >= self.back else None
        return [Measurement(metric="ok", value=100.0), Measurement(metric="gone", value=gone)]


class TestWaitingForData:
    async def test_a_stretch_waiting_for_data_waits_for_every_metric_not_just_one(self):
        """While one metric has data and another none, the verdict is still inconclusive: the stretch
        keeps checking once an interval, returns only once the missing metric is back, and leaves the
        empty checks behind."""
        clock, source = SteppedClock(), HalfSource(back=4)
        metrics = [
            Metric(name="ok", query="up", threshold_range=ThresholdRange(min=99)),
            Metric(name="gone", query="up", threshold_range=ThresholdRange(min=99)),
        ]
        inp = _input(metrics=metrics, minDataPoints=1).model_copy(update={"mode": "until-recovered"})
        result = await ActivityEnvironment().run(AnalysisActivities(source, clock).analyze, inp)
        assert len(source.taken) == 4, "returned before the missing metric came back"
        assert [b - a for a, b in zip(source.taken, source.taken[1:], strict=False)] == [
            timedelta(seconds=10)
        ] * 3
        # Judging goes on from the data that came back, not from the run of empty checks before it.
        assert [c.at for c in result.checks] == source.taken[3:]
        assert result.verdict.status == "running"
