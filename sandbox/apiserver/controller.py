"""The controllers of one emulated cluster: Deployments roll out over time; namespaces finish deleting.

The Deployment controller keeps a model of each Deployment's pods (which pod template they run,
when each becomes ready) instead of ReplicaSets and Pods, and moves them the way the real one
does: a rolling update creates new pods up to ``maxSurge`` above the desired count and removes
old ones while at least ``replicas - maxUnavailable`` stay available (unhealthy old pods first);
``Recreate`` removes every old pod first. A new pod becomes ready ``podReadySeconds`` after it is
created, unless its image matches ``neverReadyImages`` (a crash loop), in which case the rollout
stalls and, after ``progressDeadlineSeconds`` (times ``progressDeadlineScale``), ``Progressing``
turns False with reason ``ProgressDeadlineExceeded``, as ``kubectl rollout status`` expects.

Status is written through the ``status`` subresource as ``kube-controller-manager`` and only when
it changes; ``deployment.kubernetes.io/revision`` counts pod templates as the real controller does.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.apiserver import resources as r
from sandbox.apiserver.config import ControllerSettings
from sandbox.apiserver.errors import ApiError
from sandbox.apiserver.registry import MERGE_PATCH, Registry

MANAGER = "kube-controller-manager"
REVISION = "deployment.kubernetes.io/revision"


@dataclass
class Pod:
    """One modelled pod: the template it runs and when it is (or will be) ready."""

    template: str
    created: float
    ready_at: float | None

    def ready(self, now: float) -> bool:
        """Whether the pod is ready at ``now``."""
        return self.ready_at is not None and self.ready_at <= now


@dataclass
class Rollout:
    """What the controller remembers of one Deployment."""

    pods: list[Pod] = field(default_factory=list)
    revisions: dict[str, int] = field(default_factory=dict)
    last_progress: float = 0.0
    progress_reason: str = "NewReplicaSetCreated"
    fresh: bool = True
    """The pod template changed and the resulting first change of counts is the creation itself."""
    last_counts: tuple[int, int, int] = (-1, -1, -1)
    hashed: tuple[Any, str] | None = None
    """The generation whose pod template was last hashed, and its hash."""


def template_hash(spec: dict[str, Any]) -> str:
    """A stable short hash of the pod template (the ``pod-template-hash`` of its ReplicaSet)."""
    raw = json.dumps(spec.get("template") or {}, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:10]


def _resolve(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = float(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value or 0)


def _limits(spec: dict[str, Any], desired: int) -> tuple[int, int]:
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate" or desired == 0:
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    return surge, (1 if surge == 0 and unavailable == 0 else unavailable)


class ClusterController:
    """Reconciles one cluster's Deployments and terminating namespaces."""

    def __init__(
        self, registry: Registry, settings: ControllerSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.registry = registry
        self.settings = settings
        self._clock = clock
        self._rollouts: dict[str, Rollout] = {}

    def reconcile(self) -> None:
        """One pass over everything the controllers own."""
        # The stored objects themselves, not copies: a quiet Deployment costs no copy, and _sync and
        # _sync_hpa copy before they write.
        store = self.registry.store
        terminating = [
            ns["metadata"]["name"]
            for ns in store.peek_all(r.NAMESPACE)
            if ns["metadata"].get("deletionTimestamp")
        ]
        for name in terminating:
            self.registry.finish_namespace(name)
        deployments = store.peek_all(r.DEPLOYMENT)
        live = {d["metadata"]["uid"] for d in deployments}
        self._rollouts = {uid: state for uid, state in self._rollouts.items() if uid in live}
        for deployment in deployments:
            try:
                self._sync(deployment, settle=False)
            except ApiError:
                continue  # deleted or changed under us; the next pass sees the new state
        for hpa in store.peek_all(r.HPA):
            self._sync_hpa(hpa)

    def _sync_hpa(self, hpa: dict[str, Any]) -> None:
        """Report the target's replicas; without a metrics API no autoscaler scales, real or emulated."""
        meta, spec = hpa["metadata"], hpa.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        found = self.registry.store.peek(r.DEPLOYMENT, meta["namespace"], str(target.get("name", "")))
        current = int(((found or {}).get("status") or {}).get("replicas", 0))
        previous = {c.get("type"): c for c in (hpa.get("status") or {}).get("conditions") or []}
        able = ("True", "SucceededGetScale", "the HPA controller was able to get the target's current scale")
        if found is None or target.get("kind") != "Deployment":
            able = (
                "False",
                "FailedGetScale",
                "the HPA controller was unable to get the target's current scale",
            )
        no_metrics = ("False", "FailedGetResourceMetric", "the sandbox serves no metrics API")
        status = {
            "observedGeneration": meta.get("generation", 1),
            "currentReplicas": current,
            "desiredReplicas": current,
            "conditions": [
                self._condition("AbleToScale", able, previous.get("AbleToScale"), update_time=False),
                self._condition(
                    "ScalingActive", no_metrics, previous.get("ScalingActive"), update_time=False
                ),
            ],
        }
        if status != hpa.get("status"):
            hpa = copy.deepcopy(hpa)
            meta = hpa["metadata"]
            body = {
                **hpa,
                "status": status,
                "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"},
            }
            self.registry.update(
                r.HPA, meta["namespace"], meta["name"], body, manager=MANAGER, subresource="status"
            )

    def settle(self) -> None:
        """Make every Deployment fully rolled out now (the state a seeded cluster starts in)."""
        for deployment in self.registry.store.items(r.DEPLOYMENT):
            self._sync(deployment, settle=True)

    def _never_ready(self, spec: dict[str, Any]) -> bool:
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        images = [str(c.get("image", "")) for c in containers if isinstance(c, dict)]
        return any(fnmatch.fnmatchcase(i, p) for i in images for p in self.settings.never_ready_images)

    def _new_pod(self, template: str, spec: dict[str, Any], now: float) -> Pod:
        ready_at = None if self._never_ready(spec) else now + self.settings.pod_ready_seconds
        return Pod(template, now, ready_at)

    def _sync(self, deployment: dict[str, Any], *, settle: bool) -> None:
        """Move one Deployment's pods and status a tick on; ``deployment`` may be the stored object
        itself: it is only read, and copied before a write."""
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        now = self._clock()
        state = self._rollouts.setdefault(meta["uid"], Rollout(last_progress=now))
        desired = int(spec.get("replicas", 1))
        generation = meta.get("generation")
        if state.hashed is None or state.hashed[0] != generation:
            state.hashed = (generation, template_hash(spec))  # the template changes only with it
        current = state.hashed[1]
        if settle:
            state.pods = [Pod(current, now, now) for _ in range(desired)]
        paused = bool(spec.get("paused"))
        if not paused:
            if current not in state.revisions:
                state.revisions[current] = max(state.revisions.values(), default=0) + 1
                state.last_progress, state.progress_reason, state.fresh = now, "NewReplicaSetCreated", True
            self._scale(state, spec, current, desired, now)
        counts = (len(state.pods), sum(p.template == current for p in state.pods), self._ready(state, now))
        if counts != state.last_counts:
            if not state.fresh:
                state.progress_reason = "ReplicaSetUpdated"
            state.fresh = False
            state.last_progress, state.last_counts = now, counts
        revision = state.revisions.get(current)
        annotations = meta.get("annotations") or {}
        if revision is not None and annotations.get(REVISION) != str(revision):
            self.registry.patch(
                r.DEPLOYMENT,
                meta["namespace"],
                meta["name"],
                MERGE_PATCH,
                {"metadata": {"annotations": {REVISION: str(revision)}}},
                manager=MANAGER,
            )
            deployment = self.registry.get(r.DEPLOYMENT, meta["namespace"], meta["name"])
        status = self._status(deployment, state, current, now, paused=paused)
        if status != deployment.get("status"):
            deployment = copy.deepcopy(deployment)
            body = {**deployment, "status": status}
            body["metadata"] = {**deployment["metadata"]}
            body["metadata"].pop("resourceVersion", None)
            self.registry.update(
                r.DEPLOYMENT, meta["namespace"], meta["name"], body, manager=MANAGER, subresource="status"
            )

    def _ready(self, state: Rollout, now: float) -> int:
        return sum(p.ready(now) for p in state.pods)

    def _scale(self, state: Rollout, spec: dict[str, Any], current: str, desired: int, now: float) -> None:
        new = [p for p in state.pods if p.template == current]
        old = [p for p in state.pods if p.template != current]
        if len(new) > desired:
            new.sort(key=lambda p: (p.ready(now), -p.created))
            new = new[len(new) - desired :]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        if recreate and old:
            state.pods = new
            return
        if not old:
            new += [self._new_pod(current, spec, now) for _ in range(desired - len(new))]
            state.pods = new
            return
        surge, unavailable = _limits(spec, desired)
        room = desired + surge - (len(new) + len(old))
        new += [self._new_pod(current, spec, now) for _ in range(max(0, min(desired - len(new), room)))]
        min_available = desired - unavailable
        new_unready = sum(not p.ready(now) for p in new)
        budget = len(new) + len(old) - min_available - new_unready
        if budget > 0:
            unhealthy = [p for p in old if not p.ready(now)]
            doomed = unhealthy[:budget]
            old = [p for p in old if p not in doomed]
            available = sum(p.ready(now) for p in [*new, *old])
            removable = min(budget - len(doomed), available - min_available)
            if removable > 0:
                old = old[removable:]
        state.pods = new + old

    def _status(
        self, deployment: dict[str, Any], state: Rollout, current: str, now: float, *, paused: bool
    ) -> dict[str, Any]:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        previous = {c.get("type"): c for c in (deployment.get("status") or {}).get("conditions") or []}
        desired = int(spec.get("replicas", 1))
        min_ready = float(spec.get("minReadySeconds", 0))
        updated = sum(p.template == current for p in state.pods)
        ready = self._ready(state, now)
        available = sum(p.ready_at is not None and p.ready_at + min_ready <= now for p in state.pods)
        _, unavailable = _limits(spec, desired)
        rs_name = f"{meta['name']}-{current}"
        if paused:
            progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif updated == desired and available == desired and len(state.pods) == desired:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif now - state.last_progress > float(spec.get("progressDeadlineSeconds", 600)) * (
            self.settings.progress_deadline_scale
        ):
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif state.progress_reason == "NewReplicaSetCreated":
            progressing = ("True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        if available >= desired - unavailable:
            availability = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            availability = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        conditions = [
            self._condition("Available", availability, previous.get("Available")),
            self._condition("Progressing", progressing, previous.get("Progressing")),
        ]
        counts = {
            "replicas": len(state.pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available),
        }
        status: dict[str, Any] = {"observedGeneration": meta.get("generation", 1)}
        status.update({k: v for k, v in counts.items() if v})
        status["conditions"] = conditions
        return status

    def _condition(
        self,
        kind: str,
        value: tuple[str, str, str],
        previous: dict[str, Any] | None,
        *,
        update_time: bool = True,
    ) -> dict[str, Any]:
        """A condition; its timestamps move only when its status (transition) or content (update) changes."""
        status, reason, message = value
        stamp = self.registry.now()
        before = previous or {}
        same = (before.get("status"), before.get("reason"), before.get("message")) == value
        condition: dict[str, Any] = {"type": kind, "status": status}
        if update_time:
            condition["lastUpdateTime"] = before.get("lastUpdateTime", stamp) if same else stamp
        moved = before.get("status") != status
        condition["lastTransitionTime"] = stamp if moved else before.get("lastTransitionTime", stamp)
        condition.update(reason=reason, message=message)
        return condition
