"""Helpers for the sandbox tests: official-client handles on one emulated cluster."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from sandbox.apiserver.adminclient import AdminClient


@dataclass
class ClusterHandle:
    """The official client's APIs for one emulated cluster, and the emulator's admin client."""

    name: str
    url: str
    api: client.ApiClient
    admin: AdminClient

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

    def raw(self, method: str, path: str, **kwargs: Any) -> Any:
        """A raw request through the client's REST layer (``_preload_content=False`` response)."""
        return self.api.rest_client.request(method, self.url + path, **kwargs)


def http(
    method: str, url: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, Any, Any]:
    """A raw request (for bodies the official client would refuse to send): status, headers, JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our emulator over http
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def api_client(url: str) -> client.ApiClient:
    """An official-client ApiClient for one cluster URL, failing fast instead of retrying."""
    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = False
    return client.ApiClient(configuration)


def deployment(
    name: str, *, replicas: int = 3, image: str = "registry.example.com/app:v1", **spec: Any
) -> dict[str, Any]:
    """A Deployment manifest selecting ``app: <name>``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "env": [{"name": "MODE", "value": "a"}]},
                        {"name": "sidecar", "image": "registry.example.com/proxy:1"},
                    ]
                },
            },
            **spec,
        },
    }
