"""The analysis loop itself, with an injected clock: when checks happen and how a stretch ends."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from activities.analysis import AnalysisActivities
from activities.models import AnalyzeInput, AnalyzeProgress, ClusterTarget, ReleaseRef
from policies.gates import Measurement
from policies.plan import Analysis, Metric, ThresholdRange


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
        beats: list[AnalyzeProgress] = []
        first = ActivityEnvironment()
        first.on_heartbeat = lambda *details: beats.append(details[0])
        await first.run(AnalysisActivities(source, clock).analyze, _input(minDataPoints=2))
        sent = json.loads(pydantic_data_converter.payload_converter.to_payload(beats[-1]).data)
        source.taken.clear()
        retried = ActivityEnvironment()
        retried.info = dataclasses.replace(retried.info, heartbeat_details=[sent])
        result = await retried.run(AnalysisActivities(source, clock).analyze, _input(minDataPoints=3))
        assert result.total_checks == 3, "two checks carried over, one taken by this attempt"
        assert len(source.taken) == 1
