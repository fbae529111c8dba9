"""Time to roll back by feature flag next to time to roll back by redeploy (canary), on the sandbox.

Starts its own sandbox (one emulated EU cluster and one US, the traffic simulator, the EU and US
Prometheus, an Unleash per jurisdiction), a Temporal dev server and an in-process ringmaster worker
(:mod:`scripts._sandbox_bench`), then alternates two kinds of bad release of Service ``api`` in
``euw1-bench``, ``--runs`` of each:

- **flag**: a good version ``rN`` lands (a rolling update, flag off), then the ring's
  ``featureFlag`` step turns ``bench-checkout-bad`` on for 50% of the cluster's users; its
  flag-on requests fail 8% and are three times slower (the default feature profile of ``*-bad``).
  The gate fails and the cluster's rollback restores the flag (Unleash's Admin API: ringmaster's
  strategy deleted, the environment off again), then the code.
- **redeploy**: a bad version ``rN-bad`` (8%, three times slower) gets a 50% canary; the gate fails
  and the rollback removes the canary.

Both judge the same metrics of the version (success rate at least 99%, p99 at most 500 ms over
``[5s]``) with the same ``--interval`` and ``--threshold``; the flag release judges its flag-on
traffic's success rate too (a flag ring must have a flag metric), so it fails on whichever metric
crosses first. The measured interval, **time to roll back**, is the same for both: from the gate's
failed verdict (the completion of the first ``analyze`` activity returning ``failed``, in the
cluster workflow's history) to the last request the traffic simulator served with the bad thing in
that cluster (``/served``: the flag switched on, or the bad version), read once nothing has been
served with it for the refresh interval and ``SETTLED`` seconds more. The flag's traffic ends when
the simulator's Unleash SDK next fetches its flags, so the figure includes the SDK's refresh interval
(``--refresh``, the sandbox's default 1 s; the SDK's own default is 15 s), printed with it::

    .venv/bin/python scripts/bench_flag_rollback.py --runs 5 --interval 2s --threshold 2
    .venv/bin/python scripts/bench_flag_rollback.py --runs 5 --refresh 15
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from typing import Any

import yaml

from activities import outcomes
from sandbox.trafficclient import TrafficClient
from scripts import _sandbox_bench
from workflows.models import ReleaseInput, ReleaseStatus
from workflows.release import ReleaseWorkflow, release_id

CLUSTER = _sandbox_bench.CLUSTER
FLAG = "bench-checkout-bad"
SETTLED = 3.0
"""Seconds without a bad request, beyond the SDK's refresh interval, after which the last one is
taken as the end of the bad traffic."""
FLEET = _sandbox_bench.fleet(flags=True)
SETTINGS = """\
controller: {{tickSeconds: 0.05, podReadySeconds: 0.5, progressDeadlineScale: 0.1}}
prometheus: {{scrapeIntervalSeconds: 1}}
traffic:
  features: [{{flag: {flag}, services: [api]}}]
  flagRefreshSeconds: {refresh}
startupTimeoutSeconds: 90
"""
"""The sandbox's settings, with the flag ``api`` evaluates and the SDK's refresh interval filled in."""
FLAG_SELECT = f'{_sandbox_bench.SELECT},feature="{{{{feature}}}}",feature_on="{{{{featureOn}}}}"'


def plan(service: str, kind: str, args: argparse.Namespace) -> str:
    """One ring in the bench cluster: a 50% canary, or the flag at 50%; paused so only the gate ends it."""
    metrics: list[dict[str, Any]] = list(_sandbox_bench.VERSION_METRICS)
    steps: list[dict[str, Any]]
    if kind == "flag":
        steps = [{"setRollout": 50}, {"pause": {"duration": "10m"}}]
        strategy: dict[str, Any] = {"featureFlag": {"flag": FLAG, "steps": steps}}
        metrics.append(
            {
                "name": "feature-success-rate",
                "query": f'100 * sum(rate(http_requests_total{{{FLAG_SELECT},code!~"5.."}}[5s]))'
                f" / sum(rate(http_requests_total{{{FLAG_SELECT}}}[5s]))",
                "thresholdRange": {"min": 99},
            }
        )
    else:
        strategy = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "10m"}}]}}
    doc = {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "ReleasePlan",
        "service": service,
        "workload": {"namespace": "api", "deployment": "api", "container": "api"},
        "dataResidency": {"dataClass": "none"},
        "rings": [{"name": "internal", "clusters": [CLUSTER], "strategy": strategy}],
        "analysis": {"interval": args.interval, "threshold": args.threshold, "metrics": metrics},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def create_flag(bench: _sandbox_bench.Bench) -> None:
    """``FLAG`` in the EU Unleash (off, no strategy): ringmaster moves flags, it never creates them."""
    eu = bench.sandbox.unleash["EU"]
    eu.admin().create(f"/api/admin/projects/{eu.project}/features", {"name": FLAG, "type": "release"})


def _last_bad(traffic: str, kind: str, version: str, refresh: int) -> float:
    """When the bad thing last served a request in the cluster, once it has stopped for ``SETTLED`` s."""
    while True:
        found = TrafficClient(traffic).served().get(CLUSTER, {})
        times = (
            found.get("features", {}).get(FLAG) if kind == "flag" else found.get("versions", {}).get(version)
        )
        if times is None:
            raise SystemExit(f"the simulator never served {FLAG if kind == 'flag' else version} in {CLUSTER}")
        if time.time() - times["last"] > refresh + SETTLED:
            return float(times["last"])
        time.sleep(0.5)


async def one(bench: _sandbox_bench.Bench, kind: str, run: int, args: argparse.Namespace) -> dict[str, float]:
    """One bad release of ``kind`` (``flag`` or ``redeploy``); its figures."""
    service = f"bench{uuid.uuid4().hex[:6]}"
    version = f"r{run}" if kind == "flag" else f"r{run}-bad"
    inp = ReleaseInput(
        service=service,
        version=version,
        image=f"registry.eu.example.com/api:{version}",
        plan_text=plan(service, kind, args),
        submitted_by="bench",
    )
    handle = await bench.client.start_workflow(
        ReleaseWorkflow.run, inp, id=release_id(service, version), task_queue=bench.queue
    )
    status = await outcomes.ended(handle, ReleaseStatus)
    undo = "restore_flag" if kind == "flag" else "rollback_cluster"
    child = bench.client.get_workflow_handle(f"{handle.id}:internal:{CLUSTER}")
    times = _sandbox_bench.activity_times(await child.fetch_history(), [undo])
    failed_at, undone_at = times.get(_sandbox_bench.GATE_FAILED), times.get(undo)
    if failed_at is None or undone_at is None:
        raise SystemExit(f"{kind} run {run}: incomplete measurement ({status.phase}: {status.reason})")
    last = await asyncio.to_thread(_last_bad, bench.sandbox.traffic, kind, version, args.refresh)
    row = {"undo": undone_at - failed_at, "total": last - failed_at}
    print(  # noqa: T201
        f"{kind:8} run {run}: {status.phase:12} gate failed -> {undo} done {row['undo']:4.1f}s"
        f" -> last bad request {row['total']:5.1f}s",
        flush=True,
    )
    return row


async def bench(args: argparse.Namespace) -> int:
    """Alternate the two kinds of release ``--runs`` times and print the figures."""
    rows: dict[str, list[dict[str, float]]] = {"flag": [], "redeploy": []}
    settings = SETTINGS.format(flag=FLAG, refresh=args.refresh)
    async with _sandbox_bench.worker_on_sandbox(FLEET, settings) as running:
        create_flag(running)
        for run in range(1, args.runs + 1):
            for kind, found in rows.items():
                found.append(await one(running, kind, run, args))
    print()  # noqa: T201
    print(  # noqa: T201
        f"time to roll back: the gate's failed verdict -> the last bad request served in {CLUSTER}, over"
        f" {args.runs} runs each (interval {args.interval}, threshold {args.threshold}; the traffic's"
        f" Unleash SDK refreshes every {args.refresh}s)"
    )
    for kind, found in rows.items():
        totals = [r["total"] for r in found]
        undo = statistics.median(r["undo"] for r in found)
        what = "flag restored" if kind == "flag" else "canary rolled back"
        print(  # noqa: T201
            f"  by {kind:8}  min {min(totals):5.1f}s  median {statistics.median(totals):5.1f}s"
            f"  max {max(totals):5.1f}s   (verdict -> {what}: median {undo:.1f}s)"
        )
    return 0


def main() -> int:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--refresh",
        type=int,
        default=1,
        help="the traffic's Unleash SDK refresh interval, s (SDK default: 15)",
    )
    return asyncio.run(bench(_sandbox_bench.arguments(__doc__, parser)))


if __name__ == "__main__":
    sys.exit(main())
