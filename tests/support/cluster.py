"""The one handle tests hold on a cluster: the official client for setup and assertions, raw JSON reads,
and (on the emulator) its admin client for faults and the request log.

The sandbox tests get one per fresh emulated cluster, the Kubernetes activity tests one on the
emulator or a real cluster (subclassed with the backend under test), the metric-gate tests one per
cluster of their sandbox's kubeconfig.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from sandbox.apiserver.adminclient import AdminClient
from tests.support import manifests


def api_client(url: str) -> client.ApiClient:
    """An official-client ApiClient for one cluster URL, failing fast instead of retrying."""
    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = False
    return client.ApiClient(configuration)


@dataclass
class Cluster:
    """One cluster under test."""

    name: str
    api: client.ApiClient
    admin_client: AdminClient | None
    """The emulator's admin client, or None on a real cluster."""
    emulated: str | None
    """The emulated cluster's name (for the admin client), or None on a real cluster."""

    @classmethod
    def emulator(cls, name: str, url: str, admin: AdminClient) -> Cluster:
        """An emulated cluster at ``url``."""
        return cls(name, api_client(url), admin, name)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, context: str) -> Cluster:
        """The cluster of one kubeconfig context (no admin client)."""
        api = config.new_client_from_config(
            config_file=str(kubeconfig), context=context, persist_config=False
        )
        return cls(context, api, None, None)

    @property
    def admin(self) -> AdminClient:
        """The emulator's admin client (emulator only)."""
        assert self.admin_client is not None, "needs the emulator"
        return self.admin_client

    @property
    def url(self) -> str:
        """The API server's base URL."""
        return str(self.api.configuration.host)

    @property
    def core(self) -> client.CoreV1Api:
        """``/api/v1``."""
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        """``/apis/apps/v1``."""
        return client.AppsV1Api(self.api)

    @property
    def autoscaling(self) -> client.AutoscalingV2Api:
        """``/apis/autoscaling/v2``."""
        return client.AutoscalingV2Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        """Custom resources (HTTPRoute)."""
        return client.CustomObjectsApi(self.api)

    def close(self) -> None:
        """Close the client's connections."""
        self.api.close()

    # --- reading ----------------------------------------------------------------------------------

    def raw(self, path: str) -> dict[str, Any] | None:
        """An object (or list) as JSON, or None when it does not exist."""
        response = self.api.rest_client.request("GET", self.url + path)
        if response.status == 404:
            return None
        assert response.status == 200, (path, response.status)
        return json.loads(response.read())  # type: ignore[no-any-return]

    def deployment(self, ns: str, name: str) -> dict[str, Any] | None:
        """A Deployment, or None."""
        return self.raw(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")

    def service(self, ns: str, name: str) -> dict[str, Any] | None:
        """A Service, or None."""
        return self.raw(f"/api/v1/namespaces/{ns}/services/{name}")

    def route(self, ns: str, name: str) -> dict[str, Any] | None:
        """An HTTPRoute, or None."""
        return self.raw(f"/apis/{manifests.ROUTES_GROUP}/v1/namespaces/{ns}/httproutes/{name}")

    def replicas(self, ns: str, name: str) -> int | None:
        """A Deployment's ``spec.replicas``, or None when it does not exist."""
        found = self.deployment(ns, name)
        return None if found is None else int(found["spec"]["replicas"])

    def rolled_out(self, ns: str, name: str) -> bool:
        """Whether a Deployment's rollout is complete (the test's own judgement, not the backend's)."""
        obj = self.deployment(ns, name)
        if obj is None:
            return False
        status, want = obj.get("status") or {}, obj["spec"]["replicas"]
        return status.get("observedGeneration") == obj["metadata"]["generation"] and all(
            status.get(k, 0) == want for k in ("replicas", "updatedReplicas", "availableReplicas")
        )

    # --- writing ----------------------------------------------------------------------------------

    def apply_as(self, manager: str, ns: str, body: dict[str, Any], *, force: bool = False) -> None:
        """Server-side apply a Deployment as another manager (a GitOps controller, say)."""
        self.apps.patch_namespaced_deployment(
            body["metadata"]["name"],
            ns,
            body=body,
            field_manager=manager,
            force=force,
            _content_type="application/apply-patch+yaml",
        )

    def create_route(self, ns: str, body: dict[str, Any], *, manager: str | None = None) -> None:
        """Create an HTTPRoute (from :func:`tests.support.manifests.http_route`)."""
        self.custom.create_namespaced_custom_object(
            manifests.ROUTES_GROUP, "v1", ns, "httproutes", body, field_manager=manager
        )

    # --- the emulator's admin API -----------------------------------------------------------------

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The emulator's request log of the cluster (emulator only)."""
        assert self.emulated is not None, "needs the emulator"
        return self.admin.requests(self.emulated, since=since)

    def last_request(self) -> int:
        """The number of the last logged request (emulator only)."""
        found = self.requests()
        return int(found[-1]["seq"]) if found else 0


def container_image(obj: dict[str, Any], name: str = "api") -> str:
    """The image of one container of a Deployment (as JSON)."""
    containers = obj["spec"]["template"]["spec"]["containers"]
    return str(next(c["image"] for c in containers if c["name"] == name))


def owners(obj: dict[str, Any], path: tuple[str, ...]) -> set[str]:
    """The managers whose managedFields hold ``path`` (``("f:spec", "f:replicas")``)."""
    found = set()
    for entry in obj["metadata"].get("managedFields") or []:
        node: Any = entry.get("fieldsV1") or {}
        for element in path:
            node = node.get(element) if isinstance(node, dict) else None
        if node is not None:
            found.add(f"{entry['manager']}:{entry['operation']}")
    return found
