"""Aggregate draws for the traffic simulator: what n requests did, in a bounded number of random draws.

The simulator no longer plays each request: per stream and tick it draws how many of ``n`` requests
failed, how many landed in each histogram bucket, and how many started and completed a checkout,
from the distributions those counts follow (binomial, multinomial), so its cost is the same at 10
and 5000 requests per second. The standard library has no binomial sampler before Python 3.12 (and
3.12's ``binomialvariate`` would tie the draws to its algorithm), so :func:`binomial` is here: exact
(inversion of the distribution function, one uniform draw) while ``n * p`` is small, the normal
approximation (one Gaussian draw, rounded and clipped to ``[0, n]``) beyond, where it is within a
fraction of a standard deviation of exact. The duration sum is ``n`` times the log-normal's mean
plus Gaussian noise of the sum's deviation (:func:`total`), not a sum of bucket midpoints: the
overflow bucket has no midpoint, and ``sum / count`` then estimates the true mean, as a real
service's histogram does. Every draw comes from the given ``random.Random``, so a seeded simulator
stays reproducible.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

EXACT_BELOW = 30.0
"""Below this mean (``n * min(p, 1 - p)``) a binomial is drawn exactly; at or above, approximated."""


def binomial(n: int, p: float, rng: random.Random) -> int:
    """A draw from Binomial(n, p): how many of ``n`` independent trials succeed at probability ``p``."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(n, 1.0 - p, rng)
    mean = n * p
    if mean < EXACT_BELOW:
        return _inversion(n, p, rng)
    drawn = round(rng.gauss(mean, math.sqrt(mean * (1.0 - p))))
    return min(n, max(0, drawn))


def _inversion(n: int, p: float, rng: random.Random) -> int:
    """Exact Binomial(n, p) for p <= 1/2 and a small mean: walk the distribution function to a uniform.

    The walk takes about ``n * p`` steps; it stops where the probabilities underflow to zero, so a
    uniform in the rounding gap above the last partial sum cannot make it walk to ``n``.
    """
    u = rng.random()
    ratio = p / (1.0 - p)
    pmf = (1.0 - p) ** n  # >= exp(-1.4 * EXACT_BELOW) for p <= 1/2: no underflow
    cdf = pmf
    k = 0
    while u > cdf and k < n and pmf > 0.0:
        pmf *= ratio * (n - k) / (k + 1)
        k += 1
        cdf += pmf
    return k


@dataclass(frozen=True)
class Categories:
    """Categories of the given probabilities (summing to 1), for :meth:`draw`."""

    probabilities: tuple[float, ...]
    cumulative: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cumulative", tuple(itertools.accumulate(self.probabilities)))

    def draw(self, n: int, rng: random.Random) -> list[int]:
        """How ``n`` trials fall into the categories (a multinomial draw), in at most
        ``2 * len(probabilities)`` uniform draws or binomials whatever ``n``.

        Up to twice as many trials as categories are placed one by one (a uniform each, cheaper
        than a binomial per category); more by one binomial per category, each on what the earlier
        ones left, stopping once every trial is placed.
        """
        size = len(self.probabilities)
        counts = [0] * size
        if n <= 2 * size:
            for index in rng.choices(range(size), cum_weights=self.cumulative, k=n):
                counts[index] += 1
            return counts
        left, rest = n, 1.0
        for index, p in enumerate(self.probabilities):
            if left == 0:
                break
            if index == size - 1 or p >= rest:
                counts[index] = left
                break
            drawn = binomial(left, p / rest, rng) if p > 0.0 else 0
            counts[index] = drawn
            left -= drawn
            rest -= p
        return counts


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def lognormal_buckets(median: float, sigma: float, bounds: Sequence[float]) -> list[float]:
    """The probability that a log-normal duration (``median``, ``sigma``) falls in each bucket:
    ``(0, bounds[0]]``, ``(bounds[0], bounds[1]]`` ... and last above every bound (``len(bounds) + 1``)."""
    below = []
    for bound in bounds:
        if sigma == 0.0:
            below.append(1.0 if median <= bound else 0.0)
        else:
            below.append(_normal_cdf((math.log(bound) - math.log(median)) / sigma))
    edges = [0.0, *below, 1.0]
    return [max(0.0, edges[i + 1] - edges[i]) for i in range(len(bounds) + 1)]


def lognormal_moments(median: float, sigma: float) -> tuple[float, float]:
    """The mean and standard deviation of a log-normal duration of ``median`` and ``sigma``."""
    spread = sigma * sigma
    mean = median * math.exp(spread / 2.0)
    return mean, mean * math.sqrt(math.expm1(spread))


def total(n: int, mean: float, sd: float, rng: random.Random) -> float:
    """The sum of ``n`` durations of that mean and deviation: ``n * mean`` plus Gaussian noise of
    ``sd * sqrt(n)`` (the central limit), never negative."""
    if n <= 0:
        return 0.0
    return max(0.0, n * mean + rng.gauss(0.0, sd * math.sqrt(n)))
