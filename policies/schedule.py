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
from functools import cached_property

from pydantic import Field

from policies import _errors
from policies._model import Model, by_name, index_by_name, lookup
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
        return list(self._order)

    @cached_property
    def _order(self) -> tuple[ScheduledCluster, ...]:
        return tuple(c for ring in self.rings for c in ring.clusters())

    @cached_property
    def _by_name(self) -> dict[str, ScheduledCluster]:
        return index_by_name(self._order)

    @cached_property
    def _wave_starts(self) -> dict[str, int]:
        """Per cluster name (first occurrence), how many clusters the waves before its wave hold."""
        starts: dict[str, int] = {}
        before = 0
        for ring in self.rings:
            for wave in ring.waves:
                for cluster in wave.clusters:
                    starts.setdefault(cluster.name, before)
                before += len(wave.clusters)
        return starts

    def cluster(self, name: str) -> ScheduledCluster:
        """The scheduled cluster called ``name``; KeyError if the schedule does not visit it."""
        return lookup(self._by_name, name, "cluster")

    def ring(self, name: str) -> ScheduledRing:
        """The scheduled ring called ``name``; KeyError if there is none."""
        return by_name(self.rings, name, "ring")

    def earlier(self, name: str) -> list[ScheduledCluster]:
        """Clusters in waves before the one holding ``name`` (not its wave-mates, which run alongside)."""
        start = self._wave_starts.get(name)
        if start is None:
            raise KeyError(f"cluster {name!r} is not in the schedule")
        return list(self._order[:start])


def check_version(version: str) -> str:
    """Return ``version`` if it is usable in labels and queries; raise ValueError otherwise."""
    if not _VERSION.fullmatch(version):
        raise ValueError(
            f"version {_errors.quote(version)} must start with a letter or digit and hold only letters, "
            "digits and . _ + - (at most 128 characters)"
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
    """First-fit in order: each wave takes the earliest waiting clusters that fit beside its others.

    A cluster fits unless its region is paired with a region already in the wave, so each wave keeps
    the set of regions its members exclude; a pass stops reading the queue once the wave is full.
    """
    waiting = list(clusters)
    waves: list[list[ScheduledCluster]] = []
    while waiting:
        wave: list[ScheduledCluster] = []
        skipped: list[ScheduledCluster] = []
        excluded: set[str] = set()
        read = 0
        for cluster in waiting:
            if len(wave) == size:
                break
            read += 1
            if cluster.region in excluded:
                skipped.append(cluster)
            else:
                wave.append(cluster)
                excluded |= fleet.partners(cluster.region)
        waiting = skipped + waiting[read:]
        waves.append(wave)
    return waves
