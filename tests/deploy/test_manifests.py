"""``kubectl apply --dry-run=server`` of deploy/worker and the Temporal Cloud overlays against the
sandbox's Kubernetes API emulator: what every build shares (``apply -k``) and one build's Deployment as
``rollout.sh render`` makes it are accepted (validated, defaulted, not stored), and the same check
refuses what a real server would (a placeholder left as text, a misspelt field).

The namespace is created first, for real: a dry run creates nothing, and a real API server also
refuses a namespaced object whose namespace does not exist yet.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ringmaster import health
from sandbox.apiserver.harness import EmulatorServer
from tests.deploy.conftest import BIN, ROOT, tool
from tests.support.cluster import Cluster

TREES = ["deploy/worker", "deploy/overlays/temporal-cloud", "deploy/overlays/temporal-cloud-mtls"]
SHARED = {
    "namespace",
    "serviceaccount",
    "configmap",
    "poddisruptionbudget.policy",
    "networkpolicy.networking.k8s.io",
}
BUILD = "0.2.0-abcdef123456"
DEPLOYMENT = "ringmaster-worker-0-2-0-abcdef123456"
ROLLOUT = ROOT / "deploy" / "worker" / "rollout.sh"


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


def _rendered(tree: str) -> str:
    """One build's manifests, as ``rollout.sh render`` prints them for the tree (``WORKER_DIR``)."""
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "deploy" / "worker" / "rollout.sh"),
            "render",
            BUILD,
            "ghcr.io/example/ringmaster:0.2.0",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "WORKER_DIR": str(ROOT / tree)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


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
    """Each shared object of the tree, then a build's Deployment, is validated by the server and
    reported created; none is stored."""
    code, out, err = kubectl("apply", "-k", tree, "--dry-run=server")
    assert code == 0, err
    reported = [line.split()[0] for line in out.splitlines() if line.endswith("(server dry run)")]
    assert len(reported) == len(kubectl.built(tree))
    assert {name.split("/", 1)[0] for name in reported} >= SHARED
    code, out, err = kubectl("apply", "-f", "-", "--dry-run=server", stdin=_rendered(tree))
    assert code == 0, err
    assert out.strip() == f"deployment.apps/{DEPLOYMENT} created (server dry run)"
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
    deployment = _of([o for o in yaml.safe_load_all(_rendered("deploy/worker")) if o], "Deployment")
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
    addresses it by index), and each build's worker, rendered by rollout.sh with WORKER_DIR, connects
    to Temporal Cloud, keeps its build id and checks search attributes instead of registering them."""
    base = _of(kubectl.built("deploy/worker"), "NetworkPolicy")
    policy = _of(kubectl.built(overlay), "NetworkPolicy")
    assert _egress_to_temporal(policy) == [
        {"to": [{"ipBlock": {"cidr": "192.0.2.7/32"}}], "ports": [{"protocol": "TCP", "port": 7233}]}
    ]
    others = [r for r in policy["spec"]["egress"] if r not in _egress_to_temporal(policy)]
    assert others == [r for r in base["spec"]["egress"] if r not in _egress_to_temporal(base)]
    deployment = _of([o for o in yaml.safe_load_all(_rendered(overlay)) if o], "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RINGMASTER_BUILD_ID"]["value"] == BUILD
    assert env["RINGMASTER_WORKER_VERSIONING"]["value"] == "true"
    assert env["RINGMASTER_REGISTER_SEARCH_ATTRIBUTES"]["value"] == "false"
    assert env["TEMPORAL_NAMESPACE"]["value"] == "<namespace>.<account>"
    if overlay.endswith("mtls"):
        assert "TEMPORAL_API_KEY" not in env
        assert env["TEMPORAL_TLS_CLIENT_KEY_PATH"]["value"].startswith("/etc/ringmaster/temporal-tls/")
    else:
        assert env["TEMPORAL_API_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": "ringmaster-temporal-cloud", "key": "api-key"}
        }


@pytest.mark.parametrize("tree", TREES)
def test_the_probes_ask_the_endpoints_the_worker_serves_on_the_ports_it_is_given(tree: str) -> None:
    """Liveness asks ``/livez`` and readiness ``/readyz`` on the port RINGMASTER_HEALTH_PORT names, and
    the metrics port is declared as RINGMASTER_METRICS_PORT says: a renamed endpoint or a moved port
    would make Kubernetes restart healthy workers or never send them traffic."""
    (deployment,) = [o for o in yaml.safe_load_all(_rendered(tree)) if o and o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "health": int(env["RINGMASTER_HEALTH_PORT"]),
        "metrics": int(env["RINGMASTER_METRICS_PORT"]),
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    for path in ("/livez", "/readyz"):
        assert path in health.ENDPOINTS
