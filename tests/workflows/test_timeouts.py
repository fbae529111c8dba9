"""Timeouts line up, from the real constants: changing one without the others fails here.

A heartbeat timeout shorter than a call inside it turns a slow server into endless heartbeat
timeouts (each retrying a call still in flight) instead of that call's recorded error.
"""

from __future__ import annotations

from datetime import timedelta

import annotated_types
import pytest

from activities import analysis, rollout
from activities.kubernetes.clients import Tuning
from policies.plan import Analysis
from ringmaster.settings import Settings
from workflows import _options as options

CLUSTER_OPTIONS = {
    "cluster call": options.CLUSTER_CALL,
    "rollback": options.ROLLBACK,
    "wait rollout": options.wait_rollout(600),
}


def _longest_prometheus_timeout() -> float:
    """The bound every accepted ``prometheus_timeout_seconds`` is below."""
    bounds = Settings.model_fields["prometheus_timeout_seconds"].metadata
    return next(float(b.lt) for b in bounds if isinstance(b, annotated_types.Lt))


class TestClusterCalls:
    @pytest.mark.parametrize("name", list(CLUSTER_OPTIONS))
    def test_every_cluster_activity_has_a_heartbeat_timeout(self, name: str) -> None:
        """Without one, an abort never reaches a running step and a lost worker is never noticed."""
        assert "heartbeat_timeout" in CLUSTER_OPTIONS[name]

    @pytest.mark.parametrize("name", list(CLUSTER_OPTIONS))
    def test_the_heartbeat_timeout_outlasts_one_kubernetes_call(self, name: str) -> None:
        """Longer than a call's connect + read timeout, and than a watch's length plus its read timeout."""
        tuning = Tuning()
        timeout = CLUSTER_OPTIONS[name]["heartbeat_timeout"].total_seconds()
        assert timeout > tuning.connect_timeout + tuning.read_timeout
        assert timeout > tuning.heartbeat_seconds + tuning.read_timeout

    @pytest.mark.parametrize("name", list(CLUSTER_OPTIONS))
    def test_several_side_task_heartbeats_fit_in_the_heartbeat_timeout(self, name: str) -> None:
        """The side task beats at least three times per timeout, as does the worker's throttle."""
        timeout = CLUSTER_OPTIONS[name]["heartbeat_timeout"]
        assert timeout >= 3 * rollout.HEARTBEAT_INTERVAL
        assert timeout >= 3 * timedelta(seconds=Settings().heartbeat_throttle_seconds)


class TestAnalysis:
    @pytest.mark.parametrize("interval", [timedelta(seconds=1), timedelta(seconds=30), timedelta(minutes=5)])
    def test_the_heartbeat_timeout_outlasts_one_prometheus_query(self, interval: timedelta) -> None:
        """Even the longest query the settings allow is shorter than any stretch's heartbeat timeout."""
        # every accepted value is below the bound (lt), so a timeout equal to the bound outlasts it
        assert analysis.heartbeat_timeout(interval).total_seconds() >= _longest_prometheus_timeout()

    @pytest.mark.parametrize("timed", [False, True])
    @pytest.mark.parametrize("interval", [timedelta(seconds=1), timedelta(seconds=30), timedelta(minutes=5)])
    def test_the_options_use_the_activity_s_heartbeat_timeout(self, interval: timedelta, timed: bool) -> None:
        """The workflow's option and the activity's heartbeat period derive from the same function."""
        timeout = options.analyze(analysis_of(interval), timed=timed)["heartbeat_timeout"]
        assert timeout == analysis.heartbeat_timeout(interval, timed=timed)
        assert timeout.total_seconds() >= 1.25 * analysis.heartbeat_every(interval, timed=timed)

    @pytest.mark.parametrize(
        ("interval", "until_stopped", "timed"),
        [
            (timedelta(minutes=1), timedelta(seconds=75), timedelta(seconds=150)),
            (timedelta(seconds=1), timedelta(seconds=15), timedelta(seconds=15)),
        ],
    )
    def test_a_stretch_with_a_deadline_heartbeats_half_as_often(
        self, interval: timedelta, until_stopped: timedelta, timed: timedelta
    ) -> None:
        """A stretch ended by cancellation hears of it at a heartbeat: one per interval. A stretch with
        a deadline answers by itself: one heartbeat per two intervals, as long as that leaves the floor."""
        assert analysis.heartbeat_timeout(interval) == until_stopped
        assert analysis.heartbeat_timeout(interval, timed=True) == timed

    @pytest.mark.parametrize(
        "interval",
        [timedelta(seconds=1), timedelta(seconds=12), timedelta(seconds=30), timedelta(minutes=5)],
    )
    def test_at_most_one_heartbeat_per_interval_reaches_the_server(self, interval: timedelta) -> None:
        """The SDK sends a stretch's heartbeats at most once per min(0.8 x heartbeat timeout, the analysis
        worker's throttle): with the default settings that is at least one interval (at least 12 s)."""
        throttle = min(
            0.8 * analysis.heartbeat_timeout(interval),
            timedelta(seconds=Settings().analysis_heartbeat_throttle_seconds),
        )
        assert throttle >= interval
        assert throttle >= timedelta(seconds=12)
        assert throttle == analysis.heartbeat_throttle(interval)


def analysis_of(interval: timedelta) -> Analysis:
    """An analysis with ``interval`` and one metric."""
    return Analysis.model_validate(
        {
            "interval": f"{int(interval.total_seconds())}s",
            "metrics": [{"name": "ok", "query": "up", "thresholdRange": {"min": 1}}],
        }
    )
