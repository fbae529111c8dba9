"""What one step or rollback acts on: the cluster, the workload, the release and its snapshot.

:class:`Scene` holds the writes every strategy shares: the stable Deployment (the fixed field set of
:func:`~activities.kubernetes.workload.stable_config`, skipped when the cluster already holds it),
the Deployments and Services ringmaster creates beside it (``<deployment>-canary`` and
``<deployment>-preview``, labelled ``ringmaster.dev/role``), and their removal. An object of
such a name that ringmaster did not create is never changed or deleted: that is a permanent error.

Pods of a canary or preview are *isolated* when they must not receive the active Services' traffic
(a canary behind an HTTPRoute, a blue-green preview): they then lack every label key the active
Services select on, and are reached through their own Service instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activities.errors import ClusterError
from activities.kubernetes import marks, waiting, workload
from activities.kubernetes.clients import DEPLOYMENT, SERVICE, ClusterApi, Kind
from activities.kubernetes.snapshots import Recorded
from activities.kubernetes.workload import Live
from activities.models import ClusterSnapshot, ReleaseRef, StepAction, StepResult
from policies.plan import Workload

_PORT_FIELDS = ("name", "port", "targetPort", "protocol", "appProtocol")


@dataclass(frozen=True)
class Scene:
    """One cluster, one workload, one release and the snapshot taken before it."""

    api: ClusterApi
    target: Workload
    release: ReleaseRef
    snapshot: ClusterSnapshot
    recorded: Recorded
    heartbeat: Callable[[str], None] = lambda _: None
    """Called while the step waits; raises when the activity was cancelled, which ends the wait."""

    @property
    def namespace(self) -> str:
        """The workload's namespace."""
        return self.target.namespace

    @property
    def hpa(self) -> bool:
        """Whether an autoscaler owned the replica count when the snapshot was taken."""
        return self.snapshot.hpa is not None

    def read(self) -> Live:
        """The stable Deployment as it is now."""
        return workload.read(self.api, self.target)

    def base(self, live: Live) -> int:
        """The stable size a strategy works from: the autoscaler's current count, else the recorded one."""
        return live.replicas if self.hpa else self.snapshot.replicas

    def result(self, action: StepAction, weight: int, message: str) -> StepResult:
        """A step's result in this cluster."""
        return StepResult(cluster=self.api.cluster, action=action, weight=weight, message=message)

    def fail(self, message: str) -> ClusterError:
        """A permanent error in this cluster."""
        return ClusterError(message, kind="permanent", cluster=self.api.cluster)

    # --- the stable Deployment ----------------------------------------------------------------

    def write_stable(
        self,
        live: Live,
        *,
        image: str,
        template_version: str | None,
        replicas: int | None,
        mark: dict[str, dict[str, str]],
        pinned: bool = False,
    ) -> bool:
        """Apply the stable Deployment's ringmaster fields; False when the cluster already holds them.

        ``replicas`` None leaves the count to the autoscaler (kept at its live value if ringmaster
        still holds the field from an earlier release, since leaving it out would remove it).
        ``pinned`` makes the write conditional on the Deployment being as ``live`` read it (its
        ``resourceVersion``): any change since, a newer release's above all, fails it with a 409.
        """
        if replicas is None and live.owns_replicas():
            replicas = live.replicas
        labels, annotations = dict(mark.get("labels") or {}), dict(mark.get("annotations") or {})
        found = marks.found_marks(live.meta)
        unchanged = (
            live.image == image
            and live.template_labels.get(marks.VERSION) == template_version
            and (replicas is None or live.replicas == replicas)
            and found == {"labels": labels, "annotations": annotations}
        )
        if unchanged:
            return False
        config = workload.stable_config(
            self.target,
            image=image,
            template_version=template_version,
            replicas=replicas,
            labels=labels,
            annotations=annotations,
        )
        if pinned:
            config["metadata"]["resourceVersion"] = live.meta["resourceVersion"]
        self.api.apply(config)
        return True

    def promote_stable(self, live: Live) -> bool:
        """Move the stable Deployment to the release's image and version, at its base size."""
        return self.write_stable(
            live,
            image=self.release.image,
            template_version=marks.version_label(self.release.version),
            replicas=None if self.hpa else self.base(live),
            mark=self.release_mark(),
        )

    def write_spec(
        self,
        kind: Kind,
        name: str,
        spec: dict[str, Any],
        mark: dict[str, dict[str, str]],
        *,
        missing_ok: bool = False,
    ) -> bool:
        """Apply ``spec`` fields and ringmaster marks to an existing object (a Service, an HTTPRoute)
        that ringmaster did not create; False when it already holds them (or, ``missing_ok``, is gone).
        """
        live = (
            self.api.find(kind, self.namespace, name)
            if missing_ok
            else self.api.get(kind, self.namespace, name)
        )
        if live is None:
            return False
        current = live.get("spec") or {}
        if all(current.get(k) == v for k, v in spec.items()) and marks.found_marks(live["metadata"]) == mark:
            return False
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        meta.update({field: values for field, values in mark.items() if values})
        self.api.apply({"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, "spec": spec})
        return True

    def release_mark(self) -> dict[str, dict[str, str]]:
        """The marks of the release, as ``write_spec`` and ``write_stable`` take them."""
        mark = marks.Marks.of(self.release)
        return {"labels": mark.labels, "annotations": mark.annotations}

    # --- objects ringmaster creates -----------------------------------------------------------

    def deployment_name(self, role: str) -> str:
        """``<deployment>-canary`` or ``<deployment>-preview``."""
        return marks.object_name(self.target.deployment, role)

    def service_name(self, role: str) -> str:
        """The Service in front of a canary or preview."""
        return marks.service_name(self.target.deployment, role)

    def selector(self, role: str) -> dict[str, str]:
        """The labels selecting the pods of a canary or preview."""
        return {marks.ROLE: role, marks.WORKLOAD: marks.label_value(self.target.deployment)}

    def _mark(self, role: str) -> marks.Marks:
        return marks.Marks.of(self.release).with_labels(
            role=role, workload=self.selector(role)[marks.WORKLOAD]
        )

    def pod_labels(self, live: Live, role: str, *, isolated: bool) -> dict[str, str]:
        """The stable pods' labels, minus the active Services' keys when isolated, plus role and version."""
        labels = dict(live.template_labels)
        if isolated:
            for state in self.recorded.services.values():
                for key in state.selector:
                    labels.pop(key, None)
        labels[marks.VERSION] = marks.version_label(self.release.version)
        return {**labels, **self.selector(role)}

    def write_deployment(self, live: Live, role: str, *, replicas: int, isolated: bool) -> str:
        """Apply the canary or preview Deployment: the stable pod spec with the release's image."""
        name = self.deployment_name(role)
        self._refuse_foreign(DEPLOYMENT, name)
        mark = self._mark(role)
        template_meta = {
            "labels": self.pod_labels(live, role, isolated=isolated),
            "annotations": {
                **((live.template.get("metadata") or {}).get("annotations") or {}),
                **mark.annotations,
            },
        }
        spec: dict[str, Any] = {
            "replicas": replicas,
            "selector": {"matchLabels": self.selector(role)},
            "template": {
                "metadata": template_meta,
                "spec": workload.pod_spec_with_image(live, self.release.image),
            },
        }
        for key in ("minReadySeconds", "progressDeadlineSeconds", "strategy"):
            if key in live.spec:
                spec[key] = live.spec[key]
        meta = {
            "name": name,
            "namespace": self.namespace,
            "labels": mark.labels,
            "annotations": mark.annotations,
        }
        self.api.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
        return name

    def write_service(self, role: str, ports: list[dict[str, Any]]) -> str:
        """Apply the Service in front of the canary or preview pods, with ``ports`` copied from the stable."""
        name = self.service_name(role)
        self._refuse_foreign(SERVICE, name)
        mark = self._mark(role)
        meta = {
            "name": name,
            "namespace": self.namespace,
            "labels": mark.labels,
            "annotations": mark.annotations,
        }
        spec = {
            "selector": self.selector(role),
            "ports": [{k: p[k] for k in _PORT_FIELDS if k in p} for p in ports],
        }
        self.api.apply({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})
        return name

    def service_ports(self, live: Live, services: list[str]) -> list[dict[str, Any]]:
        """Ports of the first of ``services`` that exists, else the release container's own ports."""
        for name in services:
            found = self.api.find(SERVICE, self.namespace, name)
            if found is not None and (found.get("spec") or {}).get("ports"):
                return list(found["spec"]["ports"])
        return [
            {"name": p["name"], "port": p["containerPort"], "targetPort": p["containerPort"]}
            if "name" in p
            else {"port": p["containerPort"], "targetPort": p["containerPort"]}
            for p in live.container.get("ports") or []
        ]

    def remove_role(self, role: str) -> list[str]:
        """Delete the canary's or preview's Service and Deployment; the names of those that existed."""
        pairs = ((SERVICE, self.service_name(role)), (DEPLOYMENT, self.deployment_name(role)))
        return [name for kind, name in pairs if self.remove(kind, name)]

    def cleaned(self, removed: list[str]) -> StepResult:
        """The result of a cleanup step that removed ``removed``."""
        return self.result(
            "cleanup", 100, f"removed {', '.join(removed)}" if removed else "nothing left to remove"
        )

    def remove(self, kind: Kind, name: str) -> bool:
        """Delete one of ringmaster's own objects; False when it is already gone."""
        found = self.api.find(kind, self.namespace, name)
        if found is None:
            return False
        if not workload.is_ours(found):
            raise self._foreign(kind, name)
        return self.api.delete(kind, self.namespace, name, uid=found["metadata"].get("uid"))

    def _refuse_foreign(self, kind: Kind, name: str) -> None:
        found = self.api.find(kind, self.namespace, name)
        if found is not None and not workload.is_ours(found):
            raise self._foreign(kind, name)

    def _foreign(self, kind: Kind, name: str) -> ClusterError:
        return self.fail(
            f"{kind.describe(self.namespace, name)} exists but was not created by ringmaster "
            f"(no {marks.ROLE} label); rename it or remove it before releasing"
        )

    def await_available(self, name: str) -> None:
        """Within a step, wait until a Deployment is fully available (transient failure after a while)."""
        waiting.await_available(self.api, self.namespace, name, self.heartbeat)
