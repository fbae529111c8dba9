"""Shared inputs for the policy tests: the committed example files, loaded and as raw dictionaries."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies import loading, schedule
from policies.fleet import Fleet
from policies.plan import ReleasePlan
from tests.support import fleets


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    """The example fleet, loaded."""
    return fleets.example_fleet()


@pytest.fixture(scope="session")
def plan() -> ReleasePlan:
    """The example plan, loaded."""
    return loading.load_plan(fleets.EXAMPLE_PLAN)


@pytest.fixture(scope="session")
def example_schedule(plan: ReleasePlan, fleet: Fleet) -> schedule.Schedule:
    """The example plan scheduled on the example fleet."""
    return schedule.build(plan, fleet, "1.4.2")


@pytest.fixture
def plan_data() -> dict[str, Any]:
    """A fresh copy of the example plan as the dictionary YAML gives."""
    return copy.deepcopy(fleets.PLAN_DATA)


@pytest.fixture
def fleet_data() -> dict[str, Any]:
    """A fresh copy of the example fleet as the dictionary YAML gives."""
    return copy.deepcopy(fleets.FLEET_DATA)
