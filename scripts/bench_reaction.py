"""Reaction time of automatic rollback: first request served by a bad version -> its rollback complete.

Starts its own sandbox (one emulated EU cluster, the traffic simulator, the EU and US Prometheus), a
Temporal dev server and an in-process ringmaster worker (Kubernetes backend, ``PrometheusMetrics``),
then releases ``-bad`` versions one after another. For each run it reads when the simulator first
sent the bad version a request (``/first-served``), when the gate failed (the ``analyze`` activity
that returned ``failed``) and when the rollback completed (the ``rollback_cluster`` activity), from
the cluster workflow's history, and prints them beside Flagger's formula, interval x threshold::

    .venv/bin/python scripts/bench_reaction.py --runs 5 --interval 2s --threshold 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from activities import outcomes
from activities.kubernetes import KubernetesBackend, Tuning
from activities.prometheus import PrometheusMetrics
from policies import loading
from policies.durations import parse_duration
from ringmaster import worker
from ringmaster.converter import data_converter
from ringmaster.settings import Settings
from sandbox import stack
from sandbox import temporal as sandbox_temporal
from sandbox.processes import Processes
from workflows.models import ReleaseInput, ReleaseStatus
from workflows.release import ReleaseWorkflow, release_id

CLUSTER = "euw1-bench"
FLEET = f"""\
apiVersion: ringmaster.dev/v1
kind: Fleet
regions:
  - {{name: eu-west-1, jurisdiction: EU, timezone: Europe/Dublin, prometheus: "http://prometheus.eu.example.com:9090"}}
  - {{name: us-east-1, jurisdiction: US, timezone: America/New_York, prometheus: "http://prometheus.us.example.com:9090"}}
clusters:
  - {{name: {CLUSTER}, region: eu-west-1, kubeContext: {CLUSTER}}}
  - {{name: use1-bench, region: us-east-1, kubeContext: use1-bench}}
hosts:
  - {{match: "*.eu.example.com", jurisdiction: EU}}
  - {{match: "*.us.example.com", jurisdiction: US}}
"""
SETTINGS = """\
controller: {tickSeconds: 0.05, podReadySeconds: 0.5, progressDeadlineScale: 0.1}
prometheus: {scrapeIntervalSeconds: 1}
unleash: {enabled: false}
startupTimeoutSeconds: 60
"""
SELECT = 'cluster="{{cluster}}",namespace="{{namespace}}",version="{{version}}"'


def plan(service: str, interval: str, threshold: int) -> str:
    """One canary ring at 50%, paused long enough that only the gate ends it."""
    return yaml.safe_dump(
        {
            "apiVersion": "ringmaster.dev/v1",
            "kind": "ReleasePlan",
            "service": service,
            "workload": {"namespace": "api", "deployment": "api", "container": "api"},
            "dataResidency": {"dataClass": "none"},
            "rings": [
                {
                    "name": "canary",
                    "clusters": [CLUSTER],
                    "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "10m"}}]}},
                }
            ],
            "analysis": {
                "interval": interval,
                "threshold": threshold,
                "metrics": [
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
                ],
            },
        },
        sort_keys=False,
    )


def _first_served(traffic: str, version: str) -> float | None:
    with urllib.request.urlopen(f"{traffic}/first-served", timeout=5) as response:  # noqa: S310 - loopback
        served: dict[str, dict[str, float]] = json.loads(response.read())
    return served.get(CLUSTER, {}).get(version)


def _events(history: Any) -> tuple[float | None, float | None]:
    """When the gate failed (an analyze completion with a failed verdict) and the rollback completed."""
    scheduled: dict[int, str] = {}
    failed_at = rolled_at = None
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if event.HasField("activity_task_completed_event_attributes"):
            attributes = event.activity_task_completed_event_attributes
            kind = scheduled.get(attributes.scheduled_event_id)
            at = event.event_time.ToDatetime().timestamp()
            if kind == "analyze" and failed_at is None and b'"failed"' in attributes.result.payloads[0].data:
                failed_at = at
            if kind == "rollback_cluster":
                rolled_at = at
    return failed_at, rolled_at


async def bench(args: argparse.Namespace) -> int:
    """Run the releases and print the figures."""
    directory = Path(tempfile.mkdtemp(prefix="ringmaster-bench-"))
    (directory / "fleet-in.yaml").write_text(FLEET, encoding="utf-8")
    (directory / "sandbox.yaml").write_text(SETTINGS, encoding="utf-8")
    started = time.monotonic()
    sandbox = stack.up(directory, directory / "fleet-in.yaml")
    try:
        processes = Processes(directory)
        temporal = sandbox_temporal.start_temporal(processes)
        print(f"sandbox and Temporal up in {time.monotonic() - started:.1f}s ({directory})", flush=True)  # noqa: T201
        client = await Client.connect(str(temporal.info["address"]), data_converter=data_converter)
        await worker.ensure_search_attributes(client)
        fleet = loading.load_fleet(sandbox.fleet)
        settings = Settings(
            task_queue=f"bench-{uuid.uuid4().hex[:8]}",
            heartbeat_throttle_seconds=0.5,
            max_concurrent_activities=20,
        )
        backend = KubernetesBackend.from_kubeconfig(
            fleet, sandbox.kubeconfig, tuning=Tuning(heartbeat_seconds=0.5, ready_wait_seconds=30.0)
        )
        rows = []
        metrics = PrometheusMetrics(fleet, timeout=2)
        async with worker.build_workers(client, settings, fleet, backend=backend, metrics=metrics):
            for run in range(1, args.runs + 1):
                rows.append(await _one(client, settings.task_queue, sandbox.traffic, run, args))
        backend.close()
        metrics.close()
    finally:
        stack.down(directory)
    _report(rows, args)
    return 0


async def _one(
    client: Client, queue: str, traffic: str, run: int, args: argparse.Namespace
) -> dict[str, float]:
    service, version = f"bench{uuid.uuid4().hex[:6]}", f"r{run}-bad"
    inp = ReleaseInput(
        service=service,
        version=version,
        image=f"registry.eu.example.com/api:{version}",
        plan_text=plan(service, args.interval, args.threshold),
        submitted_by="bench",
    )
    handle = await client.start_workflow(
        ReleaseWorkflow.run, inp, id=release_id(service, version), task_queue=queue
    )
    status = await outcomes.ended(handle, ReleaseStatus)
    child = client.get_workflow_handle(f"{handle.id}:canary:{CLUSTER}")
    failed_at, rolled_at = _events(await child.fetch_history())
    first = _first_served(traffic, version)
    if first is None or failed_at is None or rolled_at is None:
        raise SystemExit(f"run {run}: incomplete measurement ({status.phase}: {status.reason})")
    row = {"detect": failed_at - first, "rollback": rolled_at - failed_at, "total": rolled_at - first}
    print(  # noqa: T201
        f"run {run}: {status.phase:12} first request -> gate failed {row['detect']:5.1f}s"
        f" -> rollback complete {row['rollback']:4.1f}s = reaction {row['total']:5.1f}s   ({status.reason})",
        flush=True,
    )
    return row


def _report(rows: list[dict[str, float]], args: argparse.Namespace) -> None:
    totals = [r["total"] for r in rows]
    flagger = parse_duration(args.interval).total_seconds() * args.threshold
    print()  # noqa: T201
    print(f"reaction time over {len(rows)} runs (interval {args.interval}, threshold {args.threshold}):")  # noqa: T201
    print(  # noqa: T201
        f"  median {statistics.median(totals):.1f}s  mean {statistics.fmean(totals):.1f}s  "
        f"min {min(totals):.1f}s  max {max(totals):.1f}s"
    )
    print(  # noqa: T201
        f"  of which detection (first request -> gate failed) median "
        f"{statistics.median(r['detect'] for r in rows):.1f}s, rollback median "
        f"{statistics.median(r['rollback'] for r in rows):.1f}s"
    )
    print(f"  Flagger's formula, interval x threshold: {flagger:.1f}s")  # noqa: T201


def main() -> int:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", default="2s", help="analysis interval")
    parser.add_argument("--threshold", type=int, default=2, help="failed checks in a row that fail the gate")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
