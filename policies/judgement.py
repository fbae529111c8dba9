"""A release plan judged against a fleet: parsed, checked, scheduled, and its static residency rules applied.

This is the one path from plan text to a judged schedule. ``ringmaster validate``, ``plan`` and
``submit --fleet`` call it on the files they read; the worker's ``prepare_release`` activity calls it
on the submitted text and the fleet it holds. It does no I/O: callers read files
(:func:`policies.loading.read`) and pass texts, or a fleet already loaded.

Every problem is a :class:`policies.loading.ConfigError`: problems of the plan and of the fleet
together, then problems across the two, then a version the schedule cannot use. A residency denial is
not an error but part of the judgement (callers decide what a denial means for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policies import loading, residency, schedule
from policies.fleet import Fleet
from policies.plan import ReleasePlan


@dataclass(frozen=True)
class Judgement:
    """A valid plan on its fleet: the schedule of one version and what each static residency rule says."""

    plan: ReleasePlan
    fleet: Fleet
    schedule: schedule.Schedule
    decisions: Mapping[str, list[residency.Decision]]
    """Every cluster's static residency decisions, by cluster name."""
    denials: tuple[residency.Decision, ...]
    """The decisions that deny a cluster, in schedule order; empty when the release may run."""


def judge(plan: loading.Text, fleet: loading.Text | Fleet, version: str) -> Judgement:
    """Parse ``plan`` (and ``fleet`` when given as text), schedule ``version`` and judge residency.

    Raises ConfigError listing every problem: of both texts at once, else of the plan against the
    fleet, else of the version (a problem with no source: it is in neither file).
    """
    errors: list[loading.ConfigError] = []
    release_fleet: Fleet | None = fleet if isinstance(fleet, Fleet) else None
    release_plan: ReleasePlan | None = None
    if isinstance(fleet, loading.Text):
        try:
            release_fleet = loading.parse(fleet, Fleet)
        except loading.ConfigError as err:
            errors.append(err)
    try:
        release_plan = loading.parse(plan, ReleasePlan)
    except loading.ConfigError as err:
        errors.append(err)
    if errors:
        raise loading.ConfigError.combine(errors)
    assert release_plan is not None
    assert release_fleet is not None
    try:
        loading.check_plan_against_fleet(release_plan, release_fleet, plan.source)
    except loading.ConfigError as err:
        raise loading.located(err, plan) from None
    try:
        built = schedule.build(release_plan, release_fleet, version)
    except ValueError as err:
        # The version is an argument, not part of either file: its error names no source.
        raise loading.ConfigError("", [loading.Problem("", str(err))]) from None
    decisions = residency.static_decisions(release_plan, release_fleet, built)
    return Judgement(
        plan=release_plan,
        fleet=release_fleet,
        schedule=built,
        decisions=decisions,
        denials=tuple(residency.denials(decisions)),
    )
