"""The ``analyze`` activity with ``PrometheusMetrics`` on real Prometheus scraping the simulated traffic."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.analysis import AnalysisActivities
from activities.models import AnalyzeInput, AnalyzeResult
from activities.prometheus import PrometheusMetrics
from policies.fleet import Fleet
from tests.support.prometheus import (
    CONVERSION,
    CONVERSION_QUERY,
    SCENARIO_CLUSTER,
    SUCCESS_RATE,
    MetricsSandbox,
    analysis,
    analyze_input,
    conversion,
    now,
    served,
    switch_version,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.timeout(90)


async def _analyze(fleet: Fleet, inp: AnalyzeInput, beats: list[Any] | None = None) -> AnalyzeResult:
    env = ActivityEnvironment()
    if beats is not None:
        env.on_heartbeat = lambda *details: beats.append(details[0])
    return await env.run(AnalysisActivities(PrometheusMetrics(fleet, timeout=3)).analyze, inp)


async def _serving(sandbox: MetricsSandbox, namespace: str, version: str, window: str = "5s") -> None:
    """Wait until ``version`` has served half the traffic for a whole rate window."""
    await wait_for(sandbox.url(SCENARIO_CLUSTER), served(SCENARIO_CLUSTER, namespace, version, window), 40)


def _values(result: AnalyzeResult, metric: str) -> list[Any]:
    return [m for c in result.checks for m in c.measurements if m.metric == metric]


class TestVerdicts:
    async def test_a_good_canary_passes_every_gate(self, metrics_sandbox: MetricsSandbox) -> None:
        """v2 beside v1 passes error rate, p99 and conversion against the live stable baseline."""
        await _serving(metrics_sandbox, "good", "v2")
        beats: list[Any] = []
        inp = analyze_input(metrics_sandbox, SCENARIO_CLUSTER, "good", "v2", analysis())
        result = await _analyze(metrics_sandbox.fleet, inp, beats)
        assert result.verdict.status == "passed", result.verdict.reason
        assert result.total_checks >= 3
        conversion = _values(result, "checkout-conversion")[-1]
        assert conversion.value is not None and conversion.baseline is not None
        assert 0.3 < conversion.baseline < 0.9 and 0.3 < conversion.value < 0.9
        assert beats and beats[-1].checks, "the latest measurements are heartbeated for status"

    async def test_a_bad_canary_fails_a_threshold(self, metrics_sandbox: MetricsSandbox) -> None:
        """v2-bad (8% errors, 3x slower) fails after ``threshold`` checks, naming metric, value and bound."""
        await _serving(metrics_sandbox, "bad", "v2-bad")
        inp = analyze_input(
            metrics_sandbox, SCENARIO_CLUSTER, "bad", "v2-bad", analysis(), mode="until-stopped"
        )
        verdict = (await _analyze(metrics_sandbox.fleet, inp)).verdict
        assert verdict.status == "failed"
        assert verdict.metric in ("success-rate", "latency-p99")
        assert verdict.value is not None and verdict.bound in (">= 99", "<= 500")
        assert verdict.consecutive == 2 and "2 check(s) in a row" in verdict.reason

    async def test_a_cheaper_canary_fails_its_live_baseline(self, metrics_sandbox: MetricsSandbox) -> None:
        """v2-cheap converts a third as well as v1 serving beside it: worse than the 50% allowed."""
        await _serving(metrics_sandbox, "cheap", "v2-cheap")
        inp = analyze_input(
            metrics_sandbox,
            SCENARIO_CLUSTER,
            "cheap",
            "v2-cheap",
            analysis([CONVERSION]),
            mode="until-stopped",
        )
        verdict = (await _analyze(metrics_sandbox.fleet, inp)).verdict
        assert verdict.status == "failed" and verdict.metric == "checkout-conversion"
        assert verdict.value is not None and verdict.value < 0.35
        assert verdict.bound is not None and "baseline" in verdict.bound

    async def test_a_rolled_version_is_judged_against_the_window_before_the_touch(
        self, metrics_sandbox: MetricsSandbox
    ) -> None:
        """Once v1 no longer serves, v2-cheap is compared with v1's conversion just before the touch."""
        url = metrics_sandbox.url(SCENARIO_CLUSTER)
        await wait_for(url, served(SCENARIO_CLUSTER, "pretouch", "v1"), 80)
        touched = now()
        switch_version(metrics_sandbox, SCENARIO_CLUSTER, "pretouch", "v2-cheap")
        await wait_for(url, served(SCENARIO_CLUSTER, "pretouch", "v2-cheap"), 80)
        inp = analyze_input(
            metrics_sandbox,
            SCENARIO_CLUSTER,
            "pretouch",
            "v2-cheap",
            analysis([CONVERSION]),
            stage="rolling",
            mode="until-stopped",
            touched_at=touched,
        )
        result = await _analyze(metrics_sandbox.fleet, inp)
        assert result.verdict.status == "failed" and result.verdict.metric == "checkout-conversion"
        stable = _values(result, "checkout-conversion")[-1].baseline
        assert stable is not None and 0.3 < stable < 0.9, "v1's conversion before the touch"

    async def test_a_touch_after_a_gap_in_the_stable_data_finds_the_baseline_before_the_gap(
        self, metrics_sandbox: MetricsSandbox
    ) -> None:
        """The window just before the touch never fills in later: when it is empty (failed scrapes, a
        touch right after a restart), the stable value is the latest within the lookback before it."""
        url = metrics_sandbox.url(SCENARIO_CLUSTER)
        await wait_for(url, served(SCENARIO_CLUSTER, "gap", "v1-sure"), 80)
        switch_version(metrics_sandbox, SCENARIO_CLUSTER, "gap", "v2-cheap")
        await wait_gone(url, conversion(SCENARIO_CLUSTER, "gap", "v1-sure"))
        touched = now()
        await wait_for(url, served(SCENARIO_CLUSTER, "gap", "v2-cheap"), 80)
        inp = analyze_input(
            metrics_sandbox,
            SCENARIO_CLUSTER,
            "gap",
            "v2-cheap",
            analysis([CONVERSION]),
            stage="rolling",
            stable="v1-sure",
            mode="until-stopped",
            touched_at=touched,
        )
        result = await _analyze(metrics_sandbox.fleet, inp)
        assert result.verdict.status == "failed", result.verdict.reason
        stable = _values(result, "checkout-conversion")[-1].baseline
        # v1-sure converts every checkout: any of its values is 1, even the last ones of its drain.
        assert stable == 1.0, "v1-sure's conversion before the gap"

    @pytest.mark.parametrize(
        ("namespace", "version", "status"), [("cheap", "v2-cheap", "failed"), ("good", "v2", "passed")]
    )
    async def test_mann_whitney_on_sampled_windows(
        self, metrics_sandbox: MetricsSandbox, namespace: str, version: str, status: str
    ) -> None:
        """Range-query samples of both versions go to the Mann-Whitney judge; the p-value is reported."""
        await _serving(metrics_sandbox, namespace, version, "15s")
        judged = {
            "name": "checkout-conversion",
            "query": CONVERSION_QUERY,
            "baseline": {"judge": "mannWhitney", "direction": "lowerIsWorse", "window": "12s"},
        }
        inp = analyze_input(metrics_sandbox, SCENARIO_CLUSTER, namespace, version, analysis([judged]))
        result = await _analyze(metrics_sandbox.fleet, inp)
        assert result.verdict.status == status, result.verdict.reason
        measured = _values(result, "checkout-conversion")[-1]
        assert measured.p_value is not None
        if status == "failed":
            assert "Mann-Whitney p=" in (result.verdict.bound or "")


class TestMeasurementProblems:
    @pytest.mark.parametrize(("no_data", "status"), [("inconclusive", "inconclusive"), ("fail", "failed")])
    async def test_no_data_follows_the_no_data_setting(
        self, metrics_sandbox: MetricsSandbox, no_data: str, status: str
    ) -> None:
        """A version that never served has no data: inconclusive by default, failed with noData: fail."""
        inp = analyze_input(
            metrics_sandbox, SCENARIO_CLUSTER, "good", "v9", analysis([SUCCESS_RATE], noData=no_data)
        )
        verdict = (await _analyze(metrics_sandbox.fleet, inp)).verdict
        assert verdict.status == status
        assert "no data" in verdict.reason or verdict.bound == "data present"

    @pytest.mark.parametrize(
        ("query", "says"),
        [
            (
                'sum(rate(http_requests_total{cluster="{{cluster}}"}[5s])',
                ["answered HTTP 400", "parse error"],
            ),
            ('rate(http_requests_total{cluster="{{cluster}}"}[5s])', ["series", "aggregate it"]),
        ],
        ids=["refused-by-prometheus", "many-series"],
    )
    async def test_an_unusable_query_is_an_error_saying_why(
        self, metrics_sandbox: MetricsSandbox, query: str, says: list[str]
    ) -> None:
        """Bad PromQL (HTTP 400, Prometheus' message quoted) or many series is an error, never a failure."""
        metric = {"name": "q", "query": query, "thresholdRange": {"min": 0}}
        inp = analyze_input(metrics_sandbox, SCENARIO_CLUSTER, "good", "v2", analysis([metric]))
        result = await _analyze(metrics_sandbox.fleet, inp)
        assert result.verdict.status == "inconclusive"
        assert "consecutiveErrorLimit 2" in result.verdict.reason
        error = _values(result, "q")[-1].error or ""
        assert all(part in error for part in says), error

    async def test_an_unreachable_prometheus_is_an_error(self, metrics_sandbox: MetricsSandbox) -> None:
        """Nothing listening at the region's Prometheus is an error naming the host, not a failure."""
        data = metrics_sandbox.fleet.model_dump(by_alias=True)
        for region in data["regions"]:
            region["prometheus"] = "http://127.0.0.2:1"
        fleet = Fleet.model_validate(data)
        inp = analyze_input(metrics_sandbox, SCENARIO_CLUSTER, "good", "v2", analysis([SUCCESS_RATE]))
        result = await _analyze(fleet, inp)
        assert result.verdict.status == "inconclusive"
        assert (
            _values(result, "success-rate")[-1].error
            == "Prometheus 127.0.0.2 unreachable: connection refused"
        )
