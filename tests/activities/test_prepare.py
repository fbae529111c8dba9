"""The prepare activity: which plans this worker accepts to run."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.models import PrepareInput
from activities.release import ReleaseActivities
from tests.support import fleets

FLAG_PLAN = fleets.EXAMPLES / "flag-plan.yaml"


def _input(path: str, service: str) -> PrepareInput:
    text = (fleets.EXAMPLES / path).read_text()
    return PrepareInput(plan_text=text, plan_source=path, service=service, version="v2", image="r/x:v2")


class TestFeatureFlagPlans:
    def test_a_plan_moving_a_flag_is_refused_until_workers_move_flags(self) -> None:
        """A valid flag plan is refused as invalid, never run as its code alone with the flag left as is."""
        activities = ReleaseActivities(fleets.example_fleet())
        with pytest.raises(ApplicationError) as raised:
            activities.prepare_release(_input("flag-plan.yaml", "checkout"))
        assert raised.value.type == errors.INVALID_PLAN
        assert raised.value.non_retryable
        assert "checkout-v2" in str(raised.value)

    def test_a_plan_without_flags_still_prepares_on_a_fleet_with_flag_servers(self) -> None:
        """The example plan prepares on the example fleet, whose regions now name flag servers."""
        prepared = ReleaseActivities(fleets.example_fleet()).prepare_release(_input("plan.yaml", "api"))
        assert [r.name for r in prepared.schedule.rings] == ["internal", "beta", "broad"]
