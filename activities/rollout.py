"""Activities that change clusters, over a backend per kind of cluster API.

The activity layer owns timeouts, heartbeats and error classification; a :class:`ClusterBackend`
owns how a strategy step maps onto a cluster's objects. The Kubernetes backend talks to real API
servers through kubeconfig contexts; tests hand in the same backend pointed at the emulator.
Every method is idempotent: a retried or duplicated call leaves the cluster as one call would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog
from temporalio import activity

from activities.errors import ClusterError
from activities.models import (
    ClusterSnapshot,
    ReleaseRef,
    ResidencyInput,
    ResidencyResult,
    RollbackInput,
    RollbackResult,
    SnapshotInput,
    StepInput,
    StepResult,
    WaitInput,
    WaitResult,
)
from policies import residency
from policies.fleet import Fleet
from policies.plan import Workload
from policies.residency import LiveEvidence


class ClusterBackend(Protocol):
    """What the rollout activities need from a cluster API."""

    def snapshot(self, cluster: str, workload: Workload, release: ReleaseRef) -> ClusterSnapshot:
        """The workload's state before the release touches it (idempotent: the first snapshot wins)."""
        ...

    def evidence(self, cluster: str, workload: Workload) -> LiveEvidence:
        """Node regions and the hosts the workload's containers are configured to reach."""
        ...

    def apply(self, step: StepInput) -> StepResult:
        """Perform one strategy step; repeating it leaves the cluster unchanged."""
        ...

    def wait_rollout(self, inp: WaitInput, heartbeat: Callable[[str], None]) -> WaitResult:
        """Block until the target's rollout completes; call ``heartbeat`` while waiting."""
        ...

    def rollback(self, inp: RollbackInput, heartbeat: Callable[[str], None]) -> RollbackResult:
        """Return the cluster to the snapshot, removing canary and preview objects; wait until it is."""
        ...


def _log(release: ReleaseRef, cluster: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger("ringmaster.activities").bind(  # type: ignore[no-any-return]
        release=release.name, ring=release.ring, cluster=cluster
    )


class ClusterActivities:
    """The activities that touch clusters, bound to one backend and the worker's fleet."""

    def __init__(self, backend: ClusterBackend, fleet: Fleet) -> None:
        self._backend = backend
        self._fleet = fleet

    @activity.defn(name="check_residency")
    def check_residency(self, inp: ResidencyInput) -> ResidencyResult:
        """Gather live evidence in the cluster and judge every residency rule on it."""
        try:
            evidence = self._backend.evidence(inp.cluster.name, inp.plan.workload)
        except ClusterError as err:
            raise err.to_application_error() from None
        decisions = residency.live_decisions(
            inp.plan, self._fleet, inp.schedule, inp.cluster.name, evidence, inp.promoted
        )
        return ResidencyResult(cluster=inp.cluster.name, evidence=evidence, decisions=decisions)

    @activity.defn(name="snapshot_cluster")
    def snapshot_cluster(self, inp: SnapshotInput) -> ClusterSnapshot:
        """Record the workload as found, before the first change."""
        try:
            return self._backend.snapshot(inp.cluster.name, inp.workload, inp.release)
        except ClusterError as err:
            raise err.to_application_error() from None

    @activity.defn(name="apply_step")
    def apply_step(self, inp: StepInput) -> StepResult:
        """One idempotent strategy step."""
        log = _log(inp.release, inp.cluster.name)
        try:
            result = self._backend.apply(inp)
        except ClusterError as err:
            log.warning("step failed", action=inp.action, kind=err.kind, error=str(err))
            raise err.to_application_error() from None
        log.info("step applied", action=inp.action, weight=result.weight)
        return result

    @activity.defn(name="wait_rollout")
    def wait_rollout(self, inp: WaitInput) -> WaitResult:
        """Wait for a rollout to complete, heartbeating so an abort reaches it within one heartbeat."""
        try:
            return self._backend.wait_rollout(inp, activity.heartbeat)
        except ClusterError as err:
            raise err.to_application_error() from None

    @activity.defn(name="rollback_cluster")
    def rollback_cluster(self, inp: RollbackInput) -> RollbackResult:
        """Restore the cluster to the state recorded before the release touched it."""
        log = _log(inp.release, inp.cluster.name)
        try:
            result = self._backend.rollback(inp, activity.heartbeat)
        except ClusterError as err:
            log.error("rollback failed", kind=err.kind, error=str(err))
            raise err.to_application_error() from None
        log.info("rolled back", restored_version=result.restored_version, reason=inp.reason)
        return result
