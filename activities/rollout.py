"""Activities that change clusters, over a backend per kind of cluster API.

The activity layer owns timeouts, heartbeats and error classification; a :class:`ClusterBackend`
owns how a strategy step maps onto a cluster's objects. The Kubernetes backend talks to real API
servers through kubeconfig contexts; tests hand in the same backend pointed at the emulator.
Every method is idempotent: a retried or duplicated call leaves the cluster as one call would.

One mechanism for heartbeats and cancellation (:func:`run_blocking`): the activities are ``async``;
each runs its blocking backend call on the worker's cluster thread pool (``run_in_executor``) while
the coroutine heartbeats every :data:`HEARTBEAT_INTERVAL` from a side task, so a Kubernetes read of
up to 30 s or a step's 40 s wait for pods never starves the heartbeat (and the heartbeat timeouts in
``workflows/_options.py`` are longer than any single call anyway). When the activity is cancelled
(an abort, a timeout, the worker shutting down) the coroutine sets a thread-safe flag; the
``heartbeat`` callback handed to the backend (:class:`Beat`) then raises Temporal's
``CancelledError`` at its next call (every few seconds inside any wait), which the backend lets
through unclassified (:mod:`activities.kubernetes.errors`). The coroutine reports only once the
thread has stopped, so a cancelled attempt never keeps writing while a rollback or a retry runs. A
cancellation caused by the worker shutting down leaves as a retryable failure, so another worker
retries the call at once rather than the workflow seeing it cancelled.

Sync activities with a heartbeat thread would do the same, but the SDK cancels a sync activity by
raising asynchronously into its thread at an arbitrary point (inside a half-done API call); here a
cancellation only ever surfaces at a heartbeat, between calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import Protocol, TypeVar

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import build, errors
from activities.errors import ClusterError
from activities.models import (
    ClusterSnapshot,
    FindSnapshotsInput,
    FlagRecord,
    KeepFlagInput,
    RecordedSnapshots,
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
from policies.schedule import ScheduledCluster

T = TypeVar("T")

HEARTBEAT_INTERVAL = timedelta(seconds=2)
"""How often a cluster activity heartbeats while its backend call runs (the SDK throttles what it
sends to the server to ``heartbeat_throttle_seconds``)."""


class ClusterBackend(Protocol):
    """What the rollout activities need from a cluster API.

    Calls that wait get a ``heartbeat`` callback: call it while waiting, and let what it raises (a
    cancellation) through unclassified.
    """

    def snapshot(self, cluster: str, workload: Workload, release: ReleaseRef) -> ClusterSnapshot:
        """The workload's state before the release touches it (idempotent: the first snapshot wins)."""
        ...

    def recorded_snapshot(
        self, cluster: str, workload: Workload, release: ReleaseRef
    ) -> ClusterSnapshot | None:
        """The snapshot this run of ``release`` recorded in ``cluster``, or None; writes nothing."""
        ...

    def keep_flag(
        self, cluster: str, workload: Workload, release: ReleaseRef, record: FlagRecord
    ) -> FlagRecord:
        """Store ``record`` in the run's snapshot, unless one is there already; answer the stored one.

        The snapshot must exist (taken before any change); a snapshot read later carries the record.
        """
        ...

    def evidence(self, cluster: str, workload: Workload) -> LiveEvidence:
        """Node regions and the hosts the workload's containers are configured to reach."""
        ...

    def apply(self, step: StepInput, heartbeat: Callable[[str], None]) -> StepResult:
        """Perform one strategy step (waiting for new pods, heartbeating); repeating it changes nothing."""
        ...

    def wait_rollout(self, inp: WaitInput, heartbeat: Callable[[str], None]) -> WaitResult:
        """Block until the target's rollout completes; call ``heartbeat`` while waiting."""
        ...

    def rollback(self, inp: RollbackInput, heartbeat: Callable[[str], None]) -> RollbackResult:
        """Return the cluster to the snapshot, removing canary and preview objects; wait until it is."""
        ...


class Beat:
    """The ``heartbeat`` callback a backend call gets: records progress, raises once cancelled.

    Called from the backend's thread and read by the activity's coroutine; thread-safe.
    """

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self.message = ""

    def __call__(self, message: str) -> None:
        """Record ``message`` as the latest progress; raise ``CancelledError`` once :meth:`cancel` ran."""
        if self._cancelled.is_set():
            raise CancelledError("the activity was cancelled")
        self.message = message

    def cancel(self) -> None:
        """Make the next call raise: the backend call stops at its next heartbeat."""
        self._cancelled.set()


async def _pulse(beat: Beat) -> None:
    """Heartbeat the latest progress every :data:`HEARTBEAT_INTERVAL`, whatever the thread is doing.

    The first only once a call has run that long: the SDK sends an activity's first heartbeat to the
    server at once, and most cluster calls (a snapshot, an apply, a residency read) end well within
    it, so beating at the start cost about one billable heartbeat per activity for nothing. A
    cancellation still reaches a longer call within one interval plus the worker's throttle.
    """
    while True:
        await asyncio.sleep(HEARTBEAT_INTERVAL.total_seconds())
        activity.heartbeat(beat.message)


async def run_blocking(executor: Executor, call: Callable[[Beat], T]) -> T:
    """Run ``call`` on ``executor`` while heartbeating; on cancellation stop it and wait for it to stop.

    A :class:`ClusterError` leaves as the workflow's ``ApplicationError``; a cancellation as a
    cancellation, except the worker's shutdown, which leaves as a retryable ``WorkerShutdown``.
    """
    beat = Beat()
    context = contextvars.copy_context()  # the activity's context (and structlog's) follow the call
    future = asyncio.get_running_loop().run_in_executor(executor, context.run, call, beat)
    pulse = asyncio.create_task(_pulse(beat))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        beat.cancel()
        # The thread stops at its next heartbeat, or when its current API call returns; only then is
        # the cancellation reported, so a rollback never races a step that is still writing.
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: what the stopped call raised is moot now
        if errors.worker_shut_down():
            raise errors.worker_shutdown_error() from None
        raise
    except ClusterError as err:
        raise err.to_application_error() from None
    finally:
        pulse.cancel()


def _log(release: ReleaseRef, cluster: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger("ringmaster.activities").bind(  # type: ignore[no-any-return]
        release=release.name, ring=release.ring, cluster=cluster
    )


class ClusterActivities:
    """The activities that touch clusters, bound to one backend, the worker's fleet and a thread pool.

    ``executor`` runs the backend's blocking calls, one thread per running activity: size it to the
    worker's ``max_concurrent_activities``.
    """

    def __init__(self, backend: ClusterBackend, fleet: Fleet, executor: Executor) -> None:
        self._backend = backend
        self._fleet = fleet
        self._executor = executor

    @activity.defn(name="check_residency")
    async def check_residency(self, inp: ResidencyInput) -> ResidencyResult:
        """Gather live evidence in the cluster and judge every residency rule on it."""
        evidence = await run_blocking(
            self._executor, lambda _: self._backend.evidence(inp.cluster.name, inp.plan.workload)
        )
        decisions = residency.live_decisions(
            inp.plan,
            self._fleet,
            inp.schedule or _scheduled(inp),
            inp.cluster.name,
            evidence,
            inp.promoted,
            inp.validators,
        )
        return ResidencyResult(
            cluster=inp.cluster.name, evidence=evidence, decisions=decisions, worker=build.describe()
        )

    @activity.defn(name="snapshot_cluster")
    async def snapshot_cluster(self, inp: SnapshotInput) -> ClusterSnapshot:
        """Record the workload as found, before the first change."""
        return await run_blocking(
            self._executor, lambda _: self._backend.snapshot(inp.cluster.name, inp.workload, inp.release)
        )

    @activity.defn(name="keep_flag_snapshot")
    async def keep_flag_snapshot(self, inp: KeepFlagInput) -> FlagRecord:
        """Keep the cluster's flag as found beside its workload snapshot, where every rollback looks
        (the sweep after a reset and ``ringmaster rollback`` included); the first record of a run wins,
        so a repeated call answers the one kept before the first flag step."""
        return await run_blocking(
            self._executor,
            lambda _: self._backend.keep_flag(inp.cluster.name, inp.workload, inp.release, inp.record),
        )

    @activity.defn(name="find_snapshots")
    async def find_snapshots(self, inp: FindSnapshotsInput) -> RecordedSnapshots:
        """The snapshots this run of the release recorded in any of ``clusters``: what it changed there,
        an earlier run (before a reset) included. Reads only; a cluster that cannot be read is named
        with its error, and the others are still answered."""

        def look(beat: Beat) -> RecordedSnapshots:
            answer = RecordedSnapshots()
            for target in inp.clusters:
                beat(f"looking for a snapshot in {target.name}")
                try:
                    found = self._backend.recorded_snapshot(target.name, inp.workload, inp.release)
                except ClusterError as err:
                    answer.unreadable[target.name] = str(err)
                    continue
                if found is not None:
                    answer.found[target.name] = found
            return answer

        return await run_blocking(self._executor, look)

    @activity.defn(name="apply_step")
    async def apply_step(self, inp: StepInput) -> StepResult:
        """One idempotent strategy step; an abort stops its wait for pods within a heartbeat."""
        log = _log(inp.release, inp.cluster.name)
        try:
            result = await run_blocking(self._executor, lambda beat: self._backend.apply(inp, beat))
        except ApplicationError as err:
            log.warning("step failed", action=inp.action, type=err.type, error=err.message)
            raise
        log.info("step applied", action=inp.action, weight=result.weight)
        return result

    @activity.defn(name="wait_rollout")
    async def wait_rollout(self, inp: WaitInput) -> WaitResult:
        """Wait for a rollout to complete, heartbeating so an abort reaches it within one heartbeat."""
        return await run_blocking(self._executor, lambda beat: self._backend.wait_rollout(inp, beat))

    @activity.defn(name="rollback_cluster")
    async def rollback_cluster(self, inp: RollbackInput) -> RollbackResult:
        """Restore the cluster to the state recorded before the release touched it."""
        log = _log(inp.release, inp.cluster.name)
        try:
            result = await run_blocking(self._executor, lambda beat: self._backend.rollback(inp, beat))
        except ApplicationError as err:
            log.error("rollback failed", type=err.type, error=err.message)
            raise
        log.info("rolled back", restored_version=result.restored_version, reason=inp.reason)
        return result


def _scheduled(inp: ResidencyInput) -> ScheduledCluster:
    """The cluster as scheduled, from an input that does not carry the whole schedule."""
    if inp.scheduled is None:
        msg = (
            f"{inp.cluster.name}: the residency check names neither the schedule nor the cluster as scheduled"
        )
        raise ApplicationError(msg, type=errors.INVALID_PLAN, non_retryable=True)
    return inp.scheduled
