"""The canary strategy: ``<deployment>-canary`` beside the stable Deployment, by replica ratio or by route.

By replica ratio (no ``trafficRouting``), the canary's pods carry every label of the stable pods, so
the workload's own Services send them a share of traffic equal to their share of pods:

- ``set-weight W``: the canary gets ``c`` replicas and the stable ``N - c`` (``N`` the recorded
  replicas), ``c`` chosen so that ``c / N`` is closest to ``W`` (at least one pod on each side while
  ``0 < W < 100``); the stable shrinks only once the canary pods are available. The step reports the
  effective weight ``100 c / N``. When a HorizontalPodAutoscaler owns the stable Deployment, the
  stable is left at its current count ``N`` and the canary is added beside it, ``c / (N + c)``
  closest to ``W`` with ``c <= N`` (so at most 50 % by ratio): replicas are never written over the
  autoscaler.
- ``promote``: the stable Deployment moves to the release's image and version label at ``N``
  replicas (the autoscaler's count untouched); the canary keeps serving while it rolls.
- ``cleanup``: once the stable is fully available, the canary Deployment is deleted.

With ``trafficRouting.httpRoute``, the canary pods are isolated (:mod:`.scene`) behind their own
Service ``<deployment>-canary``, and the route's weights give the exact share (:mod:`.routing`):

- ``set-weight W``: canary Deployment at ``ceil(W N / 100)`` replicas and its Service; once the
  canary is available, the route's rules send it ``W`` percent. The stable is never resized.
- ``promote``: the stable Deployment moves to the release; the route keeps its weights meanwhile.
- ``cleanup``: once the stable is available, the route's recorded rules are restored (all traffic on
  the stable Service, which now runs the release) and the canary Service and Deployment deleted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from activities.kubernetes import marks, routing
from activities.kubernetes.clients import HTTP_ROUTE
from activities.kubernetes.scene import Scene
from activities.kubernetes.snapshots import RouteState
from activities.kubernetes.workload import Live
from activities.models import StepResult
from policies.plan import Canary


@dataclass(frozen=True)
class Split:
    """Replicas of canary and stable for a weight, and the share of pods the canary gets."""

    canary: int
    stable: int | None
    """None: the autoscaler's count stays."""
    effective: int


def split(base: int, weight: int, *, autoscaled: bool) -> Split:
    """The replica split closest to ``weight`` percent on the canary, from a stable size of ``base``."""
    weight = max(0, min(100, weight))
    if base <= 0 or weight == 0:
        return Split(0, None if autoscaled else base, 0)
    if autoscaled:
        canary = base if weight == 100 else math.floor(weight * base / (100 - weight) + 0.5)
        canary = max(1, min(base, canary))
        return Split(canary, None, _percent(canary, base + canary))
    if weight == 100:
        return Split(base, 0, 100)
    if base == 1:
        return Split(1, 1, 50)  # one pod cannot be split: the canary is added beside it
    canary = max(1, min(base - 1, math.floor(weight * base / 100 + 0.5)))
    return Split(canary, base - canary, _percent(canary, base))


def _percent(part: int, whole: int) -> int:
    return math.floor(100 * part / whole + 0.5) if whole else 0


def set_weight(scene: Scene, canary: Canary, weight: int) -> StepResult:
    """Give the canary ``weight`` percent of traffic (as closely as replicas allow without a route)."""
    live = scene.read()
    if canary.traffic_routing is not None:
        return _route_weight(scene, live, canary.traffic_routing.http_route, weight)
    parts = split(scene.base(live), weight, autoscaled=scene.hpa)
    # Capacity moves one way only once the other side can take it: a stable that grows (a lower
    # weight) grows first; a stable that shrinks shrinks only once the canary pods are available.
    stable_first = parts.stable is not None and parts.stable > live.replicas
    if stable_first:
        _size_stable(scene, live, parts)
    name = scene.write_deployment(live, marks.CANARY, replicas=parts.canary, isolated=False)
    if parts.canary:
        scene.await_available(name)
    if not stable_first:
        _size_stable(scene, live, parts)
    where = "beside the autoscaled stable" if parts.stable is None else f"stable at {parts.stable}"
    return scene.result("set-weight", parts.effective, f"{name} at {parts.canary} replicas, {where}")


def _size_stable(scene: Scene, live: Live, parts: Split) -> None:
    """Resize the stable (never over an autoscaler); it keeps the recorded image and version."""
    if parts.stable is None:
        return
    mark = marks.Marks.of(scene.release, version=scene.snapshot.version)
    scene.write_stable(
        live,
        image=scene.snapshot.image,
        template_version=scene.recorded.template_version,
        replicas=parts.stable,
        mark={"labels": mark.labels, "annotations": mark.annotations},
    )


def _route(scene: Scene, name: str) -> RouteState:
    state = scene.recorded.routes.get(name)
    if state is not None:
        return state
    where = f"HTTPRoute {scene.namespace}/{name}"
    if scene.api.find(HTTP_ROUTE, scene.namespace, name) is None:
        raise scene.fail(f"{where} not found (trafficRouting.httpRoute)")
    services = ", ".join(scene.recorded.services) or "none"
    raise scene.fail(
        f"{where} sends no traffic to a Service of Deployment {scene.target.deployment} "
        f"(Services selecting its pods: {services}); a canary can only take a share of such a route"
    )


def _route_weight(scene: Scene, live: Live, route: str, weight: int) -> StepResult:
    state = _route(scene, route)
    stable = set(scene.recorded.services)
    replicas = 0 if weight <= 0 else max(1, math.ceil(weight * scene.base(live) / 100))
    name = scene.write_deployment(live, marks.CANARY, replicas=replicas, isolated=True)
    ports = scene.service_ports(live, routing.stable_backends(state.rules, scene.namespace, stable))
    service = scene.write_service(marks.CANARY, ports)
    if replicas:
        scene.await_available(name)  # traffic reaches the canary Service only once its pods are ready
    rules = routing.weighted_rules(state.rules, scene.namespace, stable, service, weight)
    scene.write_spec(HTTP_ROUTE, route, {"rules": rules}, scene.release_mark())
    return scene.result("set-weight", max(0, min(100, weight)), f"HTTPRoute {route}: {weight}% to {service}")


def promote(scene: Scene) -> StepResult:
    """Move the stable Deployment to the release; the canary keeps serving until cleanup."""
    changed = scene.promote_stable(scene.read())
    what = "rolling to" if changed else "already at"
    return scene.result("promote", 100, f"{scene.target.deployment} {what} {scene.release.version}")


def cleanup(scene: Scene, canary: Canary) -> StepResult:
    """Once the stable is fully available: the route back to the stable Service, the canary removed."""
    scene.await_available(scene.target.deployment)
    if canary.traffic_routing is not None:
        route = canary.traffic_routing.http_route
        # Recorded as found: an earlier release's leftover canary backend goes with the canary.
        rules = routing.without_backends(_route(scene, route).rules, {scene.service_name(marks.CANARY)})
        scene.write_spec(HTTP_ROUTE, route, {"rules": rules}, scene.release_mark())
    return scene.cleaned(scene.remove_role(marks.CANARY))
