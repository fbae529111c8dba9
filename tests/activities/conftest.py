"""Fixtures of the Kubernetes activity tests: one cluster for the session, a fresh namespace per test.

Without environment variables the cluster is the in-process emulator over real HTTP, with a fast
controller (a pod is ready 50 ms after it is created; deadlines scaled by 0.05). With
``RINGMASTER_TEST_KUBECONFIG`` (and ``RINGMASTER_TEST_CONTEXT``, default: the current context) the
same tests run against that cluster; tests of emulator-only facilities (faults, request logs) skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config

from activities.kubernetes import KubernetesBackend, Tuning
from sandbox.apiserver.config import ClusterSpec, ControllerSettings, EmulatorConfig
from sandbox.apiserver.harness import EmulatorServer
from tests.activities.support import Kube, seed
from tests.support import fleets
from tests.support.cluster import Cluster, api_client

CLUSTER = "rm-test"
TUNING = Tuning(heartbeat_seconds=0.3, ready_wait_seconds=15.0, read_timeout=10.0)
FAST = ControllerSettings(
    tick_seconds=0.02,
    pod_ready_seconds=0.05,
    progress_deadline_scale=0.05,
    never_ready_images=["*:never-ready"],
)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """The cluster under test (the emulator unless ``RINGMASTER_TEST_KUBECONFIG`` names a real one)."""
    real = os.environ.get("RINGMASTER_TEST_KUBECONFIG")
    if real:
        context = (
            os.environ.get("RINGMASTER_TEST_CONTEXT") or config.list_kube_config_contexts(real)[1]["name"]
        )
        fleet = fleets.one_cluster(CLUSTER, context)
        backend = KubernetesBackend.from_kubeconfig(fleet, Path(real), tuning=TUNING)
        api = Cluster.from_kubeconfig(Path(real), context).api
        yield Kube(CLUSTER, api, None, None, backend=backend, fleet=fleet, kubeconfig=Path(real))
        backend.close()
        return
    spec = ClusterSpec(name=CLUSTER, region="eu-west-1", nodes=3)
    with EmulatorServer(EmulatorConfig(clusters=[spec], controller=FAST, watch_history=2000)) as server:
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        fleet = fleets.one_cluster(CLUSTER, CLUSTER)
        backend = KubernetesBackend.from_kubeconfig(fleet, kubeconfig, tuning=TUNING)
        api = api_client(server.cluster_url(CLUSTER))
        yield Kube(CLUSTER, api, server.admin, CLUSTER, backend=backend, fleet=fleet, kubeconfig=kubeconfig)
        backend.close()


@pytest.fixture
def emulator(kube: Kube) -> Kube:
    """The cluster, when it is the emulator (the test needs fault injection or the request log)."""
    if kube.emulated is None:
        pytest.skip("needs the emulator's fault injection or request log")
    return kube


@pytest.fixture
def ns(kube: Kube) -> Iterator[str]:
    """A fresh namespace, deleted afterwards."""
    name = f"rm-{secrets.token_hex(4)}"
    kube.core.create_namespace(body={"metadata": {"name": name}})
    yield name
    if kube.emulated is not None:
        kube.admin.clear_faults(kube.emulated)
    kube.core.delete_namespace(name)


@pytest.fixture
def app(kube: Kube, ns: str) -> str:
    """A namespace holding the seed workload (Deployment and Service ``api``, 10 replicas of v1)."""
    seed(kube, ns)
    return ns


@pytest.fixture
def gateway_api(kube: Kube, ns: str) -> None:
    """Skip unless the cluster serves Gateway API HTTPRoutes."""
    if kube.raw(f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes") is None:
        pytest.skip("the cluster does not serve gateway.networking.k8s.io/v1 HTTPRoutes")
