"""``ReleaseLaneWorkflow``: at most one release per service at a time, decided in one place.

Id: ``lane:<service>``. Every submission is an update sent with update-with-start, so concurrent CI
jobs meet in the same lane and its handlers run one at a time: exactly one release starts, the other
submission sees it running. The lane starts the release as a child (abandoned on close, so a lane
that ends never stops a release) and waits for it; an idle lane ends by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from activities.freeze import FreezeActivities
    from activities.models import FreezeCheckInput
    from policies.identity import Attestation, Verified, plan_digest
    from workflows import _identity, _patches, _signals
    from workflows import _options as options
    from workflows.models import AbortRequest, LaneState, ReleaseInput, SubmitRequest, SubmitResult
    from workflows.release import ReleaseWorkflow, release_id

FREEZE_REFUSALS = "freeze-refuses-submissions"
"""Patch: a submission of a service under a freeze (of everything, or of the service) is refused."""

IDLE_TIMEOUT = timedelta(minutes=10)
"""How long a lane with no release waits for the next submission before it ends."""


def _submitted(release: ReleaseInput) -> str:
    """Who submitted the release, for the UI: the verified principal and how, or the client's word."""
    who = release.submitter
    if who is not None:
        return f"Submitted by {who.principal} (verified: {who.method}) with {release.image}."
    return f"Submitted by {release.submitted_by or 'unknown'} (unverified) with {release.image}."


def _rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type="SubmissionRejected", non_retryable=True)


def lane_id(service: str) -> str:
    """The workflow id of a service's lane."""
    return f"lane:{service}"


@workflow.defn(name="ReleaseLaneWorkflow")
class ReleaseLaneWorkflow:
    """Serialises the releases of one service."""

    @workflow.init
    def __init__(self, state: LaneState) -> None:
        self._state = state
        self._lock = asyncio.Lock()
        self._child: workflow.ChildWorkflowHandle[ReleaseWorkflow, object] | None = None
        self._pending_child = False
        self._ended = 0
        """Releases this run has waited for to the end."""
        self._ledger = _identity.Ledger(state.used_nonces, state.used_token_ids)

    @workflow.run
    async def run(self, state: LaneState) -> LaneState:
        """Wait for each release to end; end after an idle spell, or continue as new when history grows.

        The lane ends or continues as new only when idle: no release of its own running, none being
        started, no submission in flight. A submission handled while the lane waits for its
        handlers to finish may start a release; a new run could not await it (it is not that run's
        child) and would keep it as ``current`` long after it ended, so the lane waits for it first.
        """
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._child is not None,
                    timeout=IDLE_TIMEOUT,
                    timeout_summary=f"the next submission, or the lane ends after {IDLE_TIMEOUT}",
                )
            except TimeoutError:
                # The timer can fire in the same task as a submission that started a release: then
                # the loop awaits that release instead of ending beside it.
                if self._idle():
                    return self._state
                continue
            assert self._child is not None
            with contextlib.suppress(ChildWorkflowError):  # the release's status records how it ended
                await self._child
            self._child = None
            self._state.current = None
            self._state.current_workflow_id = self._state.current_run_id = ""
            self._ended += 1
            if self._continue_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                # A submission may have started a release meanwhile: await it first. Nothing runs
                # between this check and the command, so the run continues as new idle or not at all.
                if self._idle():
                    workflow.continue_as_new(self._state)

    def _idle(self) -> bool:
        """No release of this run runs or is being started, and no submission is in flight."""
        return self._child is None and not self._pending_child and workflow.all_handlers_finished()

    def _continue_suggested(self) -> bool:
        per_run = self._state.releases_per_run
        return workflow.info().is_continue_as_new_suggested() or (0 < per_run <= self._ended)

    @workflow.query
    def current(self) -> LaneState:
        """Which release of the service runs now, if any."""
        return self._state

    @workflow.update
    async def submit(self, req: SubmitRequest) -> SubmitResult:
        """Start the release unless another one of this service runs (or supersede it)."""
        async with self._lock:
            # Handlers run one at a time under the lock: the state read here is the state acted on.
            new = req.release
            submitter: Verified | None = None
            if _identity.active():
                submitter = await self._verified(req)
                new = new.model_copy(
                    update={"submitter": submitter, "submitted_by": submitter.principal or new.submitted_by}
                )
            current = self._state.current
            if current is not None and current.version == new.version:
                if current.image != new.image:
                    raise ApplicationError(
                        f"{new.release} is already running with image {current.image}; "
                        f"a release's image cannot change (submitted {new.image})",
                        type="SubmissionRejected",
                        non_retryable=True,
                    )
                return SubmitResult(
                    release=new.release,
                    workflow_id=self._state.current_workflow_id,
                    run_id=self._state.current_run_id,
                    created=False,
                    message="already running",
                )
            if _patches.patched(FREEZE_REFUSALS):
                await self._refuse_if_frozen(new)
            if current is not None and not req.supersede:
                raise ApplicationError(
                    f"{current.release} is running (workflow {self._state.current_workflow_id}); "
                    "one release per service at a time: wait for it, or submit with --supersede",
                    type="SubmissionRejected",
                    non_retryable=True,
                )
            if current is not None:
                superseded = workflow.get_external_workflow_handle(self._state.current_workflow_id)
                order = AbortRequest(
                    reason=f"superseded by {new.release}",
                    by=new.submitted_by or "ringmaster",
                    identity=new.submitted_identity,
                )
                if submitter is not None:
                    # The release verifies its aborts: the lane's order carries the worker's seal.
                    order = order.model_copy(update={"attestation": await self._seal(submitter, order)})
                await _signals.send(lambda: superseded.signal("abort-signal", order), "supersede order")
                await workflow.wait_condition(lambda: self._state.current is None)
            return await self._start(new, rerun=req.rerun)

    async def _verified(self, req: SubmitRequest) -> Verified:
        """Who submitted, as the worker verified it; a refusal rejects the submission whole."""
        new = req.release
        options = ",".join(name for name, on in (("rerun", req.rerun), ("supersede", req.supersede)) if on)
        try:
            return await self._ledger.verify(
                "submit",
                proof=req.proof,
                attestation=None,
                claimed_by=new.submitted_by,
                workflow_id=release_id(new.service, new.version),
                image=new.image,
                plan_digest=plan_digest(new.plan_text),
                reason=options,
            )
        except _identity.Refused as refused:
            raise _rejected(f"submission of {new.release} refused: {refused.problem}") from None

    async def _refuse_if_frozen(self, new: ReleaseInput) -> None:
        """Refuse the submission, naming the freeze, when one holds the service (or it cannot be told).

        The plan is not scheduled yet, so only freezes of everything or of the service refuse here; a
        region's freeze holds the release before its first step instead.
        """
        try:
            found = await workflow.execute_activity_method(
                FreezeActivities.check,
                FreezeCheckInput(service=new.service),
                summary=f"is {new.service} frozen",
                **options.FREEZE_CHECK,
            )
        except ActivityError as err:
            raise _rejected(
                f"submission of {new.release} refused: the freeze registry could not be read "
                f"({err.cause or err})"
            ) from None
        if found.freezes:
            frozen = "; ".join(f.describe() for f in found.freezes)
            raise _rejected(f"submission of {new.release} refused: {frozen}; ringmaster unfreeze lifts it")

    async def _seal(self, submitter: Verified, order: AbortRequest) -> Attestation:
        try:
            return await _identity.attest(
                submitter, "abort", self._state.current_workflow_id, reason=order.reason
            )
        except _identity.Refused as refused:
            raise _rejected(f"cannot supersede: {refused.problem}") from None

    async def _start(self, new: ReleaseInput, *, rerun: bool) -> SubmitResult:
        wid = release_id(new.service, new.version)
        self._pending_child = True
        try:
            child = await workflow.start_child_workflow(
                ReleaseWorkflow.run,
                new,
                id=wid,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if rerun
                else WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"{new.release} ({new.image})",
                static_details=_submitted(new),
                memo={"image": new.image, "submitted_by": new.submitted_by},
            )
        except WorkflowAlreadyStartedError:
            raise ApplicationError(
                f"{new.release} has already run (workflow {wid}); submit with --rerun to run it again",
                type="SubmissionRejected",
                non_retryable=True,
            ) from None
        finally:
            self._pending_child = False
        self._child = child
        self._state.current = new
        self._state.current_workflow_id = child.id
        self._state.current_run_id = child.first_execution_run_id or ""
        return SubmitResult(
            release=new.release, workflow_id=child.id, run_id=self._state.current_run_id, created=True
        )
