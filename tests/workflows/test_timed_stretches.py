"""Timed analysis stretches (patch ``timed-stretches``): a stretch whose end the workflow knows (a bake,
a canary's timed pause) ends itself there, so promotion never waits for a cancellation to reach it in
a heartbeat's reply (at most one per interval reaches the server), and history does not grow with the
bake's length. A failing gate still rolls back at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.models import AnalyzeInput, AnalyzeResult
from policies import gates
from ringmaster import worker
from ringmaster.converter import data_converter
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    Harness,
    ScriptedMetrics,
    canary,
    cluster_state,
    ended,
    plan,
    running_worker,
    unique_service,
    worker_settings,
)
from workflows.cluster import ClusterRolloutWorkflow
from workflows.models import AbortRequest, HoldRequest, ResumeRequest
from workflows.release import ReleaseWorkflow

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
CANCEL_REQUESTED = EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED
COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED


class DeadlineHonouringAnalysis:
    """A fake ``analyze``: a stretch with a deadline answers as it would at that deadline (passed, the
    final verdict), at once, so the time-skipping server can skip to the end of the wait; one without
    heartbeats until the workflow cancels it, then answers the same way."""

    def __init__(self) -> None:
        self.stretches: list[AnalyzeInput] = []

    @activity.defn(name="analyze")
    async def analyze(self, inp: AnalyzeInput) -> AnalyzeResult:
        self.stretches.append(inp)
        if inp.deadline is None:
            try:
                while True:
                    activity.heartbeat()
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                pass
        return AnalyzeResult(
            cluster=inp.cluster.name,
            stage=inp.stage,
            verdict=gates.judge(inp.analysis, inp.prior_checks, final=True).model_copy(
                update={"status": "passed"}
            ),
            deadline_reached=inp.deadline is not None,
        )


@asynccontextmanager
async def _with_fake_analysis(
    client: Client, tmp_path: Path, fake: DeadlineHonouringAnalysis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """Every real workflow and cluster activity, with ``fake`` serving the analysis queue."""
    with monkeypatch.context() as patch:
        patch.setattr(worker, "analysis_activities", lambda _metrics: [fake.analyze])
        async with running_worker(client, tmp_path) as h:
            yield h


def _events(history: WorkflowHistory, kind: int) -> list[HistoryEvent]:
    return [e for e in history.events if e.event_type == kind]


def _analyze_scheduled(history: WorkflowHistory) -> list[HistoryEvent]:
    return [
        e
        for e in _events(history, SCHEDULED)
        if e.activity_task_scheduled_event_attributes.activity_type.name == "analyze"
    ]


async def _replays(client: Client, *workflow_ids: str) -> None:
    """The histories of the runs replay against today's code (the patch's own replay test: the saved
    sets predate it)."""
    replayer = Replayer(workflows=[ReleaseWorkflow, ClusterRolloutWorkflow], data_converter=data_converter)
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (workflow_id, result.replay_failure)


def _one_ring(strategy: dict[str, Any], bake: str) -> list[dict[str, Any]]:
    return [{"name": "internal", "clusters": ["euw1-internal"], "strategy": strategy, "bakeTime": bake}]


class TestBakeHistory:
    async def test_a_four_hour_bake_costs_the_events_of_a_one_minute_bake(
        self, time_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The bake's stretch ends at the bake's end by itself: one stretch, no cancellation, and the
        release's history holds as many events for 4h as for 1m."""
        counts: dict[str, int] = {}
        for bake in ("1m", "4h"):
            fake = DeadlineHonouringAnalysis()
            async with _with_fake_analysis(time_env.client, tmp_path / bake, fake, monkeypatch) as h:
                svc = unique_service()
                handle = await h.start(
                    plan(svc, _one_ring({"rolling": {}}, bake), interval="1m"),
                    service=svc,
                    search_attributes=False,
                )
                result = await ended(handle)
                assert result.phase == "succeeded", result.reason
                history = await handle.fetch_history()
                counts[bake] = len(history.events)
                baked = _analyze_scheduled(history)
                assert len(baked) == 1, "one stretch for the whole bake"
                assert not _events(history, CANCEL_REQUESTED), "the stretch answered at the bake's end"
                assert [s.deadline is not None for s in fake.stretches if s.stage == "bake"] == [True]
        assert counts["4h"] == counts["1m"], counts


class TestCanaryPromotion:
    async def test_a_canary_ending_on_a_timed_pause_promotes_without_cancelling_its_stretch(
        self, client: Client, tmp_path: Path
    ) -> None:
        """With the production analysis throttle (a cancellation would take an interval, at least 12 s,
        to arrive), the stretch of the last timed pause has answered before the promotion: no
        cancellation of it in the cluster's history, its completion before the promote step."""
        settings = worker_settings(analysis_heartbeat_throttle_seconds=3600.0)
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service()
            strategy = canary(("w", 20), ("p", "2s"), ("w", 50), ("p", "3s"))
            handle = await h.start(plan(svc, _one_ring(strategy, "0s")), service=svc)
            result = await asyncio.wait_for(ended(handle), timeout=120)
            assert result.phase == "succeeded", result.reason
            child = result.clusters[0].workflow_id
            history = await client.get_workflow_handle(child).fetch_history()
            stretches = _analyze_scheduled(history)
            cancelled = {
                e.activity_task_cancel_requested_event_attributes.scheduled_event_id
                for e in _events(history, CANCEL_REQUESTED)
            }
            completed = {
                e.activity_task_completed_event_attributes.scheduled_event_id: e.event_id
                for e in _events(history, COMPLETED)
            }
            promote = next(
                e.event_id
                for e in _events(history, SCHEDULED)
                if e.activity_task_scheduled_event_attributes.activity_type.name == "apply_step"
                and b'"promote"' in e.activity_task_scheduled_event_attributes.input.payloads[0].data
            )
            assert len(stretches) == 2, "one stretch per timed pause"
            assert not cancelled, "each stretch answered at its pause's end, none was cancelled"
            assert completed[stretches[-1].event_id] < promote, "answered before the promote step"
            assert _deadlines_given(history) == [True, True]
            await _replays(client, handle.id, child)


class TestRollbackIsNeverDelayed:
    async def test_a_failing_gate_in_a_timed_pause_rolls_back_at_once(
        self, client: Client, tmp_path: Path
    ) -> None:
        """A one-hour timed pause with a failing gate: the cluster rolls back within seconds, not at
        the deadline and not after a cancellation reaches the stretch."""
        settings = worker_settings(analysis_heartbeat_throttle_seconds=3600.0)
        metrics = ScriptedMetrics(failing={"euw1-internal"})
        async with running_worker(client, tmp_path, settings=settings, metrics=metrics) as h:
            svc = unique_service()
            strategy = canary(("w", 20), ("p", "1h"))
            handle = await h.start(plan(svc, _one_ring(strategy, "1h")), service=svc)
            result = await asyncio.wait_for(ended(handle), timeout=60)
            assert result.phase == "rolled-back", result.reason
            assert result.clusters[0].state == "rolled-back"
            assert h.versions()["euw1-internal"] == "v1"
            child = result.clusters[0].workflow_id
            history = await client.get_workflow_handle(child).fetch_history()
            assert _deadlines_given(history) == [True], "one stretch, given the pause's end"

    async def test_an_abort_during_a_timed_bake_rolls_back_without_waiting_for_the_stretch(
        self, client: Client, tmp_path: Path
    ) -> None:
        """With the production throttle a cancellation reaches a stretch up to an interval late: the
        abort's rollback is scheduled before the bake's stretch has acknowledged its end."""
        settings = worker_settings(analysis_heartbeat_throttle_seconds=3600.0)
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _one_ring({"rolling": {}}, "1h")), service=svc)
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status),
                lambda s: s.waiting_for.startswith("bake of ring"),
                timeout=60,
            )
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="stop", by="bob"))
            result = await asyncio.wait_for(ended(handle), timeout=60)
            assert result.phase == "aborted", result.reason
            assert h.versions()["euw1-internal"] == "v1"
            history = await handle.fetch_history()
            assert _rolled_back_before_the_stretch_closed(history)

    async def test_an_abort_while_a_stop_waits_for_its_cancellation_rolls_back_at_once(
        self, client: Client, tmp_path: Path
    ) -> None:
        """A rolling update concludes its analysis by cancelling its stretch (its end is not known),
        which reaches the stretch up to an interval late: an abort meanwhile does not wait for it."""
        settings = worker_settings(analysis_heartbeat_throttle_seconds=3600.0)
        async with running_worker(client, tmp_path, settings=settings) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _one_ring({"rolling": {}}, "0s")), service=svc)
            await assert_eventually(
                lambda: cluster_state(handle, "euw1-internal"),
                lambda c: c is not None and c.step == "concluding analysis",
                timeout=60,
                every=0.05,
            )
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="stop", by="bob"))
            result = await asyncio.wait_for(ended(handle), timeout=60)
            assert result.phase == "aborted", result.reason
            assert h.versions()["euw1-internal"] == "v1"
            child = result.clusters[0].workflow_id
            history = await client.get_workflow_handle(child).fetch_history()
            assert _rolled_back_before_the_stretch_closed(history)


def _rolled_back_before_the_stretch_closed(history: WorkflowHistory) -> bool:
    """The rollback was scheduled before the last stretch completed or acknowledged its cancellation."""
    stretch = _analyze_scheduled(history)[-1].event_id
    rollback = next(
        e.event_id
        for e in _events(history, SCHEDULED)
        if e.activity_task_scheduled_event_attributes.activity_type.name == "rollback_cluster"
    )
    closed = [
        e.event_id
        for e in history.events
        if stretch
        in (
            e.activity_task_completed_event_attributes.scheduled_event_id,
            e.activity_task_canceled_event_attributes.scheduled_event_id,
        )
    ]
    return all(rollback < c for c in closed)


def _deadlines_given(history: WorkflowHistory) -> list[bool]:
    """Whether each analyze stretch of ``history`` was given a deadline."""
    out = []
    for e in _analyze_scheduled(history):
        payload = e.activity_task_scheduled_event_attributes.input.payloads[0]
        inp = data_converter.payload_converter.from_payload(payload, AnalyzeInput)
        out.append(inp.deadline is not None)
    return out


class TestHeldBake:
    async def test_a_hold_that_extends_the_bake_is_judged_by_a_stretch_after_the_deadline(
        self, client: Client, tmp_path: Path
    ) -> None:
        """Held past the bake's planned end: the stretch that answered at that end is followed by one
        judging until stopped (gates keep judging while held), and the bake ends after the resume."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, _one_ring({"rolling": {}}, "4s")), service=svc)
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status),
                lambda s: s.waiting_for.startswith("bake of ring"),
                timeout=60,
            )
            await handle.signal("hold-signal", HoldRequest(reason="look first", by="bob"))

            async def baking() -> list[bool]:
                return _deadlines_given(await handle.fetch_history())

            given = await assert_eventually(baking, lambda d: len(d) >= 2, timeout=60)
            assert given[:2] == [True, False], "the bake's end, then until stopped"
            await handle.signal("resume-signal", ResumeRequest(by="bob"))
            result = await asyncio.wait_for(ended(handle), timeout=60)
            assert result.phase == "succeeded", result.reason
            history = await handle.fetch_history()
            first = _analyze_scheduled(history)[0].event_id
            cancelled = {
                e.activity_task_cancel_requested_event_attributes.scheduled_event_id
                for e in _events(history, CANCEL_REQUESTED)
            }
            assert first not in cancelled, "the first stretch answered at the planned end"
            assert len(_analyze_scheduled(history)) == 2
