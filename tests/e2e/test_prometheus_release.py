"""Releases on real Temporal, real Prometheus, the emulated clusters and their simulated traffic.

The worker is ringmaster's own, with the Kubernetes backend on the sandbox's kubeconfig and
``PrometheusMetrics`` on the sandbox fleet: a good version is promoted through both rings, a
``-bad`` one fails its gate in the first ring and is rolled back by itself, and a Prometheus
outage holds a release until its data returns.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from temporalio.client import Client

from activities.kubernetes import KubernetesBackend, Tuning
from activities.prometheus import PrometheusMetrics
from ringmaster import worker
from ringmaster.settings import Settings
from tests.support.prometheus import METRICS, SUCCESS_RATE, MetricsSandbox
from tests.support.releases import ended, plan, start
from tests.support.waiting import assert_eventually
from workflows.models import AbortRequest, ReleaseStatus
from workflows.release import ReleaseWorkflow
from workflows.undo import UndoInput, UndoWorkflow, undo_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


SHORT_PLAN = plan(
    [
        {
            "name": "canary",
            "clusters": ["euw1-canary"],
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "4s"}}]}},
            "bakeTime": "4s",
        },
        {
            "name": "prod",
            "clusters": ["euw1-prod", "use1-prod"],
            "maxParallel": 2,
            "strategy": {"rolling": {}},
            "bakeTime": "4s",
        },
    ],
    METRICS,
)


@asynccontextmanager
async def release_worker(client_: Client, sandbox: MetricsSandbox) -> AsyncIterator[str]:
    """Ringmaster's worker over the sandbox's clusters and Prometheus; yields its task queue."""
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}",
        max_concurrent_activities=20,
        heartbeat_throttle_seconds=0.5,
        analysis_heartbeat_throttle_seconds=0.5,
    )
    tuning = Tuning(heartbeat_seconds=0.5, ready_wait_seconds=30.0, read_timeout=10.0)
    backend = KubernetesBackend.from_kubeconfig(sandbox.fleet, sandbox.kubeconfig, tuning=tuning)
    metrics = PrometheusMetrics(sandbox.fleet, timeout=2)
    async with worker.build_workers(client_, settings, sandbox.fleet, backend=backend, metrics=metrics):
        yield settings.task_queue
    backend.close()
    metrics.close()


def versions(sandbox: MetricsSandbox, clusters: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Per cluster: the ``api`` Deployment's pod version label, and the Deployments in namespace ``api``."""
    found = {}
    for name in clusters:
        apps = sandbox.kube(name).apps
        deployment = apps.read_namespaced_deployment("api", "api")
        names = sorted(d.metadata.name for d in apps.list_namespaced_deployment("api").items)
        found[name] = (deployment.spec.template.metadata.labels["ringmaster.dev/version"], names)
    return found


CLUSTERS = ["euw1-canary", "euw1-prod", "use1-prod"]


class TestAutomaticRollback:
    async def test_a_good_version_is_promoted_and_a_bad_one_rolled_back(
        self, client: Client, metrics_sandbox: MetricsSandbox
    ) -> None:
        """v2 passes every gate through both rings; v3-bad fails in the first ring and rolls back alone."""
        async with release_worker(client, metrics_sandbox) as queue:
            good = await start(client, queue, SHORT_PLAN, "v2")
            status = await ended(good)
            assert status.phase == "succeeded", status.reason
            assert versions(metrics_sandbox, CLUSTERS) == {c: ("v2", ["api"]) for c in CLUSTERS}
            for cluster in status.clusters:
                assert cluster.gate is not None and cluster.gate.status == "passed"

            bad = await start(client, queue, SHORT_PLAN, "v3-bad")
            status = await ended(bad)
        assert status.phase == "rolled-back", status.reason
        failed = status.cluster("euw1-canary")
        assert failed.state == "rolled-back" and failed.gate is not None
        assert failed.gate.status == "failed" and failed.gate.metric in ("success-rate", "latency-p99")
        assert failed.gate.value is not None and failed.gate.bound in (">= 99", "<= 500")
        assert failed.gate.metric in status.reason and failed.gate.bound in status.reason
        assert {c.name: c.state for c in status.clusters if c.name != "euw1-canary"} == {
            "euw1-prod": "pending",
            "use1-prod": "pending",
        }
        assert versions(metrics_sandbox, CLUSTERS) == {c: ("v2", ["api"]) for c in CLUSTERS}


class TestOutage:
    async def test_prometheus_stopped_mid_stretch_holds_then_the_release_continues(
        self, client: Client, metrics_sandbox: MetricsSandbox
    ) -> None:
        """Errors while Prometheus is down hold the release (reason shown); it goes on once data returns.

        The version never errs: right after the restart a 5 s rate covers only a second or two of
        requests, where one error of the default 0.1 % is already 98 % success, a fair failure of
        the gate, and not what this test is about.
        """
        rings = [
            {
                "name": "canary",
                "clusters": ["euw1-canary"],
                "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "6s"}}]}},
            }
        ]
        async with release_worker(client, metrics_sandbox) as queue:
            handle = await start(client, queue, plan(rings, [SUCCESS_RATE], interval="1s"), "v4-flawless")

            async def status() -> ReleaseStatus:
                return await handle.query(ReleaseWorkflow.status)

            def judging(s: ReleaseStatus) -> bool:
                c = next((c for c in s.clusters if c.name == "euw1-canary"), None)
                return (
                    c is not None
                    and "pause" in c.step
                    and any(m.value is not None for check in c.measurements for m in check.measurements)
                )

            await assert_eventually(status, judging, timeout=40, what="analysis with data during the pause")
            record = metrics_sandbox.stop_prometheus("EU")
            try:
                held = await assert_eventually(
                    status, lambda s: s.phase == "holding", timeout=20, what="a gate hold"
                )
                step = held.cluster("euw1-canary").step
                assert "gate inconclusive in euw1-canary" in step and "unreachable" in step
            finally:
                metrics_sandbox.start_prometheus(record)
            await assert_eventually(
                status, lambda s: s.phase != "holding", timeout=30, what="the hold lifted"
            )
            final = await ended(handle)
        assert final.phase == "succeeded", final.reason
        assert versions(metrics_sandbox, ["euw1-canary"])["euw1-canary"] == ("v4-flawless", ["api"])


class TestChangesThatCannotBeUndone:
    async def test_a_bad_version_is_held_where_it_stands_then_left_by_an_abort_and_undone_on_request(
        self, client: Client, metrics_sandbox: MetricsSandbox
    ) -> None:
        """Under ``rollback: {mode: freeze}`` a failing gate on real Prometheus holds the canary in the
        cluster; an abort ends the release with the canary still there; ``ringmaster rollback`` (the
        undo, a person's explicit choice) then restores the cluster exactly."""
        rings = [
            {
                "name": "canary",
                "clusters": ["euw1-canary"],
                "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1h"}}]}},
            }
        ]
        stable, _ = versions(metrics_sandbox, ["euw1-canary"])["euw1-canary"]
        async with release_worker(client, metrics_sandbox) as queue:
            handle = await start(client, queue, plan(rings, METRICS, mode="freeze"), "v5-bad")

            async def status() -> ReleaseStatus:
                return await handle.query(ReleaseWorkflow.status)

            held = await assert_eventually(
                status,
                lambda s: s.phase == "holding" and "rollback.mode: freeze" in s.hold_reason,
                timeout=60,
                what="the release held by its failed gate",
            )
            gate = held.cluster("euw1-canary").gate
            assert gate is not None and gate.status == "failed"
            assert versions(metrics_sandbox, ["euw1-canary"])["euw1-canary"] == (
                stable,
                ["api", "api-canary"],
            )

            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="fix forward", by="bob"))
            record = await ended(handle)
            assert record.phase == "aborted" and "nothing rolled back" in record.reason
            assert record.cluster("euw1-canary").state == "left-in-place"
            assert versions(metrics_sandbox, ["euw1-canary"])["euw1-canary"] == (
                stable,
                ["api", "api-canary"],
            )

            undone = await client.execute_workflow(
                UndoWorkflow.run,
                UndoInput(release_workflow_id=handle.id, by="bob", reason="the fix forward failed"),
                id=undo_id(record.service, record.version),
                task_queue=queue,
            )
        assert undone.phase == "restored", undone.problem
        assert versions(metrics_sandbox, ["euw1-canary"])["euw1-canary"] == (stable, ["api"])
