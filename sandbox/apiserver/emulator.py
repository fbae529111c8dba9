"""The emulator: a set of named clusters, each with its store, API, controllers, faults and request log.

A :class:`Cluster` starts like a fresh real cluster (namespaces ``default``, ``kube-system``,
``kube-public``, ``kube-node-lease``), gets its nodes labelled with the region they report (the
declared one, or the lie its spec asks for), and creates its seed objects, which start fully
rolled out. The :class:`Emulator` owns the clusters and runs every cluster's controllers on one
asyncio task. In-process users (tests, a traffic simulator) read state through
``emulator.cluster(name).registry`` on the emulator's event loop, or over HTTP through the admin
endpoints of :mod:`.admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from sandbox.apiserver import errors as e
from sandbox.apiserver import resources as r
from sandbox.apiserver.config import ClusterSpec, ControllerSettings, EmulatorConfig
from sandbox.apiserver.controller import ClusterController
from sandbox.apiserver.faults import Faults, RequestLog
from sandbox.apiserver.registry import Registry
from sandbox.apiserver.store import Store

SEED_MANAGER = "sandbox-seed"
REGION_LABEL = "topology.kubernetes.io/region"
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def node_manifest(cluster: str, index: int, region: str, kubernetes_version: str) -> dict[str, Any]:
    """A ready node of ``cluster`` reporting ``region``."""
    name = f"{cluster}-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "sandbox.large",
                REGION_LABEL: region,
                "topology.kubernetes.io/zone": f"{region}{'abc'[index % 3]}",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
    }


def _node_status(name: str, index: int, kubernetes_version: str) -> dict[str, Any]:
    resources = {"cpu": "4", "memory": "16Gi", "pods": "110"}
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }
        ],
        "addresses": [
            {"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
            {"type": "Hostname", "address": name},
        ],
        "nodeInfo": {
            "machineID": f"{index:032x}",
            "systemUUID": f"00000000-0000-0000-0000-{index:012x}",
            "bootID": f"b0000000-0000-0000-0000-{index:012x}",
            "kubeletVersion": kubernetes_version,
            "kubeProxyVersion": kubernetes_version,
            "containerRuntimeVersion": "containerd://2.0.0",
            "osImage": "ringmaster sandbox",
            "kernelVersion": "6.1.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def resource_of(manifest: dict[str, Any]) -> r.ResourceType:
    """The served resource a manifest is for; ValueError when the emulator does not serve it."""
    for rt in r.RESOURCES:
        if rt.api_version == manifest.get("apiVersion") and rt.kind == manifest.get("kind"):
            return rt
    raise ValueError(f"the emulator does not serve {manifest.get('apiVersion')}/{manifest.get('kind')}")


class Cluster:
    """One emulated cluster."""

    def __init__(
        self, spec: ClusterSpec, config: EmulatorConfig, settings: ControllerSettings, closing: asyncio.Event
    ):
        self.spec = spec
        self.closing = closing
        self.store = Store(history_limit=config.watch_history, change_log_size=config.change_log_size)
        self.registry = Registry(self.store)
        self.controller = ClusterController(self.registry, settings)
        self.faults = Faults()
        self.requests = RequestLog(config.request_log_size)
        self.created = time.time()
        for namespace in _SYSTEM_NAMESPACES:
            self.registry.create(r.NAMESPACE, None, {"metadata": {"name": namespace}}, manager=SEED_MANAGER)
        for index in range(spec.nodes):
            node = node_manifest(spec.name, index, spec.reported_region, config.kubernetes_version)
            created = self.registry.create(r.NODE, None, node, manager="kubelet")
            created["status"] = _node_status(node["metadata"]["name"], index, config.kubernetes_version)
            self.registry.update(
                r.NODE, None, node["metadata"]["name"], created, manager="kubelet", subresource="status"
            )
        for manifest in spec.objects:
            self.seed(manifest)
        self.controller.settle()

    @property
    def name(self) -> str:
        """The cluster's name (its path prefix is ``/clusters/<name>``)."""
        return self.spec.name

    def seed(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create one object as the sandbox's seeding does; ValueError/ApiError when it cannot."""
        rt = resource_of(manifest)
        namespace = (
            ((manifest.get("metadata") or {}).get("namespace") or "default") if rt.namespaced else None
        )
        return self.registry.create(rt, namespace, manifest, manager=SEED_MANAGER)

    def describe(self) -> dict[str, Any]:
        """The admin view of the cluster."""
        return {
            "name": self.name,
            "region": self.spec.region,
            "nodeRegion": self.spec.reported_region,
            "resourceVersion": str(self.store.resource_version),
            "objects": self.store.count(),
            "watchers": self.store.watchers,
            "faults": len(self.faults.active()),
        }


class Emulator:
    """Every emulated cluster, and the loop that runs their controllers."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.settings = config.controller
        self.closing = asyncio.Event()
        self.clusters: dict[str, Cluster] = {}
        for spec in config.clusters:
            self.add_cluster(spec)

    def add_cluster(self, spec: ClusterSpec) -> Cluster:
        """Start serving a new cluster; 409 when the name is taken."""
        if spec.name in self.clusters:
            raise e.ApiError(409, f'cluster "{spec.name}" already exists', reason="AlreadyExists")
        cluster = Cluster(spec, self.config, self.settings, self.closing)
        self.clusters[spec.name] = cluster
        return cluster

    def remove_cluster(self, name: str) -> bool:
        """Stop serving a cluster; False when there was none."""
        return self.clusters.pop(name, None) is not None

    def cluster(self, name: str) -> Cluster:
        """A cluster by name; 404 ApiError when unknown."""
        found = self.clusters.get(name)
        if found is None:
            raise e.ApiError(
                404, f'cluster "{name}" not found: this sandbox serves {", ".join(self.clusters) or "none"}'
            )
        return found

    def update_settings(self, settings: ControllerSettings) -> None:
        """Change how the controllers behave, from their next pass on."""
        self.settings = settings
        for cluster in self.clusters.values():
            cluster.controller.settings = settings

    async def run_controllers(self) -> None:
        """Reconcile every cluster each tick until the emulator closes."""
        while not self.closing.is_set():
            for cluster in list(self.clusters.values()):
                cluster.controller.reconcile()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), timeout=self.settings.tick_seconds)
