"""Contract tests of what clients read before they act: version, discovery, OpenAPI v3, tables, protobuf."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from tests.support.cluster import Cluster

_TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _get(url: str, accept: str = "application/json") -> Any:
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - our emulator over http
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our emulator over http
        return json.loads(response.read())


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (lengths under 128 bytes)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


class TestDiscovery:
    def test_version(self, cluster: Cluster) -> None:
        """``/version`` reports Kubernetes 1.37."""
        info = client.VersionApi(cluster.api).get_code()
        assert (info.major, info.minor, info.git_version) == ("1", "37", "v1.37.0")

    def test_groups_and_resources(self, cluster: Cluster) -> None:
        """Discovery lists the served groups, and resource lists name subresources, verbs and short names."""
        groups = {
            g.name: g.preferred_version.group_version
            for g in client.ApisApi(cluster.api).get_api_versions().groups
        }
        assert groups == {
            "apps": "apps/v1",
            "autoscaling": "autoscaling/v2",
            "networking.k8s.io": "networking.k8s.io/v1",
            "policy": "policy/v1",
            "gateway.networking.k8s.io": "gateway.networking.k8s.io/v1",
        }
        apps = {r.name: r for r in client.AppsV1Api(cluster.api).get_api_resources().resources}
        assert set(apps) == {"deployments", "deployments/status", "deployments/scale"}
        assert apps["deployments"].short_names == ["deploy"]
        assert "watch" in apps["deployments"].verbs
        assert apps["deployments/scale"].kind == "Scale"
        core = {r.name for r in client.CoreV1Api(cluster.api).get_api_resources().resources}
        assert {
            "namespaces",
            "namespaces/status",
            "nodes",
            "services",
            "configmaps",
            "serviceaccounts",
        } <= core

    def test_unknown_path_is_404_status(self, cluster: Cluster) -> None:
        """An unknown API path answers a 404 Status."""
        with pytest.raises(urllib.error.HTTPError) as exc:
            _get(f"{cluster.url}/apis/batch/v1/jobs")
        assert exc.value.code == 404
        assert json.loads(exc.value.read())["kind"] == "Status"


class TestOpenAPI:
    def test_index_urls_keep_the_client_prefix(self, cluster: Cluster) -> None:
        """The /openapi/v3 index roots document URLs at /openapi/v3, so clients keep their path prefix."""
        paths = _get(f"{cluster.url}/openapi/v3")["paths"]
        assert set(paths) == {
            "api/v1",
            "apis/apps/v1",
            "apis/autoscaling/v2",
            "apis/networking.k8s.io/v1",
            "apis/policy/v1",
            "apis/gateway.networking.k8s.io/v1",
        }
        assert all(p["serverRelativeURL"].startswith("/openapi/v3/") for p in paths.values())

    def test_patch_operations_declare_kind_and_field_validation(self, cluster: Cluster) -> None:
        """Each PATCH names its kind as one object and takes fieldValidation; CRDs refuse strategic merge."""
        index = _get(f"{cluster.url}/openapi/v3")["paths"]
        apps = _get(cluster.url + index["apis/apps/v1"]["serverRelativeURL"])
        patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
        assert patch["x-kubernetes-group-version-kind"] == {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
        }
        assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
        assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
        routes = _get(cluster.url + index["apis/gateway.networking.k8s.io/v1"]["serverRelativeURL"])
        route_patch = routes["paths"][
            "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}"
        ]["patch"]
        assert "application/strategic-merge-patch+json" not in route_patch["requestBody"]["content"]


class TestRepresentations:
    def test_table_for_kubectl_get(self, cluster: Cluster) -> None:
        """Asking for a Table returns kubectl's columns and one row per object with its metadata."""
        table = _get(
            f"{cluster.url}/api/v1/nodes", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )
        assert table["kind"] == "Table"
        assert [c["name"] for c in table["columnDefinitions"]][:5] == [
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
        ]
        assert table["rows"][0]["cells"][1] == "Ready"
        assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"

    def test_hpa_table_shows_targets(self, cluster: Cluster) -> None:
        """The HPA table names the metric and its target, as kubectl get hpa shows it."""
        metric = {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
        body = {
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": target, "maxReplicas": 3, "metrics": [metric]},
        }
        cluster.autoscaling.create_namespaced_horizontal_pod_autoscaler("default", body=body)
        table = _get(f"{cluster.url}/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", _TABLE)
        cells = dict(
            zip([c["name"] for c in table["columnDefinitions"]], table["rows"][0]["cells"], strict=True)
        )
        assert (cells["Reference"], cells["Targets"]) == ("Deployment/web", "cpu: <unknown>/70%")

    def test_partial_object_metadata_list(self, cluster: Cluster) -> None:
        """Metadata-only clients get a PartialObjectMetadataList."""
        found = _get(
            f"{cluster.url}/api/v1/namespaces",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        assert found["kind"] == "PartialObjectMetadataList"
        assert "spec" not in found["items"][0]


class TestProtobufBodies:
    def test_namespace_create_in_protobuf(self, cluster: Cluster) -> None:
        """A Namespace encoded as kubectl's typed client does (k8s\\0 envelope) is created."""
        type_meta = _field(1, b"v1") + _field(2, b"Namespace")
        namespace = _field(1, _field(1, b"from-proto") + _field(11, _field(1, b"team") + _field(2, b"a")))
        body = b"k8s\x00" + _field(1, type_meta) + _field(2, namespace)
        request = urllib.request.Request(  # noqa: S310 - our emulator over http
            f"{cluster.url}/api/v1/namespaces",
            data=body,
            method="POST",
            headers={"Content-Type": "application/vnd.kubernetes.protobuf", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our emulator
            assert response.status == 201
        created = cluster.core.read_namespace("from-proto")
        assert created.metadata.labels["team"] == "a"

    def test_cbor_is_refused_with_415(self, cluster: Cluster) -> None:
        """Bodies in formats the emulator does not decode answer 415 Unsupported Media Type."""
        request = urllib.request.Request(  # noqa: S310 - our emulator over http
            f"{cluster.url}/api/v1/namespaces",
            data=b"\xa0",
            method="POST",
            headers={"Content-Type": "application/cbor"},
        )
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 - our emulator over http
        assert exc.value.code == 415
