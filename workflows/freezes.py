"""``FreezeRegistryWorkflow``: stop the line. Every freeze in force, who froze and why, in one place.

Id: :func:`registry_id` of the task queue, so every worker of one deployment honours the same
freezes (and a test on its own task queue has its own registry). ``ringmaster freeze`` and
``unfreeze`` reach it with update-with-start, so the first freeze starts it; its handlers run one at
a time under a lock. Each request is verified like any control (``verify_identity``, actions
``freeze`` and ``unfreeze``, judged by the authorization policy) and recorded with the verified
principal and the reason.

After each change the registry prompts every running release to read it again (``freezes-changed``,
a signal without authority); releases and lanes read it only through ``activities.freeze``, so what
a release saw is in its own history.
It runs until Temporal suggests a new run, then continues as new with its freezes.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.freeze import FreezeActivities
    from activities.models import FreezeNotice
    from policies import freeze
    from policies.freeze import Action as FreezeAction
    from policies.freeze import Freeze, FreezeList
    from policies.identity import Verified
    from workflows import _identity
    from workflows import _options as options
    from workflows.models import (
        FREEZE_LOG_KEPT,
        FreezeEvent,
        FreezeRegistryState,
        FreezeRequest,
        FreezeResult,
        UnfreezeRequest,
    )


def registry_id(task_queue: str) -> str:
    """The freeze registry of the workers polling ``task_queue``."""
    return f"ringmaster:freezes:{task_queue}"


def _rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type="ControlRejected", non_retryable=True)


def _scope_problem(scope: str, target: str) -> str:
    if scope == "all" and target:
        return "a freeze of everything names no service or region"
    if scope != "all" and not target:
        return f"a {scope} freeze names its {scope}"
    return ""


@workflow.defn(name="FreezeRegistryWorkflow")
class FreezeRegistryWorkflow:
    """Holds the freezes in force; answers who froze what, and why."""

    @workflow.init
    def __init__(self, state: FreezeRegistryState) -> None:
        self._state = state
        self._lock = asyncio.Lock()
        self._ledger = _identity.Ledger(state.used_nonces, state.used_token_ids)

    @workflow.run
    async def run(self, state: FreezeRegistryState) -> FreezeRegistryState:
        """Keep the freezes until history grows, then continue as new with them."""
        await workflow.wait_condition(
            lambda: workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished()
        )
        workflow.continue_as_new(self._state)

    @workflow.query
    def freezes(self) -> FreezeList:
        """Every freeze in force (what ``activities.freeze`` reads)."""
        return FreezeList(freezes=list(self._state.freezes))

    @workflow.query
    def state(self) -> FreezeRegistryState:
        """The freezes in force and the recent freezes and unfreezes."""
        return self._state

    @workflow.update
    async def freeze(self, req: FreezeRequest) -> FreezeResult:
        """Start a freeze of ``req.scope``; refused when that scope is already frozen."""
        async with self._lock:
            key = freeze.key(req.scope, req.target)
            who = await self._verified("freeze", req, key, req.reason)
            if (problem := self._freeze_problem(req)) != "":
                raise _rejected(problem)
            frozen = Freeze(
                scope=req.scope,
                target=req.target,
                reason=req.reason,
                by=who.principal,
                method=who.method,
                at=workflow.now(),
            )
            self._state.freezes.append(frozen)
            self._log("freeze", key, req.reason, who)
            told = await self._tell_releases(key)
            return FreezeResult(message=frozen.describe() + told, freezes=list(self._state.freezes))

    @freeze.validator
    def _validate_freeze(self, req: FreezeRequest) -> None:
        if problem := self._freeze_problem(req):
            raise _rejected(problem)

    @workflow.update
    async def unfreeze(self, req: UnfreezeRequest) -> FreezeResult:
        """Lift the freeze of ``req.scope``; refused when that scope is not frozen."""
        async with self._lock:
            key = freeze.key(req.scope, req.target)
            who = await self._verified("unfreeze", req, key, "")
            if problem := self._unfreeze_problem(req):
                raise _rejected(problem)
            lifted = next(f for f in self._state.freezes if f.key == key)
            self._state.freezes.remove(lifted)
            self._log("unfreeze", key, lifted.reason, who)
            told = await self._tell_releases(key)
            return FreezeResult(
                message=f"unfrozen ({key}) by {who.principal}; it was {lifted.describe()}{told}",
                freezes=list(self._state.freezes),
            )

    @unfreeze.validator
    def _validate_unfreeze(self, req: UnfreezeRequest) -> None:
        if problem := self._unfreeze_problem(req):
            raise _rejected(problem)

    def _freeze_problem(self, req: FreezeRequest) -> str:
        if not req.reason.strip():
            return "a freeze needs a reason"
        if problem := _scope_problem(req.scope, req.target):
            return problem
        key = freeze.key(req.scope, req.target)
        existing = next((f for f in self._state.freezes if f.key == key), None)
        return f"already {existing.describe()}" if existing is not None else ""

    def _unfreeze_problem(self, req: UnfreezeRequest) -> str:
        if problem := _scope_problem(req.scope, req.target):
            return problem
        key = freeze.key(req.scope, req.target)
        if any(f.key == key for f in self._state.freezes):
            return ""
        keys = ", ".join(f.key for f in self._state.freezes) or "none"
        return f"{key} is not frozen (frozen: {keys})"

    async def _verified(
        self, action: FreezeAction, req: FreezeRequest | UnfreezeRequest, key: str, reason: str
    ) -> Verified:
        """Who asks, as the worker verified it (``verify_identity``); a refusal changes nothing."""
        if not req.by and req.proof is None:
            raise _rejected(f"{action} needs the operator's identity (by), or a proof")
        try:
            return await self._ledger.verify(
                action,
                proof=req.proof,
                attestation=None,
                claimed_by=req.by,
                workflow_id=workflow.info().workflow_id,
                cluster=key,
                reason=reason,
            )
        except _identity.Refused as refused:
            raise _rejected(f"{action} refused: {refused.problem}") from None

    async def _tell_releases(self, key: str) -> str:
        """Prompt the running releases to read the freezes now; a failure is reported, not fatal.

        A release that is not told still reads the freezes before its next wave (and, once frozen,
        watches for the unfreeze by itself).
        """
        try:
            told = await workflow.execute_activity_method(
                FreezeActivities.tell,
                FreezeNotice(task_queue=workflow.info().task_queue, key=key),
                summary="tell the running releases to read the freezes",
                **options.FREEZE_TELL,
            )
        except ActivityError as err:
            workflow.logger.warning("running releases not told of %s: %s", key, err.cause or err)
            return " (running releases could not be told: they read it before their next wave)"
        return f" ({told} running releases told)"

    def _log(self, kind: FreezeAction, key: str, reason: str, who: Verified) -> None:
        self._state.log.append(
            FreezeEvent(
                kind=kind, key=key, reason=reason, by=who.principal, method=who.method, at=workflow.now()
            )
        )
        del self._state.log[:-FREEZE_LOG_KEPT]
