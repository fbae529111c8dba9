"""A release survives its worker being killed: SIGKILL mid-canary and mid-rollback, then a new worker.

The worker runs as a real process (the production worker over the test fakes); the clusters it
changes live in a file both workers share, with an operations log that shows any step a retry repeated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from tests.support import fleets
from tests.support.fakes import FileClusterBackend
from tests.support.waiting import assert_eventually
from tests.workflows.support import FLEET, canary, cluster_state, ended, plan, unique_service
from workflows.models import ReleaseInput, ReleaseStatus
from workflows.release import ReleaseWorkflow, release_id


class WorkerProcess:
    """A real worker process (``tests.support.fake_worker``) that a test can kill and start again."""

    def __init__(self, client: Client, task_queue: str, state: Path, log: Path) -> None:
        self._env = {
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "RINGMASTER_FLEET": str(fleets.EXAMPLE_FLEET),
            "RINGMASTER_TASK_QUEUE": task_queue,
            "RINGMASTER_HEARTBEAT_THROTTLE_SECONDS": "0.5",
            "RINGMASTER_ANALYSIS_HEARTBEAT_THROTTLE_SECONDS": "0.5",
        }
        self._state = state
        self._client = client
        self._task_queue = task_queue
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.fake_worker", "--state", str(self._state)],
                env=self._env,
                stdout=log,
                stderr=log,
                cwd=fleets.ROOT,
            )

    async def polling(self) -> bool:
        """True once a worker polls the workflow task queue."""
        resp = await self._client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._client.namespace,
                task_queue=TaskQueue(name=self._task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        return bool(resp.pollers)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@contextmanager
def worker_process(client: Client, tmp_path: Path) -> Iterator[tuple[WorkerProcess, FileClusterBackend, str]]:
    task_queue = f"tq-{uuid.uuid4().hex}"
    state = tmp_path / "clusters.json"
    clusters = FileClusterBackend(state, FLEET)
    proc = WorkerProcess(client, task_queue, state, tmp_path / "worker.log")
    proc.start()
    try:
        yield proc, clusters, task_queue
    finally:
        proc.stop()


def _ops(clusters: FileClusterBackend, cluster: str) -> list[tuple[str, object]]:
    return [(o["op"], o.get("weight")) for o in clusters.read()[cluster]["ops"]]


async def _start(client: Client, task_queue: str, svc: str, version: str, rings) -> object:
    inp = ReleaseInput(
        service=svc,
        version=version,
        image=f"registry.eu.example.com/{svc}:{version}",
        plan_text=plan(svc, rings),
        submitted_by="ci",
    )
    return await client.start_workflow(
        ReleaseWorkflow.run,
        inp,
        id=release_id(svc, version),
        task_queue=task_queue,
        result_type=ReleaseStatus,
    )


class TestGracefulShutdown:
    async def test_sigterm_stops_the_worker_cleanly(self, client, tmp_path):
        """SIGTERM: the worker stops polling, lets running work finish and exits 0."""
        with worker_process(client, tmp_path) as (proc, _, _):
            await assert_eventually(proc.polling, bool, what="the worker to poll")
            assert proc.process is not None
            proc.process.send_signal(signal.SIGTERM)
            assert proc.process.wait(timeout=30) == 0


class TestWorkerCrash:
    async def test_sigkill_during_a_canary_step_finishes_as_if_nothing_happened(self, client, tmp_path):
        """Killed mid-pause and restarted: every step applied exactly once, the release succeeds."""
        with worker_process(client, tmp_path) as (proc, clusters, tq):
            await assert_eventually(proc.polling, bool, what="the worker to poll")
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", "4s"), ("w", 60), ("p", "1s")),
                }
            ]
            handle = await _start(client, tq, svc, "v2", rings)
            await assert_eventually(
                lambda: cluster_state(handle, "euw1-internal"),
                lambda c: c is not None and c.weight == 20 and c.state == "analyzing",
                what="the canary at 20%",
            )
            proc.kill()
            proc.start()
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            assert _ops(clusters, "euw1-internal") == [
                ("set-weight", 20),
                ("set-weight", 60),
                ("promote", 100),
                ("cleanup", None),
            ]

    async def test_sigkill_during_a_rollback_completes_the_rollback_once(self, client, tmp_path):
        """Killed while a failed canary rolls back: the new worker finishes the rollback, applied once."""
        with worker_process(client, tmp_path) as (proc, clusters, tq):
            clusters.configure("euw1-internal", rollback_delay=2.0)
            await assert_eventually(proc.polling, bool, what="the worker to poll")
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", "30s")),
                }
            ]
            handle = await _start(client, tq, svc, "v2-bad", rings)
            await assert_eventually(
                lambda: cluster_state(handle, "euw1-internal"),
                lambda c: c is not None and c.state == "rolling-back",
                what="the rollback to start",
            )
            proc.kill()
            proc.start()
            result = await ended(handle)
            assert result.phase == "rolled-back", result.reason
            assert clusters.read()["euw1-internal"]["version"] == "v1"
            assert [op for op, _ in _ops(clusters, "euw1-internal")] == ["set-weight", "rollback"]
