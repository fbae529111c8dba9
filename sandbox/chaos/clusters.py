"""The scenario's workload in each cluster, read through the Kubernetes API and reduced to what matters.

A scenario's namespace holds what a team would have before its first release: Deployment ``api``,
Service ``api`` and, when a ring canaries by route, HTTPRoute ``api``; they are created with the
official client, as a user would. :func:`state` reads them back the same way and :func:`shape`
keeps what a release may change and a rollback must restore: each Deployment's replicas, selector
and pod template; each Service's selector and ports; each HTTPRoute's rules. ConfigMaps are left
out: ringmaster's snapshot of a release is evidence that stays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from activities.kubernetes import marks, snapshots
from activities.models import ReleaseRef
from sandbox import seed

SNAPSHOT_CONFIG_MAP = snapshots.configmap_name("api")
"""Where ringmaster records what it found in the scenario's Deployment ``api``."""

State = dict[str, Any]
"""``"Kind/name"`` -> the object's shape."""

KINDS = ("Deployment", "Service", "HTTPRoute")
ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")


def shape(obj: Mapping[str, Any]) -> Any:
    """What of ``obj`` a release may change and a rollback must restore."""
    spec = obj.get("spec") or {}
    match obj.get("kind"):
        case "Deployment":
            template = spec.get("template") or {}
            return {
                "replicas": spec.get("replicas"),
                "selector": spec.get("selector"),
                "labels": (template.get("metadata") or {}).get("labels") or {},
                "containers": [
                    {"name": c.get("name"), "image": c.get("image"), "env": c.get("env")}
                    for c in (template.get("spec") or {}).get("containers") or []
                ],
            }
        case "Service":
            return {"selector": spec.get("selector"), "ports": spec.get("ports")}
        case "HTTPRoute":
            return {"rules": spec.get("rules")}
    return None


def key(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


class Cluster:
    """One emulated cluster through its kubeconfig context, with the official client."""

    def __init__(self, kubeconfig: Path, name: str) -> None:
        self.name = name
        self._api = k8s_config.new_client_from_config(str(kubeconfig), context=name)  # type: ignore[no-untyped-call]
        self.core = k8s.CoreV1Api(self._api)
        self.apps = k8s.AppsV1Api(self._api)
        self.custom = k8s.CustomObjectsApi(self._api)

    def close(self) -> None:
        self._api.close()

    def create(self, objects: list[dict[str, Any]]) -> None:
        """Create ``objects`` (a namespace first); an object that already exists is left as it is."""
        for obj in objects:
            namespace = obj["metadata"].get("namespace")
            try:
                match obj["kind"]:
                    case "Namespace":
                        self.core.create_namespace(obj)  # type: ignore[arg-type] # the client sends dicts as they are
                    case "Deployment":
                        self.apps.create_namespaced_deployment(namespace, obj)  # type: ignore[arg-type]
                    case "Service":
                        self.core.create_namespaced_service(namespace, obj)  # type: ignore[arg-type]
                    case "HTTPRoute":
                        self.custom.create_namespaced_custom_object(*ROUTES[:2], namespace, ROUTES[2], obj)
            except ApiException as exc:
                if exc.status != 409:
                    raise

    def ready(self, namespace: str) -> bool:
        """Every Deployment of ``namespace`` has all its replicas available."""
        for d in self._raw(self.apps.list_namespaced_deployment, namespace)["items"]:
            wanted = (d.get("spec") or {}).get("replicas", 1)
            if (d.get("status") or {}).get("availableReplicas", 0) < wanted:
                return False
        return True

    def state(self, namespace: str) -> State:
        """The shapes of every Deployment, Service and HTTPRoute in ``namespace``."""
        found: State = {}
        listed = [
            ("Deployment", self._raw(self.apps.list_namespaced_deployment, namespace)),
            ("Service", self._raw(self.core.list_namespaced_service, namespace)),
            (
                "HTTPRoute",
                self._raw(self.custom.list_namespaced_custom_object, *ROUTES[:2], namespace, ROUTES[2]),
            ),
        ]
        for kind, answer in listed:
            for item in answer["items"]:
                item["kind"] = kind
                found[key(item)] = shape(item)
        return found

    def take_image(self, namespace: str, image: str) -> None:
        """Another team's tool takes the ``api`` container's image with a forced server-side apply."""
        patch = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": namespace},
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}},
        }
        self.apps.patch_namespaced_deployment(
            "api",
            namespace,
            patch,
            field_manager="hotfix-bot",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def snapshot_taken(self, namespace: str, service: str, version: str) -> bool:
        """Whether ringmaster has recorded its snapshot of release ``service:version`` here (any run)."""
        try:
            found = self._raw(self.core.read_namespaced_config_map, SNAPSHOT_CONFIG_MAP, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        release = marks.release_label(ReleaseRef(service=service, version=version, image=""))
        return any(k == release or k.startswith(f"{release}.run-") for k in found.get("data") or {})

    @staticmethod
    def _raw(call: Any, *args: Any) -> dict[str, Any]:
        answer = call(*args, _preload_content=False, _request_timeout=10)
        return dict(json.loads(answer.data))


def workload(namespace: str, jurisdiction: str, *, route: bool) -> list[dict[str, Any]]:
    """The scenario's objects in one cluster: the sandbox's seed workload in its own namespace."""
    return seed.workload(jurisdiction, namespace, route=route)
