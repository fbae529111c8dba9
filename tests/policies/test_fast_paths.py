"""The fast paths for big fleets answer exactly what the straightforward versions answered.

Schedules, window states and fleet lookups were made fast for 2,000 clusters in 500 regions (indexes
by name, the regions a wave excludes, one window computation per distinct calendar). Each is checked
here against a plain reference written as the code used to be, on generated small fleets and plans.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import schedule, windows
from policies.fleet import Fleet
from policies.plan import ReleasePlan
from tests.policies.helpers import plan_data

ZONES = ("UTC", "Europe/Dublin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/St_Johns")


# --- references: the code as it was before it was made fast ----------------------------------------


def _region(fleet: Fleet, name: str) -> Any:
    return next(r for r in fleet.regions if r.name == name)


def _paired(fleet: Fleet, a: str, b: str) -> bool:
    return a != b and (_region(fleet, a).pair == b or _region(fleet, b).pair == a)


def _reference_waves(clusters: list[Any], size: int, fleet: Fleet) -> list[list[str]]:
    waiting = list(clusters)
    waves: list[list[Any]] = []
    while waiting:
        wave: list[Any] = []
        for cluster in list(waiting):
            if len(wave) == size:
                break
            if not any(_paired(fleet, cluster.region, other.region) for other in wave):
                wave.append(cluster)
                waiting.remove(cluster)
        waves.append(wave)
    return [[c.name for c in wave] for wave in waves]


def _reference_earlier(built: schedule.Schedule, name: str) -> list[str]:
    found: list[str] = []
    for ring in built.rings:
        for wave in ring.waves:
            if any(c.name == name for c in wave.clusters):
                return found
            found += [c.name for c in wave.clusters]
    raise AssertionError(f"{name} is not scheduled")


# --- generated fleets and plans ---------------------------------------------------------------------


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    """Up to six regions paired any way (both sides, one side, disagreeing, unknown, itself); 12 clusters."""
    names = [f"r{i}" for i in range(draw(st.integers(1, 6)))]
    regions = [
        {
            "name": name,
            "jurisdiction": draw(st.sampled_from(["EU", "US"])),
            "timezone": draw(st.sampled_from(ZONES)),
            "pair": draw(st.none() | st.sampled_from([*names, "nowhere"])),
            "prometheus": "http://prometheus.eu.example.com:9090",
        }
        for name in names
    ]
    clusters = [
        {
            "name": f"c{i}",
            "region": draw(st.sampled_from(names)),
            "kubeContext": f"c{i}",
            "labels": {
                "audience": draw(st.sampled_from(["a", "b"])),
                "regulated": draw(st.sampled_from(["true", "false"])),
            },
        }
        for i in range(draw(st.integers(1, 12)))
    ]
    data = {"apiVersion": "ringmaster.dev/v1", "kind": "Fleet", "regions": regions, "clusters": clusters}
    # Inconsistent pairs are reported by the loader; the schedule must still agree with the reference.
    return Fleet.model_validate(data, context={"collect_problems": True})


@st.composite
def fleets_and_plans(draw: st.DrawFn) -> tuple[Fleet, ReleasePlan]:
    """A fleet and a plan of an explicit ring in a drawn order and a selector ring, any maxParallel."""
    fleet = draw(fleets())
    names = [c.name for c in fleet.clusters]
    explicit = draw(st.permutations(names))[: draw(st.integers(1, len(names)))]
    rings: list[dict[str, Any]] = [
        {
            "name": "first",
            "clusters": explicit,
            "maxParallel": draw(st.integers(1, 5)),
            "strategy": {"rolling": {}},
        },
        {
            "name": "second",
            "clusterSelector": {"audience": draw(st.sampled_from(["a", "b"]))},
            "maxParallel": draw(st.sampled_from([1, 2, 3, 2000])),
            "strategy": {"rolling": {}},
        },
    ]
    region_names = [r.name for r in fleet.regions]
    plan_windows: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        regions = draw(st.none() | st.lists(st.sampled_from(region_names), min_size=1, unique=True))
        start, length = draw(st.integers(0, 23)), draw(st.integers(1, 30))
        weekly = {
            "days": draw(st.lists(st.sampled_from(["Mon", "Tue", "Sat", "Sun"]), min_size=1, unique=True)),
            "start": f"{start:02d}:30",
            "end": f"{(start + length) % 24:02d}:00",
        }
        freeze = {"from": "2026-03-29T00:00:00Z", "to": "2026-04-01T12:00:00Z"}
        kind = draw(st.sampled_from(["weekly", "freeze"]))
        window: dict[str, Any] = {"weekly": [weekly]} if kind == "weekly" else {"freeze": freeze}
        plan_windows.append(window if regions is None else {"regions": regions, **window})
    data = plan_data(rings=rings, windows=plan_windows, dataResidency={"dataClass": "none"})
    return fleet, ReleasePlan.model_validate(data)


class TestScheduleMatchesReference:
    @settings(max_examples=150, deadline=None)
    @given(fleets_and_plans())
    def test_waves_are_first_fit_as_before(self, generated: tuple[Fleet, ReleasePlan]) -> None:
        """Every ring's waves are the ones the pairwise first-fit scan gives, pairs declared any way."""
        fleet, plan = generated
        built = schedule.build(plan, fleet, "1.0.0")
        for ring, scheduled in zip(plan.rings, built.rings, strict=True):
            members = [schedule._scheduled(c, ring.name, fleet) for c in schedule.ring_clusters(ring, fleet)]
            expected = _reference_waves(
                [c for c in members if not c.regulated], ring.max_parallel, fleet
            ) + _reference_waves([c for c in members if c.regulated], ring.max_parallel, fleet)
            assert [[c.name for c in wave.clusters] for wave in scheduled.waves] == expected

    @settings(max_examples=100, deadline=None)
    @given(fleets_and_plans())
    def test_lookups_answer_as_scans_did(self, generated: tuple[Fleet, ReleasePlan]) -> None:
        """``cluster`` and ``earlier`` answer what scanning the waves answers, for every scheduled cluster."""
        fleet, plan = generated
        built = schedule.build(plan, fleet, "1.0.0")
        order = [c for ring in built.rings for wave in ring.waves for c in wave.clusters]
        for cluster in order:
            assert built.cluster(cluster.name) == next(c for c in order if c.name == cluster.name)
            assert [c.name for c in built.earlier(cluster.name)] == _reference_earlier(built, cluster.name)
        with pytest.raises(KeyError, match="unknown cluster 'absent'"):
            built.cluster("absent")
        with pytest.raises(KeyError, match="'absent' is not in the schedule"):
            built.earlier("absent")


class TestFleetIndexes:
    @settings(max_examples=100, deadline=None)
    @given(fleets())
    def test_partners_are_the_paired_regions(self, fleet: Fleet) -> None:
        """A region's partners are exactly the regions ``paired`` names, however pairs are declared."""
        names = [r.name for r in fleet.regions]
        for a in names:
            assert fleet.partners(a) == {b for b in names if _paired(fleet, a, b)}
            assert all(fleet.paired(a, b) == _paired(fleet, a, b) for b in names)

    def test_lookups_by_name_and_unknown_names(self) -> None:
        """Regions and clusters are found by name; an unknown name is the same KeyError as before."""
        fleet = Fleet.model_validate(_small_fleet())
        assert fleet.region("eu-b").timezone == "Europe/Berlin"
        assert fleet.cluster("eub-1").region == "eu-b"
        with pytest.raises(KeyError, match="unknown region 'nowhere'"):
            fleet.region("nowhere")
        with pytest.raises(KeyError, match="unknown cluster 'nowhere'"):
            fleet.cluster("nowhere")
        with pytest.raises(KeyError, match="unknown region 'nowhere'"):
            fleet.partners("nowhere")

    def test_a_copy_with_other_fields_indexes_its_own(self) -> None:
        """``model_copy`` with new regions answers from them, not from the original's cached index."""
        fleet = Fleet.model_validate(_small_fleet())
        assert fleet.region("eu-a").timezone == "Europe/Dublin"
        moved = fleet.model_copy(
            update={"regions": [r.model_copy(update={"timezone": "UTC"}) for r in fleet.regions]}
        )
        assert moved.region("eu-a").timezone == "UTC"
        assert fleet.region("eu-a").timezone == "Europe/Dublin"

    def test_host_placements_do_not_carry_the_cluster(self) -> None:
        """A remembered in-cluster name still resolves to the jurisdiction of the cluster asked about."""
        fleet = Fleet.model_validate(_small_fleet())
        for _ in range(2):
            assert fleet.jurisdiction_of_host("db.svc", cluster="eua-1") == "EU"
            assert fleet.jurisdiction_of_host("db.svc", cluster="usa-1") == "US"
            assert fleet.jurisdiction_of_host("db.svc") is None
            assert fleet.jurisdiction_of_host("http://x.us.example.com:80/p") == "US"
            assert fleet.jurisdiction_of_host("no host here://") is None


def _small_fleet() -> dict[str, Any]:
    def region(name: str, jurisdiction: str, zone: str, pair: str | None) -> dict[str, Any]:
        url = f"http://prometheus.{jurisdiction.lower()}.example.com:9090"
        return {"name": name, "jurisdiction": jurisdiction, "timezone": zone, "pair": pair, "prometheus": url}

    return {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "Fleet",
        "regions": [
            region("eu-a", "EU", "Europe/Dublin", "eu-b"),
            region("eu-b", "EU", "Europe/Berlin", None),
            region("us-a", "US", "America/New_York", None),
        ],
        "clusters": [
            {"name": name, "region": where, "kubeContext": name}
            for name, where in (("eua-1", "eu-a"), ("eub-1", "eu-b"), ("usa-1", "us-a"))
        ],
        "hosts": [
            {"match": "*.eu.example.com", "jurisdiction": "EU"},
            {"match": "*.us.example.com", "jurisdiction": "US"},
        ],
    }


class TestWindowStatesShared:
    @settings(max_examples=60, deadline=None)
    @given(
        fleets_and_plans(),
        st.datetimes(min_value=datetime(2026, 3, 27), max_value=datetime(2026, 4, 3), timezones=st.just(UTC)),
    )
    def test_states_equal_state_per_region(self, generated: tuple[Fleet, ReleasePlan], at: datetime) -> None:
        """Regions sharing a time zone and windows share one computation, and each gets its own answer."""
        fleet, plan = generated
        names = [r.name for r in fleet.regions]
        assert windows.states(plan, fleet, names, at) == {r: windows.state(plan, fleet, r, at) for r in names}

    def test_is_open_agrees_with_state(self) -> None:
        """``is_open``, ``next_open`` and ``next_close`` read one region's calendar as ``state`` does."""
        fleet = Fleet.model_validate(_small_fleet())
        weekly = {"days": ["Sun", "Mon"], "start": "01:30", "end": "03:00"}
        plan = ReleasePlan.model_validate(
            plan_data(
                rings=[{"name": "r", "clusters": ["eua-1"], "strategy": {"rolling": {}}}],
                windows=[{"regions": ["eu-a", "eu-b"], "weekly": [weekly]}],
                dataResidency={"dataClass": "none"},
            )
        )
        at = datetime(2026, 3, 28, 22, tzinfo=UTC)
        for region in ("eu-a", "eu-b", "us-a"):
            found = windows.state(plan, fleet, region, at)
            assert found.open == windows.is_open(plan, fleet, region, at)
            assert found.next_open == windows.next_open(plan, fleet, region, at)
            assert found.next_close == windows.next_close(plan, fleet, region, at)
        # Dublin springs forward at 01:00 UTC on 29 March: 01:30 local does not exist that night.
        assert windows.next_open(plan, fleet, "eu-a", at) == datetime(2026, 3, 29, 1, tzinfo=UTC)
        assert windows.next_open(plan, fleet, "eu-a", at + timedelta(hours=4)) == datetime(
            2026, 3, 30, 0, 30, tzinfo=UTC
        )
