"""``UndoWorkflow`` (``undo:<service>:<version>``): roll back a release that already ended.

``ringmaster rollback`` undoes a release that ended succeeded (or left some clusters promoted):
every promoted cluster, newest first, or the one named. ``ringmaster retry`` re-runs the rollback of
one cluster the release listed as needing attention, once an operator fixed what made it fail. Both
start this workflow, one per release at a time (its id names the release), with the person's proof.

In order:

1. **Verify** who asks (``workflows._identity``, action ``rollback`` on the release's workflow id and
   run, with the cluster and reason as stated): the authorization policy judges it in the same
   activity. A refusal is the result (``refused``) and nothing is read or changed.
2. **Read** the ended release (``read_release``: its input, first run and final record, from Temporal,
   never from the client) and choose the clusters: ``rollback`` takes the promoted ones (or the named
   one, which must be promoted), ``retry`` the named one, which must need attention.
3. **Find** each cluster's snapshot, the one this release run recorded (``find_snapshots``), and
   check the cluster still runs the release (``inspect_workload``): a cluster running another image
   than the release's and its snapshot's was changed by a newer release since, and is refused,
   naming the version it runs now. A cluster already back at its snapshot's image is restored again
   (idempotent: a failed rollback may have stopped after the workload, before the Services).
4. **Restore** with the release's own rollback (``_rollback.restore``: rounds of retries, never giving
   up on a transient failure; a permanent one leaves the cluster ``failed``, needing attention), all
   of it inside ``_rollback.to_completion``: once the first cluster's restore starts, a cancellation of
   this workflow waits until every chosen cluster is done.

The ``status`` query returns :class:`UndoStatus`, which is also the result. A new workflow: none of
its commands needs a patch yet; any change of them from now on does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from temporalio import workflow
from temporalio.exceptions import ActivityError

from policies import messages

with workflow.unsafe.imports_passed_through():
    from activities.models import ClusterSnapshot, FindSnapshotsInput, RecordedSnapshots, RollbackInput
    from activities.rollout import ClusterActivities
    from activities.undo import (
        InspectInput,
        ReadReleaseInput,
        RecordedCluster,
        ReleaseRecord,
        UndoActivities,
        WorkloadNow,
    )
    from policies.identity import Proof
    from workflows import _identity, _rollback, search
    from workflows import _options as options

Mode = Literal["rollback", "retry"]
UndoPhase = Literal["verifying", "reading", "restoring", "restored", "incomplete", "refused"]
UndoOutcome = Literal["pending", "restoring", "restored", "refused", "failed"]


CHANGED = ("promoted", "left-in-place")
"""The states in which a release left a cluster changed, so that ``rollback`` restores it."""


def undo_id(service: str, version: str) -> str:
    """The workflow id of undoing ``service:version``: one undo of a release runs at a time."""
    return f"undo:{service}:{version}"


class _Model(messages.Message):
    """Strict when built, tolerant when decoded from a payload (``policies.messages``)."""


class UndoInput(_Model):
    """What a person asks: undo this release (or one cluster of it), and why."""

    release_workflow_id: str
    """``release:<service>:<version>``: the release to undo."""
    release_run_id: str = ""
    """The run the person saw when asking (the proof names it); empty: the release's newest run."""
    mode: Mode = "rollback"
    cluster: str = ""
    """``rollback``: only this cluster (empty: every promoted one). ``retry``: required."""
    reason: str = ""
    by: str = ""
    identity: str = ""
    proof: Proof | None = None
    search_attributes: bool = True


class UndoCluster(_Model):
    """One cluster being undone."""

    name: str
    ring: str = ""
    outcome: UndoOutcome = "pending"
    from_version: str = ""
    """The release's version, which the cluster ran."""
    to_version: str = ""
    """The snapshot's version: what the cluster returns to."""
    message: str = ""


class UndoStatus(_Model):
    """The undo as it stands: the ``status`` query and the workflow's result."""

    workflow_id: str = ""
    release: str = ""
    """``service:version``."""
    release_workflow_id: str
    release_run_id: str = ""
    mode: Mode = "rollback"
    phase: UndoPhase = "verifying"
    reason: str = ""
    problem: str = ""
    """Why the whole request is refused (``phase: refused``): nothing was changed."""
    by: str = ""
    """The verified principal (empty until verified)."""
    method: str = ""
    verification: str = ""
    clusters: list[UndoCluster] = Field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def needs_attention(self) -> list[str]:
        """Clusters whose restore failed permanently."""
        return [c.name for c in self.clusters if c.outcome == "failed"]


@workflow.defn(name="UndoWorkflow")
class UndoWorkflow:
    """Undo an ended release: verify, read its record, restore the chosen clusters newest first."""

    @workflow.init
    def __init__(self, inp: UndoInput) -> None:
        self._inp = inp
        self._status = UndoStatus(
            release_workflow_id=inp.release_workflow_id, mode=inp.mode, reason=inp.reason
        )
        self._published: tuple[str, ...] = ()

    @workflow.query
    def status(self) -> UndoStatus:
        """The undo as it stands."""
        return self._status

    @workflow.run
    async def run(self, inp: UndoInput) -> UndoStatus:
        """Verify, read, restore; the status is the result."""
        self._status.workflow_id = workflow.info().workflow_id
        self._status.release_run_id = inp.release_run_id
        self._status.started_at = workflow.now()
        self._publish()
        if not inp.release_workflow_id.startswith("release:"):
            return self._refuse(f"{inp.release_workflow_id} is not a release's workflow id (release:...)")
        try:
            verified = await _identity.Ledger().verify(
                "rollback",
                proof=inp.proof,
                attestation=None,
                claimed_by=inp.by,
                workflow_id=inp.release_workflow_id,
                run_id=inp.release_run_id,
                cluster=inp.cluster,
                reason=inp.reason,
            )
        except _identity.Refused as refused:
            return self._refuse(f"{inp.mode} refused: {refused.problem}")
        self._status.by, self._status.method = verified.principal, verified.method
        self._status.verification = verified.detail
        self._set_phase("reading")
        try:
            record: ReleaseRecord = await workflow.execute_activity_method(
                UndoActivities.read_release,
                ReadReleaseInput(workflow_id=inp.release_workflow_id, run_id=inp.release_run_id),
                summary=f"read {inp.release_workflow_id}",
                **options.RECORD,
            )
        except ActivityError as err:
            return self._refuse(f"{inp.release_workflow_id} could not be read: {_rollback.describe(err)}")
        if record.problem or record.release is None or record.workload is None:
            return self._refuse(record.problem or f"{inp.release_workflow_id} has no record")
        self._status.release = record.release.name
        self._status.release_run_id = record.run_id
        chosen, problem = self._choose(record)
        if problem:
            return self._refuse(problem)
        self._set_phase("restoring")
        await _rollback.to_completion(self._restore_all(record, chosen))
        restored = all(c.outcome == "restored" for c in self._status.clusters)
        self._set_phase("restored" if restored else "incomplete")
        return self._status

    def _choose(self, record: ReleaseRecord) -> tuple[list[RecordedCluster], str]:
        """The clusters to undo, newest first, or why none may be."""
        inp, name = self._inp, self._inp.cluster
        known = {c.target.name: c for c in record.clusters}
        if name and name not in known:
            return [], f"{record.workflow_id} has no cluster {name} (it has {', '.join(known) or 'none'})"
        if inp.mode == "retry":
            if not name:
                return [], "retry needs --cluster: one of the clusters needing attention"
            if name not in record.needs_attention:
                listed = ", ".join(record.needs_attention) or "none"
                return [], f"{name} does not need attention in {record.workflow_id} (listed: {listed})"
            return [known[name]], ""
        # A release under rollback.mode freeze leaves clusters as they stand: a person may still undo them.
        promoted = [c for c in record.clusters if c.state in CHANGED]
        if name:
            if known[name].state not in CHANGED:
                return [], (
                    f"{name} is {known[name].state} in {record.workflow_id}, not promoted: nothing to roll "
                    "back" + (" (retry it: it needs attention)" if name in record.needs_attention else "")
                )
            return [known[name]], ""
        if not promoted:
            return [], f"{record.workflow_id} ended {record.phase}, no cluster promoted: nothing to roll back"
        return list(reversed(promoted)), ""

    async def _restore_all(self, record: ReleaseRecord, chosen: list[RecordedCluster]) -> None:
        """Find the snapshots, then restore each chosen cluster in turn (the newest first)."""
        release, workload = record.release, record.workload
        assert release is not None
        assert workload is not None
        self._status.clusters = [
            UndoCluster(name=c.target.name, ring=c.ring, from_version=release.version) for c in chosen
        ]
        self._publish()
        try:
            found: RecordedSnapshots = await workflow.execute_activity_method(
                ClusterActivities.find_snapshots,
                FindSnapshotsInput(release=release, workload=workload, clusters=[c.target for c in chosen]),
                summary="find the release's snapshots",
                **options.CLUSTER_CALL,
            )
        except ActivityError as err:
            for entry in self._status.clusters:
                entry.outcome = "failed"
                entry.message = f"its snapshot could not be looked for: {_rollback.describe(err)}"
            return
        for cluster, entry in zip(chosen, self._status.clusters, strict=True):
            snapshot = found.found.get(entry.name)
            if snapshot is None:
                unreadable = found.unreadable.get(entry.name)
                entry.outcome = "failed" if unreadable else "refused"
                entry.message = (
                    f"its snapshot could not be read: {unreadable}"
                    if unreadable
                    else f"no snapshot of {release.run_name} there: this release run never changed it"
                )
                continue
            entry.to_version = snapshot.version
            await self._restore_one(record, cluster, entry, snapshot)
            self._publish()

    async def _restore_one(
        self, record: ReleaseRecord, cluster: RecordedCluster, entry: UndoCluster, snapshot: ClusterSnapshot
    ) -> None:
        release, workload = record.release, record.workload
        assert release is not None
        assert workload is not None
        try:
            now: WorkloadNow = await workflow.execute_activity_method(
                UndoActivities.inspect_workload,
                InspectInput(cluster=cluster.target, workload=workload),
                summary=f"read {entry.name}'s workload",
                **options.CLUSTER_CALL,
            )
        except ActivityError as err:
            entry.outcome = "failed"
            entry.message = f"its workload could not be read: {_rollback.describe(err)}"
            return
        if now.image not in (release.image, snapshot.image):
            entry.outcome = "refused"
            entry.message = (
                f"it runs version {now.version or '?'} ({now.image}), not {release.version}: a newer release "
                f"changed it since; undo that release first"
            )
            return
        entry.outcome = "restoring"
        reason = self._inp.reason or f"{self._inp.mode} of {release.name}"

        async def report(retrying: str) -> None:
            entry.message = retrying
            self._publish()

        failure = await _rollback.restore(
            RollbackInput(
                release=release.model_copy(update={"ring": cluster.ring}),
                cluster=cluster.target,
                workload=workload,
                strategy=cluster.strategy,
                snapshot=snapshot,
                reason=reason,
                replaces=[release.image],
            ),
            report,
        )
        if failure is not None:
            entry.outcome, entry.message = "failed", f"rollback failed: {failure}"
            return
        entry.outcome, entry.message = "restored", f"back at {snapshot.version}"

    def _refuse(self, problem: str) -> UndoStatus:
        self._status.problem = problem
        self._set_phase("refused")
        return self._status

    def _set_phase(self, phase: UndoPhase) -> None:
        self._status.phase = phase
        if phase in ("restored", "incomplete", "refused"):
            self._status.ended_at = workflow.now()
        self._publish()

    def _publish(self) -> None:
        """Search attributes (service, version, phase, the named cluster) and the UI's details."""
        status = self._status
        key = (status.phase,)
        if self._inp.search_attributes and key != self._published:
            self._published = key
            service, _, version = status.release_workflow_id.removeprefix("release:").partition(":")
            workflow.upsert_search_attributes(
                [
                    search.SERVICE.value_set(service),
                    search.VERSION.value_set(version),
                    search.PHASE.value_set(f"{status.mode}-{status.phase}"),
                    search.CLUSTER.value_set(self._inp.cluster),
                ]
            )
        lines = [f"**{status.mode}** of {status.release_workflow_id} · phase **{status.phase}**", ""]
        if status.problem:
            lines += [status.problem, ""]
        lines += ["| cluster | ring | outcome | to | message |", "|---|---|---|---|---|"]
        for c in status.clusters:
            lines.append(f"| {c.name} | {c.ring} | {c.outcome} | {c.to_version} | {c.message} |")
        workflow.set_current_details("\n".join(lines))
