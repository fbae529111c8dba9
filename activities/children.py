"""A release's cluster workflows, read from Temporal: how each one ended, when the release cannot say.

A release that completes returns its own record of every cluster. One that was terminated (or
failed, or timed out) returns nothing, and its cluster workflows go on without it: the parent-close
policy cancels each, and a cancelled cluster workflow rolls its cluster back and ends with its own
result, while a cluster workflow that had already promoted stays promoted. This module reads that
from Temporal: the release's history names each cluster workflow it started (and with what input),
and each cluster workflow's result says how it ended. ``ringmaster status`` shows it, and
``ringmaster rollback`` and ``retry`` act on it (:mod:`activities.undo`).

Reading only; used by the worker's activities and by the CLI, both with their own Temporal client.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from activities import outcomes
from policies import messages

CLUSTER_WORKFLOW = "ClusterRolloutWorkflow"

EndState = Literal["rolling-back", "failed", "left-in-place", "promoted", "denied", "rolled-back"]
"""A cluster's state as its cluster workflow left it (a subset of ``workflows.models.ClusterState``)."""


class _Lenient(messages.Message):
    """Decodes the workflows' own models, keeping only the fields needed here."""

    model_config = ConfigDict(extra="ignore")


class _Cluster(_Lenient):
    name: str
    ring: str
    region: str = ""
    jurisdiction: str = ""


class _Ref(_Lenient):
    version: str


class _ChildInput(_Lenient):
    release: _Ref
    cluster: _Cluster


class _Snapshot(_Lenient):
    version: str = ""


class _ChildResult(_Lenient):
    outcome: str
    snapshot: _Snapshot | None = None
    message: str = ""
    rollback_failed: bool = False
    left_in_place: bool = False


class ClusterWorkflowEnd(messages.Message):
    """One cluster workflow of a release, as it stands or as it ended."""

    workflow_id: str
    cluster: str
    ring: str
    region: str = ""
    jurisdiction: str = ""
    running: bool = False
    """Still running: a cluster workflow whose release closed is rolling its cluster back."""
    outcome: str = ""
    """``promoted``, ``rolled-back``, ``aborted``, ``denied``, ``failed``; ``closed`` when it ended
    without a result (terminated itself); empty while running."""
    rollback_failed: bool = False
    """Its rollback failed permanently: the cluster needs attention."""
    left_in_place: bool = False
    version: str = ""
    """The version the cluster runs as the workflow left it (the release's, or the snapshot's)."""
    message: str = ""

    @property
    def needs_attention(self) -> bool:
        """Its cluster is not known to be restored or promoted: an operator must look (``retry``)."""
        return self.rollback_failed or self.outcome == "closed"

    @property
    def state(self) -> EndState:
        """The cluster's state in a release's terms (``workflows.models.ClusterState``)."""
        if self.running:
            return "rolling-back"
        if self.needs_attention or self.outcome == "failed":
            return "failed"
        if self.left_in_place:
            return "left-in-place"
        if self.outcome == "promoted":
            return "promoted"
        return "denied" if self.outcome == "denied" else "rolled-back"


async def cluster_workflows(client: Client, workflow_id: str, run_id: str) -> list[ClusterWorkflowEnd]:
    """Every cluster workflow the release's run started, in the order it started them.

    A cluster started twice (after a reset, the new run starts its own under the same id) is listed
    once, as its latest workflow stands.
    """
    started: dict[str, _ChildInput] = {}
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in handle.fetch_history_events():
        if not event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            continue
        attrs = event.start_child_workflow_execution_initiated_event_attributes
        if attrs.workflow_type.name != CLUSTER_WORKFLOW:
            continue
        [inp] = await client.data_converter.decode(attrs.input.payloads, [_ChildInput])
        started.pop(attrs.workflow_id, None)
        started[attrs.workflow_id] = inp
    return [await _end_of(client, child_id, inp) for child_id, inp in started.items()]


async def _end_of(client: Client, child_id: str, inp: _ChildInput) -> ClusterWorkflowEnd:
    c = inp.cluster
    end = ClusterWorkflowEnd(
        workflow_id=child_id, cluster=c.name, ring=c.ring, region=c.region, jurisdiction=c.jurisdiction
    )
    child = client.get_workflow_handle(child_id, result_type=_ChildResult)
    described = await child.describe()
    if described.status == WorkflowExecutionStatus.RUNNING:
        end.running = True
        return end
    if described.status not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
        name = described.status.name.lower() if described.status else "closed"
        end.outcome, end.message = "closed", f"its cluster workflow ended {name}, without a result"
        return end
    try:
        result = await outcomes.ended(child, _ChildResult, follow_runs=False)
    except WorkflowFailureError as err:
        end.outcome, end.message = (
            "closed",
            f"its cluster workflow failed, without a result: {err.cause or err}",
        )
        return end
    end.outcome, end.message = result.outcome, result.message
    end.rollback_failed, end.left_in_place = result.rollback_failed, result.left_in_place
    if result.outcome == "promoted" or result.left_in_place:
        end.version = inp.release.version
    elif result.snapshot is not None and not result.rollback_failed:
        end.version = result.snapshot.version
    return end
