"""Who asked, as the worker verified it: the workflow side of ``activities.identity``.

A release or a lane never trusts a request's ``by``. Each submission and control is verified by the
``verify_identity`` activity (its result is history, so a release replays with the principal it
verified then, whatever the policy says now) before anything is applied; a refusal raises
:class:`Refused` and nothing changes. A :class:`Ledger` remembers the nonces and token ids a workflow
accepted, so a request captured from history or the wire cannot be sent again. Orders a workflow
gives another (a lane's supersede, a release's forwarded approval) carry an :class:`Attestation` the
worker seals with a key only workers hold.

Behind the patch ``verified-identity``: histories recorded before it replay without verification.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.identity import IdentityActivities
    from activities.models import AttestInput, VerifyInput, VerifyResult
    from policies.identity import Action, Attestation, Expected, Proof, Verified
    from workflows import _options as options
    from workflows import _patches

PATCH = "verified-identity"
KEEP = 1000
"""Nonces and token ids a ledger keeps: far more than can arrive within a statement's maximum age."""


class Refused(Exception):
    """The request's proof did not verify: nothing of it is applied."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def active() -> bool:
    """Whether this workflow verifies identity (new histories do; older ones replay without)."""
    return _patches.patched(PATCH)


def _cause(err: ActivityError) -> str:
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)


class Ledger:
    """Verifies requests for one workflow and remembers what it accepted."""

    def __init__(self, nonces: list[str] | None = None, token_ids: list[str] | None = None) -> None:
        self.nonces: list[str] = nonces if nonces is not None else []
        self.token_ids: list[str] = token_ids if token_ids is not None else []

    async def verify(
        self,
        action: Action,
        *,
        proof: Proof | None,
        attestation: Attestation | None,
        claimed_by: str,
        workflow_id: str,
        run_id: str = "",
        image: str = "",
        plan_digest: str = "",
        ring: str = "",
        cluster: str = "",
        reason: str = "",
    ) -> Verified:
        """The verified principal of one request, or :class:`Refused` naming why not."""
        expected = Expected(
            action=action,
            workflow_id=workflow_id,
            run_id=run_id,
            image=image,
            plan_digest=plan_digest,
            ring=ring,
            cluster=cluster,
            reason=reason,
            entered_at=workflow.now(),
            used_nonces=list(self.nonces),
            used_token_ids=list(self.token_ids),
        )
        try:
            result: VerifyResult = await workflow.execute_activity_method(
                IdentityActivities.verify,
                VerifyInput(expected=expected, proof=proof, attestation=attestation, claimed_by=claimed_by),
                summary=f"verify who asks to {action}",
                **options.IDENTITY,
            )
        except ActivityError as err:
            raise Refused(f"identity could not be verified: {_cause(err)}") from None
        verified = result.verified
        if result.problem or verified is None:
            raise Refused(result.problem or "identity could not be verified")
        # Two requests with one nonce can be verified side by side: the first to return wins.
        if verified.nonce and verified.nonce in self.nonces:
            raise Refused(f"nonce {verified.nonce} was already used: a replayed request")
        if verified.token_id and verified.token_id in self.token_ids:
            raise Refused(f"token {verified.token_id} was already used: a token authorises one request")
        if verified.nonce:
            self.nonces.append(verified.nonce)
            del self.nonces[:-KEEP]
        if verified.token_id:
            self.token_ids.append(verified.token_id)
            del self.token_ids[:-KEEP]
        return verified


async def attest(
    verified: Verified,
    action: Action,
    workflow_id: str,
    *,
    ring: str = "",
    cluster: str = "",
    reason: str = "",
) -> Attestation:
    """An order to ``workflow_id`` on behalf of ``verified``, sealed by the worker (or :class:`Refused`)."""
    order = Attestation(
        principal=verified.principal,
        method=verified.method,
        detail=verified.detail,
        action=action,
        workflow_id=workflow_id,
        ring=ring,
        cluster=cluster,
        reason=reason,
        issued_at=workflow.now(),
        nonce=workflow.uuid4().hex,
    )
    try:
        sealed: Attestation = await workflow.execute_activity_method(
            IdentityActivities.attest,
            AttestInput(attestation=order),
            summary=f"seal the order to {action} {workflow_id}",
            **options.IDENTITY,
        )
    except ActivityError as err:
        raise Refused(f"the order could not be sealed: {_cause(err)}") from None
    return sealed
