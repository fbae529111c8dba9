"""A release that does not succeed closes red: a failed workflow whose failure names the outcome.

The Temporal UI's list shows a release's execution status, and its Failures view counts the failed
ones: a rolled-back or aborted release that completes green is invisible there. These tests read
what the UI reads (the execution status, the failure's type and message) for each ending, and that
every reader still gets the release's record: from the failure's detail now, from the result of runs
recorded before (``activities.outcomes``).
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.worker import Worker

from activities import outcomes
from tests.workflows.support import (
    ScriptedMetrics,
    canary,
    ended,
    ended_cluster,
    plan,
    running_worker,
    small_rings,
    unique_service,
)
from workflows.models import AbortRequest, ClusterRolloutResult, ReleaseStatus
from workflows.release import ReleaseWorkflow

INTERNAL, BETA, PROD = "euw1-internal", "euc1-beta", "use1-prod"


async def _failure(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The failure the closed workflow's result raises (what the UI shows as its failure)."""
    with pytest.raises(WorkflowFailureError) as raised:
        await handle.result()
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError), repr(cause)
    assert cause.non_retryable
    return cause


async def _status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    return (await handle.describe()).status


class TestEveryEndingHasItsColour:
    async def test_a_promoted_release_completes_with_its_record(self, client, tmp_path):
        """Succeeded: completed (green), the record as its result."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": {"rolling": {}}}]
            handle = await h.start(plan(svc, rings), service=svc)
            result = await handle.result()
            assert result.phase == "succeeded"
            assert await _status(handle) == WorkflowExecutionStatus.COMPLETED

    async def test_a_rolled_back_release_fails_naming_the_gate_and_the_cluster(self, client, tmp_path):
        """Rolled back by a failed gate: failed, type ``ReleaseRolledBack``, the gate's reason and
        the cluster in the message; its failing cluster workflow fails as ``ClusterRolledBack``, and
        the release's record says rolled back, not a rollback that failed."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={PROD})) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, small_rings()), service=svc)
            failure = await _failure(handle)
            assert failure.type == "ReleaseRolledBack"
            assert failure.message.startswith("rolled back: ") and PROD in failure.message
            assert "success-rate" in failure.message or "p99" in failure.message
            assert await _status(handle) == WorkflowExecutionStatus.FAILED

            record = await ended(handle)
            assert record.phase == "rolled-back" and record.needs_attention == []
            prod = record.cluster(PROD)
            assert prod.state == "rolled-back" and PROD not in record.needs_attention
            child = client.get_workflow_handle(prod.workflow_id)
            child_failure = await _failure(child)
            assert child_failure.type == "ClusterRolledBack" and PROD in child_failure.message
            assert (await ended_cluster(child)).outcome == "rolled-back"
            # The clusters that had promoted before were rolled back by the release: their workflows
            # completed (promoted) and stay green.
            internal = client.get_workflow_handle(record.cluster(INTERNAL).workflow_id)
            assert await _status(internal) == WorkflowExecutionStatus.COMPLETED

    async def test_an_aborted_release_fails_with_who_aborted_and_why(self, client, tmp_path):
        """Aborted mid-canary: failed, type ``ReleaseAborted``, the reason in the message."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 20), ("p", "1h"))}]
            handle = await h.start(plan(svc, rings, metrics=False), service=svc)
            answer = await _abort_when_deploying(h.client, handle)
            assert answer
            failure = await _failure(handle)
            assert failure.type == "ReleaseAborted"
            assert "customer reports errors" in failure.message
            assert (await ended(handle)).phase == "aborted"

    async def test_a_denied_release_fails_naming_the_rule(self, client, tmp_path):
        """Denied by residency: failed, type ``ReleaseDenied``, the cluster in the message."""
        async with running_worker(client, tmp_path) as h:
            h.clusters.configure(INTERNAL, node_region="us-east-1")
            svc = unique_service()
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": {"rolling": {}}}]
            handle = await h.start(plan(svc, rings), service=svc)
            failure = await _failure(handle)
            assert failure.type == "ReleaseDenied" and INTERNAL in failure.message
            record = await ended(handle)
            assert record.phase == "denied" and record.cluster(INTERNAL).state == "denied"

    async def test_a_release_whose_rollback_failed_fails_as_failed_and_needs_attention(
        self, client, tmp_path
    ):
        """A rollback refused by the cluster (403): ``ReleaseFailed``, and the cluster that needs
        attention is named in the record's ``needs_attention``."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={PROD})) as h:
            h.clusters.configure(BETA, fail_rollback=True)
            svc = unique_service()
            handle = await h.start(plan(svc, small_rings()), service=svc)
            failure = await _failure(handle)
            assert failure.type == "ReleaseFailed"
            record = await ended(handle)
            assert record.phase == "failed" and record.needs_attention == [BETA]


async def _abort_when_deploying(client: Client, handle: WorkflowHandle[Any, Any]) -> bool:
    from tests.support.waiting import assert_eventually

    await assert_eventually(
        lambda: handle.query(ReleaseWorkflow.status),
        lambda s: s.phase == "deploying" and any(c.workflow_id for c in s.clusters),
        what="the canary to start",
    )
    answer = await handle.execute_update(
        ReleaseWorkflow.abort, AbortRequest(reason="customer reports errors", by="bob")
    )
    return answer.accepted


@workflow.defn(sandboxed=False)
class _OlderRelease:
    """Ends as a release did before ``failed-outcomes``: completed, a rolled-back record as its result."""

    @workflow.run
    async def run(self, record: ReleaseStatus) -> ReleaseStatus:
        return record


class TestRecordsOfEveryAge:
    async def test_a_record_completed_by_older_code_reads_the_same(self, client, tmp_path):
        """A rolled-back release recorded before (completed, green) still reads as rolled back."""
        record = ReleaseStatus(
            release="pay:v3",
            service="pay",
            version="v3",
            image="r/pay:v3",
            phase="rolled-back",
            reason="gate failed",
        )
        queue = f"older-{unique_service()}"
        async with Worker(client, task_queue=queue, workflows=[_OlderRelease]):
            handle = await client.start_workflow(
                _OlderRelease.run, record, id=f"older-{queue}", task_queue=queue
            )
            read = await outcomes.ended(handle, ReleaseStatus)
        assert (read.phase, read.reason) == ("rolled-back", "gate failed")

    def test_a_child_failure_is_an_outcome_only_with_an_outcome_type_and_its_record(self):
        """The release reads a cluster's result from its failure only when the failure is one of the
        outcomes; any other failure of a cluster workflow stays a rollback nobody vouches for."""
        result = ClusterRolloutResult(cluster=PROD, outcome="rolled-back", message="gate failed")
        carried = ApplicationError("rolled back", result.model_dump(mode="json"), type="ClusterRolledBack")
        other = ApplicationError("boom", result.model_dump(mode="json"), type="ValueError")
        bare = ApplicationError("rolled back", type="ClusterRolledBack")

        def child(cause: BaseException) -> ChildWorkflowError:
            err = ChildWorkflowError(
                "child failed",
                namespace="default",
                workflow_id="w",
                run_id="r",
                workflow_type="ClusterRolloutWorkflow",
                initiated_event_id=1,
                started_event_id=2,
                retry_state=None,
            )
            err.__cause__ = cause
            return err

        assert outcomes.carried(child(carried), ClusterRolloutResult) == result
        assert outcomes.carried(child(other), ClusterRolloutResult) is None
        assert outcomes.carried(child(bare), ClusterRolloutResult) is None
        assert outcomes.carried(None, ClusterRolloutResult) is None

    @pytest.mark.parametrize(
        ("phase", "kind"),
        [*outcomes.RELEASE_FAILURES.items(), *outcomes.CLUSTER_FAILURES.items()],
    )
    def test_every_outcome_type_names_its_outcome(self, phase, kind):
        """The failure types read as the outcome in the UI: ``ReleaseRolledBack`` for rolled-back."""
        words = "".join(w.capitalize() for w in phase.split("-"))
        assert kind.endswith(words) and kind.startswith(("Release", "Cluster"))
