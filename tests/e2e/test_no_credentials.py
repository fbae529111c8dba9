"""No credential anywhere: a rolled-back release on the sandbox leaves none in what it writes.

Credentials are planted where a real release meets them:

- in the workload's env: a plain ``API_KEY`` value and the password of a ``DATABASE_URL`` (whose
  host the live residency check reads);
- in a Secret the workload references (``secretKeyRef`` and ``envFrom.secretRef``);
- in the kubeconfig the worker reaches the clusters with (each user's ``token``);
- in the Prometheus request headers (``RINGMASTER_PROMETHEUS_BEARER_TOKEN``);
- in the webhooks' URLs (a Slack incoming webhook's path is its secret).

The worker is the real ``ringmaster worker`` process, configured through its environment, with the
sandbox's Kubernetes API and real Prometheus; a ``-bad`` version fails its gate and is rolled back.
Then every place ringmaster writes is read back and searched for each credential, in plain text and
base64: every history of the worker's task queue (release, cluster workflows, freeze registry), each
workflow's description (search attributes, memo, summary and details) and current details, the
archive, every webhook request (body and headers), the worker's log, what ``ringmaster status``
and ``ringmaster audit`` print, and the snapshot ConfigMaps ringmaster leaves in the cluster.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.workflowservice.v1 import QueryWorkflowRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.support import manifests, receiver, worker_process
from tests.support.prometheus import MetricsSandbox, served, wait_for
from tests.workflows.support import ended
from workflows.models import ReleaseInput
from workflows.release import ReleaseWorkflow, release_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "euw1-canary"


def _credentials() -> dict[str, str]:
    """One fresh, unmistakable credential per place it is planted."""
    return {
        where: f"{where}-{uuid.uuid4().hex}"
        for where in ("env", "env-url", "secret", "kube-token", "prometheus-token", "webhook")
    }


def _forms(secret: str) -> list[bytes]:
    """The credential as it could appear: plain, and base64 (a Secret's ``data``, a payload's JSON)."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw)]


def _deploy_workload(sandbox: MetricsSandbox, namespace: str, creds: dict[str, str]) -> None:
    """Deployment ``api`` (v1) whose env holds two credentials and references a Secret holding a third."""
    kube = sandbox.kube(CLUSTER)
    kube.core.create_namespace(body={"metadata": {"name": namespace}})
    kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "api-credentials"},
            "data": {"password": base64.b64encode(creds["secret"].encode()).decode()},
        },
    )
    env = [
        {"name": "API_KEY", "value": creds["env"]},
        {
            "name": "DATABASE_URL",
            "value": f"postgres://orders:{creds['env-url']}@orders.db.eu.example.com:5432/orders",
        },
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "api-credentials", "key": "password"}},
        },
    ]
    container = manifests.container(
        "api",
        "registry.eu.example.com/api:v1",
        env=env,
        envFrom=[{"secretRef": {"name": "api-credentials"}}],
    )
    labels = {"app": "api", "ringmaster.dev/version": "v1"}
    kube.apps.create_namespaced_deployment(
        namespace,
        manifests.deployment("api", [container], replicas=5, labels=labels, selector={"app": "api"}),
    )
    kube.core.create_namespaced_service(
        namespace, manifests.service("api", {"app": "api"}, [{"port": 80, "targetPort": 8080}])
    )


def _plan(service: str, namespace: str) -> str:
    """One ring, a canary paused long enough for its gate to fail."""
    steps = [{"setWeight": 50}, {"pause": {"duration": "1h"}}]
    ring = {"name": "canary", "clusters": [CLUSTER], "strategy": {"canary": {"steps": steps}}}
    return worker_process.gated_plan(service, namespace, [ring])


def _kubeconfig(sandbox: MetricsSandbox, token: str, into: Path) -> Path:
    """The sandbox's kubeconfig with a bearer token for every user (the emulator accepts any)."""
    config = yaml.safe_load(sandbox.kubeconfig.read_text(encoding="utf-8"))
    for user in config["users"]:
        user.setdefault("user", {})["token"] = token
    into.write_text(yaml.safe_dump(config), encoding="utf-8")
    return into


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ringmaster.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return (done.stdout + done.stderr).decode()


async def _what_temporal_holds(client: Client, queue: str) -> dict[str, bytes]:
    """Every workflow of the queue: its history, description and current details, as bytes.

    The protobuf messages are serialized whole: a payload's data is kept verbatim in them, so a
    credential in any event, search attribute, memo or summary is found as its own bytes.
    """
    found: dict[str, bytes] = {}
    async for listed in client.list_workflows(f"TaskQueue = '{queue}'"):
        handle = client.get_workflow_handle(listed.id, run_id=listed.run_id)
        history = await handle.fetch_history()
        found[f"history of {listed.id}"] = history.to_json().encode()
        described = await handle.describe()
        found[f"description of {listed.id}"] = described.raw_description.SerializeToString()
        try:
            answer = await client.workflow_service.query_workflow(
                QueryWorkflowRequest(
                    namespace=client.namespace,
                    execution=WorkflowExecution(workflow_id=listed.id, run_id=listed.run_id),
                    query=WorkflowQuery(query_type="__temporal_workflow_metadata"),
                )
            )
        except RPCError:
            continue  # a workflow type without details
        found[f"current details of {listed.id}"] = answer.SerializeToString()
    # The JSON history holds payload data in base64: each payload is decoded once more below.
    for name, raw in list(found.items()):
        if name.startswith("history of "):
            found[name] += b"\n" + _decoded_payloads(json.loads(raw))
    return found


def _decoded_payloads(node: object) -> bytes:
    """Every ``data`` field of a JSON-rendered protobuf tree, base64-decoded and joined."""
    out: list[bytes] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                try:
                    out.append(base64.b64decode(value))
                except ValueError:
                    out.append(value.encode())
            else:
                out.append(_decoded_payloads(value))
    elif isinstance(node, list):
        out.extend(_decoded_payloads(v) for v in node)
    return b"\n".join(out)


class TestNoCredentialAnywhere:
    async def test_a_rolled_back_release_leaves_no_credential_in_anything_it_writes(
        self, client: Client, metrics_sandbox: MetricsSandbox, tmp_path: Path
    ) -> None:
        creds = _credentials()
        namespace = f"vault-{uuid.uuid4().hex[:6]}"
        service = f"vault-{uuid.uuid4().hex[:6]}"
        _deploy_workload(metrics_sandbox, namespace, creds)
        # The canary's gate compares nothing with v1, but v1 serving proves the workload is up.
        await wait_for(metrics_sandbox.url(CLUSTER), served(CLUSTER, namespace, "v1"), 1, timeout=60)

        queue = f"tq-{uuid.uuid4().hex}"
        archive = tmp_path / "archive"
        async with receiver.running() as hooks:
            webhooks = [
                {"name": "oncall", "url": hooks.url(f"/hooks/{creds['webhook']}")},
                {"name": "chat", "url": hooks.url(f"/slack/{creds['webhook']}"), "format": "slack"},
            ]
            env = {
                **worker_process.base_env(client, queue),
                "RINGMASTER_FLEET": str(metrics_sandbox.directory / "fleet.yaml"),
                "RINGMASTER_KUBECONFIG": str(
                    _kubeconfig(metrics_sandbox, creds["kube-token"], tmp_path / "kubeconfig")
                ),
                "RINGMASTER_PROMETHEUS_BEARER_TOKEN": creds["prometheus-token"],
                "RINGMASTER_WEBHOOKS": json.dumps(webhooks),
                "RINGMASTER_ARCHIVE_URL": str(archive),
                "RINGMASTER_HEARTBEAT_THROTTLE_SECONDS": "0.5",
                "RINGMASTER_ANALYSIS_HEARTBEAT_THROTTLE_SECONDS": "0.5",
            }
            log = tmp_path / "worker.log"
            with worker_process.running(env, log) as proc:
                await worker_process.polling(proc, log)
                handle = await client.start_workflow(
                    ReleaseWorkflow.run,
                    ReleaseInput(
                        service=service,
                        version="v7-bad",
                        image="registry.eu.example.com/api:v7-bad",
                        plan_text=_plan(service, namespace),
                        submitted_by="ci",
                    ),
                    id=release_id(service, "v7-bad"),
                    task_queue=queue,
                )
                status = await ended(handle)
                assert status.phase == "rolled-back", status.reason
                # The rollback happened on the cluster, and the notifications went out.
                deployment = metrics_sandbox.kube(CLUSTER).apps.read_namespaced_deployment("api", namespace)
                assert deployment.spec.template.spec.containers[0].image == "registry.eu.example.com/api:v1"
                assert {r.json().get("kind") for r in hooks.requests if r.path.startswith("/hooks/")} >= {
                    "rolled-back"
                }
                assert status.archived, "the audit record was archived"

                cli_env = {k: v for k, v in env.items() if not k.startswith("RINGMASTER_PROMETHEUS")}
                release = f"{service}:v7-bad"
                printed = {
                    "ringmaster status": _cli(cli_env, "status", release, "--output", "json"),
                    "ringmaster audit (json)": _cli(cli_env, "audit", release, "--output", "json"),
                    "ringmaster audit (markdown)": _cli(cli_env, "audit", release),
                }
                temporal = await _what_temporal_holds(client, queue)
            worker_log = log.read_bytes()

        places: dict[str, bytes] = {**temporal, "worker log": worker_log}
        places |= {name: text.encode() for name, text in printed.items()}
        archived = sorted(p for p in archive.rglob("*") if p.is_file())
        assert archived, "nothing archived"
        places |= {f"archive {p.relative_to(archive)}": p.read_bytes() for p in archived}
        for i, request in enumerate(hooks.requests):
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            places[f"webhook request {i} ({request.path.split('/')[1]})"] = (
                json.dumps(headers).encode() + b"\n" + request.body
            )
        snapshots = metrics_sandbox.kube(CLUSTER).core.list_namespaced_config_map(namespace).items
        assert snapshots, "ringmaster's snapshot ConfigMap"
        for cm in snapshots:
            places[f"ConfigMap {cm.metadata.name}"] = json.dumps(cm.data or {}).encode()

        # The audit record, from history, tells this release's story from the real cluster and
        # Prometheus: the gate's PromQL as sent, the measurement that failed it, the images.
        audited = json.loads(printed["ringmaster audit (json)"])
        assert audited["source"].startswith(f"history (workflow {handle.id}, run ")
        record = audited["record"]
        assert record["phase"] == "rolled-back"
        [end] = record["clusters"]
        assert (end["cluster"], end["state"]) == (CLUSTER, "rolled-back")
        assert end["image_before"] == end["image_after"] == "registry.eu.example.com/api:v1"
        [failed] = [g for g in record["gates"] if g["verdict"]["status"] == "failed"]
        assert failed["verdict"]["metric"] == "success-rate" and failed["verdict"]["value"] < 99
        [query] = failed["queries"]
        assert f'namespace="{namespace}",version="v7-bad"' in query["promql"]
        assert {d["stage"] for d in record["residency"]} == {"static", "live"}
        assert {(d["webhook"], d["kind"], d["outcome"]) for d in record["deliveries"]} >= {
            ("oncall", "rolled-back", "delivered"),
            ("chat", "rolled-back", "delivered"),
        }
        archived_record = json.loads(archived[0].read_bytes())
        assert archived_record["gates"] == record["gates"]

        # The scan can find what is there: the plan's namespace travels only inside payloads (base64
        # in the JSON history), the worker logged the release, and the webhooks were called at
        # their secret paths (the one place the webhook credential belongs).
        assert namespace.encode() in places[f"history of {handle.id}"]
        assert b"rolled back" in worker_log and service.encode() in worker_log
        assert all(creds["webhook"] in r.path for r in hooks.requests)
        leaks = [
            f"{where} credential in {place}"
            for where, secret in creds.items()
            for place, content in places.items()
            if any(form in content for form in _forms(secret))
        ]
        assert not leaks, leaks
