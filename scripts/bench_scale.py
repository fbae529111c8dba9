"""N releases at once on the sandbox stack: correctness, decision latency, queue latency, cost.

    .venv/bin/python scripts/bench_scale.py --releases 10 --releases 50
    .venv/bin/python scripts/bench_scale.py --releases 10 --workers 2 --json scale.json

For each N a fresh stack (:mod:`scripts._scale_stack`: the example fleet's seven emulated clusters
with N services seeded in each, traffic, a Prometheus per jurisdiction, the OIDC issuer, identity
``trusted``, a Temporal dev server with a metrics port) and ``ringmaster worker`` processes: one, or
two sharing the task queues with the first killed by SIGKILL halfway (once half the releases'
cluster workflows have started). Each release is a different service in its own namespace, under
the demo plan (``deploy/examples/demo-plan.yaml``: three rings, canary steps, a blue-green ring
behind a four-eyes approval, gates on the sandbox Prometheus, 5 s bakes), submitted through the
service's lane as ``ringmaster submit`` does; the bench approves each beta ring as a second person
as soon as it waits, and counts the approval as a decision.

Per N it prints: releases finished and their phases; cluster steps lost or applying two distinct
spec changes (each ``apply_step`` of every cluster workflow against the emulator's request and
change logs, and every promoted cluster's workload read back); decision latency (a gate verdict or
an approval to the next cluster change being scheduled, from the histories); schedule-to-start per
task queue; wall time beside the plan's configured waits; each worker's CPU and peak RSS; events and
billable actions per cluster, heartbeats included (the server's ``service_requests`` metric). Beside
it, the raw engine (trivial workflows with as many activities and timers per release, same server)
and, once per run, a bake judged with a timer per poll (10 minutes and 4 hours at a 1 minute
interval, on the time-skipping server) against ringmaster's single heartbeating stretch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from ringmaster.converter import data_converter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities import outcomes  # noqa: E402
from policies import loading  # noqa: E402
from policies import schedule as scheduling  # noqa: E402
from scripts import _engine, _scale_checks, _scale_stack  # noqa: E402
from scripts._scale_checks import Run  # noqa: E402
from scripts._scale_stack import VERSION, Bench, image, workload  # noqa: E402
from workflows import search  # noqa: E402
from workflows.lane import ReleaseLaneWorkflow, lane_id  # noqa: E402
from workflows.models import ApproveRequest, LaneState, ReleaseInput, ReleaseStatus, SubmitRequest  # noqa: E402
from workflows.release import ReleaseWorkflow  # noqa: E402

DEMO_PLAN = ROOT / "deploy" / "examples" / "demo-plan.yaml"
SUBMITTER, APPROVER = "bench-ci", "bench-approver"
TIMER_BAKES = ((600.0, "10m"), (4 * 3600.0, "4h"))
POLL_INTERVAL = 60.0
CLUSTERS = 7
"""Clusters of the example fleet, each release's cluster workflows."""
STACK_PROCESSES = ("temporal", "apiserver", "traffic")
"""Processes of the stack whose CPU is reported beside the workers'."""


def say(text: str = "") -> None:
    """Print a line of the report now."""
    print(text, flush=True)  # noqa: T201


# --- services and the plan ------------------------------------------------------------------------


def plan_text(service: str) -> str:
    """The demo plan for ``service``: its workload, and gate queries scoped to its namespace."""
    plan = yaml.safe_load(DEMO_PLAN.read_text(encoding="utf-8"))
    plan["service"] = service
    plan["workload"] = workload(service)
    for metric in plan["analysis"]["metrics"]:
        metric["query"] = metric["query"].replace(
            'cluster="{{cluster}}",', 'cluster="{{cluster}}",namespace="{{namespace}}",'
        )
    return yaml.safe_dump(plan, sort_keys=False)


def configured_waits(fleet_path: Path) -> float:
    """Seconds a release of the plan must wait by configuration: pauses wave after wave, blue-green
    scale-down delays, bakes (approvals and gate warm-up not included)."""
    plan = loading.parse_plan(plan_text("svc-000"), "demo-plan.yaml")
    built = scheduling.build(plan, loading.load_fleet(fleet_path), VERSION)
    waits = built.minimum_duration
    for ring in built.rings:
        if ring.strategy.blue_green is not None:
            waits += timedelta(seconds=ring.strategy.blue_green.scale_down_delay_seconds) * len(ring.waves)
    return waits.total_seconds()


# --- one run ---------------------------------------------------------------------------------------


async def submit(bench: Bench, service: str) -> str:
    """Start ``service``'s release through its lane, as ``ringmaster submit`` does; its workflow id."""
    inp = ReleaseInput(
        service=service,
        version=VERSION,
        image=image(service, VERSION),
        plan_text=plan_text(service),
        plan_source="demo-plan.yaml",
        submitted_by=SUBMITTER,
        submitted_identity="bench_scale",
    )
    result = await bench.client.execute_update_with_start_workflow(
        ReleaseLaneWorkflow.submit,
        SubmitRequest(release=inp),
        start_workflow_operation=WithStartWorkflowOperation(
            ReleaseLaneWorkflow.run,
            LaneState(service=service),
            id=lane_id(service),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue="ringmaster",
        ),
    )
    return result.workflow_id


async def approver(bench: Bench, run: Run, ids: dict[str, str], done: asyncio.Event) -> None:
    """Approve each release's beta ring as a second person once it waits. With two workers, kill the
    first halfway: once half the releases' cluster workflows have started (mid-fleet, in beta or broad)."""
    waiting = f"WorkflowType = 'ReleaseWorkflow' AND {search.PHASE.name} = 'awaiting-approval'"
    children = "WorkflowType = 'ClusterRolloutWorkflow'"
    wanted = set(ids.values())
    while not done.is_set():
        found = [w.id async for w in bench.client.list_workflows(waiting) if w.id in wanted]
        for workflow_id in found:
            if workflow_id in run.approved:
                continue
            handle = bench.client.get_workflow_handle_for(ReleaseWorkflow.run, workflow_id)
            with contextlib.suppress(Exception):  # not waiting yet, or refused: asked again next round
                await handle.execute_update(ReleaseWorkflow.approve, ApproveRequest(ring="beta", by=APPROVER))
                run.approved.add(workflow_id)
        if run.workers > 1 and run.killed_at is None:
            started = (await bench.client.count_workflows(children)).count
            if started * 2 >= run.n * CLUSTERS:
                record = bench.processes.running().get("worker-1")
                if record is not None:
                    os.killpg(record.pgid, signal.SIGKILL)
                run.killed_at = time.monotonic() - run.started
                say(
                    f"   killed worker-1 (SIGKILL) at {run.killed_at:.0f}s, with {started} of"
                    f" {run.n * CLUSTERS} cluster workflows started"
                )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=1.0)


async def release_all(bench: Bench, n: int, workers: int, limit: float) -> dict[str, Any]:
    """Release every service of ``bench`` at once with ``workers`` worker processes; every figure."""
    services = bench.services
    run = Run(n=n, workers=workers, services=services)
    names = [f"worker-{i}" for i in range(1, workers + 1)]
    records = [await asyncio.to_thread(_scale_stack.start_worker, bench, name) for name in names]
    running = bench.processes.running()
    stack = {name: running[name].pid for name in STACK_PROCESSES if name in running}
    sampler = _scale_stack.Sampler({**{r.name: r.pid for r in records}, **stack})
    sampler.start()
    beats_before = _scale_stack.heartbeats(bench.metrics_url)
    run.started = time.monotonic()
    gate = asyncio.Semaphore(20)

    async def one(service: str) -> str:
        async with gate:
            return await submit(bench, service)

    ids = dict(zip(services, await asyncio.gather(*(one(s) for s in services)), strict=True))
    say(f"   {n} releases submitted in {time.monotonic() - run.started:.1f}s")
    done = asyncio.Event()
    approving = asyncio.create_task(approver(bench, run, ids, done))
    try:

        async def result(service: str) -> None:
            handle = bench.client.get_workflow_handle_for(ReleaseWorkflow.run, ids[service])
            run.statuses[service] = await outcomes.ended(handle, ReleaseStatus)

        await asyncio.wait_for(asyncio.gather(*(result(s) for s in services)), timeout=limit)
    except TimeoutError:
        say(f"   timed out after {limit:.0f}s: {n - len(run.statuses)} releases still running")
    finally:
        done.set()
        await approving
    wall = time.monotonic() - run.started
    sampler.stop()
    beats = _scale_stack.heartbeats(bench.metrics_url) - beats_before
    for name in names:
        await asyncio.to_thread(bench.processes.stop, name, grace=5.0)
    await asyncio.to_thread(bench.log.poll)
    figures = await _scale_checks.measure(bench, run, ids)
    figures["wall_seconds"] = wall
    figures["heartbeats"] = beats
    figures["workers"] = {
        name: {
            "cpu_seconds": s.get("cpu", 0.0),
            "cores": s.get("cpu", 0.0) / wall if wall else 0.0,
            "peak_rss_mb": s.get("hwm", 0.0),
            "killed": run.killed_at is not None and name == "worker-1",
        }
        for name, s in sampler.seen.items()
        if name in names
    }
    figures["stack_cpu_seconds"] = {name: sampler.seen[name].get("cpu", 0.0) for name in stack}
    figures["load_average"] = sum(sampler.loads) / len(sampler.loads) if sampler.loads else 0.0
    figures["reasons"] = sorted(
        {f"{st.phase}: {st.reason}" for st in run.statuses.values() if st.phase != "succeeded"}
    )
    figures["killed_at"] = run.killed_at
    return figures


# --- report ----------------------------------------------------------------------------------------


def report(label: str, f: dict[str, Any], waits: float) -> None:
    """Print one N's figures."""
    clusters = f["releases"] * CLUSTERS
    phases = ", ".join(f"{p} {c}" for p, c in sorted(f["phases"].items())) or "none"
    say(f"== {label} ==")
    say(f"releases          {f['finished']}/{f['releases']} finished: {phases} ({f['approved']} approvals)")
    say(
        f"correctness       lost steps {len(f['lost'])}, duplicated changes {len(f['duplicated'])}"
        f"  ({f['steps_checked']} completed apply_step checked; {f['writes']} writes,"
        f" {f['spec_changes']} spec changes while they ran)"
    )
    for line in (f["lost"] + f["duplicated"] + f["reasons"])[:10]:
        say(f"                    {line}")
    d = f["decisions"]
    kinds = "; ".join(
        f"{k} n={q['count']} p50 {q['p50']:.2f}s p99 {q['p99']:.2f}s"
        for k, q in f["decisions_by_kind"].items()
    )
    say(
        f"decision latency  n={d['count']} p50 {d['p50']:.2f}s p99 {d['p99']:.2f}s"
        f" max {d['max']:.2f}s  ({kinds})"
    )
    say("schedule-to-start")
    for queue, q in f["schedule_to_start"].items():
        say(f"  {queue:<44} n={q['count']:<6} p50 {q['p50']:.3f}s p99 {q['p99']:.3f}s max {q['max']:.3f}s")
    w = f["release_wall"]
    say(
        f"wall time         run {f['wall_seconds']:.0f}s; release p50 {w['p50']:.0f}s max {w['max']:.0f}s"
        f" vs {waits:.0f}s of configured waits (x{w['p50'] / waits:.2f} at p50)"
    )
    for name, s in f["workers"].items():
        killed = " (killed halfway)" if s["killed"] else ""
        say(
            f"{name:<17} cpu {s['cpu_seconds']:.1f}s = {s['cores']:.2f} cores over the run,"
            f" peak RSS {s['peak_rss_mb']:.0f} MB{killed}"
        )
    others = ", ".join(f"{name} {cpu:.0f}s" for name, cpu in f["stack_cpu_seconds"].items())
    say(f"stack cpu         {others}; machine load average {f['load_average']:.1f} (2 cores, shared)")
    b = f["billable"]
    actions = sum(b.values()) + f["heartbeats"]
    parts = ", ".join(
        f"{k} {b.get(k, 0) / clusters:.1f}"
        for k in (
            "starts",
            "activities",
            "timers",
            "children",
            "signals",
            "updates",
            "upserts",
            "patch upserts",
        )
    )
    say(
        f"per cluster       {f['events_per_cluster']:.1f} events; {actions / clusters:.1f} billable actions"
        f" ({parts}, heartbeats {f['heartbeats'] / clusters:.1f})"
    )
    if "raw" in f:
        r = f["raw"]
        ours = (f["activities"] + f["timers"]) / f["wall_seconds"]
        say(
            f"raw engine        {r['workflows']} workflows x"
            f" ({r['activities']} activities + {r['timers']} timers):"
            f" {r['steps']} steps in {r['seconds']:.1f}s = {r['steps'] / r['seconds']:.0f} steps/s"
            f"  (ringmaster: {f['activities'] + f['timers']} steps in {f['wall_seconds']:.0f}s"
            f" = {ours:.1f} steps/s, bounded by its waits)"
        )
    say()


def summary(rows: list[tuple[str, dict[str, Any]]], waits: float) -> None:
    """One line per run, the figures side by side."""
    say(
        f"{'run':<28} {'done':>6} {'lost':>5} {'dup':>4} {'dec p50':>8} {'dec p99':>8} {'wall':>6}"
        f" {'rel p50':>8} {'waits':>6} {'cpu':>7} {'rss MB':>7} {'ev/cl':>6} {'act/cl':>7}"
    )
    for label, f in rows:
        clusters = f["releases"] * CLUSTERS
        cpu = sum(w["cpu_seconds"] for w in f["workers"].values())
        rss = max((w["peak_rss_mb"] for w in f["workers"].values()), default=0.0)
        actions = (sum(f["billable"].values()) + f["heartbeats"]) / clusters
        say(
            f"{label:<28} {f['finished']:>3}/{f['releases']:<2} {len(f['lost']):>5} {len(f['duplicated']):>4}"
            f" {f['decisions']['p50']:>7.2f}s {f['decisions']['p99']:>7.2f}s {f['wall_seconds']:>5.0f}s"
            f" {f['release_wall']['p50']:>7.0f}s {waits:>5.0f}s {cpu:>6.0f}s {rss:>7.0f}"
            f" {f['events_per_cluster']:>6.1f} {actions:>7.1f}"
        )


async def timer_per_poll() -> dict[str, dict[str, int]]:
    """Events of a bake with a timer per poll, at each of :data:`TIMER_BAKES`, on the time-skipping server."""
    # The test server lacks a capability the SDK warns about at every worker start: only errors here.
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=data_converter,
        runtime=Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet))),
    )
    try:
        found = {}
        for seconds, label in TIMER_BAKES:
            events, polls = await _engine.polling_gate_events(env.client, seconds, POLL_INTERVAL)
            found[label] = {"events": events, "polls": polls}
        return found
    finally:
        await env.shutdown()


async def scale(
    directory: Path, releases: list[int], workers: int, *, raw: bool = True, limit: float = 1800.0
) -> tuple[float, list[tuple[str, dict[str, Any]]]]:
    """For each N of ``releases``, a stack with N services under ``directory``, every service released
    at once, the stack stopped; the plan's configured waits, and each run's label and figures (what
    ``tests/e2e/test_bench_scale.py`` calls)."""
    rows: list[tuple[str, dict[str, Any]]] = []
    waits = configured_waits(_scale_stack.FLEET)
    for n in releases:
        label = f"N={n}, {workers} worker" + ("s, one killed" if workers > 1 else "")
        say(f"-- {label}")
        started = time.monotonic()
        stack = await _scale_stack.up(directory / f"n{n}", n)
        say(f"   stack with {n} services up in {time.monotonic() - started:.0f}s ({directory / f'n{n}'})")
        try:
            figures = await release_all(stack, n, workers, limit)
            if raw:
                per = max(1, round(figures["activities"] / n)), max(1, round(figures["timers"] / n))
                steps, seconds = await _engine.raw_engine(stack.client, n, *per)
                figures["raw"] = {
                    "workflows": n,
                    "activities": per[0],
                    "timers": per[1],
                    "steps": steps,
                    "seconds": seconds,
                }
        finally:
            await asyncio.to_thread(_scale_stack.down, stack)
        report(label, figures, waits)
        rows.append((label, figures))
    return waits, rows


async def bench(args: argparse.Namespace) -> int:
    """Run every N asked for and print the figures."""
    directory = Path(args.dir or tempfile.mkdtemp(prefix="ringmaster-scale-"))
    waits, rows = await scale(
        directory, args.releases, args.workers, raw=not args.skip_raw, limit=args.timeout
    )
    timers: dict[str, dict[str, int]] = {}
    if not args.skip_timers:
        timers = await timer_per_poll()
        bake = next((f["bake_stretch_events"] for _, f in rows if f["bake_stretch_events"]["count"]), None)
        ours = f"{bake['p50']:.0f} events per cluster (p50 of {bake['count']})" if bake else "not measured"
        say(f"timer-per-poll gate at a {POLL_INTERVAL:.0f}s interval (time-skipping server):")
        for label, t in timers.items():
            say(f"  {label:>4} bake: {t['polls']} polls, {t['events']} events")
        say(f"  ringmaster's single stretch, whatever the bake's length: {ours}, plus the ring's timer")
        say()
    summary(rows, waits)
    if args.json:
        document = {"configured_waits": waits, "runs": dict(rows), "timer_per_poll": timers}
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(document, indent=2))
    bad = any(f["lost"] or f["duplicated"] or f["finished"] < f["releases"] for _, f in rows)
    return 1 if bad else 0


def main() -> int:
    """Parse the options and run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--releases", type=int, action="append", help="N concurrent releases (repeatable)")
    parser.add_argument(
        "--workers", type=int, choices=(1, 2), default=1, help="2: the first is killed halfway"
    )
    parser.add_argument("--skip-raw", action="store_true", help="no raw-engine comparison")
    parser.add_argument("--skip-timers", action="store_true", help="no timer-per-poll comparison")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds each N may take")
    parser.add_argument("--dir", help="where the stack lives (default: a new temporary directory)")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    args.releases = args.releases or [10]
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
