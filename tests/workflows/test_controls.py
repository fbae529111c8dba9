"""Operator controls on a running release: approvals, four eyes, hold and resume, invalid controls."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.service import RPCError

from activities.identity import IdentityActivities
from activities.jwks import HttpJwks
from activities.models import VerifyInput, VerifyResult
from policies.identity import IdentityPolicy
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    ScriptedMetrics,
    canary,
    cluster_state,
    ended,
    plan,
    running_worker,
    unique_service,
)
from workflows.models import AbortRequest, ApproveRequest, HoldRequest, ReleaseStatus, ResumeRequest
from workflows.release import ReleaseWorkflow


async def _status(handle) -> ReleaseStatus:
    return await handle.query(ReleaseWorkflow.status)


async def _rejection(handle, update, req) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, req)
    return str(failed.value.cause)


APPROVAL_RINGS = [
    {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
    {
        "name": "beta",
        "clusters": ["euc1-beta"],
        "approval": {"required": True, "fourEyes": True},
        "strategy": {"rolling": {}},
    },
]


class TestRingApproval:
    async def test_four_eyes_rejects_the_submitter_and_accepts_another_person(self, client, tmp_path):
        """Under fourEyes the submitter is refused before history; a colleague releases the ring."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            handle = await h.start(
                plan(svc, APPROVAL_RINGS, metrics=False), service=svc, submitted_by="alice"
            )
            await assert_eventually(lambda: _status(handle), lambda s: s.phase == "awaiting-approval")
            message = await _rejection(
                handle, ReleaseWorkflow.approve, ApproveRequest(ring="beta", by="alice")
            )
            assert "four eyes" in message and "alice" in message
            assert h.versions()["euc1-beta"] == "v1", "nothing in the ring starts before approval"
            answer = await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="beta", by="bob")
            )
            assert answer.accepted
            result = await ended(handle)
            assert result.phase == "succeeded"
            approvals = [a for a in result.actions if a.kind == "approve"]
            assert [(a.by, a.accepted) for a in approvals] == [("bob", True)], (
                "a rejected update leaves no trace"
            )

    async def test_a_rejected_signal_is_recorded_and_changes_nothing(self, client, tmp_path):
        """A signal cannot answer: an invalid approval is logged as rejected; the ring keeps waiting."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            handle = await h.start(
                plan(svc, APPROVAL_RINGS, metrics=False), service=svc, submitted_by="alice"
            )
            await assert_eventually(lambda: _status(handle), lambda s: s.phase == "awaiting-approval")
            await handle.signal("approve-signal", ApproveRequest(ring="beta", by="alice"))
            status = await assert_eventually(lambda: _status(handle), lambda s: bool(s.actions))
            assert status.actions[0].accepted is False
            assert "four eyes" in status.actions[0].rejection
            assert status.phase == "awaiting-approval"
            await handle.signal("approve-signal", ApproveRequest(ring="beta", by="bob"))
            assert (await ended(handle)).phase == "succeeded"


class TestClusterApproval:
    async def test_an_indefinite_pause_waits_for_a_cluster_approval(self, client, tmp_path):
        """`pause: {}` holds the canary at its weight until someone approves that cluster."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 10), ("p", None)),
                }
            ]
            handle = await h.start(plan(svc, rings), service=svc)
            # What approve --cluster acts on: the release's record, which hears of the pause by the
            # cluster's milestone report (the cluster's own status may say so a moment earlier).
            await assert_eventually(
                lambda: handle.query(ReleaseWorkflow.status),
                lambda s: any(
                    c.name == "euw1-internal" and c.state == "awaiting-approval" for c in s.clusters
                ),
            )
            state = await cluster_state(handle, "euw1-internal")
            assert state is not None and state.weight == 10
            wrong = await _rejection(
                handle,
                ReleaseWorkflow.approve,
                ApproveRequest(ring="internal", cluster="euw1-prod", by="bob"),
            )
            assert "not in ring internal" in wrong
            await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="internal", cluster="euw1-internal", by="bob")
            )
            result = await ended(handle)
            assert result.phase == "succeeded"
            assert h.versions()["euw1-internal"] == "v2"


class TestInvalidControls:
    async def test_controls_that_make_no_sense_are_rejected_with_a_reason(self, client, tmp_path):
        """Resume when not held, approving a ring that is not waiting, and an empty identity are refused."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 10), ("p", None)),
                }
            ]
            handle = await h.start(plan(svc, rings), service=svc)
            await assert_eventually(lambda: _status(handle), lambda s: s.phase == "awaiting-approval")
            assert "not held" in await _rejection(handle, ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            assert "not waiting" in await _rejection(
                handle, ReleaseWorkflow.approve, ApproveRequest(ring="internal", by="bob")
            )
            assert "identity" in await _rejection(
                handle, ReleaseWorkflow.hold, HoldRequest(reason="x", by="")
            )
            await handle.signal("resume-signal", ResumeRequest(by="carol"))
            status = await assert_eventually(lambda: _status(handle), lambda s: bool(s.actions))
            assert (status.actions[0].kind, status.actions[0].accepted) == ("resume", False)
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="done testing", by="bob"))
            result = await ended(handle)
            assert result.phase == "aborted"
            with pytest.raises(RPCError, match="completed"):
                await handle.execute_update(ReleaseWorkflow.hold, HoldRequest(reason="late", by="bob"))


class TestHold:
    async def test_time_held_does_not_count_toward_a_pause(self, time_env, tmp_path):
        """A 1h pause interrupted by a 3h hold ends 1h of unheld time later: at least 4h in all."""
        async with running_worker(time_env.client, tmp_path) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 30), ("p", "1h")),
                }
            ]
            handle = await h.start(plan(svc, rings, metrics=False), service=svc, search_attributes=False)
            await assert_eventually(
                lambda: cluster_state(handle, "euw1-internal"),
                lambda c: c is not None and c.state == "deploying" and c.step.startswith("step 2"),
                what="the pause to begin",
            )
            await handle.signal("hold-signal", HoldRequest(reason="incident INC-42", by="bob"))
            await assert_eventually(lambda: _status(handle), lambda s: s.phase == "holding")
            await time_env.sleep(timedelta(hours=3))
            status = await _status(handle)
            assert status.phase == "holding"
            held = await cluster_state(handle, "euw1-internal")
            assert held is not None and held.weight == 30, "a held canary stays at its weight"
            await handle.signal("resume-signal", ResumeRequest(by="bob"))
            result = await ended(handle)
            assert result.phase == "succeeded"
            assert result.ended_at - result.started_at >= timedelta(hours=4)
            assert [a.kind for a in result.actions] == ["hold", "resume"]


class TestGateHold:
    async def test_an_inconclusive_gate_holds_the_release_while_another_cluster_analyzes(
        self, client, tmp_path
    ):
        """Query errors in one of two parallel clusters: the release shows holding, naming that cluster."""
        metrics = ScriptedMetrics(errors={"use1-prod"})
        async with running_worker(client, tmp_path, metrics=metrics) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "broad",
                    "clusters": ["euw1-prod", "use1-prod"],
                    "maxParallel": 2,
                    "strategy": canary(("w", 50), ("p", "5m")),
                }
            ]
            handle = await h.start(plan(svc, rings), service=svc)
            status = await assert_eventually(
                lambda: _status(handle), lambda s: s.phase == "holding", timeout=60
            )
            assert "use1-prod" in status.hold_reason and "connection refused" in status.hold_reason
            assert status.cluster("euw1-prod").state == "analyzing", "the other cluster keeps being judged"
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="no metrics", by="bob"))
            result = await ended(handle)
            assert result.phase == "aborted"
            assert set(h.versions().values()) == {"v1"}


class _SlowIdentity(IdentityActivities):
    """Trusted identity whose every verification takes a while, as an issuer far away would."""

    @activity.defn(name="verify_identity")
    async def verify(self, inp: VerifyInput) -> VerifyResult:
        await asyncio.sleep(1.5)
        return await super().verify(inp)


class TestControlsInOrder:
    async def test_a_resume_sent_while_the_hold_is_verified_is_applied_after_it(self, client, tmp_path):
        """Hold, then resume before the hold's verification returned: both apply, in that order
        (chaos seed 3003: a reset replayed both, and the resume was refused as "not held")."""
        slow = _SlowIdentity(IdentityPolicy(mode="trusted"), secrets.token_bytes(32), HttpJwks())
        async with running_worker(client, tmp_path, identity=slow) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 20), ("p", None)),
                }
            ]
            handle = await h.start(plan(svc, rings, metrics=False), service=svc)
            await assert_eventually(lambda: _status(handle), lambda s: s.phase == "awaiting-approval")
            hold = await handle.start_update(
                ReleaseWorkflow.hold,
                HoldRequest(reason="look", by="bob"),
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
            resume = await handle.start_update(
                ReleaseWorkflow.resume, ResumeRequest(by="bob"), wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
            assert (await hold.result()).accepted and (await resume.result()).accepted
            status = await _status(handle)
            assert not status.held
            assert [(a.kind, a.accepted) for a in status.actions] == [("hold", True), ("resume", True)]
