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
import urllib.request
import uuid

import yaml

from activities import outcomes
from policies.durations import parse_duration
from scripts import _sandbox_bench
from workflows.models import ReleaseInput, ReleaseStatus
from workflows.release import ReleaseWorkflow, release_id

CLUSTER = _sandbox_bench.CLUSTER
FLEET = _sandbox_bench.fleet(flags=False)
SETTINGS = """\
controller: {tickSeconds: 0.05, podReadySeconds: 0.5, progressDeadlineScale: 0.1}
prometheus: {scrapeIntervalSeconds: 1}
unleash: {enabled: false}
startupTimeoutSeconds: 60
"""


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
                "metrics": list(_sandbox_bench.VERSION_METRICS),
            },
        },
        sort_keys=False,
    )


def _first_served(traffic: str, version: str) -> float | None:
    with urllib.request.urlopen(f"{traffic}/first-served", timeout=5) as response:  # noqa: S310 - loopback
        served: dict[str, dict[str, float]] = json.loads(response.read())
    return served.get(CLUSTER, {}).get(version)


async def bench(args: argparse.Namespace) -> int:
    """Run the releases and print the figures."""
    async with _sandbox_bench.worker_on_sandbox(FLEET, SETTINGS) as running:
        rows = [await _one(running, run, args) for run in range(1, args.runs + 1)]
    _report(rows, args)
    return 0


async def _one(running: _sandbox_bench.Bench, run: int, args: argparse.Namespace) -> dict[str, float]:
    service, version = f"bench{uuid.uuid4().hex[:6]}", f"r{run}-bad"
    inp = ReleaseInput(
        service=service,
        version=version,
        image=f"registry.eu.example.com/api:{version}",
        plan_text=plan(service, args.interval, args.threshold),
        submitted_by="bench",
    )
    handle = await running.client.start_workflow(
        ReleaseWorkflow.run, inp, id=release_id(service, version), task_queue=running.queue
    )
    status = await outcomes.ended(handle, ReleaseStatus)
    child = running.client.get_workflow_handle(f"{handle.id}:canary:{CLUSTER}")
    times = _sandbox_bench.activity_times(await child.fetch_history(), ["rollback_cluster"])
    failed_at, rolled_at = times.get(_sandbox_bench.GATE_FAILED), times.get("rollback_cluster")
    first = _first_served(running.sandbox.traffic, version)
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
    return asyncio.run(bench(_sandbox_bench.arguments(__doc__)))


if __name__ == "__main__":
    sys.exit(main())
