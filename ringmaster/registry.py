"""What a worker runs workflows with: its workflow types, its sandbox, its interceptors.

One list, shared by the worker (:mod:`ringmaster.worker`) and the replays of running releases
(``ringmaster replay``, :mod:`ringmaster.replay`) and of the saved histories
(``tests/workflows/test_replay.py``), so a replay runs exactly the code a worker would. Light to
import: workflow code only, none of the worker's cluster or metric clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio.worker import Interceptor, Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ringmaster import latency
from ringmaster.converter import data_converter
from workflows.bake import RingBakeWorkflow
from workflows.cluster import ClusterRolloutWorkflow
from workflows.freezes import FreezeRegistryWorkflow
from workflows.lane import ReleaseLaneWorkflow
from workflows.release import ReleaseWorkflow
from workflows.undo import UndoWorkflow

WORKFLOWS: Sequence[type] = (
    ReleaseWorkflow,
    ClusterRolloutWorkflow,
    RingBakeWorkflow,
    ReleaseLaneWorkflow,
    FreezeRegistryWorkflow,
    UndoWorkflow,
)
"""Every workflow type a worker registers on its main queue."""

WORKFLOW_TYPES = tuple(getattr(w, "__temporal_workflow_definition").name for w in WORKFLOWS)
"""Their Temporal names, for visibility queries."""

RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows._options")
)
"""The workflow sandbox, sharing the activity call options with the worker's process: they are
constants (no state, no I/O), so one copy for every workflow run is safe and cheaper to load."""


def interceptors(warn_after: timedelta) -> list[Interceptor]:
    """The worker's interceptors (only activities are intercepted; workflows replay the same without)."""
    return [latency.LatencyInterceptor(warn_after)]


def replayer(runner: SandboxedWorkflowRunner = RUNNER) -> Replayer:
    """A replayer of every workflow type, with the worker's sandbox, data converter and interceptors."""
    return Replayer(
        workflows=list(WORKFLOWS),
        workflow_runner=runner,
        data_converter=data_converter,
        interceptors=interceptors(timedelta(seconds=5)),
    )
