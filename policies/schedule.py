"""The rollout order: rings in plan order, and waves of clusters inside each ring.

:func:`build` turns a plan and a fleet into a :class:`Schedule`, a serialisable model the release
workflow follows step by step. Inside a ring, waves hold at most ``maxParallel`` clusters, never two
clusters of paired regions (a region and its disaster-recovery pair are never at risk together), and
clusters labelled ``regulated: "true"`` come after all of the ring's other clusters. The same input
always gives the same schedule: explicit cluster lists keep their order, selectors keep fleet order.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field

from policies._model import Model, by_name
from policies.durations import Duration
from policies.fleet import Cluster, Fleet
from policies.plan import Approval, ReleasePlan, Ring, Strategy, Workload

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class ScheduledCluster(Model):
    """A cluster as the schedule visits it, with the placement facts decisions are made on."""

    name: str
    ring: str
    region: str
    jurisdiction: str
    timezone: str
    kube_context: str
    labels: dict[str, str] = Field(default_factory=dict)
    regulated: bool = False


class Wave(Model):
    """Clusters of one ring deployed at the same time."""

    index: int
    clusters: list[ScheduledCluster]


class ScheduledRing(Model):
    """A ring with its resolved clusters, in waves."""

    name: str
    index: int
    strategy: Strategy
    approval: Approval
    bake_time: Duration
    max_parallel: int
    waves: list[Wave]

    @property
    def minimum_duration(self) -> timedelta:
        """Each wave's timed pauses, one wave after another, then the bake."""
        return self.strategy.timed_pauses * len(self.waves) + self.bake_time

    def clusters(self) -> list[ScheduledCluster]:
        """The ring's clusters in schedule order."""
        return [c for wave in self.waves for c in wave.clusters]


class Schedule(Model):
    """The whole rollout of one version of one service, in order."""

    service: str
    version: str
    workload: Workload
    rings: list[ScheduledRing]
    minimum_duration: Duration
    """The least time the release takes: timed pauses and bakes (approvals and windows add to it)."""

    def all_clusters(self) -> list[ScheduledCluster]:
        """Every cluster in schedule order (ring, then wave, then position in the wave)."""
        return [c for ring in self.rings for c in ring.clusters()]

    def cluster(self, name: str) -> ScheduledCluster:
        """The scheduled cluster called ``name``; KeyError if the schedule does not visit it."""
        return by_name(self.all_clusters(), name, "cluster")

    def ring(self, name: str) -> ScheduledRing:
        """The scheduled ring called ``name``; KeyError if there is none."""
        return by_name(self.rings, name, "ring")

    def earlier(self, name: str) -> list[ScheduledCluster]:
        """Clusters in waves before the one holding ``name`` (not its wave-mates, which run alongside)."""
        found: list[ScheduledCluster] = []
        for ring in self.rings:
            for wave in ring.waves:
                if any(c.name == name for c in wave.clusters):
                    return found
                found += wave.clusters
        raise KeyError(f"cluster {name!r} is not in the schedule")


def check_version(version: str) -> str:
    """Return ``version`` if it is usable in labels and queries; raise ValueError otherwise."""
    if not _VERSION.fullmatch(version):
        raise ValueError(
            f"version {version!r} must start with a letter or digit and hold only letters, digits and "
            ". _ + - (at most 128 characters)"
        )
    return version


def ring_clusters(ring: Ring, fleet: Fleet) -> list[Cluster]:
    """The fleet clusters a ring selects: its explicit list in order, or its selector in fleet order."""
    if ring.clusters is not None:
        return [fleet.cluster(name) for name in ring.clusters]
    return fleet.select(ring.cluster_selector or {})


def build(plan: ReleasePlan, fleet: Fleet, version: str) -> Schedule:
    """The schedule for releasing ``version`` under ``plan`` to ``fleet``.

    The plan should have passed ``loading.check_plan_against_fleet``; an unknown cluster raises
    KeyError and an unusable version ValueError.
    """
    check_version(version)
    rings: list[ScheduledRing] = []
    for index, ring in enumerate(plan.rings):
        members = [_scheduled(cluster, ring.name, fleet) for cluster in ring_clusters(ring, fleet)]
        ordinary = _waves([c for c in members if not c.regulated], ring.max_parallel, fleet)
        regulated = _waves([c for c in members if c.regulated], ring.max_parallel, fleet)
        waves = [Wave(index=i, clusters=group) for i, group in enumerate(ordinary + regulated)]
        rings.append(
            ScheduledRing(
                name=ring.name,
                index=index,
                strategy=ring.strategy,
                approval=ring.approval,
                bake_time=ring.bake_time,
                max_parallel=ring.max_parallel,
                waves=waves,
            )
        )
    total = sum((r.minimum_duration for r in rings), timedelta(0))
    return Schedule(
        service=plan.service, version=version, workload=plan.workload, rings=rings, minimum_duration=total
    )


def _scheduled(cluster: Cluster, ring: str, fleet: Fleet) -> ScheduledCluster:
    region = fleet.region(cluster.region)
    return ScheduledCluster(
        name=cluster.name,
        ring=ring,
        region=region.name,
        jurisdiction=region.jurisdiction,
        timezone=region.timezone,
        kube_context=cluster.kube_context,
        labels=dict(cluster.labels),
        regulated=cluster.regulated,
    )


def _waves(clusters: list[ScheduledCluster], size: int, fleet: Fleet) -> list[list[ScheduledCluster]]:
    """First-fit in order: each wave takes the earliest waiting clusters that fit beside its others."""
    waiting = list(clusters)
    waves: list[list[ScheduledCluster]] = []
    while waiting:
        wave: list[ScheduledCluster] = []
        for cluster in list(waiting):
            if len(wave) == size:
                break
            if not any(fleet.paired(cluster.region, other.region) for other in wave):
                wave.append(cluster)
                waiting.remove(cluster)
        waves.append(wave)
    return waves
