"""The prepare activity: which plans this worker accepts to run."""

from __future__ import annotations

from activities.models import PrepareInput
from activities.release import ReleaseActivities
from tests.support import fleets

FLAG_PLAN = fleets.EXAMPLES / "flag-plan.yaml"


def _input(path: str, service: str) -> PrepareInput:
    text = (fleets.EXAMPLES / path).read_text()
    return PrepareInput(plan_text=text, plan_source=path, service=service, version="v2", image="r/x:v2")


class TestFeatureFlagPlans:
    def test_a_plan_moving_a_flag_is_prepared_with_each_reached_regions_flag_server(self) -> None:
        """A valid flag plan prepares, carrying the flag server of every region its flag rings reach
        (the cluster workflows move the flag there), and of no other region."""
        fleet = fleets.example_fleet()
        prepared = ReleaseActivities(fleet).prepare_release(_input("flag-plan.yaml", "checkout"))
        reached = {c.region for r in prepared.schedule.rings if r.strategy.feature_flag for c in r.clusters()}
        assert reached
        assert prepared.flag_servers == {region: fleet.region(region).flags for region in reached}

    def test_a_plan_without_flags_names_no_flag_server(self) -> None:
        """A plan moving no flag carries no flag server."""
        prepared = ReleaseActivities(fleets.example_fleet()).prepare_release(_input("plan.yaml", "api"))
        assert prepared.flag_servers == {}

    def test_a_plan_without_flags_still_prepares_on_a_fleet_with_flag_servers(self) -> None:
        """The example plan prepares on the example fleet, whose regions now name flag servers."""
        prepared = ReleaseActivities(fleets.example_fleet()).prepare_release(_input("plan.yaml", "api"))
        assert [r.name for r in prepared.schedule.rings] == ["internal", "beta", "broad"]
