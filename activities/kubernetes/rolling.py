"""The rolling strategy: Kubernetes' own rolling update of the workload Deployment.

``deploy`` (and ``promote``) set the release's image and ``ringmaster.dev/version`` pod label on the
workload Deployment (with the ringmaster labels and annotations, and the recorded replicas unless an
autoscaler owns them); the Deployment controller replaces the pods under its own ``maxSurge`` and
``maxUnavailable``. Waiting for it (``wait_rollout`` on ``workload``) fails the step as
``rollout-stuck`` once the controller reports ``ProgressDeadlineExceeded`` after the Deployment's
``progressDeadlineSeconds`` (600 s unless the manifest says otherwise). ``cleanup`` has nothing to do.
"""

from __future__ import annotations

from activities.kubernetes.scene import Scene
from activities.models import StepResult


def deploy(scene: Scene) -> StepResult:
    """Start the rolling update to the release (a repeat changes nothing)."""
    changed = scene.promote_stable(scene.read())
    state = "rolling update started" if changed else "already at the release"
    return scene.result("deploy", 100, f"{scene.target.deployment}: {state} ({scene.release.version})")
