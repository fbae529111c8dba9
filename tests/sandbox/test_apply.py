"""Contract tests of server-side apply: create-or-update, managedFields, conflicts and force."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.sandbox.support import deployment
from tests.support.cluster import Cluster

APPLY = "application/apply-patch+yaml"


@pytest.fixture
def work(cluster: Cluster) -> Cluster:
    """A cluster with namespace ``work``."""
    cluster.core.create_namespace(body={"metadata": {"name": "work"}})
    return cluster


def _apply(cluster: Cluster, body: dict[str, Any], manager: str, *, force: bool = False) -> dict[str, Any]:
    name = body["metadata"]["name"]
    result = cluster.apps.patch_namespaced_deployment(
        name, "work", body=body, field_manager=manager, force=force, _content_type=APPLY
    )
    return cluster.api.sanitize_for_serialization(result)  # type: ignore[no-any-return]


def _managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["manager"], m["operation"]): m["fieldsV1"] for m in obj["metadata"]["managedFields"]}


class TestServerSideApply:
    def test_apply_creates_and_records_ownership(self, work: Cluster) -> None:
        """Applying a missing object creates it (201) and records an Apply entry of the applied fields."""
        body = deployment("web")
        _, code, _ = work.apps.patch_namespaced_deployment_with_http_info(
            "web", "work", body=body, field_manager="deployer", _content_type=APPLY
        )
        assert code == 201
        stored = work.api.sanitize_for_serialization(work.apps.read_namespaced_deployment("web", "work"))
        fields = _managers(stored)[("deployer", "Apply")]
        assert fields["f:spec"]["f:replicas"] == {}
        containers = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
        assert containers['k:{"name":"app"}']["f:image"] == {}
        assert "." in containers['k:{"name":"app"}']
        assert "f:strategy" not in fields["f:spec"]  # defaulted by the server, owned by nobody

    def test_reapplying_the_same_config_changes_nothing(self, work: Cluster) -> None:
        """Applying an unchanged configuration keeps the resourceVersion (nothing is written)."""
        config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
        first, again = (
            work.core.patch_namespaced_config_map(
                "c", "work", body=config, field_manager="m", _content_type=APPLY
            )
            for _ in range(2)
        )
        assert again.metadata.resource_version == first.metadata.resource_version

    def test_conflict_names_the_other_manager_and_field(self, work: Cluster) -> None:
        """Changing a field another manager set answers 409 naming that manager and the field path."""
        _apply(work, deployment("web"), "deployer")
        work.apps.patch_namespaced_deployment(
            "web", "work", body={"spec": {"replicas": 5}}, field_manager="hpa-like"
        )
        with pytest.raises(ApiException) as exc:
            _apply(work, deployment("web", replicas=3), "deployer")
        assert exc.value.status == 409
        status = json.loads(exc.value.body)
        assert status["reason"] == "Conflict"
        assert 'conflict with "hpa-like" using apps/v1: .spec.replicas' in status["message"]
        assert status["details"]["causes"] == [
            {
                "type": "FieldManagerConflict",
                "message": 'conflict with "hpa-like" using apps/v1',
                "field": ".spec.replicas",
            }
        ]

    def test_conflicts_on_list_items_name_the_item(self, work: Cluster) -> None:
        """A conflicting container image is reported at its keyed path."""
        _apply(work, deployment("web"), "deployer")
        patch = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:hot"}]}
                }
            }
        }
        work.apps.patch_namespaced_deployment("web", "work", body=patch, field_manager="kubectl-edit")
        with pytest.raises(ApiException) as exc:
            _apply(work, deployment("web", image="registry.example.com/app:v2"), "deployer")
        assert '.spec.template.spec.containers[name="app"].image' in json.loads(exc.value.body)["message"]

    def test_force_takes_ownership(self, work: Cluster) -> None:
        """With force the apply wins, and the field leaves the other manager's entry."""
        _apply(work, deployment("web"), "deployer")
        work.apps.patch_namespaced_deployment(
            "web", "work", body={"spec": {"replicas": 5}}, field_manager="hpa-like"
        )
        result = _apply(work, deployment("web", replicas=2), "deployer", force=True)
        assert result["spec"]["replicas"] == 2
        managers = _managers(result)
        assert "f:replicas" in managers[("deployer", "Apply")]["f:spec"]
        assert ("hpa-like", "Update") not in managers

    def test_same_value_is_shared_without_conflict(self, work: Cluster) -> None:
        """Two appliers setting the same value both own it, without conflict."""
        _apply(work, deployment("web", replicas=4), "team-a")
        result = _apply(work, deployment("web", replicas=4), "team-b")
        managers = _managers(result)
        assert "f:replicas" in managers[("team-a", "Apply")]["f:spec"]
        assert "f:replicas" in managers[("team-b", "Apply")]["f:spec"]

    def test_dropping_an_owned_field_removes_it(self, work: Cluster) -> None:
        """A field the applier set before and omits now is removed from the object."""
        first = deployment("web")
        first["metadata"]["annotations"] = {"example.com/note": "x"}
        _apply(work, first, "deployer")
        result = _apply(work, deployment("web"), "deployer")
        assert "example.com/note" not in (result["metadata"].get("annotations") or {})

    def test_dropped_item_owned_by_another_manager_stays(self, work: Cluster) -> None:
        """Items the applier drops go, but an item another manager added to the same list stays."""
        _apply(work, deployment("web"), "deployer")
        extra = {"name": "app", "env": [{"name": "MESH", "value": "on"}]}
        work.apps.patch_namespaced_deployment(
            "web",
            "work",
            body={"spec": {"template": {"spec": {"containers": [extra]}}}},
            field_manager="mesh",
        )
        without = deployment("web")
        del without["spec"]["template"]["spec"]["containers"][0]["env"]
        result = _apply(work, without, "deployer")
        app = result["spec"]["template"]["spec"]["containers"][0]
        assert app["env"] == [{"name": "MESH", "value": "on"}]

    def test_field_manager_is_required(self, work: Cluster) -> None:
        """An apply without fieldManager answers 422."""
        with pytest.raises(ApiException) as exc:
            work.apps.patch_namespaced_deployment("web", "work", body=deployment("web"), _content_type=APPLY)
        assert exc.value.status == 422

    def test_force_is_only_for_apply(self, work: Cluster) -> None:
        """``force`` on a non-apply patch answers 422."""
        _apply(work, deployment("web"), "deployer")
        with pytest.raises(ApiException) as exc:
            work.apps.patch_namespaced_deployment("web", "work", body={"spec": {"replicas": 1}}, force=True)
        assert exc.value.status == 422

    def test_updates_are_attributed_to_the_user_agent(self, work: Cluster) -> None:
        """A write without fieldManager is owned by the User-Agent's product name, as an Update."""
        work.apps.create_namespaced_deployment("work", body=deployment("web"))
        stored = work.api.sanitize_for_serialization(work.apps.read_namespaced_deployment("web", "work"))
        assert ("OpenAPI-Generator", "Update") in _managers(stored)

    def test_status_apply_is_a_separate_entry(self, work: Cluster) -> None:
        """Applying to /status records an entry with subresource status and leaves spec alone."""
        _apply(work, deployment("web"), "deployer")
        status_config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
        status_config["status"] = {"conditions": [{"type": "Example", "status": "True"}]}
        result = work.apps.patch_namespaced_deployment_status(
            "web", "work", body=status_config, field_manager="prober", _content_type=APPLY
        )
        raw = work.api.sanitize_for_serialization(result)
        entries = [m for m in raw["metadata"]["managedFields"] if m["manager"] == "prober"]
        assert entries[0]["subresource"] == "status"
        assert any(c["type"] == "Example" for c in raw["status"]["conditions"])

    def test_apply_with_stale_resource_version_is_409(self, work: Cluster) -> None:
        """An applied configuration naming an old resourceVersion is refused with 409."""
        _apply(work, deployment("web"), "deployer")
        stale = deployment("web", replicas=1)
        stale["metadata"]["resourceVersion"] = "1"
        with pytest.raises(ApiException) as exc:
            _apply(work, stale, "deployer")
        assert exc.value.status == 409
