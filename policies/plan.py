"""The release plan a service team writes: rings, strategies, metric gates, residency and windows.

Every model here is what the YAML says, validated field by field: unknown fields are errors, numbers
are checked against their ranges, and "exactly one of" choices (a strategy, a canary step, a
metric's bound) say which options exist. Rules that relate parts of the plan to each other are
listed by :meth:`ReleasePlan.problems`; rules that need the fleet live in ``loading``. The strategies
(canary, blue-green, rolling, feature flags) live in :mod:`policies.strategy` and are re-exported here.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from policies import _errors, _ports, _query, hosts
from policies._calendar import Freeze, WeeklyWindow, Window
from policies._model import (
    Count,
    Document,
    Flag,
    Model,
    Name,
    Number,
    Subdomain,
    by_name,
    duplicates,
    require_exactly_one,
)
from policies.durations import Duration
from policies.strategy import (
    BlueGreen,
    Canary,
    CanaryStep,
    FeatureFlag,
    FlagStep,
    Pause,
    Rolling,
    Strategy,
    TrafficRouting,
)

MAX_PARALLEL = 2000
"""The most clusters one ring may run at once: a release workflow keeps at most this many children
pending, so a larger ``maxParallel`` could not be honoured."""

__all__ = [
    "Analysis",
    "Approval",
    "Baseline",
    "BlueGreen",
    "Canary",
    "CanaryStep",
    "DataResidency",
    "FeatureFlag",
    "FlagStep",
    "Freeze",
    "Metric",
    "Pause",
    "ReleasePlan",
    "Ring",
    "Rollback",
    "Rolling",
    "Strategy",
    "ThresholdRange",
    "TrafficRouting",
    "WeeklyWindow",
    "Window",
    "Workload",
]


class Workload(Model):
    """The Deployment whose container image a release replaces."""

    namespace: Name
    deployment: Subdomain
    container: Name


# --- rings ------------------------------------------------------------------------------------------


class Approval(Model):
    """Whether a ring waits for a human before its first cluster, and whether that human must differ."""

    required: Flag = False
    four_eyes: Flag = False
    """The approver must not be the person who submitted the release."""

    @model_validator(mode="after")
    def _four_eyes_needs_approval(self) -> Approval:
        if self.four_eyes and not self.required:
            raise PydanticCustomError("approval", "fourEyes: true needs required: true")
        return self


class Ring(Model):
    """A stage of the rollout: which clusters, how (strategy), how many at once, how long to bake."""

    name: Name
    clusters: list[Name] | None = Field(default=None, min_length=1)
    cluster_selector: dict[str, str] | None = Field(default=None, min_length=1)
    """Every given label must match."""
    strategy: Strategy
    approval: Approval = Approval()
    max_parallel: Annotated[Count, Field(ge=1, le=MAX_PARALLEL)] = 1
    """At most :data:`MAX_PARALLEL` (2,000)."""
    bake_time: Duration = timedelta(0)
    """After the ring's last cluster is promoted, keep judging this long before the next ring."""

    @model_validator(mode="after")
    def _one_selection(self) -> Ring:
        require_exactly_one("a ring", {"clusters": self.clusters, "clusterSelector": self.cluster_selector})
        return self


# --- analysis ---------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "must be a finite number")
    return value


class ThresholdRange(Model):
    """A metric passes while ``min <= value <= max`` (either bound may be left out, not both)."""

    min: Number | None = None
    max: Number | None = None

    _check_finite = field_validator("min", "max")(_finite)

    @model_validator(mode="after")
    def _bounds(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise PydanticCustomError("threshold_range", "thresholdRange needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError("threshold_range", "min must not be greater than max")
        return self


def _percent(value: object) -> float:
    number: object = value
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%"):
            raise PydanticCustomError("percent", "write a percentage such as 50%")
        try:
            number = float(text[:-1])
        except ValueError:
            raise PydanticCustomError("percent", "write a percentage such as 50%") from None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise PydanticCustomError("percent", "write a percentage such as 50%")
    if number <= 0:
        raise PydanticCustomError("percent", "must be more than 0%")
    return float(number)


def _format_percent(value: float) -> str:
    return f"{int(value)}%" if value.is_integer() else f"{value!r}%"


Percent = Annotated[
    float, BeforeValidator(_percent), PlainSerializer(_format_percent, return_type=str, when_used="json")
]
"""A positive percentage written ``50%`` (a bare number is read as percent too); JSON form ``"50%"``."""


class Baseline(Model):
    """Judge the new version against the stable one.

    ``judge: degradation`` (the default) compares one value of each at every check and fails when the
    new one is worse by more than ``maxDegradation``. ``judge: mannWhitney`` compares samples of both
    over a window with Kayenta's test (:mod:`policies.statistics`): it fails when the new version is
    worse by more than ``tolerance`` of the stable mean with ``confidence``.
    """

    judge: Literal["degradation", "mannWhitney"] = "degradation"
    max_degradation: Percent | None = None
    """For ``judge: degradation`` (required there): how much worse than the stable value is tolerated."""
    direction: Literal["lowerIsWorse", "higherIsWorse"]
    """Required: a guessed direction would silently invert the gate."""
    confidence: Annotated[Number, Field(gt=0.5, lt=1)] | None = None
    """For ``mannWhitney``: fail only when the test is this sure (default 0.98, as Kayenta)."""
    tolerance: Annotated[Number, Field(ge=0, le=10)] | None = None
    """For ``mannWhitney``: the shift tolerated, a fraction of the stable mean (default 0.25, as Kayenta)."""
    window: Duration | None = None
    """For ``mannWhitney``: how far back samples are taken (default: 30 analysis intervals)."""

    _check_finite = field_validator("confidence", "tolerance")(_finite)

    @property
    def confidence_level(self) -> float:
        """``confidence``, or Kayenta's default 0.98."""
        return 0.98 if self.confidence is None else self.confidence

    @property
    def tolerance_fraction(self) -> float:
        """``tolerance``, or Kayenta's default 0.25."""
        return 0.25 if self.tolerance is None else self.tolerance

    def sample_window(self, interval: timedelta) -> timedelta:
        """How far back ``mannWhitney`` samples are taken: ``window``, else 30 analysis intervals."""
        return self.window if self.window is not None else 30 * interval

    @model_validator(mode="after")
    def _judge_fields(self) -> Baseline:
        given = {"confidence": self.confidence, "tolerance": self.tolerance, "window": self.window}
        statistical = {name for name, value in given.items() if value is not None}
        if self.judge == "degradation":
            if self.max_degradation is None:
                raise PydanticCustomError(
                    "baseline", "judge: degradation needs maxDegradation (or use judge: mannWhitney)"
                )
            if statistical:
                names = ", ".join(sorted(statistical))
                raise PydanticCustomError(
                    "baseline", "{names} belong to judge: mannWhitney, not degradation", {"names": names}
                )
        elif self.max_degradation is not None:
            raise PydanticCustomError(
                "baseline", "maxDegradation belongs to judge: degradation; mannWhitney uses tolerance"
            )
        if self.window is not None and self.window < timedelta(seconds=1):
            raise PydanticCustomError("duration", "the window must be at least 1s")
        lowers = self.judge == "degradation" and self.direction == "lowerIsWorse"
        if lowers and (self.max_degradation or 0) > 100:
            raise PydanticCustomError(
                "percent", "a lowerIsWorse metric cannot drop by more than 100%; use at most 100%"
            )
        return self


class Metric(Model):
    """A PromQL query judged by a ``thresholdRange`` or against a ``baseline``."""

    name: Name
    query: str = Field(min_length=1)
    threshold_range: ThresholdRange | None = None
    baseline: Baseline | None = None

    @field_validator("query")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("query", "must be a PromQL query, not blank")
        problem = _query.template_problem(value) or _query.flag_problem(value)
        if problem is not None:
            raise PydanticCustomError("query_template", "{problem}", {"problem": problem})
        return value

    @model_validator(mode="after")
    def _one_judge(self) -> Metric:
        require_exactly_one("a metric", {"thresholdRange": self.threshold_range, "baseline": self.baseline})
        return self


class Analysis(Model):
    """How each cluster (from first traffic shift to promotion) and each ring bake are judged."""

    interval: Duration = timedelta(minutes=1)
    initial_delay: Duration = timedelta(0)
    """Wait this long after a traffic shift before the first check, so the new version has served
    long enough to have data (Argo's ``initialDelay``); a check before that finds no data and holds."""
    threshold: Annotated[Count, Field(ge=1)] = 1
    """Consecutive failed checks of one metric before the cluster fails."""
    consecutive_error_limit: Annotated[Count, Field(ge=1)] = 4
    """Query errors in a row before the verdict is inconclusive; errors are never failures."""
    no_data: Literal["inconclusive", "fail"] = "inconclusive"
    """What ``threshold`` checks in a row without data mean."""
    min_data_points: Annotated[Count, Field(ge=0)] = 3
    """Checks with a value for every metric needed before a bake may end."""
    metrics: list[Metric] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise PydanticCustomError("duration", "the interval must be at least 1s")
        return value

    def metric(self, name: str) -> Metric:
        """The metric called ``name``; KeyError if there is none."""
        return by_name(self.metrics, name, "metric")


# --- residency, rollback, the plan ------------------------------------------------------------------


def _endpoint_host(value: object) -> object:
    if not isinstance(value, str):
        return value
    if "@" in value:
        raise PydanticCustomError("endpoint", "must not carry credentials; write the host only")
    try:
        host = hosts.host_of(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "endpoint", "must be a host name, an IP address or a URL: {reason}", {"reason": str(exc)}
        ) from None
    try:
        _ports.check_port(value)
    except ValueError as exc:
        raise PydanticCustomError("endpoint", "{problem}", {"problem": str(exc)}) from None
    return host


Endpoint = Annotated[str, BeforeValidator(_endpoint_host)]
"""A data endpoint, stored as its host (a URL or ``host:port`` is reduced to the host)."""


class DataResidency(Model):
    """What data the service handles, where its data lives, and where it may ever run."""

    data_class: Literal["personal", "pseudonymous", "none"]
    data_endpoints: dict[str, list[Endpoint]] = Field(default_factory=dict)
    """Per jurisdiction, the hosts holding the service's data there. For ``personal`` data every
    jurisdiction deployed to must be listed: an empty list says the service holds no data there."""
    allowed_jurisdictions: list[str] | None = Field(default=None, min_length=1)
    """When set, no cluster outside these jurisdictions is ever targeted."""


class Rollback(Model):
    """What is rolled back when a gate fails, and whether ringmaster rolls back at all.

    ``mode: freeze`` is for a release whose changes cannot be undone (an irreversible database
    migration, say): ringmaster then never writes the previous version back. A failing gate holds the
    release where it is, shown in status and the UI, until a person resumes it (the gates judge again
    from fresh data: the fix went forward) or aborts it (it ends where it stands, nothing restored).
    A failed step ends its cluster as it stands, needing attention.
    """

    scope: Literal["cluster", "ring", "release"] = "release"
    mode: Literal["automatic", "freeze"] = "automatic"

    @property
    def frozen(self) -> bool:
        """Whether this plan forbids ringmaster to roll back (``mode: freeze``)."""
        return self.mode == "freeze"


class ReleasePlan(Document):
    """Everything about how one service is released; pinned for the life of each release."""

    api_version: Literal["ringmaster.dev/v1"]
    kind: Literal["ReleasePlan"]
    service: Name
    workload: Workload
    data_residency: DataResidency
    rings: list[Ring] = Field(min_length=1)
    analysis: Analysis = Analysis()
    windows: list[Window] = Field(default_factory=list)
    rollback: Rollback = Rollback()

    def problems(self) -> list[tuple[str, str]]:
        """Rules relating parts of the plan to each other, as ``(path, message)`` pairs."""
        found: list[tuple[str, str]] = []
        found += duplicates("rings", "name", [r.name for r in self.rings])
        found += duplicates("analysis.metrics", "name", [m.name for m in self.analysis.metrics])
        for i, ring in enumerate(self.rings):
            found += duplicates(f"rings[{i}].clusters", None, ring.clusters or [])
        return found + self._flag_problems()

    def _flag_problems(self) -> list[tuple[str, str]]:
        """One flag per release, judged by metrics that tell flag-on from flag-off traffic."""
        found: list[tuple[str, str]] = []
        moving = [
            (i, r.name, r.strategy.feature_flag.flag)
            for i, r in enumerate(self.rings)
            if r.strategy.feature_flag
        ]
        flag_metrics = [m for m in self.analysis.metrics if _query.is_flag_metric(m.query)]
        for i, ring, name in moving:
            first, _, first_name = moving[0]
            if name != first_name:
                found.append(
                    (
                        f"rings[{i}].strategy.featureFlag.flag",
                        f"ring {_errors.quote(ring)} moves flag {_errors.quote(name)} but rings[{first}] "
                        f"moves {_errors.quote(first_name)}: a release moves one feature flag",
                    )
                )
            if self.analysis.metrics and not flag_metrics:
                found.append(
                    (
                        f"rings[{i}].strategy.featureFlag",
                        "no metric tells flag-on from flag-off traffic, so its steps would be judged on "
                        "the whole version, where a few percent of flag-on users hide: add "
                        'feature_on="{{featureOn}}" to a query\'s selector',
                    )
                )
        if moving and flag_metrics and len(flag_metrics) == len(self.analysis.metrics):
            # The code lands before the flag moves (a canary, a rolling update), and rings bake: there
            # is no flag-on side to tell from flag-off, so those stages are judged by the other metrics.
            found.append(
                (
                    "analysis.metrics",
                    "every metric uses {{featureOn}}, so nothing judges the code before the flag moves "
                    "or a ring's bake (each would hold, unable to fill the queries): add a metric of the "
                    'whole version, e.g. its success rate without feature_on="{{featureOn}}"',
                )
            )
        if not moving:
            found += [
                (
                    f"analysis.metrics[{j}].query",
                    "uses {{featureOn}} but no ring moves a feature flag (strategy.featureFlag): "
                    "it would never be judged",
                )
                for j, metric in enumerate(self.analysis.metrics)
                if _query.is_flag_metric(metric.query)
            ]
        return found

    @property
    def feature_flag(self) -> str | None:
        """The feature flag the release moves (in every ring that moves one), or None."""
        return next((r.strategy.feature_flag.flag for r in self.rings if r.strategy.feature_flag), None)

    def ring(self, name: str) -> Ring:
        """The ring called ``name``; KeyError if there is none."""
        return by_name(self.rings, name, "ring")
