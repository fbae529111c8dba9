"""Wave planning: ring order, maxParallel, paired regions apart, regulated clusters last, determinism."""

from __future__ import annotations

import pytest

from policies import schedule
from policies.fleet import Fleet
from policies.plan import ReleasePlan
from tests.policies.helpers import make_fleet, make_plan, ring

# Two jurisdictions, each with a pair of regions; three clusters in every region.
PAIRED = make_fleet(
    [("eu-a", "EU", "eu-b"), ("eu-b", "EU", "eu-a"), ("us-a", "US", "us-b"), ("us-b", "US", None)],
    [
        ("eua-1", "eu-a", {}),
        ("eua-2", "eu-a", {}),
        ("eub-1", "eu-b", {}),
        ("eub-reg", "eu-b", {"regulated": "true"}),
        ("usa-1", "us-a", {}),
        ("usb-1", "us-b", {}),
        ("usa-reg", "us-a", {"regulated": "true"}),
    ],
)


def _waves(clusters: list[str], max_parallel: int) -> list[list[str]]:
    plan = make_plan(
        rings=[ring("only", clusters, max_parallel=max_parallel)],
        windows=[],
        dataResidency={"dataClass": "none"},
    )
    built = schedule.build(plan, PAIRED, "1.0.0")
    return [[c.name for c in wave.clusters] for wave in built.rings[0].waves]


class TestWaves:
    @pytest.mark.parametrize(
        ("clusters", "max_parallel", "expected"),
        [
            (["eua-1", "usa-1"], 1, [["eua-1"], ["usa-1"]]),
            (["eua-1", "eua-2", "usa-1"], 3, [["eua-1", "eua-2", "usa-1"]]),
            (["eua-1", "eub-1"], 2, [["eua-1"], ["eub-1"]]),
            (["eua-1", "eub-1", "usa-1"], 2, [["eua-1", "usa-1"], ["eub-1"]]),
            (["usa-1", "usb-1", "eua-1", "eub-1"], 4, [["usa-1", "eua-1"], ["usb-1", "eub-1"]]),
            (["eub-reg", "eua-1", "usa-1"], 3, [["eua-1", "usa-1"], ["eub-reg"]]),
            (["usa-reg", "eub-reg", "eua-1"], 3, [["eua-1"], ["usa-reg", "eub-reg"]]),
            (["eub-reg", "usa-reg"], 1, [["eub-reg"], ["usa-reg"]]),
            (["usa-1", "eua-2", "eua-1"], 2, [["usa-1", "eua-2"], ["eua-1"]]),
        ],
        ids=[
            "max-parallel-1-is-sequential",
            "room-for-all",
            "pair-never-shares-a-wave",
            "pair-waits-while-others-fill",
            "pair-declared-on-one-side-only",
            "regulated-after-others-even-with-room",
            "regulated-only-waves-also-pack",
            "regulated-sequential",
            "explicit-order-kept",
        ],
    )
    def test_wave_layout(self, clusters: list[str], max_parallel: int, expected: list[list[str]]) -> None:
        """Waves take clusters first-fit in order, at most maxParallel, never paired regions together,
        regulated clusters only after every other cluster of the ring."""
        assert _waves(clusters, max_parallel) == expected

    @pytest.mark.parametrize("max_parallel", [1, 2, 3, 7])
    def test_every_cluster_once_and_waves_bounded(self, max_parallel: int) -> None:
        """Whatever maxParallel, each cluster appears exactly once and no wave exceeds it."""
        names = ["eua-1", "eua-2", "eub-1", "eub-reg", "usa-1", "usb-1", "usa-reg"]
        waves = _waves(names, max_parallel)
        assert sorted(c for w in waves for c in w) == sorted(names)
        assert all(0 < len(w) <= max_parallel for w in waves)


class TestExampleSchedule:
    def test_paired_prod_clusters_in_different_waves(self, example_schedule: schedule.Schedule) -> None:
        """euw1-prod and euc1-prod (paired regions) never share a wave; regulated euc1-prod comes later."""
        broad = example_schedule.ring("broad")
        wave_of = {c.name: w.index for w in broad.waves for c in w.clusters}
        assert wave_of["euw1-prod"] < wave_of["euc1-prod"]
        assert max(len(w.clusters) for w in broad.waves) <= 2
        assert [[c.name for c in w.clusters] for w in broad.waves] == [
            ["euw1-prod", "use1-prod"],
            ["usw2-prod"],
            ["euc1-prod"],
        ]

    def test_rings_in_plan_order(self, example_schedule: schedule.Schedule) -> None:
        """Rings keep plan order and index; all_clusters walks ring, wave, position."""
        assert [(r.index, r.name) for r in example_schedule.rings] == [
            (0, "internal"),
            (1, "beta"),
            (2, "broad"),
        ]
        assert [c.name for c in example_schedule.all_clusters()] == [
            "euw1-internal",
            "euc1-beta",
            "use1-beta",
            "euw1-prod",
            "use1-prod",
            "usw2-prod",
            "euc1-prod",
        ]

    def test_minimum_duration_counts_pauses_per_wave_and_bakes(
        self, example_schedule: schedule.Schedule
    ) -> None:
        """25m + 30m bake, then a 1h bake, then 3 waves of 20m + 2h bake: 4h55m in all."""
        assert [r.minimum_duration.total_seconds() for r in example_schedule.rings] == [3300, 3600, 10800]
        assert example_schedule.minimum_duration.total_seconds() == 17700

    def test_scheduled_clusters_carry_placement(self, example_schedule: schedule.Schedule) -> None:
        """Each scheduled cluster knows its ring, region, jurisdiction, time zone, context and regulation."""
        cluster = example_schedule.cluster("euc1-prod")
        assert (cluster.ring, cluster.region, cluster.jurisdiction, cluster.timezone) == (
            "broad",
            "eu-central-1",
            "EU",
            "Europe/Berlin",
        )
        assert cluster.kube_context == "euc1-prod"
        assert cluster.regulated

    def test_deterministic(self, plan: ReleasePlan, fleet: Fleet) -> None:
        """Building twice from the same input gives equal schedules."""
        assert schedule.build(plan, fleet, "2.0.0") == schedule.build(plan, fleet, "2.0.0")

    def test_earlier_excludes_wave_mates(self, example_schedule: schedule.Schedule) -> None:
        """Clusters running alongside in the same wave are not 'earlier'."""
        assert [c.name for c in example_schedule.earlier("use1-prod")] == [
            "euw1-internal",
            "euc1-beta",
            "use1-beta",
        ]

    @pytest.mark.parametrize("name", ["nope", "internal"])
    def test_unknown_cluster_lookup(self, example_schedule: schedule.Schedule, name: str) -> None:
        """Looking up a cluster the schedule does not visit raises KeyError."""
        with pytest.raises(KeyError):
            example_schedule.cluster(name)


class TestVersion:
    @pytest.mark.parametrize("version", ["1.4.2", "v2.0.0-rc.1+build.7", "2026_01_01", "a"])
    def test_accepts_label_safe_versions(self, plan: ReleasePlan, fleet: Fleet, version: str) -> None:
        """Versions usable as Kubernetes label values and PromQL strings are accepted."""
        assert schedule.build(plan, fleet, version).version == version

    @pytest.mark.parametrize("version", ["", "-1", 'x"}', "1.0 beta", "a/b", "x" * 200])
    def test_rejects_unsafe_versions(self, plan: ReleasePlan, fleet: Fleet, version: str) -> None:
        """A version that could break labels or queries raises ValueError naming what is allowed."""
        with pytest.raises(ValueError, match="letters, digits") as refused:
            schedule.build(plan, fleet, version)
        assert len(str(refused.value)) < 160, "a long version is clipped, never echoed whole"
