"""Contract tests of PATCH in its three schema-based and schema-free forms, through the official client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.sandbox.support import deployment
from tests.support.cluster import Cluster

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


@pytest.fixture
def web(cluster: Cluster) -> Cluster:
    """Namespace ``work`` holding Deployment ``web`` (containers app and sidecar, env MODE=a)."""
    cluster.core.create_namespace(body={"metadata": {"name": "work"}})
    cluster.apps.create_namespaced_deployment("work", body=deployment("web"))
    return cluster


def _patch(cluster: Cluster, body: Any, content_type: str) -> dict[str, Any]:
    patched = cluster.apps.patch_namespaced_deployment("web", "work", body=body, _content_type=content_type)
    return cluster.api.sanitize_for_serialization(patched)  # type: ignore[no-any-return]


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


class TestMergePatch:
    def test_lists_are_replaced_and_null_deletes(self, web: Cluster) -> None:
        """A JSON merge patch replaces lists whole and removes keys set to null."""
        patch = {
            "metadata": {"labels": {"app": None, "team": "a"}},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:v2"}]}
                }
            },
        }
        result = _patch(web, patch, MERGE)
        assert [c["name"] for c in _containers(result)] == ["app"]
        assert result["metadata"]["labels"] == {"team": "a"}

    def test_resource_version_in_patch_is_a_precondition(self, web: Cluster) -> None:
        """A patch carrying a stale metadata.resourceVersion answers 409."""
        with pytest.raises(ApiException) as exc:
            _patch(web, {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}}, MERGE)
        assert exc.value.status == 409


class TestJsonPatch:
    def test_operations_apply_in_order(self, web: Cluster) -> None:
        """add, replace, remove, copy and move apply in order at JSON pointers (with ~1 escapes)."""
        ops = [
            {"op": "replace", "path": "/spec/replicas", "value": 7},
            {"op": "add", "path": "/metadata/labels/example.com~1tier", "value": "web"},
            {"op": "remove", "path": "/spec/template/spec/containers/1"},
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copied"},
            {"op": "move", "from": "/metadata/labels/copied", "path": "/metadata/labels/moved"},
        ]
        result = _patch(web, ops, JSON)
        assert result["spec"]["replicas"] == 7
        assert result["metadata"]["labels"] == {"app": "web", "example.com/tier": "web", "moved": "web"}
        assert [c["name"] for c in _containers(result)] == ["app"]

    def test_failed_test_operation_is_422(self, web: Cluster) -> None:
        """A ``test`` operation that does not hold rejects the whole patch with 422."""
        ops = [
            {"op": "test", "path": "/spec/replicas", "value": 99},
            {"op": "replace", "path": "/spec/replicas", "value": 1},
        ]
        with pytest.raises(ApiException) as exc:
            _patch(web, ops, JSON)
        assert exc.value.status == 422
        assert web.apps.read_namespaced_deployment("web", "work").spec.replicas == 3

    def test_missing_path_is_422(self, web: Cluster) -> None:
        """Removing a path that does not exist answers 422."""
        with pytest.raises(ApiException) as exc:
            _patch(web, [{"op": "remove", "path": "/spec/nothing"}], JSON)
        assert exc.value.status == 422


class TestStrategicMergePatch:
    def test_containers_merge_by_name(self, web: Cluster) -> None:
        """Containers merge by name: changing one image keeps the other container and the env."""
        patch = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:v2"}]}
                }
            }
        }
        containers = _containers(_patch(web, patch, STRATEGIC))
        assert [(c["name"], c["image"]) for c in containers] == [
            ("app", "registry.example.com/app:v2"),
            ("sidecar", "registry.example.com/proxy:1"),
        ]
        assert containers[0]["env"] == [{"name": "MODE", "value": "a"}]

    def test_env_merges_by_name_and_new_items_append(self, web: Cluster) -> None:
        """Env entries merge by name; an unknown name is appended; a new container is appended."""
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "env": [{"name": "MODE", "value": "b"}, {"name": "NEW", "value": "1"}],
                            },
                            {"name": "extra", "image": "registry.example.com/extra:1"},
                        ]
                    }
                }
            }
        }
        containers = _containers(_patch(web, patch, STRATEGIC))
        assert containers[0]["env"] == [{"name": "MODE", "value": "b"}, {"name": "NEW", "value": "1"}]
        assert [c["name"] for c in containers] == ["app", "sidecar", "extra"]

    def test_patch_delete_removes_a_list_item(self, web: Cluster) -> None:
        """``$patch: delete`` with a merge key removes that item."""
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
        assert [c["name"] for c in _containers(_patch(web, patch, STRATEGIC))] == ["app"]

    def test_patch_replace_replaces_a_list(self, web: Cluster) -> None:
        """A ``$patch: replace`` item makes the list replaced by the patch's items."""
        only = {"name": "solo", "image": "registry.example.com/solo:1"}
        patch = {"spec": {"template": {"spec": {"containers": [only, {"$patch": "replace"}]}}}}
        assert [c["name"] for c in _containers(_patch(web, patch, STRATEGIC))] == ["solo"]

    def test_set_element_order(self, web: Cluster) -> None:
        """``$setElementOrder/containers`` reorders the merged list."""
        patch = {
            "spec": {
                "template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}}
            }
        }
        assert [c["name"] for c in _containers(_patch(web, patch, STRATEGIC))] == ["sidecar", "app"]

    def test_primitive_set_merge_and_delete_from_primitive_list(self, web: Cluster) -> None:
        """Finalizers merge as a set, and ``$deleteFromPrimitiveList/finalizers`` removes members."""
        _patch(web, {"metadata": {"finalizers": ["a.example.com/x", "b.example.com/y"]}}, STRATEGIC)
        merged = _patch(web, {"metadata": {"finalizers": ["b.example.com/y", "c.example.com/z"]}}, STRATEGIC)
        assert merged["metadata"]["finalizers"] == ["a.example.com/x", "b.example.com/y", "c.example.com/z"]
        pruned = _patch(
            web, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}}, STRATEGIC
        )
        assert pruned["metadata"]["finalizers"] == ["b.example.com/y", "c.example.com/z"]

    def test_retain_keys_clears_the_other_union_member(self, web: Cluster) -> None:
        """``$retainKeys`` on the strategy drops rollingUpdate when switching to Recreate."""
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
        assert _patch(web, patch, STRATEGIC)["spec"]["strategy"] == {"type": "Recreate"}

    def test_map_delete_directive_and_null(self, web: Cluster) -> None:
        """``$patch: delete`` on a map and ``null`` on a key both remove what they name."""
        patch = {"metadata": {"labels": {"$patch": "delete"}}, "spec": {"revisionHistoryLimit": None}}
        result = _patch(web, patch, STRATEGIC)
        assert "labels" not in result["metadata"]
        assert result["spec"]["revisionHistoryLimit"] == 10  # defaulted again, as the API server does

    def test_missing_merge_key_is_400(self, web: Cluster) -> None:
        """A list item without its merge key is rejected with 400."""
        patch = {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}
        with pytest.raises(ApiException) as exc:
            _patch(web, patch, STRATEGIC)
        assert exc.value.status == 400

    def test_custom_resources_refuse_strategic_merge(self, cluster: Cluster) -> None:
        """An HTTPRoute (a custom resource) answers 415 to strategic merge patch but takes a merge patch."""
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "api"},
            "spec": {"rules": [{"backendRefs": [{"name": "api-stable", "port": 80, "weight": 100}]}]},
        }
        group, version = "gateway.networking.k8s.io", "v1"
        cluster.custom.create_namespaced_custom_object(group, version, "default", "httproutes", body=route)
        weights = {"spec": {"rules": [{"backendRefs": [{"name": "api-stable", "port": 80, "weight": 90}]}]}}
        with pytest.raises(ApiException) as exc:
            cluster.custom.patch_namespaced_custom_object(
                group, version, "default", "httproutes", "api", body=weights, _content_type=STRATEGIC
            )
        assert exc.value.status == 415
        merged = cluster.custom.patch_namespaced_custom_object(
            group, version, "default", "httproutes", "api", body=weights, _content_type=MERGE
        )
        assert merged["spec"]["rules"][0]["backendRefs"][0]["weight"] == 90
        assert merged["metadata"]["generation"] == 2
