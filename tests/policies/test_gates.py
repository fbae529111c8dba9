"""Gate judgement: measurements in, a verdict (passed, failed, inconclusive, running) out, with reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policies import gates
from policies.plan import Analysis, Metric

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
QUERY = 'sum(rate(x{cluster="{{cluster}}",version="{{version}}"}[{{interval}}]))'


def _metric(name: str = "m", **judge: object) -> Metric:
    return Metric.model_validate({"name": name, "query": QUERY, **(judge or {"thresholdRange": {"min": 99}})})


def _analysis(**fields: object) -> Analysis:
    return Analysis.model_validate({"metrics": [_metric()], **fields})


def _checks(codes: str, metric: str = "m") -> list[gates.Check]:
    """One check per code: p = passes (99.5), f = fails (90), n = no data, e = query error."""
    made = []
    for i, code in enumerate(codes):
        measurement = {
            "p": gates.Measurement(metric=metric, value=99.5),
            "f": gates.Measurement(metric=metric, value=90.0),
            "n": gates.Measurement(metric=metric, value=None),
            "e": gates.Measurement(metric=metric, value=None, error="connection refused"),
        }[code]
        made.append(gates.Check(at=START + timedelta(minutes=i), measurements=[measurement]))
    return made


class TestThresholdRange:
    @pytest.mark.parametrize(
        ("bounds", "value", "outcome", "bound"),
        [
            ({"min": 99}, 99.0, "pass", ">= 99"),
            ({"min": 99}, 98.99, "fail", ">= 99"),
            ({"max": 500}, 500.0, "pass", "<= 500"),
            ({"max": 500}, 500.1, "fail", "<= 500"),
            ({"min": 1, "max": 5}, 3.0, "pass", "within [1, 5]"),
            ({"min": 1, "max": 5}, 0.5, "fail", "within [1, 5]"),
            ({"max": 500}, float("inf"), "fail", "<= 500"),
        ],
    )
    def test_bounds_are_inclusive(
        self, bounds: dict[str, float], value: float, outcome: str, bound: str
    ) -> None:
        """A value on a bound passes; beyond it fails; the bound is stated."""
        assessed = gates.assess(_metric(thresholdRange=bounds), gates.Measurement(metric="m", value=value))
        assert (assessed.outcome, assessed.bound) == (outcome, bound)

    @pytest.mark.parametrize(
        ("measurement", "outcome"),
        [
            (gates.Measurement(metric="m", value=None), "nodata"),
            (gates.Measurement(metric="m", value=float("nan")), "nodata"),
            (gates.Measurement(metric="m", value=None, error="timeout"), "error"),
            (gates.Measurement(metric="m", value=100.0, error="partial"), "error"),
            (None, "error"),
        ],
    )
    def test_no_data_and_errors_are_distinct(
        self, measurement: gates.Measurement | None, outcome: str
    ) -> None:
        """An empty or NaN result is no data; a failed query (or no measurement at all) is an error."""
        assert gates.assess(_metric(), measurement).outcome == outcome


class TestBaseline:
    @pytest.mark.parametrize(
        ("direction", "degradation", "value", "baseline", "outcome"),
        [
            ("lowerIsWorse", "50%", 0.5, 1.0, "pass"),
            ("lowerIsWorse", "50%", 0.49, 1.0, "fail"),
            ("lowerIsWorse", "10%", 2.0, 1.0, "pass"),
            ("higherIsWorse", "50%", 150.0, 100.0, "pass"),
            ("higherIsWorse", "50%", 151.0, 100.0, "fail"),
            ("higherIsWorse", "200%", 290.0, 100.0, "pass"),
            ("higherIsWorse", "10%", -0.95, -1.0, "pass"),
            ("higherIsWorse", "10%", -0.85, -1.0, "fail"),
            ("lowerIsWorse", "50%", 0.9, None, "nodata"),
            ("lowerIsWorse", "50%", 0.9, float("nan"), "nodata"),
        ],
    )
    def test_degradation_against_the_stable_version(
        self, direction: str, degradation: str, value: float, baseline: float | None, outcome: str
    ) -> None:
        """A baseline metric fails only when worse than stable by over maxDegradation, in its direction."""
        metric = _metric(baseline={"maxDegradation": degradation, "direction": direction})
        assessed = gates.assess(metric, gates.Measurement(metric="m", value=value, baseline=baseline))
        assert assessed.outcome == outcome

    def test_bound_names_baseline_and_allowance(self) -> None:
        """The bound of a baseline metric shows the limit, the stable value and the allowance."""
        metric = _metric(baseline={"maxDegradation": "50%", "direction": "lowerIsWorse"})
        assessed = gates.assess(metric, gates.Measurement(metric="m", value=0.2, baseline=0.8))
        assert assessed.bound == ">= 0.4 (baseline 0.8 - 50%)"

    def test_a_missing_baseline_is_named_in_the_verdict(self) -> None:
        """No data on the stable side holds the gate with a reason saying so, not a bare "no data"."""
        metric = _metric(baseline={"maxDegradation": "50%", "direction": "lowerIsWorse"})
        analysis = Analysis.model_validate({"metrics": [metric], "threshold": 2})
        checks = [
            gates.Check(
                at=START + timedelta(minutes=i), measurements=[gates.Measurement(metric="m", value=0.9)]
            )
            for i in range(2)
        ]
        verdict = gates.judge(analysis, checks, final=False)
        assert verdict.status == "inconclusive"
        assert verdict.reason.startswith("m: no data (none for the stable version) 2 check(s)")


class TestJudge:
    @pytest.mark.parametrize(
        ("codes", "fields", "final", "status", "consecutive"),
        [
            ("ppp", {}, True, "passed", 0),
            ("ppp", {}, False, "running", 0),
            ("f", {}, False, "failed", 1),
            ("ppff", {"threshold": 3}, False, "running", 0),
            ("ppfff", {"threshold": 3}, False, "failed", 3),
            ("ffpffpff", {"threshold": 3}, True, "passed", 0),
            ("fefnf", {"threshold": 3}, False, "failed", 3),
            ("eeee", {}, False, "inconclusive", 4),
            ("eeepeee", {"minDataPoints": 1}, True, "passed", 0),
            ("ee", {"consecutiveErrorLimit": 2}, False, "inconclusive", 2),
            ("nnn", {"threshold": 3}, False, "inconclusive", 3),
            ("nnpnn", {"threshold": 3, "minDataPoints": 1}, True, "passed", 0),
            ("nenn", {"threshold": 3}, False, "inconclusive", 3),
            ("nn", {"threshold": 2, "noData": "fail"}, False, "failed", 2),
            ("pp", {}, True, "inconclusive", 0),
            ("pnpe", {"threshold": 5}, True, "inconclusive", 0),
            ("", {"minDataPoints": 0}, True, "passed", 0),
            ("", {}, False, "running", 0),
        ],
        ids=[
            "passes-at-end",
            "running-until-end",
            "default-threshold-1",
            "below-threshold",
            "threshold-reached",
            "failures-not-consecutive",
            "errors-and-no-data-do-not-break-a-run",
            "error-limit-4",
            "errors-reset-by-a-value",
            "custom-error-limit",
            "no-data-inconclusive",
            "no-data-run-broken",
            "errors-do-not-break-a-no-data-run",
            "no-data-as-failure",
            "too-few-data-points",
            "only-complete-checks-count",
            "nothing-needed",
            "nothing-yet",
        ],
    )
    def test_verdicts(
        self, codes: str, fields: dict[str, object], final: bool, status: str, consecutive: int
    ) -> None:
        """Each sequence of check outcomes yields the documented verdict and run length."""
        verdict = gates.judge(_analysis(**fields), _checks(codes), final=final)
        assert (verdict.status, verdict.consecutive) == (status, consecutive), verdict.reason

    def test_failure_reason_names_metric_value_bound_and_count(self) -> None:
        """A failed verdict says which metric, its value, the bound and how many checks in a row."""
        verdict = gates.judge(_analysis(threshold=2), _checks("pff"), final=False)
        assert (verdict.metric, verdict.value, verdict.bound, verdict.checks) == ("m", 90.0, ">= 99", 3)
        assert verdict.reason == "m = 90, outside >= 99, 2 check(s) in a row (threshold 2)"

    def test_decides_at_the_first_decisive_check(self) -> None:
        """Checks after the deciding one are ignored, and checks are judged in time order."""
        checks = _checks("ffpppp")
        verdict = gates.judge(_analysis(threshold=2), list(reversed(checks)), final=True)
        assert (verdict.status, verdict.checks) == ("failed", 2)

    def test_failure_wins_over_errors_in_the_same_check(self) -> None:
        """When one metric fails and another hits the error limit at once, the verdict is failed."""
        analysis = Analysis.model_validate(
            {"metrics": [_metric("a"), _metric("b")], "consecutiveErrorLimit": 1}
        )
        check = gates.Check(
            at=START,
            measurements=[
                gates.Measurement(metric="a", value=None, error="boom"),
                gates.Measurement(metric="b", value=1.0),
            ],
        )
        verdict = gates.judge(analysis, [check], final=False)
        assert (verdict.status, verdict.metric) == ("failed", "b")

    def test_missing_measurement_counts_as_error(self) -> None:
        """A check lacking a metric's measurement is an error for that metric, not a pass."""
        analysis = Analysis.model_validate(
            {"metrics": [_metric("a"), _metric("b")], "consecutiveErrorLimit": 2}
        )
        checks = [
            gates.Check(
                at=START + timedelta(minutes=i), measurements=[gates.Measurement(metric="a", value=100.0)]
            )
            for i in range(2)
        ]
        verdict = gates.judge(analysis, checks, final=False)
        assert (verdict.status, verdict.metric) == ("inconclusive", "b")
        assert "not measured" in verdict.reason

    @pytest.mark.parametrize(("final", "status"), [(True, "passed"), (False, "running")])
    def test_no_metrics(self, final: bool, status: str) -> None:
        """An analysis without metrics passes at the end and runs until then."""
        assert gates.judge(Analysis(), [], final=final).status == status


class TestRenderQuery:
    def test_fills_every_placeholder(self) -> None:
        """Every documented placeholder is filled, spaces inside the braces allowed."""
        template = "{{service}} {{ namespace }} {{cluster}} {{region}} {{version}} [{{interval}}]"
        rendered = gates.render_query(
            template,
            service="api",
            namespace="shop",
            cluster="euw1",
            region="eu-west-1",
            version="1.2.3",
            interval=timedelta(minutes=90),
        )
        assert rendered == "api shop euw1 eu-west-1 1.2.3 [1h30m]"

    @pytest.mark.parametrize(
        ("template", "values", "message"),
        [
            ("{{pod}}", {}, "unknown placeholder {{pod}}"),
            ("{{cluster", {}, "never closed"),
            ("{{version}}", {"version": '1"} or vector(1) #'}, "may only hold"),
            ("{{cluster}}", {"cluster": ""}, "may only hold"),
        ],
    )
    def test_rejects_unknown_placeholders_and_unsafe_values(
        self, template: str, values: dict[str, str], message: str
    ) -> None:
        """Unknown placeholders and values that could rewrite the PromQL raise ValueError."""
        arguments = {
            "service": "api",
            "namespace": "api",
            "cluster": "c",
            "region": "r",
            "version": "1",
            "interval": "1m",
        }
        with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
            gates.render_query(template, **(arguments | values))  # type: ignore[arg-type]

    def test_sub_second_intervals_use_milliseconds(self) -> None:
        """An interval with a fraction of a second is written in PromQL milliseconds."""
        rendered = gates.render_query(
            "[{{interval}}]",
            service="a",
            namespace="a",
            cluster="a",
            region="a",
            version="1",
            interval=timedelta(seconds=1.5),
        )
        assert rendered == "[1500ms]"
