"""``python -m sandbox up --no-temporal``/``down``, and kubectl against the clusters it starts.

``test_stack.py`` covers the whole stack, with Temporal and the worker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from policies import loading
from sandbox import stack
from sandbox.apiserver.adminclient import AdminClient
from sandbox.processes import Processes, is_alive
from tests.sandbox.support import sandbox_cli
from tests.support.waiting import eventually

KUBECTL = str(Path(sys.executable).with_name("kubectl"))

FLEET = """\
apiVersion: ringmaster.dev/v1
kind: Fleet
regions:
  - {name: eu-west-1, jurisdiction: EU, timezone: Europe/Dublin, prometheus: "http://prometheus.eu.example.com:9090"}
  - {name: us-east-1, jurisdiction: US, timezone: America/New_York, prometheus: "http://prometheus.us.example.com:9090"}
clusters:
  - {name: euw1-prod, region: eu-west-1, kubeContext: prod-eu, labels: {audience: public}}
  - {name: use1-prod, region: us-east-1, kubeContext: prod-us, labels: {audience: public}}
hosts:
  - {match: "*.eu.example.com", jurisdiction: EU}
  - {match: "*.us.example.com", jurisdiction: US}
"""

SETTINGS = """\
controller: {tickSeconds: 0.02, podReadySeconds: 0.1}
clusters:
  use1-prod: {nodeRegion: eu-west-1}
unleash: {enabled: false}
"""

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop, labels: {app: cart}}
spec:
  replicas: 4
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers:
        - {name: cart, image: "registry.example.com/cart:v1", env: [{name: MODE, value: a}]}
"""


@dataclass
class RunningSandbox:
    """A sandbox started with ``python -m sandbox up`` in a temporary directory."""

    directory: Path
    url: str

    def kubectl(
        self, *args: str, context: str = "euw1-prod", stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against one of the sandbox's contexts."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.directory / "kubeconfig"),
            "KUBECACHEDIR": str(self.directory / "kcache"),
        }
        return subprocess.run(
            [KUBECTL, "--context", context, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, context: str = "euw1-prod", stdin: str | None = None) -> str:
        """Run kubectl and return its output, failing the test with its error output otherwise."""
        done = self.kubectl(*args, context=context, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done.stdout


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A two-cluster sandbox (EU and US, the US one lying about its region) started through the CLI."""
    directory = tmp_path_factory.mktemp("sandbox")
    (directory / "fleet-in.yaml").write_text(FLEET, encoding="utf-8")
    (directory / "sandbox.yaml").write_text(SETTINGS, encoding="utf-8")
    fleet = str(directory / "fleet-in.yaml")
    started = sandbox_cli("up", "--no-temporal", "--dir", str(directory), "--fleet", fleet)
    assert started.returncode == 0, started.stderr
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    yield RunningSandbox(directory, state["processes"]["apiserver"]["info"]["url"])
    stack.down(directory)


class TestSandboxUp:
    def test_writes_kubeconfig_and_fleet(self, sandbox: RunningSandbox) -> None:
        """up writes a kubeconfig with one context per fleet cluster and a fleet pointing at them."""
        config = yaml.safe_load((sandbox.directory / "kubeconfig").read_text(encoding="utf-8"))
        assert [c["name"] for c in config["contexts"]] == ["euw1-prod", "use1-prod"]
        servers = {c["name"]: c["cluster"]["server"] for c in config["clusters"]}
        assert servers["use1-prod"] == f"{sandbox.url}/clusters/use1-prod"
        assert config["users"] == [{"name": "sandbox", "user": {}}]
        fleet = loading.load_fleet(sandbox.directory / "fleet.yaml")
        assert {c.name: c.kube_context for c in fleet.clusters} == {
            "euw1-prod": "euw1-prod",
            "use1-prod": "use1-prod",
        }

    def test_up_again_is_a_no_op(self, sandbox: RunningSandbox) -> None:
        """Up again with the same fleet and settings keeps the running emulator; another fleet is refused."""
        again = stack.up(sandbox.directory, sandbox.directory / "fleet-in.yaml")
        assert again.already_running
        assert again.url == sandbox.url
        other = sandbox.directory / "other-fleet.yaml"
        other.write_text(FLEET.replace("labels: {audience: public}", "labels: {}"), encoding="utf-8")
        with pytest.raises(stack.SandboxError) as refused:
            stack.up(sandbox.directory, other)
        assert "sandbox down" in str(refused.value)

    def test_seeds_the_workload_per_jurisdiction(self, sandbox: RunningSandbox) -> None:
        """Each cluster has namespace api, Service api and a Deployment on its jurisdiction's database."""
        for context, host in (
            ("euw1-prod", "orders.db.eu.example.com"),
            ("use1-prod", "orders.db.us.example.com"),
        ):
            deployment = json.loads(
                sandbox.ok("get", "deployment", "api", "-n", "api", "-o", "json", context=context)
            )
            assert deployment["metadata"]["labels"]["ringmaster.dev/version"] == "v1"
            template = deployment["spec"]["template"]
            assert template["metadata"]["labels"]["ringmaster.dev/version"] == "v1"
            container = template["spec"]["containers"][0]
            assert (container["name"], container["image"]) == ("api", "registry.eu.example.com/api:v1")
            assert container["env"] == [{"name": "DATABASE_URL", "value": f"postgres://{host}:5432/orders"}]
            assert deployment["status"]["readyReplicas"] == 10
            assert (
                sandbox.ok("get", "service", "api", "-n", "api", "-o", "name", context=context)
                == "service/api\n"
            )

    def test_nodes_report_regions_and_the_configured_lie(self, sandbox: RunningSandbox) -> None:
        """Nodes carry their cluster's region, except where the settings make a cluster lie."""
        region = "jsonpath={.items[*].metadata.labels.topology\\.kubernetes\\.io/region}"
        assert set(sandbox.ok("get", "nodes", "-o", region, context="euw1-prod").split()) == {"eu-west-1"}
        assert set(sandbox.ok("get", "nodes", "-o", region, context="use1-prod").split()) == {"eu-west-1"}

    def test_invalid_fleet_exits_2_without_traceback(self, tmp_path: Path) -> None:
        """A fleet with an unknown field makes up exit 2 with the file and path named."""
        bad = tmp_path / "fleet.yaml"
        bad.write_text(FLEET.replace("kind: Fleet", "kind: Fleet\ncolour: red"), encoding="utf-8")
        done = sandbox_cli("up", "--dir", str(tmp_path / "sb"), "--fleet", str(bad))
        assert done.returncode == 2
        assert "colour" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "sb" / "state.json").exists()


class TestKubectl:
    def test_client_side_apply_and_reapply(self, sandbox: RunningSandbox) -> None:
        """kubectl apply creates, then reports unchanged/configured, and the change lands."""
        assert sandbox.ok("apply", "-f", "-", stdin=MANIFEST).split("\n")[:2] == [
            "namespace/shop created",
            "deployment.apps/cart created",
        ]
        changed = sandbox.ok("apply", "-f", "-", stdin=MANIFEST.replace("cart:v1", "cart:v2"))
        assert "namespace/shop unchanged" in changed
        assert "deployment.apps/cart configured" in changed
        image = sandbox.ok(
            "get", "deploy", "cart", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
        )
        assert image == "registry.example.com/cart:v2"
        log = AdminClient(sandbox.url).requests("euw1-prod", verb="patch")
        assert log[-1]["fieldManager"] == "kubectl-client-side-apply"
        assert log[-1]["contentType"] == "application/strategic-merge-patch+json"

    def test_apply_validates_fields_on_the_server(self, sandbox: RunningSandbox) -> None:
        """kubectl apply leaves validation to the server, which refuses a misspelt field."""
        typo = MANIFEST.split("---\n")[1].replace("  replicas: 4", "  replica: 4")
        refused = sandbox.kubectl("apply", "-f", "-", stdin=typo)
        assert refused.returncode == 1
        assert 'strict decoding error: unknown field "spec.replica"' in refused.stderr

    def test_server_side_apply_conflicts_and_force(self, sandbox: RunningSandbox) -> None:
        """apply --server-side conflicts on fields another manager owns, and --force-conflicts takes them."""
        ssa = MANIFEST.replace("namespace: shop", "namespace: api").replace("name: cart,", "name: ssa,")
        ssa = ssa.replace("app: cart", "app: ssa").split("---\n")[1]
        assert "serverside-applied" in sandbox.ok("apply", "--server-side", "-f", "-", stdin=ssa)
        sandbox.ok("scale", "deploy/ssa", "-n", "api", "--replicas=2")
        refused = sandbox.kubectl("apply", "--server-side", "-f", "-", stdin=ssa)
        assert refused.returncode == 1
        assert (
            'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas' in refused.stderr
        )
        sandbox.ok("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=ssa)
        assert sandbox.ok("get", "deploy", "ssa", "-n", "api", "-o", "jsonpath={.spec.replicas}") == "4"

    def test_get_with_label_selector_and_names(self, sandbox: RunningSandbox) -> None:
        """kubectl get -l selects by label and -o name prints kind/name."""
        assert (
            sandbox.ok("get", "deploy", "-n", "api", "-l", "app=api", "-o", "name") == "deployment.apps/api\n"
        )
        assert sandbox.ok("get", "deploy", "-n", "api", "-l", "app=nothing", "-o", "name") == ""
        table = sandbox.ok("get", "deploy", "-n", "api", "api")
        assert table.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]

    def test_patch_forms_and_rollout_status(self, sandbox: RunningSandbox) -> None:
        """kubectl patch (strategic, merge, json) changes the Deployment, and rollout status waits for it."""
        image = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "api", "image": "registry.eu.example.com/api:v2"}]}
                }
            }
        }
        sandbox.ok("patch", "deploy", "api", "-n", "api", "-p", json.dumps(image), context="use1-prod")
        sandbox.ok(
            "patch",
            "deploy",
            "api",
            "-n",
            "api",
            "--type=merge",
            "-p",
            '{"spec":{"replicas":6}}',
            context="use1-prod",
        )
        ops = '[{"op":"add","path":"/metadata/labels/patched","value":"yes"}]'
        sandbox.ok("patch", "deploy", "api", "-n", "api", "--type=json", "-p", ops, context="use1-prod")
        out = sandbox.ok("rollout", "status", "deploy/api", "-n", "api", "--timeout=30s", context="use1-prod")
        assert 'deployment "api" successfully rolled out' in out
        path = "jsonpath={.status.updatedReplicas},{.metadata.labels.patched}"
        assert sandbox.ok("get", "deploy", "api", "-n", "api", "-o", path, context="use1-prod") == "6,yes"

    def test_rollout_status_reports_a_crash_loop(self, sandbox: RunningSandbox) -> None:
        """A never-ready image makes kubectl rollout status fail with the progress-deadline error."""
        broken = {
            "spec": {
                "progressDeadlineSeconds": 1,
                "template": {
                    "spec": {
                        "containers": [{"name": "api", "image": "registry.eu.example.com/api:crashloop"}]
                    }
                },
            }
        }
        sandbox.ok("patch", "deploy", "api", "-n", "api", "-p", json.dumps(broken))
        done = sandbox.kubectl("rollout", "status", "deploy/api", "-n", "api", "--timeout=30s")
        assert done.returncode == 1
        assert 'deployment "api" exceeded its progress deadline' in done.stderr

    def test_create_namespace_delete_and_wait(self, sandbox: RunningSandbox) -> None:
        """kubectl create ns (protobuf) works; delete and wait --for=delete return once objects are gone."""
        assert sandbox.ok("create", "namespace", "scratch") == "namespace/scratch created\n"
        sandbox.ok("create", "configmap", "c", "-n", "scratch", "--from-literal=k=v")
        sandbox.ok("delete", "configmap", "c", "-n", "scratch", "--wait=false")
        sandbox.ok("wait", "--for=delete", "configmap/c", "-n", "scratch", "--timeout=10s")
        sandbox.ok("delete", "namespace", "scratch")
        sandbox.ok("wait", "--for=delete", "namespace/scratch", "--timeout=10s")
        gone = sandbox.kubectl("get", "namespace", "scratch")
        assert gone.returncode == 1
        assert "NotFound" in gone.stderr


class TestSandboxDown:
    def test_down_stops_everything_and_is_idempotent(self, sandbox: RunningSandbox) -> None:
        """down stops the emulator (no process, no listening port), and a second down is harmless."""
        record = Processes(sandbox.directory).load().processes["apiserver"]
        port = int(record.info["port"])
        stopped = sandbox_cli("down", "--dir", str(sandbox.directory))
        assert stopped.returncode == 0, stopped.stderr
        assert "apiserver" in stopped.stdout
        assert not is_alive(record)
        eventually(lambda: not _port_open(port), timeout=5, what="port released")
        assert stack.down(sandbox.directory) == []
        assert sandbox_cli("status", "--dir", str(sandbox.directory)).returncode == 3
