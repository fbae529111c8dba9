"""Queries of a ``flag`` stage: a flag metric judged flag-on against the same version's flag-off
traffic at the same instant, without a real Prometheus (what is asked is what is checked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.analysis import AnalysisActivities
from activities.models import AnalyzeInput, ClusterTarget, ReleaseRef
from activities.prometheus import PrometheusMetrics
from policies.gates import Measurement
from policies.plan import Analysis
from tests.support import fleets

AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
FLAG_QUERY = (
    'sum(rate(ok{cluster="{{cluster}}",version="{{version}}",feature="{{feature}}",'
    'feature_on="{{featureOn}}"}[1m]))'
)
WHOLE_QUERY = 'sum(rate(ok{cluster="{{cluster}}",version="{{version}}"}[1m]))'


class _Recording:
    """A PromQL client answering every instant query with one series, and recording the queries."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def custom_query(self, query: str, params: dict[Any, Any]) -> Any:
        self.asked.append(query)
        return [{"metric": {}, "value": [AT.timestamp(), "99.5" if 'feature_on="true"' in query else "99.9"]}]

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str) -> Any:
        raise AssertionError("no range query in this test")


def _input(stage: str, feature: str | None) -> AnalyzeInput:
    analysis = Analysis.model_validate(
        {
            "interval": "1m",
            "metrics": [
                {
                    "name": "feature",
                    "query": FLAG_QUERY,
                    "baseline": {"maxDegradation": "1%", "direction": "lowerIsWorse"},
                },
                {"name": "whole", "query": WHOLE_QUERY, "thresholdRange": {"min": 99}},
            ],
        }
    )
    return AnalyzeInput(
        release=ReleaseRef(service="checkout", version="v2", image="r/checkout:v2", ring="internal"),
        cluster=ClusterTarget(name="euw1-internal", region="eu-west-1", jurisdiction="EU"),
        analysis=analysis,
        stage=stage,  # type: ignore[arg-type]
        mode="until-enough",
        namespace="shop",
        stable_version="v1",
        feature=feature,
    )


class TestFlagStage:
    async def test_a_flag_metric_is_judged_flag_on_against_flag_off_of_the_same_version_now(self) -> None:
        """Both sides of the flag metric are the release's version at the same instant, flag on and flag
        off; a metric without {{featureOn}} measures the whole version."""
        promql = _Recording()
        metrics = PrometheusMetrics(fleets.example_fleet(), timeout=1, connector=lambda _: promql)
        try:
            found = {m.metric: m for m in await metrics.measure(_input("flag", "checkout-v2"), AT)}
        finally:
            metrics.close()
        assert found["feature"].value == 99.5 and found["feature"].baseline == 99.9, found
        assert found["whole"].value == 99.9 and found["whole"].error is None
        flag_queries = sorted(q for q in promql.asked if "feature=" in q)
        assert flag_queries == [
            'sum(rate(ok{cluster="euw1-internal",version="v2",feature="checkout-v2",feature_on="false"}[1m]))',
            'sum(rate(ok{cluster="euw1-internal",version="v2",feature="checkout-v2",feature_on="true"}[1m]))',
        ]


class _Seen:
    """A metrics source answering good values, recording which metrics each check asked for."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        self.asked.append([m.name for m in inp.analysis.metrics])
        return [Measurement(metric=m.name, value=99.9, baseline=99.9) for m in inp.analysis.metrics]


class TestCodeStages:
    async def test_flag_metrics_are_not_run_outside_the_flag_stage(self) -> None:
        """A canary stage of a flag plan is judged by its other metrics: the flag metric, which cannot be
        filled there, is not asked for (rather than counted as an error every check)."""
        source = _Seen()
        inp = _input("canary", None).model_copy(update={"mode": "until-enough"})
        inp.analysis = inp.analysis.model_copy(update={"interval": timedelta(milliseconds=50)})
        result = await ActivityEnvironment().run(AnalysisActivities(source).analyze, inp)
        assert result.verdict.status == "passed", result.verdict.reason
        assert source.asked and all(names == ["whole"] for names in source.asked)
