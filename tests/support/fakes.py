"""A file-backed stand-in for cluster APIs and metrics, for the workflow tests and the demo.

It implements the same :class:`activities.rollout.ClusterBackend` and
:class:`activities.analysis.MetricsSource` protocols as the real Kubernetes and Prometheus
adapters, with state in one JSON file so several worker processes (one killed, one restarted)
see the same clusters. Every change is idempotent and appended to an operations log only when it
changes something: the log shows whether a retried activity repeated a step.

Behaviour a test can steer through the state file: ``node_region`` (lie about the region),
``env_hosts`` (hosts the workload reaches), ``fail_rollback`` (rollbacks fail permanently),
``unreachable`` (every call fails as a transient error, as an API server that is down),
``apply_delay`` and ``rollback_delay`` (seconds a step or a rollback waits, heartbeating through the
callback, before it writes: a raising heartbeat ends the call without writing; a list gives each
call's wait in turn, then none), ``snapshot_delay`` (seconds a snapshot takes before it is recorded,
as an API slow to answer: the wait is not interrupted).
Metrics: a version whose tag ends in ``-bad`` breaches every metric; any other passes.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from activities.errors import ClusterError
from activities.models import (
    AnalyzeInput,
    ClusterSnapshot,
    FlagRecord,
    ReleaseRef,
    RollbackInput,
    RollbackResult,
    StepInput,
    StepResult,
    WaitInput,
    WaitResult,
)
from policies.fleet import Fleet
from policies.gates import Measurement
from policies.plan import Metric, Workload
from policies.residency import LiveEvidence

SEED_VERSION = "v1"


def _seed(fleet: Fleet, name: str) -> dict[str, Any]:
    region = fleet.region_of(name)
    domain = "eu" if region.jurisdiction == "EU" else "us"
    return {
        "image": f"registry.eu.example.com/api:{SEED_VERSION}",
        "version": SEED_VERSION,
        "replicas": 10,
        "canary": None,
        "preview": None,
        "weight": 0,
        "node_region": region.name,
        "env_hosts": [f"orders.db.{domain}.example.com"],
        "snapshots": {},
        "ops": [],
    }


class FileClusterBackend:
    """Clusters as entries of a JSON file, locked for every read-modify-write."""

    def __init__(self, path: Path, fleet: Fleet) -> None:
        self._path = path
        self._fleet = fleet
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._state() as state:
            for cluster in fleet.clusters:
                state.setdefault(cluster.name, _seed(fleet, cluster.name))

    def configure(self, cluster: str, **settings: Any) -> None:
        """Steer the stand-in (``node_region``, ``env_hosts``, ``fail_rollback``, ``unreachable``,
        ``apply_delay``, ``rollback_delay``, ``snapshot_delay``)."""
        with self._state() as state:
            self._cluster(state, cluster, answer=False).update(settings)

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        lock = self._path.with_suffix(".lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            state: dict[str, Any] = json.loads(self._path.read_text()) if self._path.exists() else {}
            yield state
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            tmp.replace(self._path)

    def read(self) -> dict[str, Any]:
        """Every cluster's state (for tests and the demo)."""
        with self._state() as state:
            return {k: v for k, v in json.loads(json.dumps(state)).items() if not k.startswith("_")}

    def _cluster(self, state: dict[str, Any], name: str, *, answer: bool = True) -> dict[str, Any]:
        """A cluster's entry; with ``answer``, as its API would answer (not at all while unreachable)."""
        if name not in state:
            raise ClusterError(f"unknown cluster {name}", kind="permanent", cluster=name)
        cluster: dict[str, Any] = state[name]
        if answer and cluster.get("unreachable"):
            raise ClusterError("connection failed: ConnectionRefusedError", kind="transient", cluster=name)
        return cluster

    @staticmethod
    def _change(
        state: dict[str, Any], cluster: dict[str, Any], op: str, release: str, **changes: Any
    ) -> None:
        """Apply ``changes``; log them with a fleet-wide sequence number, only if they change something."""
        if all(cluster.get(k) == v for k, v in changes.items()):
            return
        cluster.update(changes)
        seq = state.get("_seq", 0) + 1
        state["_seq"] = seq
        cluster["ops"].append({"seq": seq, "op": op, "release": release, **changes})

    # --- ClusterBackend -----------------------------------------------------------------------

    def recorded_snapshot(
        self, cluster: str, workload: Workload, release: ReleaseRef
    ) -> ClusterSnapshot | None:
        """The snapshot this run of the release took, or None."""
        with self._state() as state:
            taken = self._cluster(state, cluster)["snapshots"].get(release.run_name)
        return None if taken is None else ClusterSnapshot.model_validate(taken)

    def snapshot(self, cluster: str, workload: Workload, release: ReleaseRef) -> ClusterSnapshot:
        """The state before the release; the first snapshot of a run of the release wins."""
        with self._state() as state:
            delay = float(self._cluster(state, cluster).get("snapshot_delay", 0))
        time.sleep(delay)  # a slow API: the snapshot is recorded only after the delay
        with self._state() as state:
            c = self._cluster(state, cluster)
            taken = c["snapshots"].get(release.run_name)
            if taken is None:
                taken = ClusterSnapshot(
                    cluster=cluster, image=c["image"], version=c["version"], replicas=c["replicas"]
                ).model_dump(mode="json")
                c["snapshots"][release.run_name] = taken
            return ClusterSnapshot.model_validate(taken)

    def keep_flag(
        self, cluster: str, workload: Workload, release: ReleaseRef, record: FlagRecord
    ) -> FlagRecord:
        """The flag record kept in the run's snapshot; the first one kept wins."""
        with self._state() as state:
            c = self._cluster(state, cluster)
            taken = c["snapshots"].get(release.run_name)
            if taken is None:
                raise ClusterError(f"no snapshot of {release.name}", kind="permanent", cluster=cluster)
            if taken.get("flag") is None:
                taken["flag"] = record.model_copy(update={"last_written": None}).model_dump(mode="json")
            return FlagRecord.model_validate(taken["flag"])

    def evidence(self, cluster: str, workload: Workload) -> LiveEvidence:
        """Node regions, workload hosts, image, replicas and version as the state file says."""
        with self._state() as state:
            c = self._cluster(state, cluster)
            return LiveEvidence(
                node_regions=[c["node_region"]],
                env_hosts=list(c["env_hosts"]),
                uninspected=[],
                image=c["image"],
                replicas=c["replicas"],
                version=c["version"],
            )

    def _delay(self, cluster: str, setting: str, heartbeat: Callable[[str], None], doing: str) -> None:
        """Wait the configured seconds, heartbeating (as a wait for pods would) every 0.2 s."""
        with self._state() as state:
            configured = state[cluster].get(setting, 0)
            if isinstance(configured, list):  # each call's delay in turn, then none
                state[cluster][setting] = configured[1:]
                configured = configured[0] if configured else 0
        deadline = time.monotonic() + float(configured)
        while time.monotonic() < deadline:
            heartbeat(doing)
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def apply(self, step: StepInput, heartbeat: Callable[[str], None]) -> StepResult:
        """One strategy step (after ``apply_delay``), recorded only if it changes the cluster."""
        name, rel = step.cluster.name, step.release
        self._delay(name, "apply_delay", heartbeat, f"{step.action}: waiting for pods")
        with self._state() as state:
            c = self._cluster(state, name)
            new = {"image": rel.image, "version": rel.version}
            if step.action == "deploy":
                self._change(state, c, "deploy", rel.name, **new, weight=100)
            elif step.action == "set-weight":
                weight = step.weight or 0
                self._change(
                    state, c, "set-weight", rel.name, canary={**new, "weight": weight}, weight=weight
                )
            elif step.action == "deploy-preview":
                self._change(state, c, "deploy-preview", rel.name, preview={**new, "replicas": c["replicas"]})
            elif step.action == "switch":
                self._change(state, c, "switch", rel.name, weight=100)
            elif step.action == "promote":
                self._change(state, c, "promote", rel.name, **new, weight=100)
            elif step.action == "cleanup":
                self._change(state, c, "cleanup", rel.name, canary=None, preview=None)
            return StepResult(cluster=name, action=step.action, weight=c["weight"])

    def wait_rollout(self, inp: WaitInput, heartbeat: Callable[[str], None]) -> WaitResult:
        """Rollouts complete at once, unless the image is marked ``stuck``."""
        heartbeat(f"waiting for {inp.target}")
        with self._state() as state:
            self._cluster(state, inp.cluster.name)
        if "stuck" in inp.release.image:
            raise ClusterError(
                f"deployment {inp.workload.deployment}: progress deadline exceeded",
                kind="rollout-stuck",
                cluster=inp.cluster.name,
            )
        return WaitResult(cluster=inp.cluster.name, target=inp.target, ready_replicas=10)

    def rollback(self, inp: RollbackInput, heartbeat: Callable[[str], None]) -> RollbackResult:
        """Restore the snapshot and remove canary and preview (after ``rollback_delay`` seconds, if set)."""
        snap = inp.snapshot
        self._delay(inp.cluster.name, "rollback_delay", heartbeat, "restoring")
        with self._state() as state:
            c = self._cluster(state, inp.cluster.name)
            if inp.replaces and c["image"] not in (*inp.replaces, snap.image):
                raise ClusterError(
                    f"runs {c['image']}: another writer changed it since",
                    kind="ownership-conflict",
                    cluster=inp.cluster.name,
                )
            if c.get("fail_rollback"):
                raise ClusterError(
                    "rollback refused by the API (403)", kind="permanent", cluster=inp.cluster.name
                )
            self._change(
                state,
                c,
                "rollback",
                inp.release.name,
                image=snap.image,
                version=snap.version,
                replicas=snap.replicas,
                canary=None,
                preview=None,
                weight=0,
            )
            return RollbackResult(cluster=inp.cluster.name, restored_version=snap.version)


def _fake_value(metric: Metric, bad: bool) -> tuple[float, float | None]:
    if metric.baseline is not None:
        worse = 0.1 if metric.baseline.direction == "lowerIsWorse" else 10.0
        return (worse if bad else 1.0), 1.0
    assert metric.threshold_range is not None
    low, high = metric.threshold_range.min, metric.threshold_range.max
    if low is not None and high is not None:
        return (high + abs(high - low) + 1 if bad else (low + high) / 2), None
    if low is not None:
        return (low - abs(low) * 0.1 - 1 if bad else low + abs(low) * 0.005 + 0.5), None
    assert high is not None
    return (high * 2 + 1 if bad else high / 2), None


class FakeMetrics:
    """Measurements that pass for good versions and breach every bound for ``-bad`` ones."""

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        """One measurement per metric of the analysis."""
        bad = inp.release.version.endswith("-bad")
        out = []
        for metric in inp.analysis.metrics:
            value, baseline = _fake_value(metric, bad)
            out.append(Measurement(metric=metric.name, value=value, baseline=baseline))
        return out
