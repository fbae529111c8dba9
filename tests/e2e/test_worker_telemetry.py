"""The worker's own telemetry and health, on a real ``ringmaster worker`` process.

The worker runs with ``RINGMASTER_METRICS_PORT`` and ``RINGMASTER_HEALTH_PORT`` against real Temporal,
the sandbox's emulated clusters and real Prometheus. The sandbox's Prometheus scrapes the worker (its
``ringmaster-worker`` job, file-based discovery) while two releases run: a good version promoted in
``euw1-canary`` by a canary, a ``-bad`` one failing its gate in ``use1-prod`` and rolled back. What
the releases did is then read back from Prometheus, by the labels the docs promise. The health
endpoints answer, list every dependency, show a cluster the emulator makes unreachable as down
without making the worker unready, and readiness turns false when Temporal stops.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from sandbox import prometheus as sandbox_prometheus
from sandbox.apiserver.adminclient import AdminClient
from sandbox.processes import free_port
from tests.conftest import DEV_SERVER
from tests.support import worker_process
from tests.support.alerts import rule_names
from tests.support.prometheus import SUCCESS_RATE, MetricsSandbox
from tests.support.releases import ended, plan, start
from tests.support.waiting import assert_eventually
from workflows import search

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GOOD = plan(
    [
        {
            "name": "canary",
            "clusters": ["euw1-canary"],
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "4s"}}]}},
            "bakeTime": "4s",
        }
    ],
    [SUCCESS_RATE],
)
BAD = plan(
    [
        {
            "name": "prod",
            "clusters": ["use1-prod"],
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "30s"}}]}},
        }
    ],
    [SUCCESS_RATE],
)
DOWN = "use1-prod"


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET (an error status is an answer, not an exception)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - a loopback URL of this test
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def worker_env(
    client: Client, sandbox: MetricsSandbox, metrics_port: int, health_port: int
) -> dict[str, str]:
    """A worker on a fresh queue over the sandbox, serving metrics and health on loopback, probing fast."""
    return {
        **worker_process.base_env(client, f"tq-{uuid.uuid4().hex}"),
        "RINGMASTER_FLEET": str(sandbox.directory / "fleet.yaml"),
        "RINGMASTER_KUBECONFIG": str(sandbox.kubeconfig),
        "RINGMASTER_LISTEN_HOST": "127.0.0.1",
        "RINGMASTER_METRICS_PORT": str(metrics_port),
        "RINGMASTER_HEALTH_PORT": str(health_port),
        "RINGMASTER_HEALTH_PROBE_SECONDS": "0.5",
        "RINGMASTER_HEALTH_PROBE_TIMEOUT_SECONDS": "1",
        "RINGMASTER_HEARTBEAT_THROTTLE_SECONDS": "0.5",
        "RINGMASTER_ANALYSIS_HEARTBEAT_THROTTLE_SECONDS": "0.5",
        "RINGMASTER_GRACEFUL_SHUTDOWN_SECONDS": "1",
    }


def promql(url: str) -> Callable[[str], Any]:
    """An async probe of one instant query on the Prometheus at ``url``: the value of its one series
    (None: no series)."""

    async def value(query: str) -> float | None:
        found = sandbox_prometheus.query(url, query)
        if not found:
            return None
        sample = found[0].get("value")
        assert isinstance(sample, list)
        return float(sample[1])

    return value


class TestWorkerMetricsScrapedDuringReleases:
    async def test_prometheus_scrapes_the_releases_phases_steps_verdicts_and_rollbacks(
        self, client: Client, metrics_sandbox: MetricsSandbox, tmp_path: Path
    ) -> None:
        """Prometheus reads, from the worker, each release's end phase, the canary's steps, the gate's
        passed and failed verdicts (by metric), the rollback by its cause, the Kubernetes calls by
        cluster, the gate queries by region, each dependency up, and the SDK's own worker metrics."""
        metrics_port, health_port = free_port(), free_port()
        env = worker_env(client, metrics_sandbox, metrics_port, health_port)
        queue = env["RINGMASTER_TASK_QUEUE"]
        eu = metrics_sandbox.url("euw1-canary")
        value = promql(eu)
        sandbox_prometheus.scrape_workers(metrics_sandbox.directory, [f"127.0.0.1:{metrics_port}"])
        log = tmp_path / "worker.log"
        try:
            with worker_process.running(env, log) as proc:
                await worker_process.polling(proc, log)
                good = await start(client, queue, GOOD, "v2")
                bad = await start(client, queue, BAD, "v2-bad")
                assert (await ended(good)).phase == "succeeded"
                assert (await ended(bad)).phase == "rolled-back"

                mine = f'job="ringmaster-worker",task_queue="{queue}"'
                expected = {
                    f'sum(ringmaster_release_phases{{{mine},phase="succeeded"}})': 1,
                    f'sum(ringmaster_release_phases{{{mine},phase="rolled-back"}})': 1,
                    f'sum(ringmaster_rollbacks{{{mine},cause="gate-failed",result="ok"}})': 1,
                }
                for query, want in expected.items():
                    await assert_eventually(lambda q=query: value(q), lambda v, w=want: v == w, what=query)
                at_least_one = [
                    f'sum(ringmaster_release_phases{{{mine},phase="deploying"}})',
                    f'sum(ringmaster_cluster_steps{{{mine},strategy="canary",action="set-weight",result="ok"}})',
                    f'sum(ringmaster_cluster_rollouts{{{mine},strategy="canary",outcome="promoted"}})',
                    f'sum(ringmaster_gate_verdicts{{{mine},verdict="passed"}})',
                    f'sum(ringmaster_gate_verdicts{{{mine},metric="success-rate",verdict="failed"}})',
                    'sum(ringmaster_kubernetes_requests{job="ringmaster-worker",cluster="euw1-canary",error="none"})',
                    'sum(ringmaster_prometheus_query_latency_count{job="ringmaster-worker",region="us-east-1"})',
                    'sum(ringmaster_dependency_up{job="ringmaster-worker",kind="cluster",name="euw1-prod"})',
                    'sum(ringmaster_dependency_up{job="ringmaster-worker",kind="prometheus",name="eu-west-1"})',
                    f"sum(temporal_workflow_task_schedule_to_start_latency_count{{{mine}}})",
                    f'sum(temporal_worker_task_slots_available{{{mine},worker_type="ActivityWorker"}})',
                ]
                for query in at_least_one:
                    await assert_eventually(
                        lambda q=query: value(q), lambda v: v is not None and v >= 1, what=query
                    )

                # No release, service or version ever becomes a label: the series stay bounded.
                labels = sandbox_prometheus.query(eu, '{job="ringmaster-worker",__name__=~"ringmaster_.*"}')
                assert labels
                for series in labels:
                    shown = json.dumps(series["metric"])
                    assert "v2-bad" not in shown and "shop-" not in shown, shown

                # Every SDK metric the example alerts read is one this worker exports.
                sdk = {n for n in rule_names() if n.startswith("temporal_")}
                exported = sandbox_prometheus.query(
                    eu, 'count by (__name__) ({job="ringmaster-worker",__name__=~"temporal_.*"})'
                )
                names = {str(s["metric"]["__name__"]) for s in exported or []}
                stripped = {
                    n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for n in names
                }
                assert sdk <= stripped, sdk - stripped
        finally:
            sandbox_prometheus.scrape_workers(metrics_sandbox.directory, [])


class TestWorkerHealth:
    async def test_an_unreachable_cluster_shows_in_the_verbose_endpoint_and_leaves_the_worker_ready(
        self, client: Client, metrics_sandbox: MetricsSandbox, tmp_path: Path
    ) -> None:
        """/livez and /readyz answer 200; with one cluster's API server dropping every connection,
        /readyz?verbose lists it down with its error and check time, every other dependency up, no
        credential, and the worker still ready; once it answers again it is listed up."""
        metrics_port, health_port = free_port(), free_port()
        env = worker_env(client, metrics_sandbox, metrics_port, health_port)
        health = f"http://127.0.0.1:{health_port}"
        log = tmp_path / "worker.log"
        admin = AdminClient(metrics_sandbox.apiserver)
        with worker_process.running(env, log) as proc:
            await worker_process.polling(proc, log)
            assert get(f"{health}/livez") == (200, "ok\n")

            async def ready() -> tuple[int, str]:
                return get(f"{health}/readyz")

            await assert_eventually(ready, lambda a: a == (200, "ready\n"), what="/readyz")

            async def verbose() -> dict[str, Any]:
                status, body = get(f"{health}/readyz?verbose")
                document: dict[str, Any] = json.loads(body)
                document["status"] = status
                return document

            def listed(document: dict[str, Any], up: bool) -> bool:
                clusters = {d["name"]: d for d in document["dependencies"] if d["kind"] == "cluster"}
                return clusters[DOWN]["up"] is up

            fault = admin.add_fault(DOWN, drop=True)
            try:
                down = await assert_eventually(verbose, lambda d: listed(d, up=False), what=f"{DOWN} down")
            finally:
                admin.remove_fault(DOWN, fault["id"])
            assert down["status"] == 200 and down["ready"] is True, down
            entry = next(d for d in down["dependencies"] if d["name"] == DOWN)
            assert entry["error"] and entry["checkedAt"], entry
            others = [d for d in down["dependencies"] if d["name"] != DOWN]
            assert {(d["kind"], d["name"]) for d in others} == {
                ("cluster", "euw1-canary"),
                ("cluster", "euw1-prod"),
                ("prometheus", "eu-west-1"),
                ("prometheus", "us-east-1"),
            }
            assert all(d["up"] for d in others), others
            assert down["temporal"]["up"] and down["temporal"]["lastPoll"], down["temporal"]
            assert "token" not in json.dumps(down).lower()
            assert get(f"http://127.0.0.1:{metrics_port}/metrics")[0] == 200
            metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")[1]
            assert f'ringmaster_dependency_up{{kind="cluster",name="{DOWN}"' in metrics
            # The probes' dropped requests are counted as Kubernetes calls that reached no server.
            assert f'ringmaster_kubernetes_requests{{cluster="{DOWN}",error="unreachable"' in metrics

            await assert_eventually(verbose, lambda d: listed(d, up=True), what=f"{DOWN} up again")
            assert proc.poll() is None

    async def test_readiness_turns_false_when_temporal_stops(
        self, metrics_sandbox: MetricsSandbox, tmp_path: Path
    ) -> None:
        """A worker whose Temporal is gone says not ready, naming Temporal, while it still lives."""
        env_ = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(DEV_SERVER),
            search_attributes=search.ALL,
            dev_server_log_level="error",
        )
        stopped = False
        try:
            metrics_port, health_port = free_port(), free_port()
            env = worker_env(env_.client, metrics_sandbox, metrics_port, health_port)
            health = f"http://127.0.0.1:{health_port}"
            log = tmp_path / "worker.log"
            with worker_process.running(env, log) as proc:
                await worker_process.polling(proc, log)

                async def ready() -> tuple[int, str]:
                    return get(f"{health}/readyz")

                await assert_eventually(ready, lambda a: a[0] == 200, what="ready")
                await env_.shutdown()
                stopped = True
                _, body = await assert_eventually(ready, lambda a: a[0] == 503, what="not ready")
                assert "Temporal did not answer" in body, body
                assert get(f"{health}/livez") == (200, "ok\n")
                assert proc.poll() is None
        finally:
            if not stopped:
                await env_.shutdown()
