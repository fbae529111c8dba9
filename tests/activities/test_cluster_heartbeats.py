"""Cluster activities heartbeat only while a backend call runs long: each heartbeat sent is billable.

``run_blocking`` runs a backend call on the cluster pool and heartbeats its progress meanwhile. The
SDK sends an activity's first heartbeat to the server at once, so these tests count the heartbeats
the activity makes (``ActivityEnvironment.on_heartbeat``): none for a call shorter than the
interval, and the call's progress, at the interval, for a longer one.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import rollout


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _env() -> tuple[ActivityEnvironment, list[Any]]:
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    return env, beats


class TestClusterHeartbeats:
    async def test_a_call_shorter_than_the_interval_sends_no_heartbeat(self, pool):
        """A snapshot or an apply that answers at once costs no heartbeat."""
        env, beats = _env()
        assert await env.run(rollout.run_blocking, pool, lambda beat: "done") == "done"
        assert beats == []

    async def test_a_long_call_heartbeats_its_progress_each_interval(self, pool, monkeypatch):
        """A call that waits (a rollout) heartbeats the progress it reported, every interval."""
        monkeypatch.setattr(rollout, "HEARTBEAT_INTERVAL", timedelta(milliseconds=50))
        env, beats = _env()
        release = threading.Event()

        def counted(*details: Any) -> None:
            beats.append(details)
            if len(beats) >= 3:
                release.set()  # the call waits until its third heartbeat

        env.on_heartbeat = counted

        def waiting(beat: rollout.Beat) -> str:
            beat("2 of 3 pods ready")
            assert release.wait(5), "no third heartbeat within 5 s"
            return "ready"

        assert await env.run(rollout.run_blocking, pool, waiting) == "ready"
        assert len(beats) >= 3 and all(b == ("2 of 3 pods ready",) for b in beats)
