"""Undoing a release that already ended: what it left, read from its record and from the clusters.

``ringmaster rollback`` and ``ringmaster retry`` start ``workflows.undo.UndoWorkflow``, which decides
from facts these activities record, never from the client's word:

- :meth:`UndoActivities.read_release` reads the ended release from Temporal itself: its start input
  (service, version, image, plan text), the first run id its snapshots are keyed by, and its final
  record (each cluster's ring and state, the clusters needing attention); for a release that ended
  without one (terminated), each cluster workflow's own result (:mod:`activities.children`). The
  plan is parsed here (``policies.loading``), so the workflow gets each ring's strategy and the
  workload as the release used them. A release that cannot be undone (not found, still running,
  its cluster workflows still rolling back) is a ``problem``, as data.
- :meth:`UndoActivities.inspect_workload` reads the workload's image and version in one cluster now:
  the workflow restores only a cluster that still runs the release (or already the previous
  version, after a partial rollback), and refuses one a newer release has changed since, naming it.

Restoring is the release's own ``rollback_cluster`` with the snapshot ``find_snapshots`` finds
(``activities.rollout``). The activities here read only.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from pydantic import ConfigDict, Field
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities import children, outcomes
from activities.models import ClusterTarget, ReleaseRef
from activities.rollout import ClusterBackend, run_blocking
from policies import loading, messages
from policies.plan import Strategy, Workload


class _Model(messages.Message):
    """Strict when built, tolerant when decoded from a payload (``policies.messages``)."""


class ReadReleaseInput(_Model):
    """The release to read: its workflow id and, when the person named one, the run."""

    workflow_id: str
    run_id: str = ""


class RecordedCluster(_Model):
    """One cluster as the ended release recorded it."""

    target: ClusterTarget
    ring: str
    state: str
    """The release's final ``ClusterState`` of it (``promoted``, ``rolled-back``, ``failed``...)."""
    strategy: Strategy
    version: str = ""


class ReleaseRecord(_Model):
    """An ended release as far as undoing it needs; ``problem`` says why it cannot be undone."""

    workflow_id: str
    run_id: str = ""
    problem: str = ""
    release: ReleaseRef | None = None
    """Service, version, image and first run (the key of its snapshots); ``ring`` empty."""
    phase: str = ""
    workload: Workload | None = None
    clusters: list[RecordedCluster] = Field(default_factory=list)
    """In the release's order: the rings in order, each ring's clusters as scheduled."""
    needs_attention: list[str] = Field(default_factory=list)


class InspectInput(_Model):
    """Read one cluster's workload as it is now."""

    cluster: ClusterTarget
    workload: Workload


class WorkloadNow(_Model):
    """The workload's image and version (its ``ringmaster.dev/version`` label, else the image tag)."""

    cluster: str
    image: str = ""
    version: str = ""


class _Lenient(messages.Message):
    """Decodes the release workflow's own models, keeping only the fields needed here."""

    model_config = ConfigDict(extra="ignore")


class _Started(_Lenient):
    service: str
    version: str
    image: str
    plan_text: str
    plan_source: str = "plan.yaml"


class _ClusterEnd(_Lenient):
    name: str
    ring: str
    region: str = ""
    jurisdiction: str = ""
    state: str = "pending"
    version: str = ""


class _Ended(_Lenient):
    phase: str = ""
    clusters: list[_ClusterEnd] = Field(default_factory=list)
    needs_attention: list[str] = Field(default_factory=list)


def _recorded(clusters: list[_ClusterEnd], rings: dict[str, Strategy]) -> list[RecordedCluster]:
    """The release's clusters with the strategy of their ring (a ring the plan lacks is skipped)."""
    return [
        RecordedCluster(
            target=ClusterTarget(name=c.name, region=c.region, jurisdiction=c.jurisdiction),
            ring=c.ring,
            state=c.state,
            strategy=rings[c.ring],
            version=c.version,
        )
        for c in clusters
        if c.ring in rings
    ]


class UndoActivities:
    """Reads for undoing an ended release: its record through the worker's Temporal client, and
    workloads through the cluster backend (on the cluster thread pool, heartbeating)."""

    def __init__(self, client: Client, backend: ClusterBackend, executor: Executor) -> None:
        self._client = client
        self._backend = backend
        self._executor = executor

    @activity.defn(name="read_release")
    async def read_release(self, inp: ReadReleaseInput) -> ReleaseRecord:
        """The ended release's input, first run and final record; a ``problem`` if it cannot be undone."""
        record = ReleaseRecord(workflow_id=inp.workflow_id, run_id=inp.run_id)
        handle = self._client.get_workflow_handle(
            inp.workflow_id, run_id=inp.run_id or None, result_type=_Ended
        )
        try:
            desc = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                run = f" run {inp.run_id}" if inp.run_id else ""
                record.problem = f"no release {inp.workflow_id}{run}"
                return record
            raise
        record.run_id = desc.run_id
        if desc.status == WorkflowExecutionStatus.RUNNING:
            record.problem = f"{inp.workflow_id} is still running: abort it instead (ringmaster abort)"
            return record
        started = await self._started(inp.workflow_id, desc.run_id)
        try:
            plan = loading.parse_plan(started.plan_text, started.plan_source)
        except loading.ConfigError as err:
            record.problem = f"the release's plan no longer reads: {err}"
            return record
        first_run = desc.raw_description.workflow_execution_info.first_run_id or desc.run_id
        record.release = ReleaseRef(
            service=started.service, version=started.version, image=started.image, run=first_run
        )
        record.workload = plan.workload
        rings = {r.name: r.strategy for r in plan.rings}
        ended = await self._record_of(handle, desc.status)
        if ended is None:
            return await self._without_result(record, desc.status, rings)
        record.phase = ended.phase
        record.needs_attention = ended.needs_attention
        record.clusters = _recorded(ended.clusters, rings)
        return record

    @staticmethod
    async def _record_of(
        handle: WorkflowHandle[Any, _Ended], status: WorkflowExecutionStatus | None
    ) -> _Ended | None:
        """The release's final record: its result, or what its outcome failure carries (a release that
        did not succeed closes failed, :mod:`activities.outcomes`); None when it ended without one."""
        if status not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
            return None
        try:
            return await outcomes.ended(handle, _Ended, follow_runs=False)
        except WorkflowFailureError:
            return None

    async def _without_result(
        self,
        record: ReleaseRecord,
        status: WorkflowExecutionStatus | None,
        rings: dict[str, Strategy],
    ) -> ReleaseRecord:
        """A release that ended without its record (terminated, failed, timed out): its cluster
        workflows' own results say what each cluster was left as."""
        record.phase = status.name.lower() if status else "closed"
        ends = await children.cluster_workflows(self._client, record.workflow_id, record.run_id)
        running = [e.cluster for e in ends if e.running]
        if running:
            record.problem = (
                f"{record.workflow_id} ended {record.phase} and its cluster workflows in "
                f"{', '.join(running)} are still rolling back: try again once they have ended"
            )
            return record
        record.needs_attention = [e.cluster for e in ends if e.needs_attention]
        # Lenient: the fields the two records share carry over, the rest are dropped.
        as_recorded = [
            _ClusterEnd.model_validate({**e.model_dump(), "name": e.cluster, "state": e.state}) for e in ends
        ]
        record.clusters = _recorded(as_recorded, rings)
        return record

    async def _started(self, workflow_id: str, run_id: str) -> _Started:
        """The release's start input: the first event of its run's history."""
        handle = self._client.get_workflow_handle(workflow_id, run_id=run_id)
        async for event in handle.fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [started] = await self._client.data_converter.decode(payloads, [_Started])
            return started  # type: ignore[no-any-return]
        msg = f"{workflow_id} run {run_id} has no history"
        raise RuntimeError(msg)

    @activity.defn(name="inspect_workload")
    async def inspect_workload(self, inp: InspectInput) -> WorkloadNow:
        """The workload's image and version in one cluster now."""
        found = await run_blocking(
            self._executor, lambda _: self._backend.evidence(inp.cluster.name, inp.workload)
        )
        return WorkloadNow(cluster=inp.cluster.name, image=found.image, version=found.version)
