"""``kubectl apply -k --dry-run=server`` of deploy/worker and the Temporal Cloud overlays against the
sandbox's Kubernetes API emulator: every manifest is accepted (validated, defaulted, not stored), and
the same check refuses what a real server would (a placeholder left as text, a misspelt field).

The namespace is created first, for real: a dry run creates nothing, and a real API server also
refuses a namespaced object whose namespace does not exist yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.apiserver.harness import EmulatorServer
from tests.deploy.conftest import tool
from tests.support.cluster import Cluster

TREES = ["deploy/worker", "deploy/overlays/temporal-cloud", "deploy/overlays/temporal-cloud-mtls"]
KINDS = {
    "namespace",
    "serviceaccount",
    "configmap",
    "deployment.apps",
    "poddisruptionbudget.policy",
    "networkpolicy.networking.k8s.io",
}


@dataclass
class Kubectl:
    """kubectl against one emulated cluster, with its own kubeconfig and cache."""

    kubeconfig: Path
    cache: Path
    context: str

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        done = tool(
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--context",
            self.context,
            *args,
            stdin=stdin,
            KUBECACHEDIR=str(self.cache),
        )
        return done.returncode, done.stdout, done.stderr

    def built(self, tree: str) -> list[dict[str, Any]]:
        """The objects ``kubectl kustomize`` builds from a tree."""
        code, out, err = self("kustomize", tree)
        assert code == 0, err
        return [o for o in yaml.safe_load_all(out) if o]


@pytest.fixture
def kubectl(emulator: EmulatorServer, cluster: Cluster, tmp_path: Path) -> Kubectl:
    """kubectl on a fresh cluster that has the ``ringmaster`` namespace."""
    assert cluster.emulated is not None
    config = emulator.write_kubeconfig(tmp_path / "kubeconfig", [cluster.emulated])
    cluster.core.create_namespace(body={"metadata": {"name": "ringmaster"}})
    return Kubectl(config, tmp_path / "cache", cluster.emulated)


def _of(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


@pytest.mark.parametrize("tree", TREES)
def test_every_manifest_is_accepted_by_a_server_dry_run(
    kubectl: Kubectl, cluster: Cluster, tree: str
) -> None:
    """Each object of the tree is validated by the server and reported created, none is stored."""
    code, out, err = kubectl("apply", "-k", tree, "--dry-run=server")
    assert code == 0, err
    reported = [line.split()[0] for line in out.splitlines() if line.endswith("(server dry run)")]
    assert len(reported) == len(kubectl.built(tree))
    assert {name.split("/", 1)[0] for name in reported} >= KINDS
    assert cluster.apps.list_namespaced_deployment("ringmaster").items == []
    assert cluster.core.list_namespaced_config_map("ringmaster").items == []


def test_a_placeholder_left_as_text_is_refused_naming_the_field(kubectl: Kubectl) -> None:
    """An operator who writes a host name where the policy wants a CIDR learns which rule it is."""
    policy = _of(kubectl.built("deploy/worker"), "NetworkPolicy")
    policy["spec"]["egress"][2]["to"][0]["ipBlock"]["cidr"] = "k8s-api.eu.example.com"
    code, _, err = kubectl("apply", "-f", "-", "--dry-run=server", stdin=yaml.safe_dump(policy))
    assert code != 0
    assert "spec.egress[2].to[0].ipBlock.cidr" in err
    assert "must be a valid CIDR" in err


def test_a_misspelt_field_is_refused(kubectl: Kubectl) -> None:
    """kubectl asks for strict field validation: an unknown field of the pod spec fails the check."""
    deployment = _of(kubectl.built("deploy/worker"), "Deployment")
    deployment["spec"]["template"]["spec"]["serviceAcountName"] = "ringmaster-worker"
    code, _, err = kubectl("apply", "-f", "-", "--dry-run=server", stdin=yaml.safe_dump(deployment))
    assert code != 0
    assert "serviceAcountName" in err


def _egress_to_temporal(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in policy["spec"]["egress"] if {"protocol": "TCP", "port": 7233} in rule["ports"]]


@pytest.mark.parametrize("overlay", TREES[1:])
def test_the_cloud_overlays_reach_temporal_cloud_and_only_check_search_attributes(
    kubectl: Kubectl, overlay: str
) -> None:
    """The overlay's JSON patch replaced the in-cluster Temporal rule (not another rule: the patch
    addresses it by index), and the worker checks search attributes instead of registering them."""
    base = _of(kubectl.built("deploy/worker"), "NetworkPolicy")
    objects = kubectl.built(overlay)
    policy = _of(objects, "NetworkPolicy")
    assert _egress_to_temporal(policy) == [
        {"to": [{"ipBlock": {"cidr": "192.0.2.7/32"}}], "ports": [{"protocol": "TCP", "port": 7233}]}
    ]
    others = [r for r in policy["spec"]["egress"] if r not in _egress_to_temporal(policy)]
    assert others == [r for r in base["spec"]["egress"] if r not in _egress_to_temporal(base)]
    (container,) = _of(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RINGMASTER_REGISTER_SEARCH_ATTRIBUTES"]["value"] == "false"
    assert env["TEMPORAL_NAMESPACE"]["value"] == "<namespace>.<account>"
    if overlay.endswith("mtls"):
        assert "TEMPORAL_API_KEY" not in env
        assert env["TEMPORAL_TLS_CLIENT_KEY_PATH"]["value"].startswith("/etc/ringmaster/temporal-tls/")
    else:
        assert env["TEMPORAL_API_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": "ringmaster-temporal-cloud", "key": "api-key"}
        }
