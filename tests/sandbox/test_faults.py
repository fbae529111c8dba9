"""Contract tests of fault injection, the request log and the admin endpoints."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse

import pytest
from kubernetes.client.rest import ApiException

from sandbox.apiserver.adminclient import AdminError
from sandbox.apiserver.harness import EmulatorServer
from tests.sandbox.support import deployment
from tests.support.cluster import Cluster
from tests.support.waiting import eventually


def _get_status(url: str) -> int:
    """The HTTP status of a GET, or -1 when the connection is dropped without an answer."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("GET", parts.path)
        return connection.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return -1
    finally:
        connection.close()


class TestFaults:
    def test_error_status_for_a_count_of_requests(self, cluster: Cluster) -> None:
        """A 503 fault with count 2 fails exactly the next two matching requests, with Retry-After."""
        cluster.admin.add_fault(
            cluster.name, verb="list", path="/api/v1/namespaces", status=503, count=2, retryAfterSeconds=1
        )
        for _ in range(2):
            with pytest.raises(ApiException) as exc:
                cluster.core.list_namespace()
            assert exc.value.status == 503
            assert exc.value.headers["Retry-After"] == "1"
            assert json.loads(exc.value.body)["reason"] == "ServiceUnavailable"
        assert cluster.core.list_namespace().items
        assert cluster.admin.faults(cluster.name) == []

    def test_faults_match_verb_and_path(self, cluster: Cluster) -> None:
        """A fault on patches of Deployments leaves reads and other kinds alone."""
        cluster.core.create_namespace(body={"metadata": {"name": "work"}})
        cluster.apps.create_namespaced_deployment("work", body=deployment("web"))
        cluster.admin.add_fault(
            cluster.name, verb="patch", path="/apis/apps/v1/namespaces/*/deployments/*", status=500
        )
        assert cluster.apps.read_namespaced_deployment("web", "work").metadata.name == "web"
        cluster.core.patch_namespace("work", body={"metadata": {"labels": {"x": "y"}}})
        with pytest.raises(ApiException) as exc:
            cluster.apps.patch_namespaced_deployment("web", "work", body={"spec": {"replicas": 1}})
        assert exc.value.status == 500

    def test_latency(self, cluster: Cluster) -> None:
        """A latency fault delays the answer by at least the given time, then serves it."""
        cluster.admin.add_fault(cluster.name, verb="get", latencySeconds=0.3, count=1)
        started = time.monotonic()
        assert cluster.core.read_namespace("default").metadata.name == "default"
        assert time.monotonic() - started >= 0.3

    def test_dropped_connection(self, cluster: Cluster) -> None:
        """A drop fault closes the connection without any answer."""
        cluster.admin.add_fault(cluster.name, verb="get", drop=True, count=1)
        assert _get_status(f"{cluster.url}/api/v1/namespaces/default") == -1
        assert _get_status(f"{cluster.url}/api/v1/namespaces/default") == 200

    def test_duration_expires(self, cluster: Cluster) -> None:
        """A fault with durationSeconds stops affecting requests once that time has passed."""
        cluster.admin.add_fault(cluster.name, status=429, durationSeconds=0.3)
        assert _get_status(f"{cluster.url}/api/v1/namespaces") == 429
        eventually(
            lambda: _get_status(f"{cluster.url}/api/v1/namespaces") == 200, timeout=3, what="fault expired"
        )

    def test_faults_are_listed_and_removed(self, cluster: Cluster) -> None:
        """Faults are listed with their id and hits, and can be removed one by one or all at once."""
        first = cluster.admin.add_fault(cluster.name, verb="create", status=500)
        cluster.admin.add_fault(cluster.name, verb="delete", status=500)
        assert cluster.admin.faults(cluster.name)[0]["id"] == first["id"]
        cluster.admin.remove_fault(cluster.name, first["id"])
        assert len(cluster.admin.faults(cluster.name)) == 1
        cluster.admin.clear_faults(cluster.name)
        assert cluster.admin.faults(cluster.name) == []

    def test_invalid_fault_is_422(self, cluster: Cluster) -> None:
        """A fault that does nothing, or an unknown field, is refused with 422."""
        with pytest.raises(AdminError) as nothing:
            cluster.admin.add_fault(cluster.name, verb="get")
        assert nothing.value.status == 422
        with pytest.raises(AdminError) as unknown:
            cluster.admin.add_fault(cluster.name, status=500, colour="red")
        assert unknown.value.status == 422


class TestRequestLog:
    def test_records_verb_path_manager_content_type_and_status(self, cluster: Cluster) -> None:
        """Each request is logged with its Kubernetes verb, path, field manager, content type and status."""
        cluster.core.create_namespace(body={"metadata": {"name": "work"}})
        apply = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
        cluster.core.patch_namespaced_config_map(
            "c", "work", body=apply, field_manager="ringmaster", _content_type="application/apply-patch+yaml"
        )
        with pytest.raises(ApiException):
            cluster.core.read_namespaced_config_map("missing", "work")
        log = cluster.admin.requests(cluster.name)
        assert [(r["verb"], r["path"], r["status"]) for r in log] == [
            ("create", "/api/v1/namespaces", 201),
            ("patch", "/api/v1/namespaces/work/configmaps/c", 201),
            ("get", "/api/v1/namespaces/work/configmaps/missing", 404),
        ]
        assert log[1]["fieldManager"] == "ringmaster"
        assert log[1]["contentType"] == "application/apply-patch+yaml"
        assert (log[1]["resource"], log[1]["namespace"], log[1]["name"]) == ("configmaps", "work", "c")
        assert log[0]["userAgent"].startswith("OpenAPI-Generator")

    def test_filters_by_verb_and_records_faults(self, cluster: Cluster) -> None:
        """The log can be read for one verb, and shows which fault a request suffered."""
        fault = cluster.admin.add_fault(cluster.name, verb="list", status=500, count=1)
        with pytest.raises(ApiException):
            cluster.core.list_namespace()
        lists = cluster.admin.requests(cluster.name, verb="list")
        assert lists[-1]["fault"] == fault["id"]
        assert lists[-1]["status"] == 500

    def test_filters_by_namespace(self, cluster: Cluster) -> None:
        """The log can be read for one namespace: a chaos scenario reads its own requests alone."""
        for name in ("ns-a", "ns-b"):
            cluster.core.create_namespace(body={"metadata": {"name": name}})
            cluster.core.list_namespaced_config_map(name)
        found = cluster.admin.requests(cluster.name, namespace="ns-a")
        assert [(r["verb"], r["path"]) for r in found] == [("list", "/api/v1/namespaces/ns-a/configmaps")]


class TestAdmin:
    def test_objects_endpoint_reads_state(self, cluster: Cluster) -> None:
        """The objects endpoint returns one kind's objects by kind name, short name or plural."""
        cluster.core.create_namespace(body={"metadata": {"name": "work"}})
        cluster.apps.create_namespaced_deployment("work", body=deployment("web"))
        by_kind = cluster.admin.objects(cluster.name, "Deployment", namespace="work")
        by_short = cluster.admin.objects(cluster.name, "deploy")
        assert (
            [o["metadata"]["name"] for o in by_kind] == [o["metadata"]["name"] for o in by_short] == ["web"]
        )
        with pytest.raises(AdminError) as exc:
            cluster.admin.objects(cluster.name, "Pod")
        assert exc.value.status == 400

    def test_clusters_are_listed_added_and_removed(self, emulator: EmulatorServer) -> None:
        """Clusters can be added at runtime (409 for a taken name), listed and removed (404 after)."""
        emulator.admin.add_cluster("extra", region="us-west-2")
        try:
            assert "extra" in [c["name"] for c in emulator.admin.clusters()]
            with pytest.raises(AdminError) as taken:
                emulator.admin.add_cluster("extra")
            assert taken.value.status == 409
        finally:
            emulator.admin.remove_cluster("extra")
        assert _get_status(f"{emulator.url}/clusters/extra/api/v1/namespaces") == 404

    def test_controller_settings_change_at_runtime(self, emulator: EmulatorServer) -> None:
        """Controller settings can be read and changed by merging keys; bad values are refused."""
        before = emulator.admin.controller()
        try:
            changed = emulator.admin.controller(neverReadyImages=["*:broken"])
            assert changed["neverReadyImages"] == ["*:broken"]
            assert changed["podReadySeconds"] == before["podReadySeconds"]
            with pytest.raises(AdminError) as exc:
                emulator.admin.controller(podReadySeconds=-1)
            assert exc.value.status == 422
        finally:
            emulator.admin.controller(**before)

    def test_readiness(self, emulator: EmulatorServer) -> None:
        """The emulator answers its readiness probe."""
        assert emulator.admin.ready()
