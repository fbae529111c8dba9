"""The kinds a worker's own manifests use beside its Deployment (deploy/worker): ServiceAccount,
NetworkPolicy and PodDisruptionBudget, served with the defaults and validation a real server applies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.cluster import Cluster


@pytest.fixture
def ns(cluster: Cluster) -> str:
    """A namespace ``work`` in the test's cluster."""
    cluster.core.create_namespace(body={"metadata": {"name": "work"}})
    return "work"


def _policy(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"podSelector": {}, **spec}}


def _causes(exc: pytest.ExceptionInfo[ApiException]) -> list[str]:
    assert exc.value.status == 422
    return [c["field"] for c in json.loads(exc.value.body)["details"]["causes"]]


class TestNetworkPolicy:
    def test_policy_types_and_protocols_are_defaulted(self, cluster: Cluster, ns: str) -> None:
        """Egress rules make the policy Ingress+Egress; a port without protocol is TCP; generation 1."""
        egress = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443}]}]
        client.NetworkingV1Api(cluster.api).create_namespaced_network_policy(ns, body=_policy(egress=egress))
        stored = cluster.raw(f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/p")
        assert stored is not None
        assert stored["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert stored["spec"]["egress"][0]["ports"] == [{"port": 443, "protocol": "TCP"}]
        assert stored["metadata"]["generation"] == 1

    @pytest.mark.parametrize(
        ("rule", "field"),
        [
            ({"to": [{"ipBlock": {"cidr": "<api servers>"}}]}, "spec.egress[0].to[0].ipBlock.cidr"),
            (
                {"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]},
                "spec.egress[0].to[0].ipBlock.except[0]",
            ),
            ({"ports": [{"port": 70000}]}, "spec.egress[0].ports[0].port"),
            ({"ports": [{"port": "https", "endPort": 444}]}, "spec.egress[0].ports[0].endPort"),
            ({"ports": [{"protocol": "ICMP", "port": 1}]}, "spec.egress[0].ports[0].protocol"),
        ],
    )
    def test_invalid_rules_are_422_naming_the_field(
        self, cluster: Cluster, ns: str, rule: dict[str, Any], field: str
    ) -> None:
        """A CIDR that does not parse, an except outside its CIDR, a bad port or protocol: 422."""
        with pytest.raises(ApiException) as exc:
            client.NetworkingV1Api(cluster.api).create_namespaced_network_policy(
                ns, body=_policy(egress=[rule])
            )
        assert _causes(exc) == [field]


class TestPodDisruptionBudget:
    def test_min_available_and_max_unavailable_together_are_422(self, cluster: Cluster, ns: str) -> None:
        """Only one of the two may be set."""
        body = {"metadata": {"name": "b"}, "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {}}}
        with pytest.raises(ApiException) as exc:
            client.PolicyV1Api(cluster.api).create_namespaced_pod_disruption_budget(ns, body=body)
        assert _causes(exc) == ["spec"]

    def test_status_is_its_own_subresource(self, cluster: Cluster, ns: str) -> None:
        """A status sent with the object on create is dropped, as for every kind with /status."""
        body = {"metadata": {"name": "b"}, "spec": {"minAvailable": 1}, "status": {"expectedPods": 9}}
        client.PolicyV1Api(cluster.api).create_namespaced_pod_disruption_budget(ns, body=body)
        stored = cluster.raw(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/b")
        assert stored is not None and stored["status"] == {}


class TestServiceAccount:
    def test_created_with_its_own_top_level_fields(self, cluster: Cluster, ns: str) -> None:
        """automountServiceAccountToken is kept (a ServiceAccount has no spec)."""
        body = {"metadata": {"name": "w"}, "automountServiceAccountToken": False}
        cluster.core.create_namespaced_service_account(ns, body=body)
        stored = cluster.raw(f"/api/v1/namespaces/{ns}/serviceaccounts/w")
        assert stored is not None and stored["automountServiceAccountToken"] is False
