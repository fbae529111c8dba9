"""A release cancelled while a cluster's workflow is being started: the race of chaos seed 2020.

Cancelled mid-start, the SDK asks to cancel the child and forgets it; a child the server had started
all the same deployed with nobody waiting for it, and rolled its cluster back only after the release
had ended ``aborted``. The worker here holds the release's workflow task that starts the child while
the test cancels the release, so the cancellation reaches the release before the child's start does.
The outcome is judged on the clusters.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ringmaster import worker
from tests.workflows.support import canary, ended, plan, running_worker, unique_service
from workflows.release import cluster_workflow_id

pytestmark = pytest.mark.timeout(180)

CLUSTER = "euw1-internal"
ATTEMPTS = 8
"""Releases tried until one meets the race (the cancellation before the start's answer): the start's
answer and the cancellation race to the worker, each attempt wins it about half the time."""


class _StartGate:
    """Holds the release's task that starts the child; then notes which answer came first."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.order: list[str] = []

    def reset(self) -> None:
        self.entered.clear()
        self.released.clear()
        self.order.clear()


class _GatedRunner(SandboxedWorkflowRunner):
    def __init__(self, inner: SandboxedWorkflowRunner, gate: _StartGate) -> None:
        super().__init__(restrictions=inner.restrictions)
        self._gate = gate

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        instance = super().create_instance(det)
        if det.defn.name != "ReleaseWorkflow":
            return instance
        activate, gate = instance.activate, self._gate

        def gated(act: WorkflowActivation) -> WorkflowActivationCompletion:
            jobs = {job.WhichOneof("variant") for job in act.jobs}
            if gate.entered.is_set() and not act.is_replaying:
                if "cancel_workflow" in jobs:
                    gate.order.append("cancel")
                if "resolve_child_workflow_execution_start" in jobs:
                    gate.order.append("started")
            completion = activate(act)
            commands = [c.WhichOneof("variant") for c in completion.successful.commands]
            if "start_child_workflow_execution" in commands and not gate.entered.is_set():
                gate.entered.set()
                gate.released.wait(timeout=1.5)  # under the SDK's 2 s deadlock detection
            return completion

        instance.activate = gated  # type: ignore[method-assign]
        return instance


def _rings() -> list[dict[str, Any]]:
    return [{"name": "internal", "clusters": [CLUSTER], "strategy": canary(("w", 20), ("p", None))}]


class TestCancelWhileAChildStarts:
    async def test_the_started_child_is_rolled_back_before_the_release_ends(
        self, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The child that started anyway is aborted and waited for: the cluster is restored at the end."""
        gate = _StartGate()
        monkeypatch.setattr(worker, "RUNNER", _GatedRunner(worker.RUNNER, gate))
        async with running_worker(client, tmp_path) as h:
            for _ in range(ATTEMPTS):
                gate.reset()
                svc = unique_service()
                handle = await h.start(plan(svc, _rings(), metrics=False), service=svc)
                assert await _wait(gate.entered), "the release never started its cluster's workflow"
                await handle.cancel()
                gate.released.set()
                final = await ended(handle)
                if gate.order[:1] == ["cancel"]:
                    break
            else:
                pytest.fail(f"the cancellation never beat the child's start in {ATTEMPTS} releases")
            cluster = h.clusters.read()[CLUSTER]
            child = client.get_workflow_handle(cluster_workflow_id(svc, "v2", "internal", CLUSTER))
            described = await child.describe()
            released = await handle.describe()
        assert final.phase == "aborted", final.reason
        assert cluster["version"] == "v1" and cluster["canary"] is None, cluster
        assert described.status != WorkflowExecutionStatus.RUNNING
        assert described.close_time is not None and released.close_time is not None
        assert described.close_time <= released.close_time, "the child ended after its release"


async def _wait(event: threading.Event) -> bool:
    return await asyncio.to_thread(event.wait, 30)
