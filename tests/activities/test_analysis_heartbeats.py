"""What an analysis stretch costs on the server: the heartbeats that reach it, counted by the server.

Each heartbeat the SDK sends is a ``RecordActivityTaskHeartbeat`` request (a billable action on
Temporal Cloud); the dev server counts them in its ``service_requests`` metric, so the test reads that
counter before and after a stretch run by the real analysis worker with its default settings.
"""

from __future__ import annotations

import re
import socket
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest_asyncio
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.analysis import AnalysisActivities
from activities.models import AnalyzeInput, AnalyzeResult
from ringmaster import worker
from ringmaster.converter import data_converter
from ringmaster.settings import Settings
from tests.activities.test_analysis_loop import RecordingSource, _input
from tests.conftest import DEV_SERVER
from tests.support import fleets
from tests.support.fakes import FileClusterBackend
from workflows import _options as options
from workflows import queues

FLEET = fleets.example_fleet()
STRETCH_SUFFIX = "-stretch"
"""The test workflow's queue: the worker's main queue with this suffix (the main worker owns that one)."""


@workflow.defn(sandboxed=False)
class OneStretch:
    """Runs one ``analyze`` stretch on the analysis queue, as the cluster and release workflows do."""

    @workflow.run
    async def run(self, inp: AnalyzeInput) -> AnalyzeResult:
        return await workflow.execute_activity_method(
            AnalysisActivities.analyze,
            inp,
            task_queue=queues.analysis_queue(workflow.info().task_queue.removesuffix(STRETCH_SUFFIX)),
            **options.analyze(inp.analysis),
        )


class MeteredServer:
    """A dev server of its own, with its metrics endpoint on a known port."""

    def __init__(self, env: WorkflowEnvironment, port: int) -> None:
        self.env = env
        self.port = port

    @property
    def client(self) -> Client:
        return self.env.client

    def heartbeats(self) -> int:
        """``RecordActivityTaskHeartbeat`` requests the frontend has served so far."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10).read().decode()
        pattern = r"^service_requests\{([^}]*)\} (\S+)$"
        total = 0.0
        for labels, value in re.findall(pattern, text, re.MULTILINE):
            if 'operation="RecordActivityTaskHeartbeat"' in labels and 'service_name="frontend"' in labels:
                total += float(value)
        return int(total)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def metered() -> AsyncIterator[MeteredServer]:
    port = _free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(DEV_SERVER),
        dev_server_extra_args=["--metrics-port", str(port)],
        data_converter=data_converter,
        dev_server_log_level="error",
    )
    yield MeteredServer(env, port)
    await env.shutdown()


class TestHeartbeatsReachingTheServer:
    async def test_a_stretch_sends_at_most_one_heartbeat_per_throttle_window(
        self, metered: MeteredServer, tmp_path: Path
    ) -> None:
        """A 1 s interval stretch ending itself after 14 s (14 intervals), on the real analysis worker
        with default settings: the server records at most 2 heartbeats (one at the start, one per 12 s,
        the floor), where the former worker throttle (5 s) sent about 3 and the former local heartbeat
        every 5 s; never more than one per interval."""
        settings = Settings(task_queue=f"tq-{uuid.uuid4().hex}")
        source = RecordingSource()
        workers = worker.build_workers(
            metered.client,
            settings,
            FLEET,
            backend=FileClusterBackend(tmp_path / "clusters.json", FLEET),
            metrics=source,
        )
        runner = Worker(
            metered.client,
            task_queue=settings.task_queue + STRETCH_SUFFIX,
            workflows=[OneStretch],
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        inp = _input(interval="1s").model_copy(update={"mode": "until-stopped"})
        async with workers, runner:
            before = metered.heartbeats()
            deadline = datetime.now().astimezone() + timedelta(seconds=14)
            inp = inp.model_copy(update={"deadline": deadline})
            result = await metered.client.execute_workflow(
                OneStretch.run,
                inp,
                id=f"stretch-{uuid.uuid4().hex}",
                task_queue=settings.task_queue + STRETCH_SUFFIX,
            )
            sent = metered.heartbeats() - before
        assert result.deadline_reached and result.verdict.status == "passed"
        intervals = len(source.taken)
        assert intervals >= 12, "the stretch judged every second until its deadline"
        assert 1 <= sent <= 2, f"{sent} heartbeats reached the server over {intervals} intervals"
