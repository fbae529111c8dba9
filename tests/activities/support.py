"""Helpers of the Kubernetes activity tests: a cluster handle, the seed workload, fingerprints, a release.

The same tests run against the in-process emulator (default) or a real cluster
(``RINGMASTER_TEST_KUBECONFIG`` and ``RINGMASTER_TEST_CONTEXT``): everything they need is created
through the official client in a fresh namespace, with images that run anywhere (``pause``) and one
that never becomes ready (a tag that does not exist; the emulator is configured to treat it alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from activities.kubernetes import KubernetesBackend
from activities.models import (
    ClusterSnapshot,
    ClusterTarget,
    ReleaseRef,
    RollbackInput,
    RollbackResult,
    StepAction,
    StepInput,
    StepResult,
    WaitInput,
    WaitResult,
)
from policies.fleet import Fleet
from policies.plan import Strategy, Workload
from tests.support import manifests
from tests.support.cluster import Cluster
from tests.support.waiting import eventually

V1 = "registry.k8s.io/pause:3.9"
V2 = "registry.k8s.io/pause:3.10"
NEVER_READY = "registry.k8s.io/pause:never-ready"
MANAGER = "kubectl-create"
"""The field manager the seed objects are created with, as ``kubectl create`` would."""
DB_HOST = "orders.db.eu.example.com"


@dataclass
class Kube(Cluster):
    """The cluster under test (emulator or real) with the Kubernetes backend the tests drive."""

    backend: KubernetesBackend
    fleet: Fleet
    kubeconfig: Path

    @property
    def cluster(self) -> str:
        """The cluster's name in the fleet."""
        return self.name

    def backend_with(self, **tuning: Any) -> KubernetesBackend:
        """Another backend on the same cluster, with some tuning changed (``ready_wait_seconds=1``)."""
        base = self.backend.clusters[self.cluster].tuning
        return KubernetesBackend.from_kubeconfig(self.fleet, self.kubeconfig, tuning=replace(base, **tuning))


def seed(kube: Kube, ns: str, *, replicas: int = 10, env: list[dict[str, Any]] | None = None) -> None:
    """The workload a release acts on, as a user would have created it: Deployment ``api`` (version label
    ``v1``, container ``api``), Service ``api`` selecting ``app: api``; waits until it is rolled out."""
    labels = {"app": "api", "ringmaster.dev/version": "v1"}
    env = env if env is not None else [{"name": "DATABASE_URL", "value": f"postgres://{DB_HOST}:5432/x"}]
    container = manifests.container("api", V1, ports=[{"name": "http", "containerPort": 8080}], env=env)
    deployment = manifests.deployment("api", [container], replicas=replicas, labels=labels)
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    service = manifests.service("api", {"app": "api"}, ports, labels={"app": "api"})
    kube.apps.create_namespaced_deployment(ns, body=deployment, field_manager=MANAGER)
    kube.core.create_namespaced_service(ns, body=service, field_manager=MANAGER)
    eventually(lambda: kube.rolled_out(ns, "api"), what="the seed rollout")


def hpa(kube: Kube, ns: str) -> None:
    """An autoscaler on ``api`` that never scales by itself (its metric exists nowhere)."""
    metric = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "ringmaster_test_absent"},
            "target": {"type": "AverageValue", "averageValue": "1"},
        },
    }
    body = manifests.autoscaler("api", min_replicas=1, max_replicas=20, metrics=[metric])
    kube.autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, body=body)


def autoscale(kube: Kube, ns: str, replicas: int) -> None:
    """Change the replica count as the autoscaler does: through the scale subresource, as its manager."""
    kube.apps.patch_namespaced_deployment_scale(
        "api", ns, body={"spec": {"replicas": replicas}}, field_manager="horizontal-pod-autoscaler"
    )
    eventually(lambda: kube.replicas(ns, "api") == replicas, what=f"{replicas} replicas")


def fingerprint(kube: Kube, ns: str, *, generations: bool = True) -> dict[str, Any]:
    """What a repeated step must not change and a rollback must restore: specs, labels and ringmaster
    annotations of every Deployment, Service and HTTPRoute of the namespace, and (unless a rollback
    is compared, whose restoring writes count up) their generations; never status."""
    found: dict[str, Any] = {}
    paths = {
        "Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments",
        "Service": f"/api/v1/namespaces/{ns}/services",
        "HTTPRoute": f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes",
    }
    for kind, path in paths.items():
        listed = kube.raw(path) or {"items": []}
        for obj in listed["items"]:
            meta = obj["metadata"]
            found[f"{kind}/{meta['name']}"] = {
                "generation": meta.get("generation") if generations else None,
                "labels": meta.get("labels") or {},
                "annotations": {
                    k: v for k, v in (meta.get("annotations") or {}).items() if "ringmaster" in k
                },
                "spec": obj.get("spec"),
            }
    return found


@dataclass
class Release:
    """One release of ``api`` in one namespace under one strategy, driven step by step like the workflow."""

    kube: Kube
    ns: str
    strategy: Strategy
    version: str = "v2"
    image: str = V2
    ring: str = "beta"
    run: str = ""
    """Which run of the release (the release workflow's first run id); empty as before runs were recorded."""
    snapshot: ClusterSnapshot | None = None
    beats: list[str] = field(default_factory=list)
    backend: KubernetesBackend | None = None
    """The backend to drive (default: the session's)."""

    @property
    def driver(self) -> KubernetesBackend:
        """The backend the release is driven through."""
        return self.backend or self.kube.backend

    @property
    def ref(self) -> ReleaseRef:
        """The release."""
        return ReleaseRef(service="api", version=self.version, image=self.image, ring=self.ring, run=self.run)

    @property
    def workload(self) -> Workload:
        """Deployment ``api``, container ``api``."""
        return Workload(namespace=self.ns, deployment="api", container="api")

    @property
    def target(self) -> ClusterTarget:
        """The cluster."""
        return ClusterTarget(name=self.kube.cluster, region="eu-west-1", jurisdiction="EU")

    def take_snapshot(self) -> ClusterSnapshot:
        """The snapshot activity."""
        self.snapshot = self.driver.snapshot(self.kube.cluster, self.workload, self.ref)
        return self.snapshot

    def step(self, action: StepAction, weight: int | None = None) -> StepResult:
        """One step, as ``apply_step``."""
        assert self.snapshot is not None
        return self.driver.apply(
            StepInput(
                release=self.ref,
                cluster=self.target,
                workload=self.workload,
                strategy=self.strategy,
                action=action,
                weight=weight,
                snapshot=self.snapshot,
            ),
            self.beats.append,
        )

    def step_twice(self, action: StepAction, weight: int | None = None) -> StepResult:
        """A step, then the same step again, which must leave every object as the first left it."""
        first = self.step(action, weight)
        after = fingerprint(self.kube, self.ns)
        again = self.step(action, weight)
        assert fingerprint(self.kube, self.ns) == after, f"repeating {action} changed the cluster"
        assert again.weight == first.weight
        return first

    def wait(self, target: str, deadline: int = 600) -> WaitResult:
        """``wait_rollout`` on ``workload``, ``canary`` or ``preview``, recording heartbeats."""
        return self.driver.wait_rollout(
            WaitInput.model_validate(
                {
                    "release": self.ref,
                    "cluster": self.target,
                    "workload": self.workload,
                    "strategy": self.strategy,
                    "target": target,
                    "progress_deadline_seconds": deadline,
                }
            ),
            self.beats.append,
        )

    def rollback(
        self, on_beat: Callable[[str], None] | None = None, replaces: list[str] | None = None
    ) -> RollbackResult:
        """``rollback_cluster`` from wherever the release is (``on_beat`` sees each heartbeat too;
        ``replaces`` as an undo of an ended release sets it)."""
        assert self.snapshot is not None

        def beat(message: str) -> None:
            self.beats.append(message)
            if on_beat is not None:
                on_beat(message)

        return self.driver.rollback(
            RollbackInput(
                release=self.ref,
                cluster=self.target,
                workload=self.workload,
                strategy=self.strategy,
                snapshot=self.snapshot,
                reason="test",
                replaces=replaces or [],
            ),
            beat,
        )


def strategy(spec: dict[str, Any]) -> Strategy:
    """A strategy from its YAML form (``{"canary": {"steps": [...]}}``)."""
    return Strategy.model_validate(spec)
