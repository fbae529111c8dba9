"""Kayenta's statistical judge for baseline metrics: a Mann-Whitney U test of new against stable samples.

A metric with ``baseline: {judge: mannWhitney}`` is sampled over a window for both versions (the
source gathers the samples with range queries); :func:`compare` tests whether the new version is
worse than the stable one by more than the tolerated shift, ``tolerance`` times the stable mean
(Kayenta's ``tolerance: 0.25``), in the metric's ``direction``. This is the one-sided location test
that is dual to Kayenta's check that the confidence interval of the shift lies beyond the
tolerance: shift the new samples back by the tolerance and ask scipy whether they are still
stochastically worse. :func:`policies.gates.assess` then fails the check when the p-value is below
``1 - confidence`` (Kayenta's ``confidence: 0.98``). Too few samples on either side is no data.

Pure: no I/O, deterministic for the same samples.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import stats

from policies._model import Model
from policies.plan import Baseline

MIN_SAMPLES = 5
"""Samples needed of each version: with fewer, no p-value can reach a 0.98 confidence anyway."""


class Comparison(Model):
    """The test's outcome: the p-value (None: too few samples), means, and the shift it tolerates."""

    p_value: float | None
    new_mean: float | None
    stable_mean: float | None
    shift: float | None
    """Hodges-Lehmann estimate of new minus stable (the median of pairwise differences)."""
    tolerated: float
    """The shift in the worse direction that still passes: ``tolerance * |stable mean|``."""
    new_samples: int
    stable_samples: int
    reason: str = ""


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _shift(new: list[float], stable: list[float]) -> float:
    return float(statistics.median(a - b for a in new for b in stable))


def compare(new: Sequence[float], stable: Sequence[float], baseline: Baseline) -> Comparison:
    """Mann-Whitney U test of ``new`` worse than ``stable`` by more than the tolerance (non-finite
    samples dropped); ``p_value`` None when either side has fewer than :data:`MIN_SAMPLES`."""
    x, y = _finite(new), _finite(stable)
    new_mean = statistics.fmean(x) if x else None
    stable_mean = statistics.fmean(y) if y else None
    tolerated = baseline.tolerance_fraction * abs(stable_mean) if stable_mean is not None else 0.0
    if len(x) < MIN_SAMPLES or len(y) < MIN_SAMPLES:
        return Comparison(
            p_value=None,
            new_mean=new_mean,
            stable_mean=stable_mean,
            shift=None,
            tolerated=tolerated,
            new_samples=len(x),
            stable_samples=len(y),
            reason=f"{len(x)} new and {len(y)} stable samples; mannWhitney needs {MIN_SAMPLES} of each",
        )
    if baseline.direction == "higherIsWorse":
        shifted = [v - tolerated for v in x]
        alternative = "greater"
    else:
        shifted = [v + tolerated for v in x]
        alternative = "less"
    if max(shifted + y) == min(shifted + y):
        p_value = 1.0  # every sample equal: no evidence of any shift (scipy would warn and answer nan)
    else:
        p_value = float(stats.mannwhitneyu(shifted, y, alternative=alternative).pvalue)
    return Comparison(
        p_value=p_value,
        new_mean=new_mean,
        stable_mean=stable_mean,
        shift=_shift(x, y),
        tolerated=tolerated,
        new_samples=len(x),
        stable_samples=len(y),
    )
