"""A small synchronous client of the emulator's admin endpoints, for tests, the sandbox and tools.

It speaks plain HTTP (urllib), so it works against an in-process :class:`~.harness.EmulatorServer`
and against the process ``python -m sandbox up`` started alike::

    admin = AdminClient("http://127.0.0.1:PORT")
    fault = admin.add_fault("euw1-prod", verb="patch", status=503, count=2)
    admin.requests("euw1-prod", verb="patch")
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from sandbox.jsonclient import JsonClient, RequestError


class AdminError(RequestError):
    """The admin endpoint refused a request; ``status`` and ``body`` say why."""


class AdminClient(JsonClient):
    """Admin calls against one emulator (``base_url`` like ``http://127.0.0.1:PORT``)."""

    error = AdminError

    def ready(self) -> bool:
        """Whether the emulator answers its readiness probe."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=self.timeout) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def clusters(self) -> list[dict[str, Any]]:
        """Every served cluster."""
        return list(self.call("GET", "/admin/clusters")["clusters"])

    def add_cluster(self, name: str, **spec: Any) -> dict[str, Any]:
        """Serve a new cluster (ClusterSpec fields in camelCase: region, nodeRegion, nodes, objects)."""
        return dict(self.call("POST", "/admin/clusters", {"name": name, **spec}))

    def remove_cluster(self, name: str) -> None:
        """Stop serving a cluster."""
        self.call("DELETE", f"/admin/clusters/{name}")

    def objects(self, cluster: str, kind: str, **selectors: str) -> list[dict[str, Any]]:
        """Objects of one kind (``namespace``, ``labelSelector``, ``fieldSelector`` optional)."""
        return list(self.call("GET", f"/admin/clusters/{cluster}/objects", kind=kind, **selectors)["items"])

    def compact(self, cluster: str) -> int:
        """Forget a cluster's watch history; returns the compacted resourceVersion."""
        return int(self.call("POST", f"/admin/clusters/{cluster}/compact")["compactedResourceVersion"])

    def add_fault(self, cluster: str, **spec: Any) -> dict[str, Any]:
        """Inject a fault (FaultSpec fields in camelCase: verb, path, status, latencySeconds, drop...)."""
        return dict(self.call("POST", f"/admin/clusters/{cluster}/faults", spec))

    def faults(self, cluster: str) -> list[dict[str, Any]]:
        """The active faults of a cluster."""
        return list(self.call("GET", f"/admin/clusters/{cluster}/faults")["faults"])

    def remove_fault(self, cluster: str, fault_id: str) -> None:
        """Remove one fault."""
        self.call("DELETE", f"/admin/clusters/{cluster}/faults/{fault_id}")

    def clear_faults(self, cluster: str) -> None:
        """Remove every fault of a cluster."""
        self.call("DELETE", f"/admin/clusters/{cluster}/faults")

    def requests(
        self, cluster: str, *, since: int = 0, verb: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """The request log of a cluster after request number ``since`` (optionally one verb, in one
        namespace)."""
        found = self.call(
            "GET", f"/admin/clusters/{cluster}/requests", since=since, verb=verb, namespace=namespace
        )
        return list(found["requests"])

    def changes(self, cluster: str, *, namespace: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """The change log of a cluster after change number ``since`` (of one namespace when given):
        every write that changed an object's content, oldest first (see :mod:`.changes`)."""
        found = self.call("GET", f"/admin/clusters/{cluster}/changes", since=since, namespace=namespace)
        return list(found["changes"])

    def controller(self, **changes: Any) -> dict[str, Any]:
        """The controller settings, after merging ``changes`` (camelCase keys) when any are given."""
        if changes:
            return dict(self.call("PATCH", "/admin/controller", changes))
        return dict(self.call("GET", "/admin/controller"))
