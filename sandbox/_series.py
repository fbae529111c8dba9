"""What the traffic simulator counts: its series, how a behaviour's requests come out, and when
versions and flags served.

:class:`Series` holds the counters of one :data:`SeriesKey` of a cluster and records ``n`` requests
at once from an :class:`Outcomes` (see :mod:`sandbox.traffic` on the aggregate draws);
:class:`Served` remembers when each version, and each flag switched on, first and last served.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from sandbox import _sampling
from sandbox.settings import Behaviour

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Histogram bucket bounds in seconds (the Prometheus clients' defaults)."""
MAX_DRAWS = 2 * 5 + 2 * (len(BUCKETS) + 1)
"""Uniform draws :meth:`Series.record` takes at most, whatever the number of requests: four
binomials and a Gaussian (each at most two uniforms), and a multinomial over the buckets and the
overflow (at most two uniforms per category)."""


@dataclass(frozen=True)
class Outcomes:
    """How one behaviour's requests come out, worked out once for the aggregate draws."""

    error_rate: float
    buckets: _sampling.Categories
    """Probability of a duration in each histogram bucket, then above the last bound."""
    mean_seconds: float
    sd_seconds: float
    checkout_share: float
    checkout_conversion: float

    @classmethod
    def of(cls, behaviour: Behaviour) -> Outcomes:
        """The outcomes of ``behaviour``: its log-normal's bucket probabilities and moments."""
        median = behaviour.latency_median_seconds * behaviour.latency_factor
        mean, sd = _sampling.lognormal_moments(median, behaviour.latency_sigma)
        return cls(
            error_rate=behaviour.error_rate,
            buckets=_sampling.Categories(
                tuple(_sampling.lognormal_buckets(median, behaviour.latency_sigma, BUCKETS))
            ),
            mean_seconds=mean,
            sd_seconds=sd,
            checkout_share=behaviour.checkout_share,
            checkout_conversion=behaviour.checkout_conversion,
        )


SeriesKey = tuple[str, str, str, str, str, str]
"""(namespace, service, version, track, feature, feature_on) of a series in one cluster."""


@dataclass
class Series:
    """Counters of one :data:`SeriesKey` in one cluster."""

    codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    duration_sum: float = 0.0
    count: int = 0
    started: int = 0
    completed: int = 0

    def record(self, n: int, outcomes: Outcomes, rng: random.Random) -> None:
        """``n`` requests, drawn in aggregate: at most :data:`MAX_DRAWS` uniform draws whatever ``n``.

        As when each request was played: a request fails at the error rate, starts a checkout at the
        checkout share whether it failed or not, and completes that checkout at the conversion only
        if it did not fail; a status code appears in the exposition once it was first answered.
        """
        failed = _sampling.binomial(n, outcomes.error_rate, rng)
        for code, answered in (("200", n - failed), ("500", failed)):
            if answered:
                self.codes[code] += answered
        placed = outcomes.buckets.draw(n, rng)
        for index in range(len(BUCKETS)):
            self.buckets[index] += placed[index]
        self.duration_sum += _sampling.total(n, outcomes.mean_seconds, outcomes.sd_seconds, rng)
        self.count += n
        started_ok = _sampling.binomial(n - failed, outcomes.checkout_share, rng)
        self.started += started_ok + _sampling.binomial(failed, outcomes.checkout_share, rng)
        self.completed += _sampling.binomial(started_ok, outcomes.checkout_conversion, rng)


_EQUAL_SHARES: dict[int, _sampling.Categories] = {}


def equal_shares(k: int) -> _sampling.Categories:
    """``k`` equally likely categories (a Service's requests split among its flags)."""
    found = _EQUAL_SHARES.get(k)
    if found is None:
        found = _EQUAL_SHARES[k] = _sampling.Categories(tuple([1.0 / k] * k))
    return found


@dataclass
class Served:
    """When one cluster's versions, and its flags switched on, first and last served a request."""

    versions: dict[str, list[float]] = field(default_factory=dict)
    features: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def saw(times: dict[str, list[float]], key: str, now: float) -> None:
        """``key`` served a request at ``now``."""
        found = times.get(key)
        if found is None:
            times[key] = [now, now]
        else:
            found[1] = now

    def json(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{versions: {v: {first, last}}, features: {flag: {first, last}}}``."""
        return {
            kind: {k: {"first": t[0], "last": t[1]} for k, t in times.items()}
            for kind, times in (("versions", self.versions), ("features", self.features))
        }
