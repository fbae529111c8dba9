"""The Mann-Whitney judge on known samples: its p-values, its verdicts, and how plans declare it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from policies import gates, statistics
from policies.plan import Analysis, Baseline, Metric

STABLE = [1.00, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97, 1.00, 1.02, 0.98]
QUERY = 'sum(rate(x{version="{{version}}"}[{{interval}}]))'


def _baseline(direction: str = "higherIsWorse", **fields: object) -> Baseline:
    return Baseline.model_validate({"judge": "mannWhitney", "direction": direction, **fields})


def _metric(baseline: Baseline) -> Metric:
    return Metric(name="latency", query=QUERY, baseline=baseline)


def _judged(new: list[float], baseline: Baseline) -> gates.Assessment:
    found = statistics.compare(new, STABLE, baseline)
    measurement = gates.Measurement(
        metric="latency", value=found.new_mean, baseline=found.stable_mean, p_value=found.p_value
    )
    return gates.assess(_metric(baseline), measurement)


class TestMannWhitneyVerdicts:
    @pytest.mark.parametrize(
        ("new", "direction", "outcome"),
        [
            ([v * 1.5 for v in STABLE], "higherIsWorse", "fail"),  # 50% slower: beyond the 25% tolerated
            ([v * 1.1 for v in STABLE], "higherIsWorse", "pass"),  # 10% slower: within tolerance
            ([v * 0.5 for v in STABLE], "higherIsWorse", "pass"),  # faster is never worse
            ([v * 0.5 for v in STABLE], "lowerIsWorse", "fail"),  # half the conversion
            ([v * 0.9 for v in STABLE], "lowerIsWorse", "pass"),
            ([v * 2.0 for v in STABLE], "lowerIsWorse", "pass"),
        ],
    )
    def test_worse_beyond_the_tolerance_fails_in_its_direction(
        self, new: list[float], direction: str, outcome: str
    ) -> None:
        """A shift beyond tolerance x stable mean in the worse direction fails at 0.98 confidence."""
        assert _judged(new, _baseline(direction)).outcome == outcome

    def test_p_value_is_scipys_one_sided_test_on_shifted_samples(self) -> None:
        """The p-value is the exact one-sided Mann-Whitney test of new minus the tolerated shift."""
        new = [v * 1.5 for v in STABLE]
        found = statistics.compare(new, STABLE, _baseline())
        assert found.p_value is not None and found.p_value < 0.001
        assert found.tolerated == pytest.approx(0.25 * sum(STABLE) / len(STABLE))
        assert found.shift == pytest.approx(0.5, abs=0.05)
        assert (found.new_samples, found.stable_samples) == (10, 10)

    def test_failure_states_the_p_value_and_the_confidence(self) -> None:
        """A failed check's bound names the test, the p-value and the level it fell below."""
        assessed = _judged([v * 1.5 for v in STABLE], _baseline())
        assert assessed.bound is not None
        assert "Mann-Whitney p=" in assessed.bound and "0.98 confidence" in assessed.bound

    def test_stricter_tolerance_and_lower_confidence_change_the_verdict(self) -> None:
        """With no tolerance and 0.9 confidence, a 10% shift fails that passes by default."""
        new = [v * 1.1 for v in STABLE]
        assert _judged(new, _baseline()).outcome == "pass"
        assert _judged(new, _baseline(tolerance=0.0, confidence=0.9)).outcome == "fail"

    def test_too_few_samples_is_no_data(self) -> None:
        """Fewer than five samples of either version is no data, not a pass."""
        found = statistics.compare([1.0, 2.0, 3.0], STABLE, _baseline())
        assert found.p_value is None and "needs 5" in found.reason
        assert _judged([1.0, 2.0, 3.0], _baseline()).outcome == "nodata"

    def test_identical_constant_samples_pass(self) -> None:
        """Two flat, equal series (no variance at all) show no shift."""
        found = statistics.compare([0.0] * 8, [0.0] * 8, _baseline())
        assert found.p_value == 1.0

    def test_non_finite_samples_are_dropped(self) -> None:
        """NaN and infinite samples (0/0 rates) are not counted."""
        found = statistics.compare([*STABLE, float("nan"), float("inf")], STABLE, _baseline())
        assert found.new_samples == len(STABLE)

    def test_a_failing_metric_fails_the_gate_with_value_and_bound(self) -> None:
        """Through judge(), a Mann-Whitney failure names the metric, its mean and the bound."""
        baseline = _baseline()
        found = statistics.compare([v * 1.5 for v in STABLE], STABLE, baseline)
        analysis = Analysis(metrics=[_metric(baseline)])
        check = gates.Check(
            at=datetime(2026, 1, 1, tzinfo=UTC),
            measurements=[
                gates.Measurement(
                    metric="latency", value=found.new_mean, baseline=found.stable_mean, p_value=found.p_value
                )
            ],
        )
        verdict = gates.judge(analysis, [check], final=True)
        assert verdict.status == "failed" and verdict.metric == "latency"
        assert verdict.value == pytest.approx(1.5, abs=0.01) and "Mann-Whitney" in (verdict.bound or "")


class TestBaselineDeclaration:
    def test_existing_plans_keep_the_degradation_judge(self) -> None:
        """A baseline without ``judge`` is the degradation judge and still needs maxDegradation."""
        assert Baseline.model_validate({"maxDegradation": "50%", "direction": "lowerIsWorse"}).judge == (
            "degradation"
        )
        with pytest.raises(ValidationError, match="needs maxDegradation"):
            Baseline.model_validate({"direction": "lowerIsWorse"})

    def test_kayenta_defaults(self) -> None:
        """mannWhitney defaults to confidence 0.98, tolerance 0.25 and a 30-interval window."""
        baseline = _baseline()
        assert (baseline.confidence_level, baseline.tolerance_fraction) == (0.98, 0.25)

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"judge": "mannWhitney", "maxDegradation": "10%"}, "maxDegradation belongs to"),
            ({"maxDegradation": "10%", "confidence": 0.9}, "confidence belong to judge: mannWhitney"),
            ({"judge": "mannWhitney", "confidence": 1.5}, "less than 1"),
            ({"judge": "mannWhitney", "window": "0s"}, "at least 1s"),
        ],
    )
    def test_fields_of_the_other_judge_are_refused(self, fields: dict[str, object], message: str) -> None:
        """Each judge's fields are refused on the other, and out-of-range values are errors."""
        with pytest.raises(ValidationError, match=message):
            Baseline.model_validate({"direction": "higherIsWorse", **fields})
