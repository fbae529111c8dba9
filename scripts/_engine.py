"""What ``bench_scale.py`` compares ringmaster with: the raw engine, and a gate with a timer per poll.

- :class:`RawRelease`: a trivial workflow doing a given number of no-op activities and short timers
  one after another, so N of them on the same server say what the engine alone does with the same
  steps as N releases (steps per second).
- :class:`PollingGate`: the bake the house style rules out, a metric activity then a timer per
  poll, run on the time-skipping server for a long bake to count its events beside ringmaster's
  single heartbeating stretch.

Both run unsandboxed on an in-process worker: they import nothing but the SDK.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


class RawInput(BaseModel):
    """How many activities and timers one trivial workflow runs."""

    activities: int
    timers: int
    timer_seconds: float = 0.01


class PollInput(BaseModel):
    """A bake of ``bake_seconds`` polled every ``interval_seconds``."""

    bake_seconds: float
    interval_seconds: float


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    """A step that does nothing."""
    return step


@activity.defn(name="bench_measure")
async def measure(poll: int) -> float:
    """A metric that is always fine."""
    return 99.9 + poll * 0.0


@workflow.defn(name="BenchRawRelease")
class RawRelease:
    """Activities and timers interleaved, one at a time."""

    @workflow.run
    async def run(self, inp: RawInput) -> int:
        """Run them all; return how many steps were taken."""
        done = 0
        for i in range(max(inp.activities, inp.timers)):
            if i < inp.activities:
                await workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=30))
                done += 1
            if i < inp.timers:
                await workflow.sleep(inp.timer_seconds)
                done += 1
        return done


@workflow.defn(name="BenchPollingGate")
class PollingGate:
    """A bake judged by one activity per poll with a timer between polls."""

    @workflow.run
    async def run(self, inp: PollInput) -> int:
        """Poll until the bake is over; return how many polls were made."""
        polls = 0
        started = workflow.now()
        while (workflow.now() - started).total_seconds() < inp.bake_seconds:
            await workflow.execute_activity(measure, polls, start_to_close_timeout=timedelta(seconds=30))
            polls += 1
            await workflow.sleep(inp.interval_seconds)
        return polls


async def raw_engine(client: Client, releases: int, activities: int, timers: int) -> tuple[int, float]:
    """Run ``releases`` trivial workflows at once; returns (steps taken, wall seconds)."""
    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    inp = RawInput(activities=activities, timers=timers)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[RawRelease],
        activities=[noop],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        started = time.monotonic()
        steps = await asyncio.gather(
            *(
                client.execute_workflow(RawRelease.run, inp, id=f"{queue}-{i}", task_queue=queue)
                for i in range(releases)
            )
        )
        return sum(steps), time.monotonic() - started


async def polling_gate_events(
    client: Client, bake_seconds: float, interval_seconds: float
) -> tuple[int, int]:
    """Events and polls of one timer-per-poll bake (on a time-skipping server: it returns at once)."""
    queue = f"bench-poll-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[PollingGate],
        activities=[measure],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            PollingGate.run,
            PollInput(bake_seconds=bake_seconds, interval_seconds=interval_seconds),
            id=queue,
            task_queue=queue,
        )
        polls = await handle.result()
        history = await handle.fetch_history()
    return len(history.events), polls
