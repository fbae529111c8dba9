"""Live residency evidence: node regions, the workload's facts, and the hosts in its env (never values)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activities.errors import ClusterError
from activities.kubernetes import evidence
from policies import hosts as host_rules
from policies.plan import Workload
from tests.activities.support import DB_HOST, V1, Kube, seed
from tests.support import hostgen

WORKLOAD = Workload(namespace="x", deployment="api", container="api")


def _configmap(kube: Kube, ns: str, name: str, data: dict[str, str]) -> None:
    kube.core.create_namespaced_config_map(ns, body={"metadata": {"name": name}, "data": data})


def _workload(ns: str) -> Workload:
    return WORKLOAD.model_copy(update={"namespace": ns})


class TestNodeRegions:
    def test_every_node_reports_its_region_label(self, kube: Kube, ns: str) -> None:
        """Each node's ``topology.kubernetes.io/region`` label is one entry of the evidence."""
        seed(kube, ns)
        found = kube.backend.evidence(kube.cluster, _workload(ns))
        nodes = kube.core.list_node().items
        assert found.node_regions == [
            (n.metadata.labels or {}).get(evidence.REGION_LABEL, evidence.UNLABELLED) for n in nodes
        ]
        if kube.emulated is not None:
            assert found.node_regions == ["eu-west-1"] * 3


class TestWorkloadFacts:
    def test_image_replicas_and_version_label(self, kube: Kube, app: str) -> None:
        """The inspection reports the container's image, the replicas and the version label."""
        facts = kube.backend.inspect(kube.cluster, _workload(app))
        assert (facts.image, facts.replicas, facts.version) == (V1, 10, "v1")

    def test_version_falls_back_to_the_image_tag(self, kube: Kube, app: str) -> None:
        """Without a ``ringmaster.dev/version`` label the version is the image's tag."""
        kube.apps.patch_namespaced_deployment(
            "api",
            app,
            body=[
                {"op": "remove", "path": "/metadata/labels/ringmaster.dev~1version"},
                {"op": "remove", "path": "/spec/template/metadata/labels/ringmaster.dev~1version"},
            ],
            _content_type="application/json-patch+json",
        )
        assert kube.backend.inspect(kube.cluster, _workload(app)).version == "3.9"

    def test_a_missing_workload_is_a_permanent_error(self, kube: Kube, ns: str) -> None:
        """Evidence for a Deployment that does not exist fails at once, naming it."""
        with pytest.raises(ClusterError) as failed:
            kube.backend.evidence(kube.cluster, _workload(ns))
        assert failed.value.kind == "permanent" and f"Deployment {ns}/api" in str(failed.value)


class TestEnvHosts:
    def test_hosts_from_values_and_configmaps_never_the_values(self, kube: Kube, ns: str) -> None:
        """Literal values and ConfigMap references are resolved to hosts; credentials never appear."""
        _configmap(kube, ns, "endpoints", {"CACHE": "redis://:hunter2@cache.eu.example.com:6379/0"})
        _configmap(
            kube, ns, "kafka", {"BROKERS": "b1.kafka.eu.example.com:9092,b2.kafka.eu.example.com:9092"}
        )
        env: list[dict[str, Any]] = [
            {"name": "DATABASE_URL", "value": f"postgres://app:s3cret@{DB_HOST}:5432/orders"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "CACHE_URL", "valueFrom": {"configMapKeyRef": {"name": "endpoints", "key": "CACHE"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ]
        seed(kube, ns, env=env)
        kube.apps.patch_namespaced_deployment(
            "api",
            ns,
            body={
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "api", "envFrom": [{"configMapRef": {"name": "kafka"}}]}]
                        }
                    }
                }
            },
        )
        found = kube.backend.evidence(kube.cluster, _workload(ns))
        assert found.env_hosts == [
            "b1.kafka.eu.example.com",
            "b2.kafka.eu.example.com",
            DB_HOST,
            "cache.eu.example.com",
        ]
        assert found.uninspected == []
        assert "s3cret" not in found.model_dump_json() and "hunter2" not in found.model_dump_json()

    def test_secrets_are_never_read_and_listed_as_uninspected(self, kube: Kube, ns: str) -> None:
        """Secret-backed env is named as not inspected, and no request ever reads a Secret."""
        since = kube.last_request() if kube.emulated else 0
        env: list[dict[str, Any]] = [
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "DB_URL", "value": "postgres://app:$(DB_PASSWORD)@db.eu.example.com/x"},
            {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}},
            {
                "name": "OPTIONAL",
                "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}},
            },
        ]
        seed(kube, ns, env=env)
        found = kube.backend.evidence(kube.cluster, _workload(ns))
        assert found.env_hosts == ["db.eu.example.com"]
        assert found.uninspected == [
            "env DB_PASSWORD from secret db (container api)",
            "env DB_URL uses $(DB_PASSWORD) from a secret (container api)",
            "env MISSING from configmap absent key k (not found) (container api)",
        ]
        if kube.emulated is not None:
            assert not [r for r in kube.requests(since) if "/secrets" in r["path"]]

    @settings(max_examples=150, deadline=timedelta(seconds=2))
    @given(st.lists(st.one_of(hostgen.urls(), hostgen.hosts), max_size=3).map(" ".join))
    def test_scanning_any_value_never_crashes_or_echoes_it(self, value: str) -> None:
        """Every value yields canonical hosts and reasons; no reason repeats the value it refused."""
        found, refused = evidence.scan(value)
        assert all(host_rules.parse_host(host).name == host for host in found)
        assert all(len(value) < 12 or value not in reason for reason in refused)

    def test_a_url_read_differently_is_listed_as_uninspected(self, kube: Kube, ns: str) -> None:
        """A URL whose host parsers disagree on is named, with why, instead of being judged by one guess."""
        url = "http://prometheus.us.example.com\\@prometheus.eu.example.com:9090"
        seed(kube, ns, env=[{"name": "METRICS_URL", "value": url}, {"name": "DB", "value": "878636280:5432"}])
        found = kube.backend.evidence(kube.cluster, _workload(ns))
        assert found.env_hosts == ["52.94.236.248"]
        [refused] = found.uninspected
        assert refused.startswith("env METRICS_URL (container api): a URL whose host cannot be read")
        assert "backslash" in refused and "example.com" not in refused

    @pytest.mark.parametrize(
        ("value", "hosts"),
        [
            ("postgres://u:p@orders.db.eu.example.com:5432/orders", ["orders.db.eu.example.com"]),
            (
                "jdbc:postgresql://db1.eu.example.com:5432,db2.eu.example.com/x",
                ["db1.eu.example.com", "db2.eu.example.com"],
            ),
            ("mongodb://a.example.com:1,b.example.com:2/db?replicaSet=x", ["a.example.com", "b.example.com"]),
            ("host=db.us.example.com port=5432", ["db.us.example.com"]),
            ("user:pw@cache.eu.example.com", ["cache.eu.example.com"]),
            ("redis:6379", ["redis"]),
            ("10.0.0.5", ["10.0.0.5"]),
            ("[::1]:8080", ["::1"]),
            ("https://api.stripe.com/v1", ["api.stripe.com"]),
            ("noreply@example.com", []),
            ("info", []),
            ("1.2.3", []),
            ("12:30", []),
            ("config.yaml", []),
            ("/etc/app.conf", []),
            ("true", []),
            ("postgres://878636280:5432/orders", ["52.94.236.248"]),
            ("redis://0x345eecf8/0", ["52.94.236.248"]),
            ("878636280:5432", ["52.94.236.248"]),
            ("0x345eecf8:6379", ["52.94.236.248"]),
            ("0x34.0x5e.0xec.0xf8", ["52.94.236.248"]),
            ("http://[::ffff:10.0.0.5]:80/", ["10.0.0.5"]),
            ("https://BÜCHER.eu.example.com./x", ["xn--bcher-kva.eu.example.com"]),
            ("8080", []),
            ("url=http://a.eu.example.com\nuser=app", ["a.eu.example.com"]),
            ("1.5", []),
        ],
    )
    def test_hosts_in_values(self, value: str, hosts: list[str]) -> None:
        """URLs, host:port, DSNs and IPs yield hosts; versions, times, paths and e-mail addresses do not."""
        assert evidence.hosts_in(value) == hosts

    @pytest.mark.parametrize(
        "value",
        [
            "http://prometheus.us.example.com\\@prometheus.eu.example.com:9090",
            "DB=postgres://db.us.example.com\\@db.eu.example.com:5432/x",
            "mongodb://a.us.example.com\\@b.eu.example.com,c.eu.example.com/db",
            "postgres://1.2.3.4.5:5432/x",
            "http://db\t.us.example.com:5432/x",
            "http://a.eu.example.com\n@b.us.example.com/",
        ],
    )
    def test_urls_parsers_read_differently_are_refused_saying_why(self, value: str) -> None:
        """Such a URL yields no guessed host but a reason (never the value), so the rule fails closed."""
        found, refused = evidence.scan(value)
        assert not any(host.endswith("eu.example.com") for host in found)
        assert refused and all("example.com" not in reason for reason in refused)
