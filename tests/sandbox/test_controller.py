"""Contract tests of the emulated controllers: Deployment rollouts, namespace deletion, nodes."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from sandbox.apiserver.config import ClusterSpec
from sandbox.apiserver.harness import EmulatorServer
from tests.sandbox.support import deployment
from tests.support.cluster import Cluster, api_client
from tests.support.waiting import eventually

REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture
def ns(cluster: Cluster) -> str:
    """A namespace ``work``."""
    cluster.core.create_namespace(body={"metadata": {"name": "work"}})
    return "work"


def _image(image: str, **spec: Any) -> dict[str, Any]:
    """A strategic merge patch setting the ``app`` container's image (and any other spec fields)."""
    return {"spec": {**spec, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}


def _conditions(dep: Any) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in dep.status.conditions or []}


def _rolled_out(cluster: Cluster, ns: str, name: str) -> Any:
    dep = cluster.apps.read_namespaced_deployment(name, ns)
    status, want = dep.status, dep.spec.replicas
    done = (
        status.observed_generation == dep.metadata.generation
        and (status.updated_replicas or 0) == want
        and (status.available_replicas or 0) == want
        and (status.replicas or 0) == want
    )
    return dep if done else None


def _statuses_until_done(cluster: Cluster, ns: str, name: str, since: str) -> list[dict[str, Any]]:
    """Every status the Deployment goes through after ``since`` until its rollout completes."""
    statuses: list[dict[str, Any]] = []
    stream = watch.Watch()
    selector = f"metadata.name={name}"
    for event in stream.stream(
        cluster.apps.list_namespaced_deployment,
        ns,
        resource_version=since,
        field_selector=selector,
        timeout_seconds=10,
    ):
        obj = event["raw_object"]
        status = obj.get("status") or {}
        statuses.append(status)
        want = obj["spec"]["replicas"]
        if status.get("observedGeneration") == obj["metadata"]["generation"] and all(
            status.get(k, 0) == want for k in ("replicas", "updatedReplicas", "availableReplicas")
        ):
            stream.stop()
    return statuses


class TestDeploymentRollout:
    def test_new_deployment_becomes_available(self, cluster: Cluster, ns: str) -> None:
        """A new Deployment reaches ready=available=updated=replicas, Available and a complete Progressing."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web", replicas=4))
        dep = eventually(lambda: _rolled_out(cluster, ns, "web"), what="rollout")
        assert dep.status.ready_replicas == 4
        assert _conditions(dep) == {
            "Available": ("True", "MinimumReplicasAvailable"),
            "Progressing": ("True", "NewReplicaSetAvailable"),
        }
        assert dep.metadata.annotations[REVISION] == "1"

    def test_rolling_update_respects_surge_and_availability(self, cluster: Cluster, ns: str) -> None:
        """An image change rolls 10 replicas with at most 13 pods and 8 available at least; revision 2."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web", replicas=10))
        eventually(lambda: _rolled_out(cluster, ns, "web"), what="first rollout")
        changed = cluster.apps.patch_namespaced_deployment(
            "web", ns, body=_image("registry.example.com/app:v2")
        )
        statuses = _statuses_until_done(cluster, ns, "web", changed.metadata.resource_version)
        assert max(s.get("replicas", 0) for s in statuses) <= 13
        assert min(s.get("availableReplicas", 0) for s in statuses) >= 8
        assert any(0 < s.get("updatedReplicas", 0) < 10 for s in statuses), "the rollout happened in steps"
        done = cluster.apps.read_namespaced_deployment("web", ns)
        assert done.metadata.annotations[REVISION] == "2"
        assert _conditions(done)["Progressing"] == ("True", "NewReplicaSetAvailable")

    def test_recreate_removes_old_pods_first(self, cluster: Cluster, ns: str) -> None:
        """With Recreate no status ever shows old and new pods together."""
        body = deployment("web", replicas=3, strategy={"type": "Recreate"})
        cluster.apps.create_namespaced_deployment(ns, body=body)
        eventually(lambda: _rolled_out(cluster, ns, "web"), what="first rollout")
        changed = cluster.apps.patch_namespaced_deployment(
            "web", ns, body=_image("registry.example.com/app:v2")
        )
        statuses = _statuses_until_done(cluster, ns, "web", changed.metadata.resource_version)
        mixed = [s for s in statuses if 0 < s.get("updatedReplicas", 0) < s.get("replicas", 0)]
        assert mixed == []

    def test_never_ready_image_exceeds_its_progress_deadline(self, cluster: Cluster, ns: str) -> None:
        """A crash-looping image stalls the rollout; Progressing turns False, ProgressDeadlineExceeded."""
        cluster.apps.create_namespaced_deployment(
            ns, body=deployment("web", replicas=4, progressDeadlineSeconds=1)
        )
        eventually(lambda: _rolled_out(cluster, ns, "web"), what="first rollout")
        cluster.apps.patch_namespaced_deployment("web", ns, body=_image("registry.example.com/app:crashloop"))

        def timed_out() -> Any:
            dep = cluster.apps.read_namespaced_deployment("web", ns)
            return (
                dep if _conditions(dep).get("Progressing") == ("False", "ProgressDeadlineExceeded") else None
            )

        dep = eventually(timed_out, timeout=5, what="ProgressDeadlineExceeded")
        assert (dep.status.available_replicas or 0) >= 3, "old pods keep the minimum availability"
        assert (dep.status.updated_replicas or 0) >= 1
        assert (dep.status.ready_replicas or 0) < 4 + (dep.status.updated_replicas or 0)
        cluster.apps.patch_namespaced_deployment("web", ns, body=_image("registry.example.com/app:v3"))
        recovered = eventually(lambda: _rolled_out(cluster, ns, "web"), what="recovery")
        assert _conditions(recovered)["Progressing"] == ("True", "NewReplicaSetAvailable")

    def test_paused_deployment_does_not_roll_out(self, cluster: Cluster, ns: str) -> None:
        """A paused Deployment observes its new generation but creates no new pods until resumed."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web", replicas=2))
        eventually(lambda: _rolled_out(cluster, ns, "web"), what="first rollout")
        patch = _image("registry.example.com/app:v2", paused=True)
        generation = cluster.apps.patch_namespaced_deployment("web", ns, body=patch).metadata.generation

        def observed() -> Any:
            dep = cluster.apps.read_namespaced_deployment("web", ns)
            return dep if dep.status.observed_generation == generation else None

        paused = eventually(observed, what="paused generation observed")
        assert (paused.status.updated_replicas or 0) == 0
        assert _conditions(paused)["Progressing"] == ("Unknown", "DeploymentPaused")
        cluster.apps.patch_namespaced_deployment("web", ns, body={"spec": {"paused": False}})
        eventually(lambda: _rolled_out(cluster, ns, "web"), what="resumed rollout")

    def test_scale_subresource(self, cluster: Cluster, ns: str) -> None:
        """The scale subresource reads and writes spec.replicas, and the controller follows."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web", replicas=2))
        scale = cluster.apps.read_namespaced_deployment_scale("web", ns)
        assert (scale.spec.replicas, scale.status.selector) == (2, "app=web")
        cluster.apps.patch_namespaced_deployment_scale("web", ns, body={"spec": {"replicas": 5}})
        dep = eventually(lambda: _rolled_out(cluster, ns, "web"), what="scaled")
        assert dep.spec.replicas == 5
        with pytest.raises(ApiException) as exc:
            cluster.apps.patch_namespaced_deployment_scale("web", ns, body={"spec": {"replicas": -1}})
        assert exc.value.status == 422

    def test_status_writes_belong_to_the_controller(self, cluster: Cluster, ns: str) -> None:
        """Status is written through /status by kube-controller-manager, without bumping the generation."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web", replicas=1))
        dep = eventually(lambda: _rolled_out(cluster, ns, "web"), what="rollout")
        owners = {(m.manager, m.subresource) for m in dep.metadata.managed_fields}
        assert ("kube-controller-manager", "status") in owners
        assert dep.metadata.generation == 1


class TestSeededCluster:
    def test_seeded_deployment_starts_rolled_out(self, emulator: EmulatorServer) -> None:
        """Objects a cluster is created with are in place and fully available from the start."""
        objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "api"}}]
        objects.append({**deployment("api", replicas=10), "metadata": {"name": "api", "namespace": "api"}})
        spec = ClusterSpec(name="seeded", region="us-east-1", objects=objects)
        emulator.call(lambda emu: emu.add_cluster(spec))
        try:
            found = client.AppsV1Api(api_client(emulator.cluster_url("seeded"))).read_namespaced_deployment(
                "api", "api"
            )
            assert (found.status.ready_replicas, found.status.updated_replicas) == (10, 10)
            assert found.metadata.annotations[REVISION] == "1"
        finally:
            emulator.call(lambda emu: emu.remove_cluster("seeded"))


class TestNamespaceLifecycle:
    def test_deleted_namespace_terminates_then_disappears_with_its_objects(
        self, cluster: Cluster, ns: str
    ) -> None:
        """Deleting a namespace marks it Terminating, refuses new content, then removes it and its objects."""
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "c"}})
        marked = cluster.core.delete_namespace(ns)
        assert marked["status"]["phase"] == "Terminating"

        with pytest.raises(ApiException) as refused:
            cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "late"}})
        assert refused.value.status in (403, 404)  # 404 once the controller has already finished

        def gone() -> bool:
            try:
                cluster.core.read_namespace(ns)
            except ApiException as exc:
                return exc.status == 404
            return False

        eventually(gone, what="namespace removed")
        assert (
            cluster.core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items
            == []
        )


class TestNodes:
    def test_nodes_report_the_cluster_region(self, cluster: Cluster) -> None:
        """Every node is Ready and labelled with the cluster's region and a zone in it."""
        nodes = cluster.core.list_node().items
        assert len(nodes) == 3
        assert {n.metadata.labels["topology.kubernetes.io/region"] for n in nodes} == {"eu-west-1"}
        assert all(n.metadata.labels["topology.kubernetes.io/zone"].startswith("eu-west-1") for n in nodes)
        assert all(c.status == "True" for n in nodes for c in n.status.conditions if c.type == "Ready")

    def test_a_cluster_can_lie_about_its_region(self, emulator: EmulatorServer) -> None:
        """With nodeRegion set, nodes report that region instead of the declared one."""
        emulator.admin.add_cluster("liar", region="eu-central-1", nodeRegion="us-east-1", nodes=2)
        try:
            nodes = client.CoreV1Api(api_client(emulator.cluster_url("liar"))).list_node().items
            assert {n.metadata.labels["topology.kubernetes.io/region"] for n in nodes} == {"us-east-1"}
        finally:
            emulator.admin.remove_cluster("liar")
