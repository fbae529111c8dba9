"""The blue-green strategy: a full-size preview beside the workload, then one switch of the active Services.

- ``deploy-preview``: Deployment ``<deployment>-preview`` running the release at the stable's full
  size (the recorded replicas, or the autoscaler's current count), its pods isolated from the
  active Services (:mod:`.scene`), and Service ``<deployment>-preview`` in front of them (ports of
  the first active Service) for analysis and smoke tests. No live traffic reaches it.
- ``switch``: once the preview is fully available, each active Service's selector switches to the
  preview pods in one update, so the release takes all traffic at once from pods known to be ready;
  the workload keeps the previous version at full size, for an instant switch back.
- ``promote`` (after ``scaleDownDelaySeconds``, or at once for releases started before ``switch``
  existed): switch if not done yet, then the workload Deployment itself moves to the release (it
  rolls while serving nothing).
- ``cleanup``: once the workload Deployment is fully available on
  the release, each active Service's selector is switched back to it (its recorded selector), and
  the preview Service and Deployment are deleted. The workload then runs and serves the release.

At every moment each active Service selects pods that are ready: the stable pods until promotion,
the (available) preview pods until cleanup, the (available) workload pods after it.
"""

from __future__ import annotations

from activities.kubernetes import marks
from activities.kubernetes.clients import SERVICE
from activities.kubernetes.scene import Scene
from activities.models import StepResult


def deploy_preview(scene: Scene) -> StepResult:
    """The preview Deployment at full size and its Service; traffic stays on the stable pods."""
    live = scene.read()
    size = scene.base(live)
    name = scene.write_deployment(live, marks.PREVIEW, replicas=size, isolated=True)
    ports = scene.service_ports(live, list(scene.recorded.services))
    service = scene.write_service(marks.PREVIEW, ports) if ports else "no Service (no ports to copy)"
    return scene.result("deploy-preview", 0, f"{name} at {size} replicas behind {service}")


def switch(scene: Scene) -> StepResult:
    """Once the preview is fully available, point every active Service at it in one update each.

    The workload keeps running the previous version at full size: until ``promote``, a rollback is
    an instant switch back (Argo's ``scaleDownDelaySeconds``).
    """
    preview = scene.deployment_name(marks.PREVIEW)
    scene.await_available(preview)
    selector = scene.selector(marks.PREVIEW)
    for service in scene.recorded.services:
        scene.write_spec(SERVICE, service, {"selector": selector}, scene.release_mark())
    switched = ", ".join(scene.recorded.services) or "no Service"
    return scene.result(
        "switch", 100, f"{switched} now select {preview}; {scene.target.deployment} kept as it was"
    )


def promote(scene: Scene) -> StepResult:
    """Switch every active Service to the preview pods (if not yet), then move the workload to the release."""
    switched = switch(scene)
    scene.promote_stable(scene.read())
    return scene.result(
        "promote", 100, f"{switched.message.split(';')[0]}; {scene.target.deployment} rolling"
    )


def cleanup(scene: Scene) -> StepResult:
    """Switch the active Services back to the (released) workload and remove the preview objects."""
    scene.await_available(scene.target.deployment)
    for service, state in scene.recorded.services.items():
        scene.write_spec(SERVICE, service, {"selector": state.selector}, scene.release_mark())
    return scene.cleaned(scene.remove_role(marks.PREVIEW))
