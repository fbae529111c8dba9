"""Verified identity on a real worker: forged, unsigned, replayed and misdirected requests change nothing.

The worker verifies with real ``ssh-keygen`` keys (``tests.support.identity``): alice and bob are
listed in its allowed-signers file, mallory's key is real but listed nowhere. Every request goes
through the same paths as the CLI's: the lane's update for submissions, the release's updates and
signals for controls.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities.identity import IdentityActivities
from activities.models import AttestInput
from policies.authz import AuthorizationPolicy
from policies.identity import Attestation, Proof, plan_digest
from tests.support.identity import Office, Signer, make_office
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    Harness,
    canary,
    ended,
    plan,
    running_worker,
    submit_to_lane,
    unique_service,
)
from workflows.cluster import ClusterRolloutWorkflow
from workflows.models import (
    AbortRequest,
    ApproveRequest,
    ClusterStatus,
    HoldRequest,
    OperatorAction,
    ReleaseInput,
    ReleaseStatus,
    ResumeRequest,
)
from workflows.release import ReleaseWorkflow, release_id

RINGS = [
    {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
    {
        "name": "beta",
        "clusters": ["euc1-beta"],
        "approval": {"required": True, "fourEyes": True},
        "strategy": {"rolling": {}},
    },
]


@pytest.fixture
def office(tmp_path) -> Office:
    return make_office(tmp_path / "keys")


@pytest.fixture
def identity(office) -> IdentityActivities:
    return IdentityActivities(office.policy(), secrets.token_bytes(32))


PAUSED = [{"name": "internal", "clusters": ["euw1-internal"], "strategy": canary(("w", 20), ("p", None))}]
"""One cluster whose canary waits at 20 % for an approval of its own (``pause: {}``)."""


def _release(service: str, version: str = "v2", rings: list | None = None) -> ReleaseInput:
    return ReleaseInput(
        service=service,
        version=version,
        image=f"registry.eu.example.com/{service}:{version}",
        plan_text=plan(service, rings or RINGS, metrics=False),
        submitted_by="ci",
    )


def _submission(signer: Signer, inp: ReleaseInput, reason: str = "") -> Proof:
    return signer.sign(
        "submit",
        release_id(inp.service, inp.version),
        image=inp.image,
        plan_digest=plan_digest(inp.plan_text),
        reason=reason,
    )


async def _status(handle: WorkflowHandle) -> ReleaseStatus:
    return await handle.query(ReleaseWorkflow.status)


async def _refusal(handle: WorkflowHandle, update, req) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, req)
    return str(failed.value.cause)


async def _submitted(
    h: Harness, signer: Signer, service: str, version: str = "v2", rings: list | None = None
) -> WorkflowHandle:
    inp = _release(service, version, rings)
    await submit_to_lane(h.client, h.task_queue, inp, proof=_submission(signer, inp))
    handle = h.client.get_workflow_handle(release_id(service, version))
    await assert_eventually(lambda: _status(handle), lambda s: s.phase == "awaiting-approval")
    return handle


async def _run_id(handle: WorkflowHandle) -> str:
    return (await handle.describe()).run_id


async def _absent(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


def _last(status: ReleaseStatus) -> OperatorAction:
    return status.actions[-1]


class TestSubmission:
    async def test_an_unsigned_or_forged_submission_starts_nothing(self, client, tmp_path, office, identity):
        async with running_worker(client, tmp_path, identity=identity) as h:
            svc = unique_service()
            inp = _release(svc)
            with pytest.raises(WorkflowUpdateFailedError) as unsigned:
                await submit_to_lane(h.client, h.task_queue, inp)
            assert "refused" in str(unsigned.value.cause) and "sign" in str(unsigned.value.cause)
            with pytest.raises(WorkflowUpdateFailedError) as forged:
                await submit_to_lane(h.client, h.task_queue, inp, proof=_submission(office.mallory, inp))
            assert "refused" in str(forged.value.cause)
            other = _release(svc, "v9")  # alice's real signature, for another version's image and plan
            with pytest.raises(WorkflowUpdateFailedError) as misdirected:
                await submit_to_lane(h.client, h.task_queue, inp, proof=_submission(office.alice, other))
            assert "workflow_id" in str(misdirected.value.cause)
            assert await _absent(client, release_id(svc, "v2")), "no release may start"

    async def test_the_verified_submitter_is_recorded_not_the_claimed_one(
        self, client, tmp_path, office, identity
    ):
        async with running_worker(client, tmp_path, identity=identity) as h:
            handle = await _submitted(h, office.alice, unique_service())
            status = await _status(handle)
            assert status.submitted_by == "alice@example.com", "the proof names the submitter, not --by"


class TestControls:
    async def test_unsigned_forged_misdirected_and_replayed_controls_change_nothing(
        self, client, tmp_path, office, identity
    ):
        async with running_worker(client, tmp_path, identity=identity) as h:
            handle = await _submitted(h, office.alice, unique_service())
            wid, run = handle.id, await _run_id(handle)

            unsigned = await _refusal(handle, ReleaseWorkflow.hold, HoldRequest(reason="look", by="bob"))
            assert "sign" in unsigned
            forged = office.mallory.sign("hold", wid, run_id=run, reason="look")
            await _refusal(handle, ReleaseWorkflow.hold, HoldRequest(reason="look", by="bob", proof=forged))
            for_resume = office.bob.sign("resume", wid, run_id=run)
            message = await _refusal(
                handle, ReleaseWorkflow.hold, HoldRequest(reason="look", proof=for_resume)
            )
            assert "action" in message
            for_other_reason = office.bob.sign("hold", wid, run_id=run, reason="a")
            message = await _refusal(
                handle, ReleaseWorkflow.hold, HoldRequest(reason="b", proof=for_other_reason)
            )
            assert "reason" in message
            for_other_run = office.bob.sign("hold", wid, run_id="0" * 36, reason="look")
            message = await _refusal(
                handle, ReleaseWorkflow.hold, HoldRequest(reason="look", proof=for_other_run)
            )
            assert "run_id" in message
            status = await _status(handle)
            assert not status.held
            assert [a.accepted for a in status.actions] == [False] * 5, "each refusal is on record"
            assert all(a.method == "" for a in status.actions)

            held = office.bob.sign("hold", wid, run_id=run, reason="look")
            await handle.execute_update(ReleaseWorkflow.hold, HoldRequest(reason="look", by="x", proof=held))
            status = await _status(handle)
            assert status.held
            action = _last(status)
            assert (action.kind, action.by, action.method, action.accepted) == (
                "hold",
                "bob@example.com",
                "ssh",
                True,
            )
            assert "SHA256:" in action.verification, "the key's fingerprint is on record"
            await handle.execute_update(
                ReleaseWorkflow.resume, ResumeRequest(proof=office.bob.sign("resume", wid, run_id=run))
            )
            message = await _refusal(handle, ReleaseWorkflow.hold, HoldRequest(reason="look", proof=held))
            assert "nonce" in message, "a captured request cannot be sent again"
            assert not (await _status(handle)).held

    async def test_four_eyes_judges_the_verified_principals(self, client, tmp_path, office, identity):
        async with running_worker(client, tmp_path, identity=identity) as h:
            handle = await _submitted(h, office.alice, unique_service())
            wid, run = handle.id, await _run_id(handle)

            own = office.alice.sign("approve", wid, run_id=run, ring="beta")
            message = await _refusal(
                handle, ReleaseWorkflow.approve, ApproveRequest(ring="beta", by="bob", proof=own)
            )
            assert "four eyes" in message and "alice@example.com" in message, "--by bob changes nothing"
            # A signal cannot answer: the forged approval is recorded as refused and the ring waits.
            forged = office.mallory.sign("approve", wid, run_id=run, ring="beta")
            await handle.signal("approve-signal", ApproveRequest(ring="beta", by="bob", proof=forged))
            await assert_eventually(lambda: _status(handle), lambda s: len(s.actions) == 2)
            assert (await _status(handle)).phase == "awaiting-approval"
            assert h.versions()["euc1-beta"] == "v1"

            other = office.bob.sign("approve", wid, run_id=run, ring="beta")
            answer = await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="beta", by="alice", proof=other)
            )
            assert answer.accepted
            result = await ended(handle)
            assert result.phase == "succeeded"
            approvals = [(a.by, a.method, a.accepted) for a in result.actions if a.kind == "approve"]
            assert approvals == [
                ("alice@example.com", "ssh", False),  # verified as alice, then refused on four eyes
                ("bob", "", False),  # mallory's: not verified, so only the claim is on record
                ("bob@example.com", "ssh", True),
            ]

    async def test_a_supersede_carries_the_lanes_seal_and_a_forged_seal_is_refused(
        self, client, tmp_path, office, identity
    ):
        async with running_worker(client, tmp_path, identity=identity) as h:
            svc = unique_service()
            first = await _submitted(h, office.alice, svc, "v2")
            bogus = Attestation(
                principal="bob@example.com",
                method="ssh",
                action="abort",
                workflow_id=first.id,
                reason="forged",
                issued_at=datetime.now(UTC),
                nonce=secrets.token_hex(16),
                mac="0" * 64,
            )
            await first.signal("abort-signal", AbortRequest(reason="forged", attestation=bogus))
            status = await assert_eventually(lambda: _status(first), lambda s: bool(s.actions))
            assert not _last(status).accepted and status.phase == "awaiting-approval"

            second = _release(svc, "v3")
            await submit_to_lane(
                h.client,
                h.task_queue,
                second,
                supersede=True,
                proof=_submission(office.bob, second, reason="supersede"),
            )
            record = await ended(first)
            assert record.phase == "aborted"
            abort = next(a for a in record.actions if a.kind == "abort" and a.accepted)
            assert abort.by == "bob@example.com" and abort.via == "signal"
            assert abort.method != "trusted"


async def _cluster(handle: WorkflowHandle) -> ClusterStatus:
    return await handle.query(ClusterRolloutWorkflow.status)


async def _seal(identity: IdentityActivities, order: Attestation) -> Attestation:
    """What only a worker can make: ``order`` sealed with the worker's attestation key."""
    sealed: Attestation = await ActivityEnvironment().run(identity.attest, AttestInput(attestation=order))
    return sealed


def _order(action: str, workflow_id: str, **fields) -> Attestation:
    return Attestation.model_validate(
        {
            "principal": "bob@example.com",
            "method": "ssh",
            "action": action,
            "workflow_id": workflow_id,
            "issued_at": datetime.now(UTC),
            "nonce": secrets.token_hex(16),
            **fields,
        }
    )


class TestClusterControls:
    """Anyone with the namespace can signal a cluster workflow: only its release's sealed orders act."""

    async def test_controls_sent_straight_to_a_cluster_workflow_change_nothing(
        self, client, tmp_path, office, identity
    ):
        async with running_worker(client, tmp_path, identity=identity) as h:
            release = await _submitted(h, office.alice, unique_service(), rings=PAUSED)
            cid = (await _status(release)).clusters[0].workflow_id
            child = client.get_workflow_handle(cid)
            other = cid.replace("euw1-internal", "euc1-beta")
            bobs_own = office.bob.sign("approve", cid, run_id=await _run_id(child), ring="internal")
            attempts = [
                ("approve", ApproveRequest(ring="internal", cluster="euw1-internal", by="bob")),
                ("hold", HoldRequest(reason="mine now", by="bob")),
                ("approve", ApproveRequest(ring="internal", cluster="euw1-internal", proof=bobs_own)),
                (
                    "approve",
                    ApproveRequest(
                        ring="internal",
                        cluster="euw1-internal",
                        attestation=_order(
                            "approve", cid, ring="internal", cluster="euw1-internal", mac="0" * 64
                        ),
                    ),
                ),
                (
                    "approve",
                    ApproveRequest(
                        ring="internal",
                        cluster="euw1-internal",
                        attestation=await _seal(
                            identity, _order("approve", other, ring="internal", cluster="euw1-internal")
                        ),
                    ),
                ),
            ]
            for signal, req in attempts:
                await child.signal(signal, req)
            status = await assert_eventually(
                lambda: _cluster(child), lambda s: len(s.controls) == len(attempts), what="five refusals"
            )
            assert [c.accepted for c in status.controls] == [False] * len(attempts)
            problems = [c.rejection for c in status.controls]
            assert "sign" in problems[0] and "sign" in problems[1]
            assert "only from its release" in problems[2] and release.id in problems[2]
            assert "seal does not verify" in problems[3]
            assert "workflow_id" in problems[4]
            assert status.state == "awaiting-approval" and status.weight == 20
            assert h.versions()["euw1-internal"] == "v1", "the canary still waits at its first step"
            assert not (await _status(release)).held

            # The one door: the release, which judges four eyes and seals what it forwards.
            run = await _run_id(release)
            approval = office.bob.sign(
                "approve", release.id, run_id=run, ring="internal", cluster="euw1-internal"
            )
            await release.execute_update(
                ReleaseWorkflow.approve,
                ApproveRequest(ring="internal", cluster="euw1-internal", proof=approval),
            )
            result = await ended(release)
            assert result.phase == "succeeded"
            forwarded = result.clusters[0].controls[-1]
            assert (forwarded.kind, forwarded.by, forwarded.method, forwarded.accepted) == (
                "approve",
                "bob@example.com",
                "attested",
                True,
            )
            assert "ssh" in forwarded.verification, "the child knows how the release verified bob"

    async def test_a_sealed_order_is_applied_once(self, client, tmp_path, office, identity):
        async with running_worker(client, tmp_path, identity=identity) as h:
            release = await _submitted(h, office.alice, unique_service(), rings=PAUSED)
            child = client.get_workflow_handle((await _status(release)).clusters[0].workflow_id)
            sealed = await _seal(identity, _order("hold", child.id, reason="look"))
            await child.signal(ClusterRolloutWorkflow.hold, HoldRequest(reason="look", attestation=sealed))
            await child.signal(ClusterRolloutWorkflow.resume, ResumeRequest(by="bob"))
            await child.signal(ClusterRolloutWorkflow.hold, HoldRequest(reason="look", attestation=sealed))
            status = await assert_eventually(lambda: _cluster(child), lambda s: len(s.controls) == 3)
            assert [(c.kind, c.accepted) for c in status.controls] == [
                ("hold", True),
                ("resume", False),
                ("hold", False),
            ]
            assert "already used" in status.controls[2].rejection
            assert status.controls[0].by == "bob@example.com"

    async def test_an_abort_straight_to_a_cluster_rolls_it_back_and_is_recorded_unverified(
        self, client, tmp_path, office, identity
    ):
        """An abort is applied whatever its seal: a cancel through Temporal would roll back anyway."""
        async with running_worker(client, tmp_path, identity=identity) as h:
            release = await _submitted(h, office.alice, unique_service(), rings=PAUSED)
            child = client.get_workflow_handle((await _status(release)).clusters[0].workflow_id)
            await child.signal(ClusterRolloutWorkflow.abort, AbortRequest(reason="pulled", by="eve"))
            result = await ended(release)
            assert h.versions()["euw1-internal"] == "v1"
            assert result.clusters[0].state == "rolled-back"
            abort = result.clusters[0].controls[-1]
            assert (abort.kind, abort.by, abort.accepted, abort.method) == ("abort", "eve", True, "")
            assert "sign" in abort.rejection, "on record as not verified"


ALICE, BOB = ["alice@example.com"], ["bob@example.com"]
AUTHORIZATION = AuthorizationPolicy.model_validate(
    {
        "rules": [
            {"name": "alice-ships", "principals": ALICE, "actions": ["submit", "hold", "resume"]},
            {"name": "bob-never-holds", "effect": "deny", "principals": BOB, "actions": ["hold"]},
            {"name": "bob-approves-beta", "principals": BOB, "rings": ["beta"], "actions": ["approve"]},
        ]
    }
)


class TestAuthorization:
    """The worker judges the verified principal against its authorization policy before anything applies."""

    async def test_a_control_the_policy_refuses_changes_nothing_and_is_recorded_with_the_rule(
        self, client, tmp_path, office
    ):
        acts = IdentityActivities(office.policy(), secrets.token_bytes(32), authorization=AUTHORIZATION)
        async with running_worker(client, tmp_path, identity=acts) as h:
            svc = unique_service()
            refused = _release(svc, "v1")
            with pytest.raises(WorkflowUpdateFailedError) as submission:
                await submit_to_lane(h.client, h.task_queue, refused, proof=_submission(office.bob, refused))
            assert "not authorized: no rule allows bob@example.com (in no group) to submit" in str(
                submission.value.cause
            )
            assert await _absent(client, release_id(svc, "v1")), "a refused submission starts nothing"

            handle = await _submitted(h, office.alice, svc)
            wid, run = handle.id, await _run_id(handle)
            hold = office.bob.sign("hold", wid, run_id=run, reason="mine")
            message = await _refusal(handle, ReleaseWorkflow.hold, HoldRequest(reason="mine", proof=hold))
            assert "not authorized: rule 'bob-never-holds' (rules[1]) refuses bob@example.com" in message
            status = await _status(handle)
            assert not status.held and status.phase == "awaiting-approval"
            action = _last(status)
            assert (action.kind, action.accepted) == ("hold", False)
            assert "rule 'bob-never-holds' (rules[1])" in action.rejection, "the refusal is on record"

            approval = office.bob.sign("approve", wid, run_id=run, ring="beta")
            answer = await handle.execute_update(
                ReleaseWorkflow.approve, ApproveRequest(ring="beta", proof=approval)
            )
            assert answer.accepted
            result = await ended(handle)
            assert result.phase == "succeeded"
            approved = _last(result)
            assert (approved.kind, approved.by, approved.accepted) == ("approve", "bob@example.com", True)
            assert approved.verification.endswith("authorized by rule 'bob-approves-beta' (rules[2])")
            assert "SHA256:" in approved.verification
