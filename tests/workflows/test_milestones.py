"""A cluster workflow tells its release only its milestones; its steps are its own to answer for.

The release's history holds every report its clusters send it, so reports sent at every step would
make it grow with the steps of every cluster. These tests read the release's history for the
``cluster_progress`` signals it received, and the cluster workflows' own ``status`` for the detail.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from tests.support.waiting import assert_eventually
from tests.workflows.support import canary, cluster_state, ended, plan, running_worker, unique_service
from workflows.cluster import ClusterRolloutWorkflow
from workflows.models import ApproveRequest, ClusterRolloutInput, ClusterStatus
from workflows.release import ReleaseWorkflow

INTERNAL = "euw1-internal"


async def _reports(handle: WorkflowHandle[Any, Any]) -> list[ClusterStatus]:
    """Every ``cluster_progress`` report the release received, in order."""
    reports: list[ClusterStatus] = []
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "cluster_progress":
                [report] = await handle._client.data_converter.decode(attrs.input.payloads, [ClusterStatus])
                reports.append(report)
    return reports


class _Heard(BaseModel):
    states: list[str]
    decisions: int


class _Adopt(BaseModel):
    inp: ClusterRolloutInput
    queue: str


@workflow.defn(sandboxed=False)
class _Listener:
    """A parent in a release's place: runs one cluster workflow and keeps the states it reports."""

    def __init__(self) -> None:
        self.states: list[str] = []

    @workflow.signal
    def cluster_progress(self, report: ClusterStatus) -> None:
        self.states.append(report.state)

    @workflow.run
    async def run(self, adopt: _Adopt) -> _Heard:
        result = await workflow.execute_child_workflow(
            ClusterRolloutWorkflow.run,
            adopt.inp,
            id=f"{workflow.info().workflow_id}-cluster",
            task_queue=adopt.queue,
        )
        return _Heard(states=self.states, decisions=len(result.decisions))


async def _child_input(handle: WorkflowHandle[Any, Any]) -> ClusterRolloutInput:
    """The input the release started its (one) cluster workflow with, from its history."""
    async for event in handle.fetch_history_events():
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            attrs = event.start_child_workflow_execution_initiated_event_attributes
            [inp] = await handle._client.data_converter.decode(attrs.input.payloads, [ClusterRolloutInput])
            return inp
    raise AssertionError("the release started no cluster workflow")


class TestMilestoneReports:
    async def test_a_canary_of_many_steps_reports_once_while_it_runs(self, client, tmp_path):
        """Four weights and three pauses, judged by gates: the release hears the analysis start and
        nothing else until the result, which carries the state the cluster ended with."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            steps = canary(("w", 10), ("p", "1s"), ("w", 25), ("p", "1s"), ("w", 50), ("p", "1s"), ("w", 75))
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": steps}]
            handle = await h.start(plan(svc, rings), service=svc)
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            reports = await _reports(handle)
            assert [r.state for r in reports] == ["analyzing"]
            assert reports[0].residency, "the residency decisions travel in the first report that has them"
            final = result.cluster(INTERNAL)
            assert (final.state, final.weight, final.version) == ("promoted", 100, "v2")
            assert final.residency, "the release keeps the decisions reported once"
            assert final.gate is not None and final.gate.status == "passed"

    async def test_awaiting_approval_is_a_milestone_and_approve_cluster_acts_on_it(self, client, tmp_path):
        """A pause until approved is reported as it begins and as it ends; the release accepts
        ``approve --cluster`` only while the cluster awaits it, and the cluster goes on."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": [INTERNAL],
                    "strategy": canary(("w", 20), ("p", None), ("w", 60)),
                }
            ]
            handle = await h.start(plan(svc, rings, metrics=False), service=svc)
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status),
                lambda s: s.phase == "awaiting-approval",
                what="the release to show the cluster awaiting approval",
            )
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster=INTERNAL, by="bob")
            )
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            assert [r.state for r in await _reports(handle)] == ["awaiting-approval", "deploying"]

    async def test_status_reads_a_running_cluster_from_its_own_workflow(self, client, tmp_path):
        """While a canary holds at a weight, the release's record says only ``deploying``; the view
        ``ringmaster status`` builds asks the cluster workflow and shows its weight and step."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 30), ("p", "1h"))}]
            handle = await h.start(plan(svc, rings, metrics=False), service=svc)
            live = await assert_eventually(
                lambda: cluster_state(handle, INTERNAL),
                lambda c: c is not None and c.weight == 30 and c.step.startswith("step 2"),
                what="the canary's pause, read from the cluster workflow",
            )
            recorded = (await handle.query(ReleaseWorkflow.status)).cluster(INTERNAL)
            assert (recorded.state, recorded.weight) == ("deploying", 0), "no report for a step"
            own = await client.get_workflow_handle(live.workflow_id).query(ClusterRolloutWorkflow.status)
            assert (own.weight, own.step) == (live.weight, live.step)
            await handle.cancel()

    @pytest.mark.parametrize("report_analysis", [True, False])
    async def test_the_start_of_the_analysis_is_reported_only_when_the_input_asks(
        self, client, tmp_path, report_analysis
    ):
        """A cluster workflow of a large release (``report_analysis`` False, set above
        ``DECISIONS_KEPT_UP_TO`` clusters) sends no report for the start of its analysis, nor its
        allowing residency decisions in its result; one of a release of usual size sends exactly that
        one report, with the decisions."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": canary(("w", 20), ("p", "1s"))}]
            handle = await h.start(plan(svc, rings), service=svc)
            assert (await ended(handle)).phase == "succeeded"
            inp = (await _child_input(handle)).model_copy(update={"report_analysis": report_analysis})
            queue = f"listener-{uuid.uuid4().hex}"
            async with Worker(client, task_queue=queue, workflows=[_Listener]):
                heard = await client.execute_workflow(
                    _Listener.run, _Adopt(inp=inp, queue=h.task_queue), id=f"listen-{svc}", task_queue=queue
                )
                own = await client.get_workflow_handle(f"listen-{svc}-cluster").query(
                    ClusterRolloutWorkflow.status
                )
            assert heard.states == (["analyzing"] if report_analysis else [])
            # The decisions reach the release once, in the report; a large release's record keeps none of
            # a cluster's allowing decisions, so they stay in its own workflow.
            assert heard.decisions == 0 and len(own.residency) == 5
