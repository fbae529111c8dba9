"""Waiting for a Deployment's rollout: a watch that ends every few seconds so the waiter heartbeats.

A rollout is complete as ``kubectl rollout status`` judges it: the controller has observed the latest
generation, every replica is updated and available, and no old replica is left. It is stuck when
the controller says so (``Progressing=False``, reason ``ProgressDeadlineExceeded``, after the
Deployment's ``progressDeadlineSeconds``), when the Deployment is paused, or when its status has not
changed for the caller's deadline (a controller that stopped reporting).

Each watch lasts at most ``Tuning.heartbeat_seconds``; between watches and on every event the
waiter calls ``heartbeat``, which is how a Temporal cancellation (an abort) reaches it: the
activity's heartbeat raises, and the wait ends within one heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from activities.errors import ClusterError
from activities.kubernetes.clients import DEPLOYMENT, ClusterApi


@dataclass(frozen=True)
class Progress:
    """Where a Deployment's rollout stands."""

    done: bool
    summary: str
    ready: int = 0
    stuck: str | None = None
    """Why the rollout cannot complete (the controller's message), or None."""


def progress(obj: dict[str, Any]) -> Progress:
    """Judge a Deployment's rollout from its spec and status."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    name = f"Deployment {meta.get('namespace')}/{meta['name']}"
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    ready = int(status.get("readyReplicas", 0))
    counts = f"{updated}/{want} updated, {available} available, {total} total"
    if spec.get("paused"):
        return Progress(False, f"{name} is paused", ready, stuck=f"{name} is paused ({counts})")
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0)):
        return Progress(
            False, f"{name}: waiting for the controller to see generation {meta.get('generation')}"
        )
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            why = condition.get("message") or "progress deadline exceeded"
            return Progress(False, f"{name}: {counts}", ready, stuck=f"{name}: {why} ({counts})")
    done = updated >= want and total <= updated and available >= updated
    return Progress(done, f"{name}: {counts}", ready)


def wait_rollout(
    api: ClusterApi,
    namespace: str,
    name: str,
    *,
    heartbeat: Callable[[str], None],
    stall_seconds: float,
    limit_seconds: float | None = None,
) -> Progress:
    """Block until the rollout completes; ``rollout-stuck`` when stuck or status-less for ``stall_seconds``.

    With ``limit_seconds``, give up after that long with a transient error (the caller retries).
    """
    started = time.monotonic()
    changed, last = started, ""
    obj = api.get(DEPLOYMENT, namespace, name)
    while True:
        now = time.monotonic()
        state = progress(obj)
        if state.summary != last:
            changed, last = now, state.summary
        heartbeat(state.summary)
        if state.done:
            return state
        if state.stuck is not None:
            raise ClusterError(state.stuck, kind="rollout-stuck", cluster=api.cluster)
        if now - changed > stall_seconds:
            raise ClusterError(
                f"{state.summary}: no progress reported for {stall_seconds:.0f}s",
                kind="rollout-stuck",
                cluster=api.cluster,
            )
        if limit_seconds is not None and now - started > limit_seconds:
            raise ClusterError(
                f"{state.summary}: not complete within {limit_seconds:.0f}s; the step will be retried",
                kind="transient",
                cluster=api.cluster,
            )
        obj = _next(api, namespace, name, obj, api.tuning.heartbeat_seconds)


def _next(api: ClusterApi, namespace: str, name: str, obj: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The object after its next change, or as it is after ``seconds`` without one."""
    version = str(obj["metadata"]["resourceVersion"])
    with closing(api.watch(DEPLOYMENT, namespace, name, version, seconds)) as events:
        for event in events:
            kind, body = event.get("type"), event.get("object") or {}
            if kind in ("ADDED", "MODIFIED"):
                return dict(body)
            if kind == "DELETED":
                raise ClusterError(
                    f"Deployment {namespace}/{name} was deleted while ringmaster waited for its rollout",
                    kind="permanent",
                    cluster=api.cluster,
                )
            if kind == "ERROR":
                # e.g. 410 Gone: the version fell out of the watch window; read the object afresh
                return api.get(DEPLOYMENT, namespace, name)
    return obj


def await_available(api: ClusterApi, namespace: str, name: str, heartbeat: Callable[[str], None]) -> Progress:
    """Inside a step: wait (at most ``Tuning.ready_wait_seconds``) until the Deployment is fully available.

    ``heartbeat`` is called as :func:`wait_rollout` calls it, so an abort stops the step's wait too.
    """
    return wait_rollout(
        api,
        namespace,
        name,
        heartbeat=heartbeat,
        stall_seconds=float("inf"),
        limit_seconds=api.tuning.ready_wait_seconds,
    )
