"""Metric gates: judging measurements against an analysis, as data (never exceptions).

Providers (activities) measure; this module judges, as in Argo Rollouts. Each check holds one
:class:`Measurement` per metric; :func:`judge` walks the checks in time order and returns a
:class:`GateVerdict`:

- ``failed`` as soon as one metric has failed ``threshold`` judged checks in a row;
- ``inconclusive`` after ``consecutiveErrorLimit`` query errors of one metric in a row (errors are
  never failures), after ``threshold`` checks in a row without data when ``noData: inconclusive``,
  or at the end with fewer than ``minDataPoints`` checks that had a value for every metric;
- ``passed`` at the end otherwise, and ``running`` while undecided before the end.

"No data" (an empty result) is distinct from "error" (the query failed), as in Flagger. Errors and
no-data checks neither extend nor break a metric's run of failures, and errors do not break a run of
empty results either. A baseline metric fails when it is worse than the stable version's value by
more than ``maxDegradation`` in its ``direction``; a missing or non-finite baseline value is no data.
With ``judge: mannWhitney`` it fails when the test's p-value (:mod:`policies.statistics`, carried in
the measurement) is below ``1 - confidence``; no p-value (too few samples) is no data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, Field

from policies import _query
from policies._model import Model
from policies.durations import format_duration
from policies.plan import Analysis, Metric

Status = Literal["running", "passed", "failed", "inconclusive"]
Outcome = Literal["pass", "fail", "nodata", "error"]


class Measurement(Model):
    """One metric's result at one check: a value, no value (no data), or an error."""

    metric: str
    value: float | None = None
    baseline: float | None = None
    """The stable version's value, for baseline metrics (its mean over the window, for ``mannWhitney``)."""
    error: str | None = None
    p_value: float | None = None
    """For ``judge: mannWhitney``: the p-value of the test (see :mod:`policies.statistics`)."""


class Check(Model):
    """Every metric measured once, at ``at``."""

    at: AwareDatetime
    measurements: list[Measurement] = Field(default_factory=list)


class Assessment(Model):
    """One measurement judged against its metric."""

    metric: str
    outcome: Outcome
    value: float | None = None
    bound: str | None = None
    detail: str = ""


class GateVerdict(Model):
    """The gate's state: what was decided, why, on which metric, value and bound, after how many checks."""

    status: Status
    reason: str
    metric: str | None = None
    value: float | None = None
    bound: str | None = None
    consecutive: int = 0
    """The length of the run (failures, errors or no-data checks) that decided, if any."""
    checks: int = 0
    """Checks considered (up to the deciding one)."""
    judged: int = 0
    """Of those, checks with a value for every metric (what ``minDataPoints`` counts)."""


def _num(value: float) -> str:
    return f"{value:g}"


def assess(metric: Metric, measurement: Measurement | None) -> Assessment:
    """Judge one measurement (None: the metric was not measured, treated as an error)."""
    name = metric.name
    if measurement is None:
        return Assessment(metric=name, outcome="error", detail="not measured")
    if measurement.error is not None:
        return Assessment(metric=name, outcome="error", detail=measurement.error)
    value = measurement.value
    if value is None or math.isnan(value):
        return Assessment(metric=name, outcome="nodata", detail="no data")
    if metric.threshold_range is not None:
        low, high = metric.threshold_range.min, metric.threshold_range.max
        if low is not None and high is not None:
            bound = f"within [{_num(low)}, {_num(high)}]"
        else:
            bound = f">= {_num(low)}" if low is not None else f"<= {_num(high or 0.0)}"
        ok = (low is None or value >= low) and (high is None or value <= high)
        return Assessment(metric=name, outcome="pass" if ok else "fail", value=value, bound=bound)
    judge = metric.baseline
    if judge is None:  # validation guarantees thresholdRange or baseline; this keeps mypy and -O honest
        raise ValueError(f"metric {name!r} has neither thresholdRange nor baseline")
    stable = measurement.baseline
    if stable is None or not math.isfinite(stable):
        return Assessment(metric=name, outcome="nodata", value=value, detail="none for the stable version")
    if judge.judge == "mannWhitney":
        return _mann_whitney(metric, measurement, value, stable)
    assert judge.max_degradation is not None  # validation requires it for judge: degradation
    allowance = abs(stable) * judge.max_degradation / 100
    pct = f"{judge.max_degradation:g}%"
    if judge.direction == "lowerIsWorse":
        limit = stable - allowance
        ok = value >= limit
        bound = f">= {_num(limit)} (baseline {_num(stable)} - {pct})"
    else:
        limit = stable + allowance
        ok = value <= limit
        bound = f"<= {_num(limit)} (baseline {_num(stable)} + {pct})"
    return Assessment(metric=name, outcome="pass" if ok else "fail", value=value, bound=bound)


def _mann_whitney(metric: Metric, measurement: Measurement, value: float, stable: float) -> Assessment:
    judge = metric.baseline
    assert judge is not None
    p = measurement.p_value
    if p is None or math.isnan(p):
        return Assessment(metric=metric.name, outcome="nodata", value=value, detail="too few samples")
    worse = "higher" if judge.direction == "higherIsWorse" else "lower"
    confidence = judge.confidence_level
    bound = (
        f"not {worse} than baseline {_num(stable)} by over {judge.tolerance_fraction:g} of it "
        f"at {confidence:g} confidence (Mann-Whitney p={p:.3g}, fails below {1 - confidence:.3g})"
    )
    ok = p >= 1 - confidence
    return Assessment(metric=metric.name, outcome="pass" if ok else "fail", value=value, bound=bound)


@dataclass
class _Tally:
    """Per-metric runs of failures, errors and empty results, and the checks seen so far."""

    failures: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    empty: dict[str, int] = field(default_factory=dict)
    last: dict[str, Assessment] = field(default_factory=dict)
    count: int = 0
    judged: int = 0

    def add(self, analysis: Analysis, check: Check) -> None:
        given = {m.metric: m for m in check.measurements}
        complete = True
        for metric in analysis.metrics:
            name = metric.name
            found = assess(metric, given.get(name))
            if found.outcome == "nodata" and analysis.no_data == "fail":
                found = found.model_copy(update={"outcome": "fail", "bound": "data present"})
            self.last[name] = found
            # A query error says nothing about the data: it neither extends nor breaks a run of
            # failures or of empty results. Any answer (a value or an empty one) ends a run of errors.
            self.errors[name] = self.errors.get(name, 0) + 1 if found.outcome == "error" else 0
            if found.outcome == "nodata":
                self.empty[name] = self.empty.get(name, 0) + 1
            elif found.outcome in ("pass", "fail"):
                self.empty[name] = 0
                self.failures[name] = self.failures.get(name, 0) + 1 if found.outcome == "fail" else 0
            complete = complete and found.outcome in ("pass", "fail")
        self.count += 1
        self.judged += complete

    def verdict(self, status: Status, reason: str, metric: str | None = None, run: int = 0) -> GateVerdict:
        seen = self.last.get(metric or "")
        return GateVerdict(
            status=status,
            reason=reason,
            metric=metric,
            value=seen.value if seen and status == "failed" else None,
            bound=seen.bound if seen and status == "failed" else None,
            consecutive=run,
            checks=self.count,
            judged=self.judged,
        )

    def decided(self, analysis: Analysis) -> GateVerdict | None:
        for name, run in self.failures.items():
            if run >= analysis.threshold:
                seen = self.last[name]
                shown = "no data" if seen.value is None else _num(seen.value)
                reason = (
                    f"{name} = {shown}, outside {seen.bound}, {run} check(s) in a row "
                    f"(threshold {analysis.threshold})"
                )
                return self.verdict("failed", reason, name, run)
        for name, run in self.errors.items():
            if run >= analysis.consecutive_error_limit:
                reason = (
                    f"{name}: {run} query error(s) in a row (consecutiveErrorLimit "
                    f"{analysis.consecutive_error_limit}); last: {self.last[name].detail}"
                )
                return self.verdict("inconclusive", reason, name, run)
        for name, run in self.empty.items():
            if run >= analysis.threshold:
                seen = self.last[name]
                which = "" if seen.detail == "no data" else f" ({seen.detail})"
                reason = f"{name}: no data{which} {run} check(s) in a row (noData: inconclusive)"
                return self.verdict("inconclusive", reason, name, run)
        return None

    def undecided(self, analysis: Analysis, *, final: bool) -> GateVerdict:
        needed = analysis.min_data_points
        summary = f"{self.judged} of {self.count} check(s) had data for every metric"
        if not final:
            return self.verdict("running", f"{summary}; no metric failed {analysis.threshold} in a row")
        if self.judged < needed:
            return self.verdict("inconclusive", f"{summary}; minDataPoints needs {needed}")
        return self.verdict("passed", f"{summary}; no metric failed {analysis.threshold} in a row")


def judge(analysis: Analysis, checks: Sequence[Check], *, final: bool) -> GateVerdict:
    """The verdict of ``analysis`` over ``checks``; ``final`` says the window being judged has ended."""
    if not analysis.metrics:
        status: Status = "passed" if final else "running"
        return GateVerdict(status=status, reason="no metrics to judge", checks=len(checks))
    tally = _Tally()
    for check in sorted(checks, key=lambda c: c.at):
        tally.add(analysis, check)
        verdict = tally.decided(analysis)
        if verdict is not None:
            return verdict
    return tally.undecided(analysis, final=final)


def is_flag_metric(template: str) -> bool:
    """Whether a metric's query judges a feature flag's two sides (it uses ``{{featureOn}}``)."""
    return _query.is_flag_metric(template)


def render_query(
    template: str,
    *,
    service: str,
    namespace: str,
    cluster: str,
    region: str,
    version: str,
    interval: timedelta | str,
    feature: str | None = None,
    feature_on: bool | None = None,
) -> str:
    """Fill a metric query's ``{{placeholders}}``; ValueError for unknown ones or unsafe values.

    In a flag stage ``feature`` is the ring's flag and ``feature_on`` True for the side judged, False
    for its baseline (the same ``version``'s flag-off traffic); a query using them is refused without.
    """
    if isinstance(interval, timedelta):
        interval = (
            f"{int(interval.total_seconds() * 1000)}ms"
            if interval.microseconds
            else format_duration(interval)
        )
    values = {
        "service": service,
        "namespace": namespace,
        "cluster": cluster,
        "region": region,
        "version": version,
        "interval": interval,
    }
    if feature is not None:
        values["feature"] = feature
    if feature_on is not None:
        values[_query.FEATURE_ON] = "true" if feature_on else "false"
    return _query.fill(template, values)
