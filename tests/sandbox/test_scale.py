"""Many services and many clusters: the seeded services, generated fleets, and a sandbox of both.

``services: {count: S}`` seeds ``api`` and ``svc-001`` ... in every cluster, each in its own namespace;
``python -m sandbox fleet --clusters N`` writes a fleet of N clusters; ``up`` on both serves them all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from policies import loading
from sandbox import fleets, seed, stack
from sandbox.apiserver.harness import EmulatorServer
from sandbox.settings import SandboxSettings
from tests.sandbox.conftest import FAST
from tests.sandbox.support import sandbox_cli
from tests.support.cluster import Cluster
from tests.support.fleets import EXAMPLE_PLAN


class TestServiceNames:
    @pytest.mark.parametrize(
        ("count", "names"),
        [(1, ["api"]), (3, ["api", "svc-001", "svc-002"]), (1000, None)],
    )
    def test_api_then_zero_padded_services(self, count: int, names: list[str] | None) -> None:
        """The first service is the demo's api, the others svc-NNN, as many as asked and all distinct."""
        found = seed.service_names(count)
        assert len(set(found)) == count
        if names is not None:
            assert found == names
        else:
            assert found[-1] == "svc-999"

    def test_one_service_is_todays_sandbox(self) -> None:
        """With the default settings every cluster is seeded exactly with the demo's workload."""
        assert seed.services("EU", SandboxSettings()) == seed.workload("EU")

    def test_a_service_is_named_alike_everywhere(self) -> None:
        """svc-007's namespace, Deployment, Service, container and image are all named svc-007."""
        objects = {o["kind"]: o for o in seed.workload("US", "svc-007", service="svc-007")}
        deployment = objects["Deployment"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert objects["Namespace"]["metadata"]["name"] == "svc-007"
        assert (deployment["metadata"]["namespace"], deployment["metadata"]["name"]) == ("svc-007", "svc-007")
        assert (container["name"], container["image"]) == ("svc-007", "registry.eu.example.com/svc-007:v1")
        assert deployment["spec"]["template"]["metadata"]["labels"]["ringmaster.dev/version"] == "v1"
        assert container["env"][0]["value"] == "postgres://orders.db.us.example.com:5432/orders"
        assert objects["Service"]["spec"]["selector"] == {"app": "svc-007"}
        assert set(objects) == {"Namespace", "Deployment", "Service"}

    def test_a_plan_for_a_seeded_service_names_its_objects(self) -> None:
        """The example plan rewritten for svc-007 parses, and its workload is what the seed created."""
        text = EXAMPLE_PLAN.read_text(encoding="utf-8").replace(
            "service: api\nworkload: {namespace: api, deployment: api, container: api}",
            "service: svc-007\nworkload: {namespace: svc-007, deployment: svc-007, container: svc-007}",
        )
        plan = loading.parse_plan(text, "plan.yaml")
        objects = {o["kind"]: o for o in seed.workload("EU", "svc-007", service="svc-007")}
        deployment = objects["Deployment"]
        assert plan.service == "svc-007"
        assert plan.workload.namespace == deployment["metadata"]["namespace"]
        assert plan.workload.deployment == deployment["metadata"]["name"]
        assert plan.workload.container == deployment["spec"]["template"]["spec"]["containers"][0]["name"]


class TestSeededAutoscalersAndRoutes:
    def test_hpa_and_route_are_served_through_the_official_client(self) -> None:
        """With hpa and route, each service's autoscaler (2-20 at 70% CPU) and route are served as created."""
        fleet = loading.parse_fleet(fleets.generated(1), "generated")
        tuned = SandboxSettings.model_validate(
            {"services": {"count": 2, "hpa": True, "route": True}, "prometheus": {"enabled": False}}
        )
        config = seed.emulator_config(fleet, tuned).model_copy(update={"controller": FAST})
        with EmulatorServer(config) as server:
            cluster = Cluster.emulator("c0000", server.cluster_url("c0000"), server.admin)
            for name in ("api", "svc-001"):
                hpa = cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, name)
                assert hpa.spec.scale_target_ref.name == name
                assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 20)
                assert hpa.spec.metrics[0].resource.target.average_utilization == 70
                route = cluster.route(name, name)
                assert route is not None
                assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == name
            cluster.close()


class TestGeneratedFleet:
    def test_cli_writes_a_valid_fleet_of_n_clusters(self, tmp_path: Path) -> None:
        """fleet --clusters 20 writes a valid fleet: 20 clusters over four regions, 1 internal, 2 beta."""
        out = tmp_path / "fleet.yaml"
        done = sandbox_cli("fleet", "--clusters", "20", "--out", str(out))
        assert done.returncode == 0, done.stderr
        fleet = loading.load_fleet(out)
        assert len(fleet.clusters) == 20
        assert {c.region for c in fleet.clusters} == {r for r, _, _ in fleets.REGIONS}
        audiences = [c.labels["audience"] for c in fleet.clusters]
        assert (audiences.count("internal"), audiences.count("beta")) == (1, 2)
        printed = sandbox_cli("fleet", "--clusters", "20")
        assert printed.stdout == out.read_text(encoding="utf-8")

    def test_a_small_fleet_still_has_a_beta_cluster(self) -> None:
        """Under ten clusters, one cluster is still beta, so every ring of a three-ring plan has one."""
        document = yaml.safe_load(fleets.generated(3))
        assert [c["labels"]["audience"] for c in document["clusters"]] == ["internal", "beta", "public"]


class TestManyServicesSandbox:
    def test_fifty_clusters_with_five_services_come_up(self, tmp_path: Path) -> None:
        """up on a generated 50-cluster fleet with 5 services serves the 5 Deployments in every cluster."""
        fleet_file = tmp_path / "fleet-in.yaml"
        fleet_file.write_text(fleets.generated(50), encoding="utf-8")
        directory = tmp_path / "sb"
        directory.mkdir()
        (directory / "sandbox.yaml").write_text(
            "services: {count: 5}\nprometheus: {enabled: false}\nunleash: {enabled: false}\n",
            encoding="utf-8",
        )
        done = sandbox_cli("up", "--no-temporal", "--dir", str(directory), "--fleet", str(fleet_file))
        try:
            assert done.returncode == 0, done.stderr
            wanted = {(n, n) for n in seed.service_names(5)}
            for i in range(50):
                cluster = Cluster.from_kubeconfig(directory / "kubeconfig", fleets.cluster_name(i))
                listed = cluster.apps.list_deployment_for_all_namespaces().items
                assert {(d.metadata.namespace, d.metadata.name) for d in listed} == wanted, cluster.name
                assert {d.status.ready_replicas for d in listed} == {10}
                cluster.close()
        finally:
            stack.down(directory)
