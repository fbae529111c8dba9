"""A release across an upgrade of ringmaster's worker: started on the previous version, finished on today's.

Given the previous tagged version (``tests/compat/previous_version.toml``) checked out in its own git
worktree with its own virtual environment (``tests.support.previous``), and the metric-gate sandbox
(emulated clusters, simulated traffic, real Prometheus) and the session's Temporal dev server:

- a real ``ringmaster worker`` process of the previous version starts a two-ring release (a canary
  in ``euw1-canary``, then a rolling update of ``euw1-prod``), judged by Prometheus;
- once the emulator shows the canary at its weight (the canary Deployment's pods available beside
  the shrunk stable), that worker is killed (SIGKILL: no hand-over, as a crashed or evicted pod);
- a ``ringmaster worker`` of today's code starts on the same task queue, replays the histories the
  old one wrote, runs what is left, and the release succeeds;
- each cluster is then as the plan says (the new image on the stable Deployment at its replicas,
  no canary left), read from the emulator; and the release's history shows activities run by both
  workers, so the old one did its part and the new one took over.

The test prints its timeline (``pytest -s`` shows it); the workers' logs are kept in ``tmp_path``.
"""

from __future__ import annotations

import signal
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from tests.support import previous, worker_process
from tests.support.prometheus import MetricsSandbox, deploy_app, served, wait_for
from tests.support.waiting import assert_eventually
from tests.workflows.support import ended
from workflows.models import ReleaseInput
from workflows.release import ReleaseWorkflow, cluster_workflow_id, release_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CANARY, BROAD = "euw1-canary", "euw1-prod"
REPLICAS = 5
WEIGHT = 40  # 2 of 5 pods


class Timeline:
    """What happened when, printed as it happens and kept for the report."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lines: list[str] = []

    def __call__(self, what: str) -> None:
        line = f"[{time.monotonic() - self.start:6.1f}s] {what}"
        self.lines.append(line)
        print(line, flush=True)  # noqa: T201  (the test's output is its report)


def _plan(service: str, namespace: str) -> str:
    """Two rings: a canary held at 40% for a while (the old worker dies there), then a rolling update."""
    steps = [{"setWeight": WEIGHT}, {"pause": {"duration": "20s"}}]
    return worker_process.gated_plan(
        service,
        namespace,
        [
            {"name": "canary", "clusters": [CANARY], "strategy": {"canary": {"steps": steps}}},
            {"name": "broad", "clusters": [BROAD], "strategy": {"rolling": {}}},
        ],
    )


def _env(client: Client, sandbox: MetricsSandbox, queue: str) -> dict[str, str]:
    """A worker's environment: the session's Temporal, the sandbox's fleet and clusters, fast heartbeats;
    nothing of this process's own virtual environment (the previous version runs in its own)."""
    base = worker_process.base_env(client, queue)
    return {
        **{k: v for k, v in base.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}},
        "RINGMASTER_FLEET": str(sandbox.directory / "fleet.yaml"),
        "RINGMASTER_KUBECONFIG": str(sandbox.kubeconfig),
        "RINGMASTER_HEARTBEAT_THROTTLE_SECONDS": "0.5",
        "RINGMASTER_ANALYSIS_HEARTBEAT_THROTTLE_SECONDS": "0.5",
    }


def _deployments(sandbox: MetricsSandbox, cluster: str, namespace: str) -> dict[str, Any]:
    """Deployment name -> (image, spec replicas, available replicas), from the emulator."""
    listed = sandbox.kube(cluster).apps.list_namespaced_deployment(namespace).items
    return {
        d.metadata.name: (
            d.spec.template.spec.containers[0].image,
            d.spec.replicas,
            d.status.available_replicas or 0,
        )
        for d in listed
    }


async def _workers_of(handle: WorkflowHandle[Any, Any]) -> set[str]:
    """The identities of the workers that started the workflow's activities."""
    history = await handle.fetch_history()
    return {
        e.activity_task_started_event_attributes.identity
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    }


class TestUpgradeMidRelease:
    async def test_a_release_started_on_the_previous_version_completes_on_todays(
        self, client: Client, metrics_sandbox: MetricsSandbox, tmp_path: Path
    ) -> None:
        timeline = Timeline()
        prev = previous.checkout()
        timeline(
            f"previous version {prev.tag} ({prev.commit[:12]}) checked out with its venv in {prev.directory}"
        )
        namespace = f"upgrade-{uuid.uuid4().hex[:6]}"
        service = namespace
        for cluster in (CANARY, BROAD):
            deploy_app(metrics_sandbox, cluster, namespace, stable="v1")
        for cluster in (CANARY, BROAD):
            await wait_for(metrics_sandbox.url(cluster), served(cluster, namespace, "v1"), 1, timeout=60)
        timeline(f"api v1 serving in {CANARY} and {BROAD}, namespace {namespace}")

        queue = f"tq-{uuid.uuid4().hex}"
        env = _env(client, metrics_sandbox, queue)
        image = f"registry.eu.example.com/api:v2-{namespace}"
        old_log, new_log = tmp_path / "worker-previous.log", tmp_path / "worker-today.log"
        with worker_process.running(env, old_log, python=prev.python, code=prev.directory) as old:
            await worker_process.polling(old, old_log, timeout=120)
            timeline(f"{prev.tag} worker polling (pid {old.pid})")
            handle = await client.start_workflow(
                ReleaseWorkflow.run,
                ReleaseInput(
                    service=service,
                    version="v2",
                    image=image,
                    plan_text=_plan(service, namespace),
                    submitted_by="ci",
                ),
                id=release_id(service, "v2"),
                task_queue=queue,
            )
            timeline(f"release {handle.id} started")
            canary_pods = round(REPLICAS * WEIGHT / 100)
            await assert_eventually(
                lambda: _at(metrics_sandbox, namespace),
                lambda d: (
                    d.get("api-canary", (None, 0, 0))[2] == canary_pods
                    and d.get("api", (None, 0, 0))[1] == REPLICAS - canary_pods
                ),
                timeout=120,
                what=f"the canary at {WEIGHT}% in {CANARY}",
            )
            timeline(f"{CANARY} at {WEIGHT}%: {await _at(metrics_sandbox, namespace)}")
            old.send_signal(signal.SIGKILL)
            old.wait(timeout=30)
            timeline(f"{prev.tag} worker killed (SIGKILL) mid-canary")

        with worker_process.running(env, new_log) as new:
            await worker_process.polling(new, new_log, timeout=120)
            timeline(f"today's worker ({version('ringmaster')}) polling (pid {new.pid})")
            status = await ended(handle)
            timeline(f"release ended: {status.phase} {status.reason}".strip())
        assert status.phase == "succeeded", status.reason

        for cluster in (CANARY, BROAD):
            found = _deployments(metrics_sandbox, cluster, namespace)
            timeline(f"{cluster}: {found}")
            assert found == {"api": (image, REPLICAS, REPLICAS)}, cluster
        assert [(c.name, c.state) for c in status.clusters] == [(CANARY, "promoted"), (BROAD, "promoted")]

        # Both workers ran activities of the canary's cluster workflow: the old one until the kill,
        # today's after it.
        cluster_handle = client.get_workflow_handle(cluster_workflow_id(service, "v2", "canary", CANARY))
        identities = await _workers_of(cluster_handle)
        pids = {i.rsplit("pid ", 1)[-1] for i in identities}
        timeline(f"{CANARY}'s activities were started by workers {sorted(identities)}")
        assert {str(old.pid), str(new.pid)} <= pids, identities
        timeline("done")
        (tmp_path / "timeline.txt").write_text("\n".join(timeline.lines) + "\n", encoding="utf-8")


async def _at(sandbox: MetricsSandbox, namespace: str) -> dict[str, Any]:
    return _deployments(sandbox, CANARY, namespace)
