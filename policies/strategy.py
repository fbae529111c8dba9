"""How a ring changes each of its clusters: canary, blue-green or rolling for the code, and feature flags.

A strategy is one of ``canary``, ``blueGreen`` or ``rolling`` (how the new version's code lands), and
may add a ``featureFlag``: after the code has landed with the feature off, the flag's share of the
cluster's users grows step by step (``setRollout``), judged flag-on against flag-off, and the flag is
fully on (100%) after the last step, as a canary is fully promoted after its last. A ``featureFlag``
alone lands the code by a rolling update (flag off) first. Steps mirror Argo Rollouts' canary steps:
``setWeight`` / ``setRollout`` and ``pause: {duration: 10m}``, or ``pause: {}`` to wait for a person.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from policies import flags
from policies._model import Count, Flag, Model, Subdomain, require_exactly_one
from policies.durations import Duration

__all__ = [
    "BlueGreen",
    "Canary",
    "CanaryStep",
    "FeatureFlag",
    "FlagStep",
    "Pause",
    "Rolling",
    "Strategy",
    "TrafficRouting",
]


class Pause(Model):
    """Wait ``duration``; without one, wait for an operator's approval (an indefinite pause)."""

    duration: Duration | None = None

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise PydanticCustomError("duration", "a pause must last longer than 0s; use pause: {} to wait")
        return value


def _pauses(steps: list[CanaryStep] | list[FlagStep]) -> tuple[timedelta, int]:
    """The sum of the timed pauses among ``steps``, and how many wait for a person (``pause: {}``)."""
    timed = [s.pause.duration for s in steps if s.pause and s.pause.duration]
    waits = sum(1 for s in steps if s.pause is not None and s.pause.duration is None)
    return sum(timed, timedelta(0)), waits


class CanaryStep(Model):
    """One canary step: ``setWeight`` (percent of traffic on the new version) or ``pause``."""

    set_weight: Annotated[Count, Field(ge=0, le=100)] | None = None
    pause: Pause | None = None

    @model_validator(mode="after")
    def _one_action(self) -> CanaryStep:
        require_exactly_one("a canary step", {"setWeight": self.set_weight, "pause": self.pause})
        return self


class TrafficRouting(Model):
    """Shift traffic with Gateway API route weights instead of replica ratios."""

    http_route: Subdomain


class Canary(Model):
    """Shift traffic step by step, judging metrics between steps; full promotion after the last."""

    steps: list[CanaryStep] = Field(min_length=1)
    traffic_routing: TrafficRouting | None = None

    @property
    def weights(self) -> list[int]:
        """The weights set, in order."""
        return [s.set_weight for s in self.steps if s.set_weight is not None]


class BlueGreen(Model):
    """Bring up the new version beside the old, then switch all traffic at once."""

    auto_promotion_enabled: Flag = True
    """Switch as soon as the new version is ready and judged; false waits for an operator."""
    scale_down_delay_seconds: Annotated[Count, Field(ge=0)] = 30
    """Seconds the old version stays up after the switch, for an instant switch back."""


class Rolling(Model):
    """Kubernetes' own rolling update, judged after it completes."""


class FlagStep(Model):
    """One flag step: ``setRollout`` (percent of the cluster's users who get the feature) or ``pause``."""

    set_rollout: Annotated[Count, Field(ge=1, le=100)] | None = None
    """1-100: the share of the cluster's users, by stickiness, for whom the flag is on."""
    pause: Pause | None = None

    @model_validator(mode="after")
    def _one_action(self) -> FlagStep:
        require_exactly_one("a flag step", {"setRollout": self.set_rollout, "pause": self.pause})
        return self


class FeatureFlag(Model):
    """Turn an Unleash feature flag on in each cluster step by step; fully on (100%) after the last step.

    Each ``setRollout`` writes the cluster's own ``flexibleRollout`` strategy (see :mod:`policies.flags`);
    from the first to the last, the analysis judges flag-on traffic against the same version's flag-off
    traffic, exactly as canary steps judge the new version against the stable one.
    """

    flag: flags.UnleashName
    """The Unleash feature flag (it must exist in the project of every region the ring reaches)."""
    steps: list[FlagStep] = Field(min_length=1)
    stickiness: flags.Stickiness = "userId"
    """What keeps a user on one side as the share grows: Unleash's ``userId`` (the default),
    ``sessionId``, or ``default`` (userId, else sessionId, else random)."""

    @model_validator(mode="after")
    def _growing(self) -> FeatureFlag:
        rollouts = [(i, s.set_rollout) for i, s in enumerate(self.steps) if s.set_rollout is not None]
        if not rollouts:
            raise PydanticCustomError(
                "feature_flag",
                "a featureFlag needs at least one setRollout step "
                "(steps: [{setRollout: 100}] turns it on at once)",
            )
        for (_, before), (i, after) in itertools.pairwise(rollouts):
            if after < before:
                raise PydanticCustomError(
                    "feature_flag",
                    "steps[{i}].setRollout {after} is below the {before} before it: a rollout only grows "
                    "(users who had the feature would lose it); a gate failure or an abort turns it off",
                    {"i": i, "after": after, "before": before},
                )
        return self

    @property
    def rollouts(self) -> list[int]:
        """The percentages set, in order, and 100 at the end when the last step sets less."""
        found = [s.set_rollout for s in self.steps if s.set_rollout is not None]
        return found if found[-1] == 100 else [*found, 100]

    def describe(self) -> str:
        """``flag checkout-v2 5→50→100% (20m paused, 1 approval pause(s))``."""
        timed, waits = _pauses(self.steps)
        extra = f", {waits} approval pause(s)" if waits else ""
        minutes = int(timed.total_seconds() // 60)
        percents = "→".join(str(r) for r in self.rollouts)
        return f"flag {self.flag} {percents}% ({minutes}m paused{extra})"


class Strategy(Model):
    """One of ``canary``, ``blueGreen`` or ``rolling``, and optionally a ``featureFlag`` after it or alone."""

    canary: Canary | None = None
    blue_green: BlueGreen | None = None
    rolling: Rolling | None = None
    feature_flag: FeatureFlag | None = None
    """Moved after the code has landed (flag off); alone, the code lands by a rolling update."""

    @model_validator(mode="after")
    def _one_strategy(self) -> Strategy:
        code: dict[str, object] = {
            "canary": self.canary,
            "blueGreen": self.blue_green,
            "rolling": self.rolling,
        }
        if self.feature_flag is None and all(v is None for v in code.values()):
            raise PydanticCustomError(
                "exactly_one",
                "a strategy needs one of canary, blueGreen, rolling, or featureFlag (alone or beside "
                "one of them); got none",
            )
        if any(v is not None for v in code.values()):
            require_exactly_one("a strategy", code)
        return self

    @property
    def kind(self) -> Literal["canary", "blueGreen", "rolling"]:
        """How the code lands, by its YAML name (a ``featureFlag`` alone lands it by a rolling update)."""
        if self.canary is not None:
            return "canary"
        if self.blue_green is not None:
            return "blueGreen"
        return "rolling"

    @property
    def timed_pauses(self) -> timedelta:
        """The sum of the strategy's timed pauses (code and flag): the least time one cluster takes."""
        canary = _pauses(self.canary.steps)[0] if self.canary is not None else timedelta(0)
        flag = _pauses(self.feature_flag.steps)[0] if self.feature_flag is not None else timedelta(0)
        return canary + flag

    @property
    def approval_pauses(self) -> int:
        """How many steps wait for an operator (``pause: {}``, or blue-green without auto-promotion)."""
        waits = _pauses(self.canary.steps)[1] if self.canary is not None else 0
        if self.blue_green is not None and not self.blue_green.auto_promotion_enabled:
            waits += 1
        if self.feature_flag is not None:
            waits += _pauses(self.feature_flag.steps)[1]
        return waits

    def describe(self) -> str:
        """A one-line summary for tables, e.g. ``canary 5→25→50% (25m)``, with ``, then flag ...``."""
        if self.canary is not None:
            weights = "→".join(str(w) for w in self.canary.weights) or "100"
            timed, waits = _pauses(self.canary.steps)
            extra = f", {waits} approval pause(s)" if waits else ""
            via = " via HTTPRoute" if self.canary.traffic_routing else ""
            minutes = int(timed.total_seconds() // 60)
            code = f"canary {weights}%{via} ({minutes}m paused{extra})"
        elif self.blue_green is not None:
            mode = "auto" if self.blue_green.auto_promotion_enabled else "manual"
            code = f"blueGreen ({mode} promotion)"
        else:
            code = "rolling"
        if self.feature_flag is None:
            return code
        return f"{code} with the flag off, then {self.feature_flag.describe()}"
