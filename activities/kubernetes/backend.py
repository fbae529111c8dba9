"""``KubernetesBackend``: the :class:`~activities.rollout.ClusterBackend` of real Kubernetes clusters.

It maps each call of the rollout activities onto the strategy modules (:mod:`.canary`,
:mod:`.bluegreen`, :mod:`.rolling`), :mod:`.rollback`, :mod:`.snapshots`, :mod:`.evidence` and
:mod:`.waiting`, over one :class:`~.clients.ClusterApi` per fleet cluster (:mod:`.clients`). Every
log line inside a call carries the release, ring and cluster (structlog context variables); every
failure is a classified ``ClusterError``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import structlog

from activities.errors import ClusterError
from activities.kubernetes import bluegreen, canary, evidence, marks, rolling, snapshots, waiting
from activities.kubernetes.clients import DEPLOYMENT, ClusterApi, Clusters, Tuning
from activities.kubernetes.evidence import Inspection
from activities.kubernetes.rollback import rollback as restore
from activities.kubernetes.scene import Scene
from activities.models import (
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
from policies.plan import Workload
from policies.residency import LiveEvidence

log = structlog.get_logger("ringmaster.kubernetes")

ROLLBACK_STALL_SECONDS = 600.0
"""A rollback waits this long for the restored workload to show progress before it gives up."""


class KubernetesBackend:
    """Strategies, waits, rollbacks and evidence on the fleet's clusters, through kubeconfig contexts."""

    def __init__(self, clusters: Clusters) -> None:
        self._clusters = clusters

    @classmethod
    def from_kubeconfig(
        cls, fleet: Fleet, kubeconfig: Path | None, *, tuning: Tuning | None = None
    ) -> KubernetesBackend:
        """One client per fleet cluster from its ``kubeContext`` in ``kubeconfig`` (None: the default
        kubeconfig), built now and reused; ValueError naming every context that cannot be loaded.
        """
        return cls(Clusters.from_kubeconfig(fleet, kubeconfig, tuning))

    @property
    def clusters(self) -> Clusters:
        """The clients, one per cluster."""
        return self._clusters

    def close(self) -> None:
        """Release every cluster client's connections."""
        self._clusters.close()

    # --- ClusterBackend -----------------------------------------------------------------------

    def snapshot(self, cluster: str, workload: Workload, release: ReleaseRef) -> ClusterSnapshot:
        """The workload before ``release`` touched it; the first snapshot of a release wins."""
        with _bound(release, cluster):
            taken = snapshots.take(self._clusters[cluster], workload, release)
            log.info("snapshot", version=taken.version, image=taken.image, replicas=taken.replicas)
        return taken

    def recorded_snapshot(
        self, cluster: str, workload: Workload, release: ReleaseRef
    ) -> ClusterSnapshot | None:
        """The snapshot this run of ``release`` recorded, or None (read only)."""
        with _bound(release, cluster):
            return snapshots.find(self._clusters[cluster], workload, release)

    def keep_flag(
        self, cluster: str, workload: Workload, release: ReleaseRef, record: FlagRecord
    ) -> FlagRecord:
        """The flag record kept in the run's snapshot ConfigMap; the first one kept wins."""
        with _bound(release, cluster):
            kept = snapshots.keep_flag(self._clusters[cluster], workload, release, record)
            log.info("flag snapshot kept", flag=kept.snapshot.flag, enabled=kept.snapshot.environment_enabled)
        return kept

    def evidence(self, cluster: str, workload: Workload) -> LiveEvidence:
        """Node regions and the hosts in the workload's container env (Secrets never read)."""
        return evidence.inspect(self._clusters[cluster], workload).evidence()

    def inspect(self, cluster: str, workload: Workload) -> Inspection:
        """All the live facts of :meth:`evidence`, with the workload's image, replicas and version."""
        return evidence.inspect(self._clusters[cluster], workload)

    def apply(self, step: StepInput, heartbeat: Callable[[str], None]) -> StepResult:
        """One idempotent strategy step; ``heartbeat`` is called while it waits for pods."""
        with _bound(step.release, step.cluster.name):
            scene = self._scene(step.cluster.name, step.workload, step.release, step.snapshot, heartbeat)
            return self._dispatch(scene, step)

    def _dispatch(self, scene: Scene, step: StepInput) -> StepResult:
        strategy, action = step.strategy, step.action
        if action == "set-weight":
            if strategy.canary is None:
                raise scene.fail(f"set-weight needs a canary strategy, not {strategy.kind}")
            if step.weight is None:
                raise scene.fail("set-weight needs a weight")
            return canary.set_weight(scene, strategy.canary, step.weight)
        if action == "deploy-preview":
            if strategy.blue_green is None:
                raise scene.fail(f"deploy-preview needs a blueGreen strategy, not {strategy.kind}")
            return bluegreen.deploy_preview(scene)
        if action == "switch":
            if strategy.blue_green is None:
                raise scene.fail(f"switch needs a blueGreen strategy, not {strategy.kind}")
            return bluegreen.switch(scene)
        if action == "promote":
            if strategy.canary is not None:
                return canary.promote(scene)
            if strategy.blue_green is not None:
                return bluegreen.promote(scene)
            return rolling.deploy(scene)
        if action == "cleanup":
            if strategy.canary is not None:
                return canary.cleanup(scene, strategy.canary)
            if strategy.blue_green is not None:
                return bluegreen.cleanup(scene)
            return scene.result("cleanup", 100, "a rolling update leaves nothing to clean up")
        return rolling.deploy(scene)

    def wait_rollout(self, inp: WaitInput, heartbeat: Callable[[str], None]) -> WaitResult:
        """Watch the target Deployment until its rollout completes, heartbeating every few seconds."""
        api = self._clusters[inp.cluster.name]
        name = _target_name(inp.workload, inp.target)
        with _bound(inp.release, inp.cluster.name):
            state = waiting.wait_rollout(
                api,
                inp.workload.namespace,
                name,
                heartbeat=heartbeat,
                stall_seconds=float(inp.progress_deadline_seconds),
            )
            _runs_release(api, inp, name)
        return WaitResult(
            cluster=inp.cluster.name, target=inp.target, ready_replicas=state.ready, message=state.summary
        )

    def rollback(self, inp: RollbackInput, heartbeat: Callable[[str], None]) -> RollbackResult:
        """Restore the snapshot from any point of any strategy; wait until the workload runs it."""
        with _bound(inp.release, inp.cluster.name):
            scene = self._scene(inp.cluster.name, inp.workload, inp.release, inp.snapshot, heartbeat)
            return restore(scene, heartbeat, ROLLBACK_STALL_SECONDS, replaces=inp.replaces)

    def _scene(
        self,
        cluster: str,
        workload: Workload,
        release: ReleaseRef,
        snapshot: ClusterSnapshot,
        heartbeat: Callable[[str], None],
    ) -> Scene:
        if not snapshot.exists:
            raise ClusterError(
                f"Deployment {workload.namespace}/{workload.deployment} did not exist when the snapshot was "
                "taken; ringmaster changes existing workloads only",
                kind="permanent",
                cluster=cluster,
            )
        recorded = snapshots.recorded(snapshot)
        return Scene(self._clusters[cluster], workload, release, snapshot, recorded, heartbeat)


def _bound(release: ReleaseRef, cluster: str) -> AbstractContextManager[object]:
    """Every log line inside names the release, ring and cluster (as the activity wrappers' do)."""
    return structlog.contextvars.bound_contextvars(release=release.name, ring=release.ring, cluster=cluster)


def _runs_release(api: ClusterApi, inp: WaitInput, name: str) -> None:
    """The waited-for Deployment runs the release's image; else another writer changed it meanwhile."""
    obj = api.get(DEPLOYMENT, inp.workload.namespace, name)
    containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    image = next((c.get("image") for c in containers if c.get("name") == inp.workload.container), None)
    if image != inp.release.image:
        raise ClusterError(
            f"Deployment {inp.workload.namespace}/{name} runs {image}, not {inp.release.image}: another "
            "writer changed it during the release",
            kind="ownership-conflict",
            cluster=inp.cluster.name,
        )


def _target_name(workload: Workload, target: str) -> str:
    """The Deployment a wait watches: the workload itself, its canary or its preview."""
    if target == "canary":
        return marks.object_name(workload.deployment, marks.CANARY)
    if target == "preview":
        return marks.object_name(workload.deployment, marks.PREVIEW)
    return workload.deployment
