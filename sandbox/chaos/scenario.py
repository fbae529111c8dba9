"""A fault scenario drawn from one seed: a plan, where the version is bad, controls and faults in time.

:func:`generate` is pure: the same seed and fleet give the same scenario, so a failing scenario is
replayed by its seed (``scripts/chaos.py --seed S --scenarios 1``). Timing on a live stack is not
replayable to the millisecond; what happens, to what and when relative to the submission is.

A scenario is one release of its own service into its own namespace (``c<seed>``), so several run
side by side on one stack without touching each other's objects: Kubernetes API faults are scoped
to the scenario's namespace, the version's traffic behaviour to its version name. Process faults
(a worker killed, Temporal or a Prometheus restarted) hit every scenario running at that moment.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["canary", "canary-route", "blue-green", "rolling"]
Scope = Literal["cluster", "ring", "release"]

CONTROLS = ("hold", "abort", "supersede", "cancel", "terminate", "reset")
"""Operator controls a scenario can draw (``approve`` is the operator loop's, whenever asked)."""
TERMINAL_CONTROLS = ("abort", "supersede", "cancel", "terminate")
"""Controls after which the release (as submitted) runs no further ring."""
FAULTS = (
    "worker-kill",
    "worker-term",
    "temporal-restart",
    "prometheus-restart",
    "api-5xx",
    "api-429",
    "api-latency",
    "api-drop",
    "api-403",
    "ownership-conflict",
)
"""Every fault kind; ``tests/e2e/test_chaos.py`` runs seeds that cover each at least once."""
PROCESS_FAULTS = ("worker-kill", "worker-term", "temporal-restart", "prometheus-restart")

PAUSE_SECONDS = (4.0, 8.0)
"""Range of a canary pause; long enough for a few gate measurements at a 2 s interval."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ring(_Model):
    """One ring of the scenario's plan."""

    name: str
    clusters: list[str]
    strategy: Strategy
    max_parallel: int = 1
    approval: bool = False
    """The ring waits for an operator's approval before it starts."""
    manual_pause: bool = False
    """A canary's first pause has no duration: each cluster waits for an approval mid-canary."""
    pause_seconds: float = 0.0
    bake_seconds: float = 0.0


class Event(_Model):
    """A control or a fault, ``at`` seconds after the submission."""

    at: float
    kind: str
    cluster: str = ""
    """The cluster of a Kubernetes API fault."""
    jurisdiction: str = ""
    """The Prometheus a ``prometheus-restart`` stops."""
    seconds: float = 0.0
    """How long it lasts: a fault's duration, a hold's length, a process's downtime."""


class Scenario(_Model):
    """Everything one run of a scenario does, drawn from ``seed``."""

    seed: int
    service: str
    version: str
    next_version: str
    """The version a ``supersede`` submits."""
    rings: list[Ring]
    scope: Scope
    bad_in: list[str] = Field(default_factory=list)
    """Clusters where the version fails its requests (its gates there should fail)."""
    approve_after: float = 1.0
    """Seconds the operator takes to approve what waits for an approval."""
    events: list[Event] = Field(default_factory=list)

    @property
    def namespace(self) -> str:
        return self.service

    @property
    def clusters(self) -> list[str]:
        return [c for r in self.rings for c in r.clusters]

    def kinds(self) -> list[str]:
        """The controls and faults it injects, in time order."""
        return [e.kind for e in self.events]

    def planned_seconds(self) -> float:
        """A rough length of the release undisturbed and promoted everywhere (approvals included)."""
        waits = sum(self.approve_after for r in self.rings if r.approval or r.manual_pause)
        return _duration(self.rings) + waits

    def bound_seconds(self) -> float:
        """How long the release may take to reach a terminal phase, generously, from its plan and events.

        Each cluster gets a fixed budget for its steps and gates beyond its pauses and bake, every
        event its duration plus what recovering from it may cost (a retry round, a worker's
        restart, a Prometheus's first samples), and a supersede a second release of the same plan.
        """
        per_cluster = 60.0
        total = 30.0
        for ring in self.rings:
            waves = -(-len(ring.clusters) // ring.max_parallel)
            pauses = ring.pause_seconds * (2 if ring.strategy.startswith("canary") else 1)
            approval = self.approve_after + 5 if ring.approval or ring.manual_pause else 0.0
            total += waves * (per_cluster + pauses + approval) + ring.bake_seconds + 20
        for event in self.events:
            total += event.seconds + (40.0 if event.kind == "api-latency" else 30.0)
        if "supersede" in self.kinds():
            total *= 2
        return total


def _ring_strategy(rng: random.Random) -> Strategy:
    return rng.choice(("canary", "canary", "canary-route", "blue-green", "rolling"))


def _rings(rng: random.Random, clusters: Sequence[str]) -> list[Ring]:
    count = rng.randint(1, 3)
    pool = list(clusters)
    rng.shuffle(pool)
    rings = []
    for i in range(count):
        size = 1 if i == 0 else rng.randint(1, 2)
        if not pool:
            break
        members, pool = pool[:size], pool[size:]
        strategy = _ring_strategy(rng)
        rings.append(
            Ring(
                name=("internal", "beta", "broad")[i],
                clusters=sorted(members),
                strategy=strategy,
                max_parallel=rng.choice((1, 2)) if len(members) > 1 else 1,
                approval=i > 0 and rng.random() < 0.25,
                manual_pause=strategy.startswith("canary") and rng.random() < 0.2,
                pause_seconds=round(rng.uniform(*PAUSE_SECONDS), 1),
                bake_seconds=rng.choice((0.0, 0.0, 3.0, 5.0)),
            )
        )
    return rings


def _duration(rings: Sequence[Ring]) -> float:
    """A rough estimate of an undisturbed release's length: when events are worth placing."""
    total = 0.0
    for ring in rings:
        waves = -(-len(ring.clusters) // ring.max_parallel)
        per_wave = 4.0 + (2 * ring.pause_seconds if ring.strategy.startswith("canary") else 0.0)
        total += waves * per_wave + ring.bake_seconds
    return total


def _fault(rng: random.Random, kind: str, at: float, clusters: Sequence[str]) -> Event:
    cluster = rng.choice(list(clusters))
    match kind:
        case "worker-kill" | "worker-term":
            return Event(at=at, kind=kind, seconds=round(rng.uniform(0.5, 4.0), 1))
        case "temporal-restart":
            return Event(at=at, kind=kind, seconds=round(rng.uniform(1.0, 4.0), 1))
        case "prometheus-restart":
            jurisdiction = "EU" if cluster.startswith("eu") else "US"
            return Event(
                at=at, kind=kind, jurisdiction=jurisdiction, seconds=round(rng.uniform(2.0, 10.0), 1)
            )
        case "api-5xx" | "api-429" | "api-drop":
            return Event(at=at, kind=kind, cluster=cluster, seconds=round(rng.uniform(3.0, 40.0), 1))
        case "api-latency":
            return Event(at=at, kind=kind, cluster=cluster, seconds=35.0)
        case _:  # api-403, ownership-conflict: one blow, no duration
            return Event(at=at, kind=kind, cluster=cluster)


def generate(seed: int, clusters: Sequence[str], *, kinds: Sequence[str] = ()) -> Scenario:
    """The scenario of ``seed`` over the fleet's ``clusters``; ``kinds`` forces those events in too."""
    rng = random.Random(seed)  # noqa: S311 - reproducible draws, not secrets
    rings = _rings(rng, clusters)
    members = [c for r in rings for c in r.clusters]
    length = max(_duration(rings), 10.0)
    bad_in = sorted(c for c in members if rng.random() < 0.3)

    def moment() -> float:
        # Early rather than late: a failing gate can end a release well before an undisturbed one.
        return round(rng.uniform(0.5, max(3.0, 0.7 * length)), 1)

    events: list[Event] = []
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        events.append(_fault(rng, rng.choice(FAULTS), moment(), members))
    if rng.random() < 0.3:
        at = moment()
        events.append(Event(at=at, kind="hold", seconds=round(rng.uniform(2.0, 10.0), 1)))
    if rng.random() < 0.1:
        events.append(Event(at=moment(), kind="reset"))
    if rng.random() < 0.35:
        events.append(Event(at=moment(), kind=rng.choice(TERMINAL_CONTROLS)))
    for kind in kinds:
        if kind in FAULTS:
            events.append(_fault(rng, kind, moment(), members))
        elif kind == "hold":
            events.append(Event(at=moment(), kind="hold", seconds=5.0))
        else:
            events.append(Event(at=moment(), kind=kind))
    events.sort(key=lambda e: e.at)
    return Scenario(
        seed=seed,
        service=f"c{seed}",
        version=f"v2-s{seed}",
        next_version=f"v3-s{seed}",
        rings=rings,
        scope=rng.choice(("cluster", "ring", "release")),
        bad_in=bad_in,
        approve_after=round(rng.uniform(0.5, 3.0), 1),
        events=events,
    )


SUCCESS_RATE_QUERY = (
    '100 * sum(rate(http_requests_total{cluster="{{cluster}}",namespace="{{namespace}}",'
    'version="{{version}}",code!~"5.."}[5s])) / sum(rate(http_requests_total{cluster="{{cluster}}",'
    'namespace="{{namespace}}",version="{{version}}"}[5s]))'
)


def _strategy(ring: Ring) -> dict[str, Any]:
    pause: dict[str, Any] = {} if ring.manual_pause else {"duration": f"{ring.pause_seconds}s"}
    steps = [
        {"setWeight": 20},
        {"pause": pause},
        {"setWeight": 50},
        {"pause": {"duration": f"{ring.pause_seconds}s"}},
    ]
    match ring.strategy:
        case "canary":
            return {"canary": {"steps": steps}}
        case "canary-route":
            return {"canary": {"steps": steps, "trafficRouting": {"httpRoute": "api"}}}
        case "blue-green":
            return {"blueGreen": {"autoPromotionEnabled": True, "scaleDownDelaySeconds": 0}}
        case _:
            return {"rolling": {}}


def plan(scenario: Scenario) -> dict[str, Any]:
    """The ReleasePlan the scenario submits (as a YAML document's data)."""
    rings = []
    for ring in scenario.rings:
        doc: dict[str, Any] = {"name": ring.name, "clusters": ring.clusters, "strategy": _strategy(ring)}
        if ring.max_parallel > 1:
            doc["maxParallel"] = ring.max_parallel
        if ring.approval:
            doc["approval"] = {"required": True}
        if ring.bake_seconds:
            doc["bakeTime"] = f"{ring.bake_seconds}s"
        rings.append(doc)
    return {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "ReleasePlan",
        "service": scenario.service,
        "workload": {"namespace": scenario.namespace, "deployment": "api", "container": "api"},
        "dataResidency": {
            "dataClass": "personal",
            "dataEndpoints": {"EU": ["orders.db.eu.example.com"], "US": ["orders.db.us.example.com"]},
        },
        "rings": rings,
        "analysis": {
            "interval": "2s",
            "threshold": 2,
            "consecutiveErrorLimit": 2,
            "minDataPoints": 2,
            "metrics": [
                {"name": "request-success-rate", "query": SUCCESS_RATE_QUERY, "thresholdRange": {"min": 90}}
            ],
        },
        "rollback": {"scope": scenario.scope},
    }
