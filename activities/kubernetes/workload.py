"""The workload Deployment and what surrounds it: its Services, its autoscaler, the routes to it.

The *stable* Deployment is the user's own (``workload.deployment``). ringmaster changes only a fixed
set of its fields, always all of them in every write (:func:`stable_config`): the ringmaster labels
and annotations, the pod template's ``ringmaster.dev/version`` label, the release container's image,
and ``spec.replicas`` unless a HorizontalPodAutoscaler owns it. Always writing the same set matters
with server-side apply: a field ringmaster applied once and then left out would be *removed*, so a
rollback leaves out only what the snapshot says was absent.

*Active* Services are those in the namespace whose selector picks the stable pods (every selector
key matches the pod template's labels); ringmaster's own Services never count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from activities.errors import ClusterError
from activities.kubernetes import marks
from activities.kubernetes.clients import DEPLOYMENT, HPA, HTTP_ROUTE, SERVICE, ClusterApi
from policies.plan import Workload


def image_tag(image: str) -> str:
    """The tag of an image reference (``registry:5000/api:v1`` → ``v1``), else its digest, else ``latest``."""
    last = image.rsplit("/", 1)[-1]
    name, _, digest = last.partition("@")
    if ":" in name:
        return name.rsplit(":", 1)[1]
    return digest[:19] if digest else "latest"


@dataclass(frozen=True)
class Live:
    """The workload Deployment as read from the cluster."""

    obj: dict[str, Any]
    container_name: str

    @property
    def meta(self) -> dict[str, Any]:
        """``metadata``."""
        return dict(self.obj["metadata"])

    @property
    def spec(self) -> dict[str, Any]:
        """``spec``."""
        return dict(self.obj.get("spec") or {})

    @property
    def template(self) -> dict[str, Any]:
        """``spec.template``."""
        return dict(self.spec.get("template") or {})

    @property
    def template_labels(self) -> dict[str, str]:
        """The pod template's labels."""
        return dict((self.template.get("metadata") or {}).get("labels") or {})

    @property
    def selector(self) -> dict[str, str]:
        """``spec.selector.matchLabels``."""
        return dict((self.spec.get("selector") or {}).get("matchLabels") or {})

    @property
    def replicas(self) -> int:
        """``spec.replicas``."""
        return int(self.spec.get("replicas", 1))

    @property
    def container(self) -> dict[str, Any]:
        """The container the release replaces."""
        for container in (self.template.get("spec") or {}).get("containers") or []:
            if container.get("name") == self.container_name:
                return dict(container)
        raise AssertionError("checked by read()")

    @property
    def image(self) -> str:
        """The release container's image."""
        return str(self.container.get("image", ""))

    @property
    def version(self) -> str:
        """The version its pods run: the ``ringmaster.dev/version`` label (exact text from the
        annotation when it matches), else the image tag."""
        label = self.template_labels.get(marks.VERSION) or self.meta.get("labels", {}).get(marks.VERSION)
        exact = (self.meta.get("annotations") or {}).get(marks.VERSION)
        if label and exact and marks.version_label(exact) == label:
            return str(exact)
        return str(label) if label else image_tag(self.image)

    def owns_replicas(self) -> bool:
        """Whether ringmaster's apply entry holds ``spec.replicas`` (then leaving it out would remove it)."""
        for entry in self.meta.get("managedFields") or []:
            if entry.get("manager") == marks.FIELD_MANAGER and entry.get("operation") == "Apply":
                fields = (entry.get("fieldsV1") or {}).get("f:spec") or {}
                if "f:replicas" in fields:
                    return True
        return False


def read(api: ClusterApi, workload: Workload) -> Live:
    """The workload Deployment; permanent errors when it or its container is missing."""
    obj = api.get(DEPLOYMENT, workload.namespace, workload.deployment)
    live = Live(obj, workload.container)
    names = [c.get("name") for c in (live.template.get("spec") or {}).get("containers") or []]
    if workload.container not in names:
        raise ClusterError(
            f"Deployment {workload.namespace}/{workload.deployment} has no container {workload.container!r} "
            f"(it has {', '.join(map(str, names)) or 'none'})",
            kind="permanent",
            cluster=api.cluster,
        )
    return live


def is_ours(obj: dict[str, Any]) -> bool:
    """Whether ringmaster created the object (a canary, preview or snapshot)."""
    return marks.ROLE in ((obj.get("metadata") or {}).get("labels") or {})


def active_services(api: ClusterApi, namespace: str, pod_labels: dict[str, str]) -> list[dict[str, Any]]:
    """Services whose selector picks pods labelled ``pod_labels``, by name."""
    found = []
    for service in api.list(SERVICE, namespace):
        selector = (service.get("spec") or {}).get("selector") or {}
        if selector and not is_ours(service) and all(pod_labels.get(k) == v for k, v in selector.items()):
            found.append(service)
    return sorted(found, key=lambda s: str(s["metadata"]["name"]))


def hpa_for(api: ClusterApi, workload: Workload) -> str | None:
    """The HorizontalPodAutoscaler scaling the workload, if any."""
    for hpa in api.list(HPA, workload.namespace, optional=True):
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") == workload.deployment:
            return str(hpa["metadata"]["name"])
    return None


def refers_to(ref: dict[str, Any], namespace: str, services: set[str]) -> bool:
    """Whether an HTTPRoute backendRef points at one of ``services`` in the route's own namespace."""
    return (
        ref.get("group", "") in ("", None)
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", namespace) == namespace
        and ref.get("name") in services
    )


def routes_to(api: ClusterApi, namespace: str, services: set[str]) -> list[dict[str, Any]]:
    """HTTPRoutes of the namespace sending traffic to one of ``services`` (none without Gateway API)."""
    found = []
    for route in api.list(HTTP_ROUTE, namespace, optional=True):
        refs = [
            ref
            for rule in (route.get("spec") or {}).get("rules") or []
            for ref in rule.get("backendRefs") or []
        ]
        if any(refers_to(ref, namespace, services) for ref in refs):
            found.append(route)
    return found


def stable_config(
    workload: Workload,
    *,
    image: str,
    template_version: str | None,
    replicas: int | None,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> dict[str, Any]:
    """The apply configuration of the stable Deployment: every field ringmaster owns on it, nothing else."""
    template: dict[str, Any] = {"spec": {"containers": [{"name": workload.container, "image": image}]}}
    if template_version is not None:
        template["metadata"] = {"labels": {marks.VERSION: template_version}}
    spec: dict[str, Any] = {"template": template}
    if replicas is not None:
        spec["replicas"] = replicas
    meta: dict[str, Any] = {"name": workload.deployment, "namespace": workload.namespace}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": DEPLOYMENT.api_version, "kind": DEPLOYMENT.kind, "metadata": meta, "spec": spec}


def pod_spec_with_image(live: Live, image: str) -> dict[str, Any]:
    """The stable pod spec with the release container's image replaced."""
    pod = dict(live.template.get("spec") or {})
    pod["containers"] = [
        {**c, "image": image} if c.get("name") == live.container_name else c
        for c in pod.get("containers") or []
    ]
    return pod
