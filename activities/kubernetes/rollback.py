"""Rollback: from whatever point a strategy reached, back to the snapshot, never without ready pods.

The order keeps every active Service on ready pods throughout (after one check: a rollback told what
it ``replaces``, undoing an ended release, writes nothing to a workload running another image):

1. the workload Deployment gets its recorded image, ``ringmaster.dev/version`` pod label, replicas
   (unless an autoscaler owns them) and ringmaster labels and annotations (removed if it had none);
   nothing is written when it already holds them;
2. wait, heartbeating, until that rollout completes (a canary or preview keeps serving meanwhile);
3. every recorded Service selector and HTTPRoute rule set that differs is written back, with the
   ringmaster marks found on it (so traffic returns to the restored workload), less any backendRef
   to a canary or preview Service (an earlier release's leftover, recorded as found), whose weight
   the other backends of the rule share as they did;
4. the canary and preview Services and Deployments ringmaster created are deleted;
5. the workload is read once more: another writer that changed its image meanwhile (after step 1
   read it) makes the rollback fail as an ownership conflict, never report a cluster restored that
   is not.

Every write compares with the cluster first, so a repeated rollback, or one after a release that
never got past its snapshot, writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from activities.errors import ClusterError
from activities.kubernetes import marks, routing, waiting
from activities.kubernetes.clients import HTTP_ROUTE, SERVICE
from activities.kubernetes.scene import Scene
from activities.models import RollbackResult


def rollback(
    scene: Scene, heartbeat: Callable[[str], None], stall_seconds: float, *, replaces: Sequence[str] = ()
) -> RollbackResult:
    """Restore the snapshot; wait until the workload runs it again; remove canary and preview objects.

    With ``replaces``, only a workload running one of those images (or the snapshot's) is restored:
    undoing an ended release never overwrites what a newer release deployed since.
    """
    recorded, snapshot = scene.recorded, scene.snapshot
    heartbeat(f"restoring {scene.target.deployment} to {snapshot.version}")
    live = scene.read()
    if replaces and live.image not in (*replaces, snapshot.image):
        raise ClusterError(
            f"Deployment {scene.namespace}/{scene.target.deployment} runs {live.image}, not "
            f"{' or '.join(replaces)}: another writer (a newer release?) changed it since; nothing written",
            kind="ownership-conflict",
            cluster=scene.api.cluster,
        )
    changed = scene.write_stable(
        live,
        image=snapshot.image,
        template_version=recorded.template_version,
        replicas=None if scene.hpa else snapshot.replicas,
        mark=recorded.marks,
        # An undo writes only over the Deployment it checked: a newer release writing between the
        # check and this write makes it a 409, retried, and the next attempt's check refuses.
        pinned=bool(replaces),
    )
    waiting.wait_rollout(
        scene.api, scene.namespace, scene.target.deployment, heartbeat=heartbeat, stall_seconds=stall_seconds
    )
    restored = [scene.target.deployment] if changed else []
    for name, service in recorded.services.items():
        if scene.write_spec(SERVICE, name, {"selector": service.selector}, service.marks, missing_ok=True):
            restored.append(f"Service {name}")
    # The canary and preview Services go in step 4: a route recorded while an earlier release had left
    # its canary there (its rollback failed) must not be restored pointing at them.
    leaving = {scene.service_name(role) for role in (marks.CANARY, marks.PREVIEW)}
    for name, route in recorded.routes.items():
        heartbeat(f"restoring HTTPRoute {name}")
        rules = routing.without_backends(route.rules, leaving)
        if scene.write_spec(HTTP_ROUTE, name, {"rules": rules}, route.marks, missing_ok=True):
            restored.append(f"HTTPRoute {name}")
    removed = []
    for role in (marks.CANARY, marks.PREVIEW):
        heartbeat(f"removing the {role}")
        removed += scene.remove_role(role)
    _still_restored(scene)
    parts = [f"restored {', '.join(restored)}" if restored else "nothing to restore"]
    if removed:
        parts.append(f"removed {', '.join(removed)}")
    return RollbackResult(
        cluster=scene.api.cluster, restored_version=snapshot.version, message="; ".join(parts)
    )


def _still_restored(scene: Scene) -> None:
    """The workload still runs the snapshot's image; else another writer changed it during the rollback."""
    image = scene.read().image
    if image != scene.snapshot.image:
        raise ClusterError(
            f"Deployment {scene.namespace}/{scene.target.deployment} runs {image}, not the restored "
            f"{scene.snapshot.image}: another writer changed it during the rollback",
            kind="ownership-conflict",
            cluster=scene.api.cluster,
        )
