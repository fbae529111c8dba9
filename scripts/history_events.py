"""Print the history event counts of a release of the example plan for several bake times.

    .venv/bin/python scripts/history_events.py --bake 1m --bake 30m

Runs the example plan (deploy/examples/plan.yaml) on a fresh Temporal dev server with the real
workflows and the file-backed fake clusters and metrics, changing only what cannot run here in real
time: canary pauses become 10s, deployment windows are dropped (they would wait for a weekday), and
every ring's bakeTime is set to the value under test. The beta ring's four-eyes approval is given
by "release-manager". Gates run with the plan's own analysis (1m interval, three metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from temporalio.testing import WorkflowEnvironment

from ringmaster.converter import data_converter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fakes import FakeMetrics  # noqa: E402
from tests.workflows.support import FLEET, running_worker  # noqa: E402
from workflows import search  # noqa: E402
from workflows.models import ApproveRequest, ReleaseStatus  # noqa: E402
from workflows.release import ReleaseWorkflow  # noqa: E402


def example_plan(service: str, bake: str) -> str:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "deploy/examples/plan.yaml").read_text())
    doc["service"] = service
    doc.pop("windows", None)
    for ring in doc["rings"]:
        ring["bakeTime"] = bake
        canary = ring["strategy"].get("canary")
        for step in canary["steps"] if canary else []:
            if step.get("pause"):
                step["pause"] = {"duration": "10s"}
    return yaml.safe_dump(doc, sort_keys=False)


async def run_one(h: Any, bake: str) -> tuple[str, int, int, float]:
    service = f"events-{bake}"
    started = time.monotonic()
    handle = await h.start(example_plan(service, bake), service=service, submitted_by="ci")
    while True:
        status: ReleaseStatus = await handle.query(ReleaseWorkflow.status)
        if status.phase == "awaiting-approval" and status.ring == "beta":
            approval = ApproveRequest(ring="beta", by="release-manager")
            await handle.execute_update(ReleaseWorkflow.approve, approval)
        if status.phase in ("succeeded", "rolled-back", "aborted", "denied", "failed"):
            break
        await asyncio.sleep(2)
    parent = await handle.fetch_history()
    child = await h.client.get_workflow_handle(status.cluster("euw1-internal").workflow_id).fetch_history()
    return status.phase, len(parent.events), len(child.events), time.monotonic() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bake", action="append", required=True, help="a bakeTime to measure, e.g. 30m")
    args = parser.parse_args()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search.ALL,
        data_converter=data_converter,
        dev_server_log_level="error",
    )
    assert FLEET
    print(f"{'bakeTime':>9} {'phase':>10} {'parent events':>14} {'child events':>13} {'wall':>8}", flush=True)  # noqa: T201
    with tempfile.TemporaryDirectory() as tmp:
        async with running_worker(env.client, Path(tmp), metrics=FakeMetrics()) as h:

            async def measure(bake: str) -> None:
                phase, parent, child, wall = await run_one(h, bake)
                print(f"{bake:>9} {phase:>10} {parent:>14} {child:>13} {wall:>7.0f}s", flush=True)  # noqa: T201

            await asyncio.gather(*(measure(bake) for bake in args.bake))
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
