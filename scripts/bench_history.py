"""Print how a release's histories grow with its fleet: events and bytes of the parent and of each child.

    .venv/bin/python scripts/bench_history.py --clusters 7 --clusters 50 --clusters 200 [--bake 2s]
    .venv/bin/python scripts/bench_history.py --clusters 1000 --emulator --breakdown
    .venv/bin/python scripts/bench_history.py --clusters 7 --bake 10m --interval 1m

For each N, one release of a three-ring plan (internal: 1 cluster, beta: a tenth, broad: the rest,
``maxParallel`` 50, rolling updates judged by two gates at a 1 s interval or ``--interval``, no bake
unless ``--bake``)
runs on a fresh Temporal dev server with the real workflows and worker, over a generated fleet of N
clusters in four regions (:func:`sandbox.fleets.generated`): file-backed fake clusters, or with
``--emulator`` the sandbox's Kubernetes emulator reached by the real Kubernetes activities; the
gates read the fake metrics source. It prints the parent's and the largest child's history in events
and bytes (the events' protobuf encoding, what Temporal's limits count), per cluster, beside
Temporal's warnings (10,240 events and 10 MB per history), and the billable actions per cluster:
those the histories record, and the heartbeats that reached the server (billed too, in no history:
counted from the dev server's ``service_requests`` metric, with the worker's production heartbeat
settings). ``--breakdown`` adds the parent's events and bytes by event type.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ringmaster.converter import data_converter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities import outcomes  # noqa: E402
from activities.kubernetes import KubernetesBackend  # noqa: E402
from activities.rollout import ClusterBackend  # noqa: E402
from policies import loading  # noqa: E402
from policies.fleet import Fleet  # noqa: E402
from ringmaster import worker  # noqa: E402
from ringmaster.settings import Settings  # noqa: E402
from sandbox import fleets, stack  # noqa: E402
from sandbox.processes import free_port  # noqa: E402
from scripts import _histories, _scale_stack  # noqa: E402
from tests.support.fakes import FakeMetrics, FileClusterBackend  # noqa: E402
from tests.workflows import support  # noqa: E402
from workflows import search  # noqa: E402
from workflows.models import ReleaseInput, ReleaseStatus  # noqa: E402
from workflows.release import ReleaseWorkflow, release_id  # noqa: E402

WARN_EVENTS, WARN_BYTES = 10_240, 10 * 1024 * 1024


def plan_yaml(service: str, bake: str = "", interval: str = "1s") -> str:
    """Three rings by audience, rolling, ``maxParallel`` 50, the tests' two gates at a 1 s interval;
    with ``bake``, each ring bakes that long (every promoted cluster judged by a stretch of its own)."""
    rings = [
        {
            "name": name,
            "clusterSelector": {"audience": audience},
            "strategy": {"rolling": {}},
            "maxParallel": 50,
            **({"bakeTime": bake} if bake else {}),
        }
        for name, audience in (("internal", "internal"), ("beta", "beta"), ("broad", "public"))
    ]
    return support.plan(service, rings, interval=interval)


BREAKDOWN: dict[str, list[int]] = {}
"""With ``--breakdown``: the parent's events and bytes by event type, over every N measured."""


async def _size(client: Client, workflow_id: str, *, breakdown: bool = False) -> tuple[int, int, int]:
    """A workflow's history: events, bytes (the events' protobuf encoding, what Temporal's size limits
    count), and the billable actions it records."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    actions = sum(_histories.billable(history).values())
    if breakdown:
        for e in history.events:
            kind = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower()
            row = BREAKDOWN.setdefault(kind, [0, 0])
            row[0] += 1
            row[1] += e.ByteSize()
    return len(history.events), sum(e.ByteSize() for e in history.events), actions


FAST_SANDBOX = """\
controller: {tickSeconds: 0.2, podReadySeconds: 0.1, progressDeadlineScale: 0.05}
prometheus: {enabled: false}
unleash: {enabled: false}
startupTimeoutSeconds: 600
"""


def _clusters(
    n: int, tmp: Path, fleet_path: Path, *, emulator: bool, cleanup: contextlib.ExitStack
) -> tuple[Fleet, ClusterBackend]:
    """The fleet and the clusters a release goes to: file-backed fakes, or with ``emulator`` the
    sandbox's emulated clusters (`python -m sandbox up`, no Prometheus: the gates are the fake
    source's) reached through their kubeconfig by the real Kubernetes activities."""
    if not emulator:
        fleet = loading.load_fleet(fleet_path)
        return fleet, FileClusterBackend(tmp / f"clusters-{n}.json", fleet)
    directory = tmp / f"sandbox-{n}"
    directory.mkdir()
    (directory / "sandbox.yaml").write_text(FAST_SANDBOX)
    started = stack.up(directory, fleet_path)
    cleanup.callback(stack.down, directory)
    fleet = loading.load_fleet(started.fleet)
    kube = KubernetesBackend.from_kubeconfig(fleet, started.kubeconfig)
    cleanup.callback(kube.close)
    return fleet, kube


@dataclass(frozen=True)
class Run:
    """What each measured release is: its rings' bake, its gates' interval, where heartbeats are
    counted (the dev server's metrics), and whether to break the parent's history down."""

    metrics_url: str
    bake: str = ""
    interval: str = "1s"
    breakdown: bool = False


async def measure(client: Client, n: int, tmp: Path, run: Run, *, emulator: bool = False) -> str:
    with contextlib.ExitStack() as cleanup:
        fleet_path = tmp / f"fleet-{n}.yaml"
        fleet_path.write_text(fleets.generated(n))
        fleet, backend = _clusters(n, tmp, fleet_path, emulator=emulator, cleanup=cleanup)
        return await _release(client, n, fleet, backend, run)


async def _release(client: Client, n: int, fleet: Fleet, backend: ClusterBackend, run: Run) -> str:
    bake, breakdown = run.bake, run.breakdown
    settings = Settings(task_queue=f"bench-{uuid.uuid4().hex}", max_concurrent_activities=100)
    service = f"hist-{n}{'-bake' if bake else ''}"
    started = time.monotonic()
    beats = _scale_stack.heartbeats(run.metrics_url)
    async with worker.build_workers(client, settings, fleet, backend=backend, metrics=FakeMetrics()):
        handle = await client.start_workflow(
            ReleaseWorkflow.run,
            ReleaseInput(
                service=service,
                version="v2",
                image=f"r/{service}:v2",
                plan_text=plan_yaml(service, bake, run.interval),
                submitted_by="ci",
            ),
            id=release_id(service, "v2"),
            task_queue=settings.task_queue,
        )
        status: ReleaseStatus = await outcomes.ended(handle, ReleaseStatus)
    wall = time.monotonic() - started
    beats = _scale_stack.heartbeats(run.metrics_url) - beats
    parent_events, parent_bytes, parent_actions = await _size(client, handle.id, breakdown=breakdown)
    children = [await _size(client, c.workflow_id) for c in status.clusters if c.workflow_id]
    child_events = max(e for e, _, _ in children)
    child_bytes = max(b for _, b, _ in children)
    actions = (parent_actions + sum(a for _, _, a in children)) / n
    billable = actions + beats / n
    warn = "over" if parent_events > WARN_EVENTS or parent_bytes > WARN_BYTES else "under"
    return (
        f"{n:>8} {status.phase:>10} {parent_events:>9} {parent_events / n:>8.1f} {parent_bytes / 1024:>10.0f}"
        f" {parent_bytes / n / 1024:>8.1f} {child_events:>8} {child_bytes / 1024:>9.0f} {actions:>9.1f}"
        f" {beats / n:>7.1f} {billable:>9.1f} {warn:>6} {wall:>6.0f}s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--clusters", type=int, action="append", required=True, help="fleet size N to measure"
    )
    parser.add_argument("--breakdown", action="store_true", help="the parent's events and bytes by type")
    parser.add_argument("--emulator", action="store_true", help="clusters on the Kubernetes emulator")
    parser.add_argument("--bake", default="", help="each ring's bakeTime (e.g. 2s; default: no bake)")
    parser.add_argument("--interval", default="1s", help="the gates' analysis interval (default 1s)")
    args = parser.parse_args()
    metrics_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_extra_args=["--metrics-port", str(metrics_port)],
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search.ALL,
        data_converter=data_converter,
        dev_server_log_level="error",
    )
    print(  # noqa: T201
        f"{'clusters':>8} {'phase':>10} {'parent ev':>9} {'ev/clus':>8} {'parent KiB':>10} {'KiB/clus':>8}"
        f" {'child ev':>8} {'child KiB':>9} {'acts/clus':>9} {'hb/clus':>7} {'bill/clus':>9} {'warns':>6}"
        f" {'wall':>7}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.clusters:
            run = Run(
                metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
                bake=args.bake,
                interval=args.interval,
                breakdown=args.breakdown,
            )
            row = await measure(env.client, n, Path(tmp), run, emulator=args.emulator)
            print(row, flush=True)  # noqa: T201
    if args.breakdown:
        print("\nparent history by event type (all N measured): events, KiB")  # noqa: T201
        for kind, (count, size) in sorted(BREAKDOWN.items(), key=lambda kv: -kv[1][1]):
            print(f"  {kind:<50} {count:>7} {size / 1024:>9.0f}")  # noqa: T201
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # the Temporal client can crash the interpreter at exit (sdk-python#300)
