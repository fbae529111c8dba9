"""What the sandbox benchmarks share: a sandbox with Temporal and an in-process worker, and the
moments a cluster workflow's history records.

:func:`worker_on_sandbox` starts a sandbox of its own (``fleet`` and ``settings`` YAML in a fresh
temporary directory: emulated clusters, the traffic simulator, Prometheus, Unleash when enabled), a
Temporal dev server and an in-process ringmaster worker (Kubernetes backend, ``PrometheusMetrics``,
the sandbox's Unleash admin tokens), and takes it all down after. :func:`activity_times` reads when
the gate failed and when given activities completed, from a workflow's history.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from temporalio.client import Client

from activities.kubernetes import KubernetesBackend, Tuning
from activities.prometheus import PrometheusMetrics
from policies import loading
from ringmaster import searchattributes, worker
from ringmaster.converter import data_converter
from ringmaster.settings import Settings
from sandbox import stack
from sandbox import temporal as sandbox_temporal
from sandbox.processes import Processes

CLUSTER = "euw1-bench"
"""The cluster every benchmark release goes to (a US cluster beside it gives the US Prometheus a target)."""


def fleet(*, flags: bool) -> str:
    """The benchmarks' fleet: ``CLUSTER`` in eu-west-1 and ``use1-bench`` in us-east-1, with each
    region's flag server when ``flags`` (``sandbox up`` points them at its own Unleash)."""
    regions = [("eu-west-1", "EU", "Europe/Dublin"), ("us-east-1", "US", "America/New_York")]
    doc = {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "Fleet",
        "regions": [
            {
                "name": name,
                "jurisdiction": j,
                "timezone": tz,
                "prometheus": f"http://prometheus.{j.lower()}.example.com:9090",
                **(
                    {"flags": {"url": f"https://unleash.{j.lower()}.example.com/api", "environment": name}}
                    if flags
                    else {}
                ),
            }
            for name, j, tz in regions
        ],
        "clusters": [
            {"name": CLUSTER, "region": "eu-west-1", "kubeContext": CLUSTER},
            {"name": "use1-bench", "region": "us-east-1", "kubeContext": "use1-bench"},
        ],
        "hosts": [{"match": f"*.{j.lower()}.example.com", "jurisdiction": j} for _, j, _ in regions],
    }
    return yaml.safe_dump(doc, sort_keys=False)


SELECT = 'cluster="{{cluster}}",namespace="{{namespace}}",version="{{version}}"'
"""The selector of the version's own series in its cluster."""
VERSION_METRICS = (
    {
        "name": "success-rate",
        "query": f'100 * sum(rate(http_requests_total{{{SELECT},code!~"5.."}}[5s]))'
        f" / sum(rate(http_requests_total{{{SELECT}}}[5s]))",
        "thresholdRange": {"min": 99},
    },
    {
        "name": "latency-p99",
        "query": "1000 * histogram_quantile(0.99, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{{{SELECT}}}[5s])))",
        "thresholdRange": {"max": 500},
    },
)
"""The gate metrics of the benchmarks: the version's success rate and p99 over 5 s windows."""
GATE_FAILED = "gate-failed"
"""The key :func:`activity_times` gives the first ``analyze`` that returned a failed verdict."""


@dataclass(frozen=True)
class Bench:
    """A running sandbox with a worker: where to start releases, and the sandbox's addresses."""

    client: Client
    queue: str
    sandbox: stack.Sandbox


@asynccontextmanager
async def worker_on_sandbox(fleet: str, settings: str) -> AsyncIterator[Bench]:
    """The sandbox of ``fleet`` with ``settings`` (both YAML text), Temporal and a worker (see above)."""
    directory = Path(tempfile.mkdtemp(prefix="ringmaster-bench-"))
    (directory / "fleet-in.yaml").write_text(fleet, encoding="utf-8")
    (directory / "sandbox.yaml").write_text(settings, encoding="utf-8")
    started = time.monotonic()
    sandbox = stack.up(directory, directory / "fleet-in.yaml")
    try:
        temporal = sandbox_temporal.start_temporal(Processes(directory))
        print(f"sandbox and Temporal up in {time.monotonic() - started:.1f}s ({directory})", flush=True)  # noqa: T201
        client = await Client.connect(str(temporal.info["address"]), data_converter=data_converter)
        await searchattributes.ensure_search_attributes(client)
        loaded = loading.load_fleet(sandbox.fleet)
        tokens = {
            str(urllib.parse.urlsplit(s.url).hostname): SecretStr(s.admin_token)
            for s in sandbox.unleash.values()
        }
        tuned = Settings(
            task_queue=f"bench-{uuid.uuid4().hex[:8]}",
            heartbeat_throttle_seconds=0.5,
            max_concurrent_activities=20,
            unleash_admin_tokens=tokens,
        )
        backend = KubernetesBackend.from_kubeconfig(
            loaded, sandbox.kubeconfig, tuning=Tuning(heartbeat_seconds=0.5, ready_wait_seconds=30.0)
        )
        metrics = PrometheusMetrics(loaded, timeout=2)
        try:
            async with worker.build_workers(client, tuned, loaded, backend=backend, metrics=metrics):
                yield Bench(client, tuned.task_queue, sandbox)
        finally:
            backend.close()
            metrics.close()
    finally:
        stack.down(directory)


def activity_times(history: Any, completed: Iterable[str]) -> dict[str, float]:
    """When the gate first failed (:data:`GATE_FAILED`: an ``analyze`` completion with a failed verdict)
    and when each activity type of ``completed`` last completed, in Unix seconds, from ``history``."""
    wanted = set(completed)
    scheduled: dict[int, str] = {}
    found: dict[str, float] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if event.HasField("activity_task_completed_event_attributes"):
            attributes = event.activity_task_completed_event_attributes
            kind = scheduled.get(attributes.scheduled_event_id)
            at = event.event_time.ToDatetime().timestamp()
            failed = b'"failed"' in attributes.result.payloads[0].data
            if kind == "analyze" and failed and GATE_FAILED not in found:
                found[GATE_FAILED] = at
            if kind in wanted:
                found[str(kind)] = at
    return found


def arguments(description: str | None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """``--runs``, ``--interval`` and ``--threshold``, as every gate benchmark takes them (added to
    ``parser`` when given, for a benchmark's own options)."""
    if parser is None:
        parser = argparse.ArgumentParser(
            description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", default="2s", help="analysis interval")
    parser.add_argument("--threshold", type=int, default=2, help="failed checks in a row that fail the gate")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args
