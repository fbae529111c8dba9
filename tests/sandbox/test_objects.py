"""Contract tests of object lifecycle with the official client: create, read, list, update, delete."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from tests.sandbox.support import deployment, http
from tests.support.cluster import Cluster


def _status(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, object]:
    body: dict[str, object] = json.loads(exc.value.body)
    return body


@pytest.fixture
def ns(cluster: Cluster) -> str:
    """A namespace ``work`` in the test's cluster."""
    cluster.core.create_namespace(body={"metadata": {"name": "work"}})
    return "work"


class TestCreate:
    def test_created_object_carries_server_fields(self, cluster: Cluster, ns: str) -> None:
        """A create answers 201 with uid, creationTimestamp, a resourceVersion, generation 1 and defaults."""
        created, code, _ = cluster.apps.create_namespaced_deployment_with_http_info(
            ns, body=deployment("web")
        )
        assert code == 201
        meta, spec = created.metadata, created.spec
        assert meta.uid
        assert meta.creation_timestamp
        assert int(meta.resource_version) > 0
        assert meta.generation == 1
        assert spec.strategy.type == "RollingUpdate"
        assert spec.strategy.rolling_update.max_surge == "25%"
        assert spec.progress_deadline_seconds == 600
        assert spec.revision_history_limit == 10
        assert spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"

    def test_namespace_gets_name_label_finalizer_and_phase(self, cluster: Cluster) -> None:
        """A namespace is Active, labelled with its name and guarded by the kubernetes finalizer."""
        created = cluster.core.create_namespace(body={"metadata": {"name": "fresh"}})
        assert created.status.phase == "Active"
        assert created.metadata.labels["kubernetes.io/metadata.name"] == "fresh"
        assert created.spec.finalizers == ["kubernetes"]

    def test_duplicate_is_409_already_exists(self, cluster: Cluster, ns: str) -> None:
        """Creating a name twice answers 409 AlreadyExists with the real wording."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web"))
        with pytest.raises(ApiException) as exc:
            cluster.apps.create_namespaced_deployment(ns, body=deployment("web"))
        assert exc.value.status == 409
        status = _status(exc)
        assert status["reason"] == "AlreadyExists"
        assert status["message"] == 'deployments.apps "web" already exists'

    def test_missing_namespace_is_404(self, cluster: Cluster) -> None:
        """Creating into a namespace that does not exist answers 404 naming the namespace."""
        with pytest.raises(ApiException) as exc:
            cluster.core.create_namespaced_config_map("nowhere", body={"metadata": {"name": "c"}})
        assert exc.value.status == 404
        assert _status(exc)["message"] == 'namespaces "nowhere" not found'

    def test_invalid_deployment_is_422_with_causes(self, cluster: Cluster, ns: str) -> None:
        """A selector that does not match the template labels answers 422 Invalid with a field cause."""
        bad = deployment("web")
        bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        with pytest.raises(ApiException) as exc:
            cluster.apps.create_namespaced_deployment(ns, body=bad)
        status = _status(exc)
        assert exc.value.status == 422
        assert status["reason"] == "Invalid"
        causes = status["details"]["causes"]  # type: ignore[index]
        assert causes[0]["field"] == "spec.template.metadata.labels"

    def test_namespace_mismatch_is_400(self, cluster: Cluster, ns: str) -> None:
        """A body naming another namespace than the URL answers 400 BadRequest."""
        body = {"metadata": {"name": "c", "namespace": "default"}}
        with pytest.raises(ApiException) as exc:
            cluster.core.create_namespaced_config_map(ns, body=body)
        assert exc.value.status == 400

    def test_generate_name_makes_a_unique_name(self, cluster: Cluster, ns: str) -> None:
        """``generateName`` yields the prefix plus five random characters."""
        created = cluster.core.create_namespaced_config_map(ns, body={"metadata": {"generateName": "cfg-"}})
        assert created.metadata.name.startswith("cfg-")
        assert len(created.metadata.name) == len("cfg-") + 5

    def test_service_gets_cluster_ip_and_target_port(self, cluster: Cluster, ns: str) -> None:
        """A Service is given a cluster IP, type ClusterIP, protocol TCP and targetPort = port."""
        body = {"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}
        created = cluster.core.create_namespaced_service(ns, body=body)
        assert created.spec.type == "ClusterIP"
        assert created.spec.cluster_ip.startswith("10.96.")
        assert created.spec.ports[0].protocol == "TCP"
        assert created.spec.ports[0].target_port == 80

    def test_dry_run_does_not_store(self, cluster: Cluster, ns: str) -> None:
        """``dryRun=All`` answers as a create would and stores nothing."""
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "c"}}, dry_run="All")
        assert cluster.core.list_namespaced_config_map(ns).items == []


class TestRead:
    def test_missing_object_is_404_status(self, cluster: Cluster, ns: str) -> None:
        """Reading a missing object answers 404 with a Status naming resource, group and name."""
        with pytest.raises(ApiException) as exc:
            cluster.apps.read_namespaced_deployment("ghost", ns)
        status = _status(exc)
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
        assert status["details"] == {"name": "ghost", "kind": "deployments", "group": "apps"}

    def test_list_has_list_resource_version(self, cluster: Cluster, ns: str) -> None:
        """A list carries the cluster's current resourceVersion, at least that of every item."""
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "a"}})
        listed = cluster.core.list_namespaced_config_map(ns)
        assert int(listed.metadata.resource_version) >= int(listed.items[0].metadata.resource_version)

    def test_limit_and_continue_page_through(self, cluster: Cluster, ns: str) -> None:
        """``limit`` cuts a list into pages chained by ``continue`` tokens, in name order."""
        for name in ("a", "b", "c", "d", "e"):
            cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": name}})
        names: list[str] = []
        token = None
        while True:
            page = cluster.core.list_namespaced_config_map(ns, limit=2, _continue=token)
            names += [i.metadata.name for i in page.items]
            token = page.metadata._continue
            if not token:
                break
        assert names == ["a", "b", "c", "d", "e"]

    def test_all_namespaces_list(self, cluster: Cluster, ns: str) -> None:
        """Listing without a namespace returns objects of every namespace."""
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "a"}})
        cluster.core.create_namespaced_config_map("default", body={"metadata": {"name": "b"}})
        found = {
            (i.metadata.namespace, i.metadata.name)
            for i in cluster.core.list_config_map_for_all_namespaces().items
        }
        assert {(ns, "a"), ("default", "b")} <= found


class TestSelectors:
    @pytest.fixture
    def labelled(self, cluster: Cluster, ns: str) -> str:
        """Config maps a (tier=web, env=prod), b (tier=db, env=prod), c (tier=web), d (no labels)."""
        labels = {
            "a": {"tier": "web", "env": "prod"},
            "b": {"tier": "db", "env": "prod"},
            "c": {"tier": "web"},
            "d": {},
        }
        for name, found in labels.items():
            cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": name, "labels": found}})
        return ns

    @pytest.mark.parametrize(
        ("selector", "expected"),
        [
            ("tier=web", ["a", "c"]),
            ("tier==web,env=prod", ["a"]),
            ("tier!=web", ["b", "d"]),
            ("tier in (web,db)", ["a", "b", "c"]),
            ("tier notin (web)", ["b", "d"]),
            ("env", ["a", "b"]),
            ("!env", ["c", "d"]),
        ],
    )
    def test_label_selectors(
        self, cluster: Cluster, labelled: str, selector: str, expected: list[str]
    ) -> None:
        """Equality, inequality, set-based and existence label selectors select as labels.Parse does."""
        found = cluster.core.list_namespaced_config_map(labelled, label_selector=selector).items
        assert [i.metadata.name for i in found] == expected

    def test_malformed_label_selector_is_400(self, cluster: Cluster, labelled: str) -> None:
        """An unparsable label selector answers 400."""
        with pytest.raises(ApiException) as exc:
            cluster.core.list_namespaced_config_map(labelled, label_selector="tier in web")
        assert exc.value.status == 400

    def test_field_selectors(self, cluster: Cluster, labelled: str) -> None:
        """``metadata.name`` and ``metadata.namespace`` field selectors, with = and !=, filter lists."""
        by_name = cluster.core.list_namespaced_config_map(labelled, field_selector="metadata.name=b").items
        assert [i.metadata.name for i in by_name] == ["b"]
        others = cluster.core.list_namespaced_config_map(labelled, field_selector="metadata.name!=b").items
        assert [i.metadata.name for i in others] == ["a", "c", "d"]
        everywhere = cluster.core.list_config_map_for_all_namespaces(
            field_selector=f"metadata.namespace={labelled}"
        )
        assert len(everywhere.items) == 4

    def test_kind_specific_field_selector(self, cluster: Cluster, ns: str) -> None:
        """Namespaces can be selected by ``status.phase``."""
        phases = cluster.core.list_namespace(field_selector="status.phase=Active").items
        assert ns in [n.metadata.name for n in phases]

    def test_unsupported_field_is_400(self, cluster: Cluster, labelled: str) -> None:
        """A field selector on a path the kind does not index answers 400 listing the supported ones."""
        with pytest.raises(ApiException) as exc:
            cluster.core.list_namespaced_config_map(labelled, field_selector="data.x=y")
        assert exc.value.status == 400
        assert "metadata.name" in _status(exc)["message"]  # type: ignore[operator]


class TestUpdate:
    def test_stale_resource_version_is_409(self, cluster: Cluster, ns: str) -> None:
        """A PUT carrying an older resourceVersion answers 409 Conflict."""
        first = cluster.core.create_namespaced_config_map(
            ns, body={"metadata": {"name": "c"}, "data": {"k": "1"}}
        )
        cluster.core.patch_namespaced_config_map("c", ns, body={"data": {"k": "2"}})
        stale = first.to_dict()
        stale["data"] = {"k": "3"}
        with pytest.raises(ApiException) as exc:
            cluster.core.replace_namespaced_config_map("c", ns, body=stale)
        assert exc.value.status == 409
        assert "the object has been modified" in _status(exc)["message"]  # type: ignore[operator]

    def test_unconditional_put_and_increasing_versions(self, cluster: Cluster, ns: str) -> None:
        """A PUT without resourceVersion succeeds, and every write yields a higher resourceVersion."""
        first = cluster.core.create_namespaced_config_map(
            ns, body={"metadata": {"name": "c"}, "data": {"k": "1"}}
        )
        second = cluster.core.replace_namespaced_config_map(
            "c", ns, body={"metadata": {"name": "c"}, "data": {"k": "2"}}
        )
        assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
        assert second.metadata.uid == first.metadata.uid

    def test_no_op_update_keeps_version(self, cluster: Cluster, ns: str) -> None:
        """A write that changes nothing does not bump resourceVersion."""
        first = cluster.core.create_namespaced_config_map(
            ns, body={"metadata": {"name": "c"}, "data": {"k": "1"}}
        )
        again = cluster.core.patch_namespaced_config_map("c", ns, body={"data": {"k": "1"}})
        assert again.metadata.resource_version == first.metadata.resource_version

    def test_generation_grows_with_spec_only(self, cluster: Cluster, ns: str) -> None:
        """``metadata.generation`` grows when the spec changes, not when labels or status change."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web"))
        relabelled = cluster.apps.patch_namespaced_deployment(
            "web", ns, body={"metadata": {"labels": {"x": "y"}}}
        )
        assert relabelled.metadata.generation == 1
        rescaled = cluster.apps.patch_namespaced_deployment("web", ns, body={"spec": {"replicas": 5}})
        assert rescaled.metadata.generation == 2

    def test_status_is_kept_apart_from_spec(self, cluster: Cluster, ns: str) -> None:
        """Main-resource writes ignore status; /status writes change only status, and not the generation."""
        cluster.core.create_namespaced_service(
            ns, body={"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
        )
        lb = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        ignored = cluster.core.patch_namespaced_service("s", ns, body={"status": lb})
        assert ignored.status.load_balancer.ingress is None
        changed = cluster.core.patch_namespaced_service_status(
            "s", ns, body={"status": lb, "spec": {"type": "NodePort"}}
        )
        assert changed.status.load_balancer.ingress[0].ip == "192.0.2.1"
        assert changed.spec.type == "ClusterIP"

    def test_deployment_status_write_keeps_generation(self, cluster: Cluster, ns: str) -> None:
        """Writing a Deployment's status does not bump its generation or change its spec."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web", replicas=0))
        written = cluster.apps.patch_namespaced_deployment_status(
            "web", ns, body={"status": {"observedGeneration": 1}, "spec": {"replicas": 9}}
        )
        assert written.metadata.generation == 1
        assert written.spec.replicas == 0

    def test_selector_is_immutable(self, cluster: Cluster, ns: str) -> None:
        """Changing a Deployment's selector answers 422 field is immutable."""
        cluster.apps.create_namespaced_deployment(ns, body=deployment("web"))
        patch = {
            "spec": {
                "selector": {"matchLabels": {"app": "web", "x": "y"}},
                "template": {"metadata": {"labels": {"x": "y"}}},
            }
        }
        with pytest.raises(ApiException) as exc:
            cluster.apps.patch_namespaced_deployment("web", ns, body=patch)
        assert exc.value.status == 422
        assert "field is immutable" in _status(exc)["message"]  # type: ignore[operator]


class TestDelete:
    def test_delete_answers_success_status(self, cluster: Cluster, ns: str) -> None:
        """Deleting answers a Success Status with the deleted object's uid, and the object is gone."""
        created = cluster.apps.create_namespaced_deployment(ns, body=deployment("web"))
        status = cluster.apps.delete_namespaced_deployment("web", ns)
        assert status["status"] == "Success"
        assert status["details"]["uid"] == created.metadata.uid
        with pytest.raises(ApiException) as exc:
            cluster.apps.read_namespaced_deployment("web", ns)
        assert exc.value.status == 404

    def test_uid_precondition_conflict(self, cluster: Cluster, ns: str) -> None:
        """A delete whose uid precondition does not hold answers 409 and deletes nothing."""
        cluster.core.create_namespaced_config_map(ns, body={"metadata": {"name": "c"}})
        with pytest.raises(ApiException) as exc:
            cluster.core.delete_namespaced_config_map("c", ns, body={"preconditions": {"uid": "not-it"}})
        assert exc.value.status == 409
        assert cluster.core.read_namespaced_config_map("c", ns).metadata.name == "c"

    def test_finalizers_hold_deletion_until_removed(self, cluster: Cluster, ns: str) -> None:
        """An object with finalizers is only marked deleted, and goes once its finalizers are removed."""
        body = {"metadata": {"name": "c", "finalizers": ["example.com/hold"]}}
        cluster.core.create_namespaced_config_map(ns, body=body)
        cluster.core.delete_namespaced_config_map("c", ns)
        marked = cluster.core.read_namespaced_config_map("c", ns)
        assert marked.metadata.deletion_timestamp is not None
        cluster.core.patch_namespaced_config_map("c", ns, body={"metadata": {"finalizers": None}})
        with pytest.raises(ApiException) as exc:
            cluster.core.read_namespaced_config_map("c", ns)
        assert exc.value.status == 404

    def test_delete_collection_by_label(self, cluster: Cluster, ns: str) -> None:
        """deletecollection removes exactly the objects its label selector matches."""
        for name, tier in (("a", "web"), ("b", "db")):
            cluster.core.create_namespaced_config_map(
                ns, body={"metadata": {"name": name, "labels": {"tier": tier}}}
            )
        cluster.core.delete_collection_namespaced_config_map(ns, label_selector="tier=web")
        assert [i.metadata.name for i in cluster.core.list_namespaced_config_map(ns).items] == ["b"]


class TestFieldValidation:
    def test_strict_refuses_unknown_fields(self, cluster: Cluster, ns: str) -> None:
        """With fieldValidation=Strict unknown fields, nested ones too, answer 400 naming each of them."""
        body = deployment("web")
        body["metadata"]["lables"] = {"a": "b"}
        body["spec"]["replica"] = 2
        body["spec"]["template"]["spec"]["containers"][0]["imag"] = "x"
        url = f"{cluster.url}/apis/apps/v1/namespaces/{ns}/deployments?fieldValidation=Strict"
        code, _, status = http("POST", url, body)
        assert code == 400
        assert status["message"].startswith("strict decoding error: ")
        named = {'unknown field "metadata.lables"', 'unknown field "spec.replica"'}
        named.add('unknown field "spec.template.spec.containers[0].imag"')
        assert set(status["message"].removeprefix("strict decoding error: ").split(", ")) == named

    def test_warn_drops_unknown_fields_with_a_warning(self, cluster: Cluster, ns: str) -> None:
        """By default unknown fields are dropped and reported in a Warning header."""
        url = f"{cluster.url}/api/v1/namespaces/{ns}/configmaps"
        code, headers, created = http("POST", url, {"metadata": {"name": "c"}, "dta": {"k": "v"}})
        assert code == 201
        assert headers["Warning"] == '299 - "unknown field \\"dta\\""'
        assert "dta" not in created
        stored = cluster.api.sanitize_for_serialization(cluster.core.read_namespaced_config_map("c", ns))
        assert "dta" not in stored


class TestOtherKinds:
    def test_hpa_generation_and_defaults(self, cluster: Cluster, ns: str) -> None:
        """An autoscaling/v2 HPA starts at generation 1 with minReplicas defaulted; no target is a 422."""
        body = {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5,
            },
        }
        created = cluster.autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, body=body)
        assert (created.metadata.generation, created.spec.min_replicas) == (1, 1)
        patched = cluster.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
            "web", ns, body={"spec": {"maxReplicas": 8}}
        )
        assert patched.metadata.generation == 2
        code, _, status = http(
            "POST",
            f"{cluster.url}/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
            {"metadata": {"name": "x"}},
        )
        assert code == 422
        assert status["details"]["causes"][0]["field"] == "spec.scaleTargetRef"

    def test_http_route_status_is_apart_from_spec(self, cluster: Cluster, ns: str) -> None:
        """An HTTPRoute's /status takes status only and keeps the generation; backends get defaults."""
        group, version = "gateway.networking.k8s.io", "v1"
        route = {
            "apiVersion": f"{group}/{version}",
            "kind": "HTTPRoute",
            "metadata": {"name": "api"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"backendRefs": [{"name": "api", "port": 80}]}],
            },
        }
        created = cluster.custom.create_namespaced_custom_object(group, version, ns, "httproutes", body=route)
        backend = created["spec"]["rules"][0]["backendRefs"][0]
        assert (backend["weight"], backend["kind"]) == (1, "Service")
        accepted = {
            "parents": [{"parentRef": {"name": "gw"}, "controllerName": "example.com/gw", "conditions": []}]
        }
        written = cluster.custom.patch_namespaced_custom_object_status(
            group, version, ns, "httproutes", "api", body={"status": accepted, "spec": {"hostnames": ["x"]}}
        )
        assert written["status"] == accepted
        assert "hostnames" not in written["spec"]
        assert written["metadata"]["generation"] == 1
