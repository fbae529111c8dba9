"""``ClusterRolloutWorkflow``: one cluster's part of a release, as a child of the release.

Window, live residency evidence and decision, the strategy's steps, analysis from the first traffic
shift to promotion, and promotion. A failing gate or an abort rolls this cluster back here; clusters
that completed are rolled back later by the parent, from the snapshot this workflow returns.

Id: ``release:<service>:<version>:<ring>:<cluster>``. The parent steers it with signals (hold,
resume, abort, approve). It reports back to the parent with a ``cluster_progress`` signal only at
its milestones (:data:`MILESTONES`): what the release's phase, its controls and its operators
act on, never every step, so the parent's history grows with the fleet, not with the steps. Its
own state, step by step, is its ``status`` query, which ``ringmaster status`` reads for every
running cluster; the state it ended with travels in its result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities import outcomes
    from activities.flags import FlagActivities, FlagSnapshotInput, FlagStepInput, FlagStepResult
    from activities.models import (
        AnalysisMode,
        AnalysisStage,
        AnalyzeInput,
        AnalyzeResult,
        ClusterSnapshot,
        ClusterTarget,
        FlagRecord,
        KeepFlagInput,
        ResidencyInput,
        RollbackInput,
        RolloutTarget,
        SnapshotInput,
        StepAction,
        StepInput,
        StepResult,
        WaitInput,
        WaitResult,
        WindowInput,
        WindowState,
    )
    from activities.release import ReleaseActivities
    from activities.rollout import ClusterActivities
    from policies.gates import Check
    from policies.identity import Action, Verified
    from policies.strategy import CanaryStep, FlagStep
    from workflows import _identity, _metrics, _patches, _rollback, _signals
    from workflows import _options as options
    from workflows._steering import Aborted, AnalysisRun, GateFailed, Interrupted, Steering
    from workflows.models import (
        CLUSTER_CONTROLS_KEPT,
        ENDED_STATES,
        AbortRequest,
        ApproveRequest,
        ClusterRolloutInput,
        ClusterRolloutResult,
        ClusterState,
        ClusterStatus,
        HoldRequest,
        OperatorAction,
        ResumeRequest,
    )

_T = TypeVar("_T")

FAILED_OUTCOMES = "failed-outcomes"
"""Patch: a cluster workflow that did not promote closes as a failed workflow carrying its result."""

HOLD_KINDS = "hold-kinds-reported"
"""Patch: a cluster held by an inconclusive gate, by a failed one (rollback.mode freeze) or by an
operator reports each change between them, not only the start of the hold."""

MILESTONES = "milestone-reports"
"""Patch: report milestones, not every change of state (histories recorded before report every one)."""

_PROGRESSING: frozenset[ClusterState] = frozenset(
    {"checking-residency", "deploying", "promoting", "analyzing"}
)

WINDOW_RECHECK = timedelta(days=1)
"""When no window opens within the policy's horizon, look again after this long (waiting never fails)."""


class _StepFailed(Exception):
    """A step failed permanently (or exhausted its retries)."""


class _Denied(Exception):
    """A live residency rule denied the cluster."""


async def _to_its_end(handle: workflow.ActivityHandle[_T]) -> _T:
    """Await a short activity to its end even through a cancellation of the workflow, re-raised after.

    Cancelling a flag step mid-request could leave Unleash written with its result unrecorded, and the
    restore would then take ringmaster's own write for a person's edit.
    """
    cancelled = False
    while not handle.done():
        try:
            await asyncio.shield(handle)
        except asyncio.CancelledError:
            cancelled = True
        except ActivityError:
            break
    if cancelled:
        raise asyncio.CancelledError
    return handle.result()


def _end_of_pause_after(steps: Sequence[CanaryStep] | Sequence[FlagStep], index: int) -> datetime | None:
    """When the timed pause after step ``index`` (1-based) of ``steps`` ends if it starts now; None when
    the next step is no timed pause."""
    following = steps[index] if index < len(steps) else None
    if following is None or following.pause is None or following.pause.duration is None:
        return None
    return workflow.now() + following.pause.duration


def _succeeded(handle: workflow.ActivityHandle[_T]) -> bool:
    return handle.done() and not handle.cancelled() and handle.exception() is None


@workflow.defn(name="ClusterRolloutWorkflow")
class ClusterRolloutWorkflow(Steering):
    """Roll one release out to one cluster, or roll it back."""

    @workflow.init
    def __init__(self, inp: ClusterRolloutInput) -> None:
        super().__init__()
        self._inp = inp
        self.held = inp.held
        self.hold_reason = inp.hold_reason
        c = inp.cluster
        self._target = ClusterTarget(name=c.name, region=c.region, jurisdiction=c.jurisdiction)
        self._status = ClusterStatus(
            name=c.name,
            ring=c.ring,
            region=c.region,
            jurisdiction=c.jurisdiction,
            workflow_id=workflow.info().workflow_id,
        )
        self._snapshot: ClusterSnapshot | None = None
        self._touched = False
        self._touched_at = workflow.now()
        self._window: WindowState | None = None
        self._awaiting_approval = ""
        self._approved = False
        self._reported: str = ""
        self._analysis: AnalysisRun | None = None
        self._retry_now = False
        # Never read, on purpose: asyncio asks callers to hold a reference to a task they create, as the
        # loop itself keeps only weak ones.
        self._gate_reporter: asyncio.Task[None] | None = None
        self._controls = asyncio.Lock()
        self._ledger = _identity.Ledger()
        self._residency_reported = False

    # --- controls, from the parent ------------------------------------------------------------
    #
    # Anyone with access to the namespace can signal this workflow, not only its release. With
    # ``sealed_orders`` the release seals each control it sends (an attestation naming the person, or
    # ringmaster, who caused it) and every control is verified here before it changes anything, one
    # at a time in the order they arrived (the lock: a resume verified faster than the hold sent
    # before it must not be applied first). A person's own proof is refused too: approvals are
    # judged (four eyes) by the release, so a control reaches a cluster only through its release.
    #
    # An abort is applied at once and verified for the record only. Refusing it would close no
    # door, since the same people can cancel this workflow through Temporal and a cancellation rolls
    # back too, and it would put a seal between a failed gate elsewhere and this cluster's rollback.

    @workflow.signal
    async def hold(self, req: HoldRequest) -> None:
        """Start no new step; a canary stays at its weight; gates keep judging."""
        async with self._controls:
            if await self._accepts("hold", req, reason=req.reason):
                self.held, self.hold_reason = True, req.reason

    @workflow.signal
    async def resume(self, req: ResumeRequest) -> None:
        """Lift the hold, including a gate's; a cluster held as unreachable is tried again at once."""
        async with self._controls:
            if await self._accepts("resume", req):
                self.held, self.hold_reason = False, ""
                if req.gate_holds:  # False: the release lifts only its own hold (a freeze ended)
                    self.gate_holds.clear()
                    self.gate_failures.clear()
                self._retry_now = True

    @workflow.signal(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def abort(self, req: AbortRequest) -> None:
        """Roll this cluster back and end (verified for the record only: see above)."""
        if self.abort_reason is None:
            self.abort_reason = req.reason
        if self._inp.sealed_orders:
            await self._accepts("abort", req, reason=req.reason)

    @workflow.signal
    async def approve(self, req: ApproveRequest) -> None:
        """Release the step waiting for an approval (``pause: {}`` or a manual blue-green promotion)."""
        async with self._controls:
            accepted = await self._accepts("approve", req, ring=req.ring, cluster=req.cluster or "")
            if accepted and self._awaiting_approval:
                self._approved = True

    async def _accepts(
        self,
        action: Action,
        req: HoldRequest | ResumeRequest | AbortRequest | ApproveRequest,
        *,
        ring: str = "",
        cluster: str = "",
        reason: str = "",
    ) -> bool:
        """Whether this control is the release's sealed order; either way it is recorded."""
        if not self._inp.sealed_orders:
            return True
        who: Verified | None = None
        problem = ""
        if req.proof is not None:
            parent = workflow.info().parent
            problem = "a cluster workflow takes controls only from its release: send it to " + (
                parent.workflow_id if parent else "the release"
            )
        else:
            try:
                who = await self._ledger.verify(
                    action,
                    proof=None,
                    attestation=req.attestation,
                    claimed_by=req.by,
                    workflow_id=self._status.workflow_id,
                    ring=ring,
                    cluster=cluster,
                    reason=reason,
                )
            except _identity.Refused as refused:
                problem = refused.problem
        accepted = who is not None or action == "abort"
        if not accepted:
            workflow.logger.warning("%s refused: %s", action, problem)
        self._status.controls.append(
            OperatorAction(
                kind=action,
                by=who.principal if who else req.by,
                at=workflow.now(),
                reason=reason,
                ring=ring or None,
                cluster=cluster or None,
                via="signal",
                accepted=accepted,
                rejection=problem if who is None else "",
                method=who.method if who else "",
                verification=who.detail if who else "",
            )
        )
        del self._status.controls[:-CLUSTER_CONTROLS_KEPT]
        if who is None or not _patches.patched(MILESTONES):
            # An accepted control is the release's own order, and its record returns with the result;
            # a refused one (sent around the release) is news the release must show at once.
            await self._report()
        return who is not None

    @workflow.query
    def status(self) -> ClusterStatus:
        """This cluster's state, weight, gate and residency decisions."""
        return self._status

    # --- the run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ClusterRolloutInput) -> ClusterRolloutResult:
        """Deploy with the ring's strategy, judge, promote; roll back on a failed gate or an abort.

        Whatever ends the rollout, its ending (the rollback above all) runs to completion through
        any cancellation that arrives meanwhile (:func:`workflows._rollback.to_completion`).
        """
        ending: Coroutine[Any, Any, ClusterRolloutResult]
        try:
            await self._rollout()
        except _Denied:
            ending = self._denied()
        except GateFailed as failed:
            self._status.gate = failed.verdict
            ending = self._rolled_back(
                f"gate failed: {failed.verdict.reason}", "rolled-back", failed.verdict.reason
            )
        except Aborted as aborted:
            ending = self._rolled_back(f"aborted: {aborted.reason}", "aborted", aborted.reason)
        except asyncio.CancelledError:
            # Cancelled through Temporal (the parent was cancelled, terminated or reset): an abort.
            ending = self._rolled_back("cancelled", "aborted", "cancelled")
        except (_StepFailed, ActivityError) as failed:
            reason = (
                f"step failed: {failed.cause or failed}" if isinstance(failed, ActivityError) else str(failed)
            )
            ending = self._rolled_back(reason, "failed", reason)
        else:
            ending = self._promoted()
        result = await _rollback.to_completion(ending)
        _metrics.cluster_rollout(self._inp.strategy.kind, result.outcome)
        # Not promoted: a failed workflow (red in the UI) carrying the result, which the release reads
        # as this cluster's outcome (:mod:`activities.outcomes`).
        failure = outcomes.CLUSTER_FAILURES.get(result.outcome)
        if failure is not None and _patches.patched(FAILED_OUTCOMES):
            raise ApplicationError(
                f"{result.outcome.replace('-', ' ')} in {result.cluster}: {result.message}",
                result,
                type=failure,
                non_retryable=True,
            )
        return result

    async def _promoted(self) -> ClusterRolloutResult:
        await self._set_state("promoted", "promoted", weight=100, version=self._inp.release.version)
        return self._result("promoted", "promoted")

    async def _denied(self) -> ClusterRolloutResult:
        await self._set_state("denied", "a residency rule denied this cluster; nothing was deployed")
        return self._result("denied", self._status.message)

    async def _rolled_back(self, reason: str, outcome: str, message: str) -> ClusterRolloutResult:
        if self._inp.plan.rollback.frozen:
            return await self._left_in_place(reason, outcome, message)
        ok = await self._roll_back(reason)
        _metrics.rollback(outcome, ok=ok)
        return self._result(outcome if ok else "failed", message, rollback_ok=ok)

    async def _left_in_place(self, reason: str, outcome: str, message: str) -> ClusterRolloutResult:
        """End without touching the cluster again: the plan forbids a rollback (``rollback.mode: freeze``)."""
        if self._analysis is not None:
            self._analysis.abandon()
        note = "nothing rolled back (rollback.mode: freeze)"
        await self._set_state("left-in-place", f"{reason}; {note}")
        result = self._result(outcome, f"{message}; left in place, {note}")
        result.left_in_place = True
        return result

    async def _rollout(self) -> None:
        await self._before_step()
        await self._check_residency()
        await self._take_snapshot()
        strategy = self._inp.strategy
        if strategy.canary is not None:
            await self._canary()
        elif strategy.blue_green is not None:
            await self._blue_green()
        else:
            await self._rolling()
        if _patches.patched("verify-before-promoted"):
            # The workload may have been changed under the release since its last write (another
            # tool took the image): the wait checks it runs this release's image, or fails the step.
            await self._wait("workload")
        if strategy.feature_flag is not None:
            # No patch: no recorded history has a featureFlag (prepare_release refused such plans).
            await self._flag()

    # --- strategies ---------------------------------------------------------------------------

    async def _canary(self) -> None:
        canary = self._inp.strategy.canary
        assert canary is not None
        for index, step in enumerate(canary.steps, start=1):
            await self._before_step()
            if step.set_weight is not None:
                await self._step("set-weight", f"step {index}: setWeight {step.set_weight}", step.set_weight)
                await self._wait("canary")
                self._start_analysis("canary", until=self._pause_end(index))
            elif step.pause is not None and step.pause.duration is not None:
                self._judge_until(workflow.now() + step.pause.duration)
                await self._set_state(self._judging_state(), f"step {index}: pause {step.pause.duration}")
                await self.held_clock_wait(
                    step.pause.duration,
                    f"pause {step.pause.duration} at {self._status.weight}% in {self._target.name}",
                )
            else:
                self._judge_until(None)
                await self._await_approval(f"step {index}: pause until approved")
        await self._promote("canary")

    def _pause_end(self, index: int) -> datetime | None:
        """When the timed pause after step ``index`` (1-based) ends if it starts now; None when the next
        step is no timed pause. The stretch judging the weight just set ends there by itself.

        After a timed pause's stretch has answered, the next starts (with the prior checks, checking at
        once) when the next weight is set: none runs through the weight change itself, since a stretch
        started before it could learn its end only by a cancellation, up to an interval late, which a
        short pause would then make the promotion wait for."""
        canary = self._inp.strategy.canary
        assert canary is not None
        return _end_of_pause_after(canary.steps, index)

    def _judge_until(self, end: datetime | None) -> None:
        """Stretches from now on end at ``end`` (None: until stopped), when the analysis is timed."""
        if self._analysis is not None:
            self._analysis.until(end)

    # --- the feature flag, after the code ---------------------------------------------------------

    async def _flag(self) -> None:
        """The ring's feature flag, step by step as a canary's weight: ``setRollout`` steps, pauses and
        approvals, judged flag-on against flag-off from the first step, fully on (100%) at the end.

        The code has landed (flag off) and its own analysis has concluded; the flag's analysis is a new
        one, in the ``flag`` stage."""
        flag = self._inp.strategy.feature_flag
        assert flag is not None
        self._analysis = None  # the code's analysis concluded (passed): the flag is judged afresh
        for index, step in enumerate(flag.steps, start=1):
            await self._before_step()
            if step.set_rollout is not None:
                await self._flag_step(f"flag step {index}: setRollout {step.set_rollout}", step.set_rollout)
                self._start_analysis("flag", until=self._flag_pause_end(index))
            elif step.pause is not None and step.pause.duration is not None:
                self._judge_until(workflow.now() + step.pause.duration)
                await self._set_state(
                    self._judging_state(), f"flag step {index}: pause {step.pause.duration}"
                )
                await self.held_clock_wait(
                    step.pause.duration,
                    f"pause {step.pause.duration} at {self._status.flag_rollout or 0}% of {flag.flag} "
                    f"in {self._target.name}",
                )
            else:
                self._judge_until(None)
                await self._await_approval(f"flag step {index}: pause until approved")
        await self._before_step()
        await self._conclude_analysis()
        if self._status.flag_rollout != 100:
            await self._before_step()
            await self._flag_step(f"flag {flag.flag} fully on", 100, state="promoting")

    def _flag_pause_end(self, index: int) -> datetime | None:
        """As :meth:`_pause_end`, for the flag's steps."""
        flag = self._inp.strategy.feature_flag
        assert flag is not None
        return _end_of_pause_after(flag.steps, index)

    async def _flag_step(self, label: str, rollout: int, state: ClusterState = "deploying") -> None:
        """Snapshot the flag before the run's first write in this cluster, then one ``setRollout``."""
        flag = self._inp.strategy.feature_flag
        server = self._inp.flag_server
        assert flag is not None
        assert self._snapshot is not None
        if server is None:
            raise _StepFailed(f"no flag server is known for region {self._target.region}")
        await self._set_state(state, label)
        if self._snapshot.flag is None:
            found = await self._call(
                lambda: workflow.start_activity_method(
                    FlagActivities.snapshot_flag,
                    FlagSnapshotInput(
                        release=self._inp.release, cluster=self._target.name, flag=flag.flag, server=server
                    ),
                    summary=f"record flag {flag.flag} in {self._target.name} before its first step",
                    **options.FLAG_CALL,
                ),
                unreachable="flag server unreachable",
            )
            # Kept beside the workload's snapshot before the first write, so every rollback finds it:
            # this workflow's, the release's, a sweep after a reset, ``ringmaster rollback``. A kept
            # record wins over the one just read (a repeated first step reads its own write).
            self._snapshot.flag = await self._call(
                lambda: workflow.start_activity_method(
                    ClusterActivities.keep_flag_snapshot,
                    KeepFlagInput(
                        release=self._inp.release,
                        cluster=self._target,
                        workload=self._inp.workload,
                        record=FlagRecord(server=server, snapshot=found),
                    ),
                    summary=f"keep flag {flag.flag} as found beside the snapshot of {self._target.name}",
                    **options.CLUSTER_CALL,
                )
            )
        record = self._snapshot.flag
        step = FlagStepInput(
            release=self._inp.release,
            cluster=self._target.name,
            flag=flag.flag,
            server=server,
            rollout=rollout,
            stickiness=flag.stickiness,
            last_written=record.last_written,
        )

        def start() -> workflow.ActivityHandle[FlagStepResult]:
            return workflow.start_activity_method(
                FlagActivities.set_flag_rollout,
                step,
                summary=f"{label} of {flag.flag} in {self._target.name}",
                **options.FLAG_CALL,
            )

        def written(result: FlagStepResult) -> None:
            record.last_written = result.written
            self._status.flag_rollout = result.rollout

        await self._call(start, unreachable="flag server unreachable", whole=written)
        await self._set_state(self._judging_state() if state == "deploying" else state, label)

    async def _blue_green(self) -> None:
        blue_green = self._inp.strategy.blue_green
        assert blue_green is not None
        await self._step("deploy-preview", "preview at full size")
        await self._wait("preview")
        self._start_analysis("preview")
        if not blue_green.auto_promotion_enabled:
            await self._await_approval("promotion until approved")
        delay = timedelta(seconds=blue_green.scale_down_delay_seconds)
        if _patches.patched("bluegreen-switch-first"):
            # As Argo's scaleDownDelaySeconds: traffic moves to the preview, the previous version stays
            # up meanwhile, so an abort or a rollback in that time is an instant switch back.
            await self._before_step()
            await self._conclude_analysis()
            await self._before_step()
            await self._step("switch", "active Services switched to the preview", 100, state="promoting")
            await self._set_state("promoting", "previous version kept for scaleDownDelaySeconds")
            await self.sleep(delay, f"keep the previous version {delay} in {self._target.name}")
            await self._before_step()
            await self._step("promote", "the workload moves to the new version", 100, state="promoting")
            await self._wait("workload")
        else:
            await self._promote("preview")
            await self._set_state("promoted", "previous version kept for scaleDownDelaySeconds")
            await self.sleep(delay, f"keep the previous version {delay} in {self._target.name}")
        await self._step("cleanup", "preview removed", 100, state="promoted")

    async def _rolling(self) -> None:
        await self._step("deploy", "rolling update", 100)
        self._start_analysis("rolling")
        await self._wait("workload")
        await self._before_step()
        await self._conclude_analysis()

    async def _promote(self, stage: AnalysisStage) -> None:
        await self._before_step()
        await self._conclude_analysis()
        await self._before_step()
        await self._step("promote", f"promote from {stage}", 100, state="promoting")
        await self._wait("workload")
        if stage == "canary":
            await self._step("cleanup", "canary removed", 100, state="promoting")

    # --- gates --------------------------------------------------------------------------------

    def _start_analysis(self, stage: AnalysisStage, *, until: datetime | None = None) -> None:
        """Start judging (or, started, judge ``until``): each stretch ends at ``until`` by itself when
        the end is known (a canary's timed pause), else when stopped (see ``AnalysisRun``)."""
        if self._analysis is not None:
            self._analysis.until(until)
            return
        if not self._inp.analysis or not self._inp.analysis.metrics:
            return
        analysis = self._inp.analysis
        flag = self._inp.strategy.feature_flag

        def make_input(mode: AnalysisMode, prior: list[Check]) -> AnalyzeInput:
            return AnalyzeInput(
                release=self._inp.release,
                cluster=self._target,
                analysis=analysis,
                stage=stage,
                mode=mode,
                namespace=self._inp.workload.namespace,
                stable_version=self._snapshot.version if self._snapshot else "",
                touched_at=self._touched_at,
                prior_checks=prior,
                feature=flag.flag if stage == "flag" and flag is not None else None,
            )

        def on_result(result: AnalyzeResult) -> None:
            self._status.gate = result.verdict
            self._status.measurements = result.checks
            workflow.set_current_details(self._details())

        self._analysis = AnalysisRun(
            self,
            make_input,
            on_result,
            hold_on_failure=self._inp.plan.rollback.frozen,
            timed=_patches.patched("timed-stretches"),
        )
        self._analysis.start(until)
        if self._gate_reporter is None and _patches.patched("report-gate-holds"):
            # One reporter for the run: the flag's analysis follows the code's, both report through it.
            self._gate_reporter = asyncio.create_task(self._report_gate_holds())

    async def _report_gate_holds(self) -> None:
        """Show a gate hold as this cluster's state while it stands, and restore the state after it.

        A gate turns inconclusive in the middle of a pause or of concluding the analysis, where no step
        reports state; without this the release would hold while its status still said ``analyzing``.
        """

        def seen() -> tuple[bool, bool]:
            # A failed gate under rollback.mode freeze can take over from an inconclusive one with no
            # moment between them unheld: its own flag makes the reporter show the new reason.
            return bool(self.gate_holds) or bool(self.gate_failures), bool(self.gate_failures)

        def changed(showing: tuple[bool, bool]) -> Callable[[], bool]:
            return lambda: seen() != showing

        shown: tuple[ClusterState, str] | None = None
        showing = (False, False)
        while True:
            await workflow.wait_condition(changed(showing))
            showing = seen()
            if showing[0]:
                if shown is None:
                    shown = (self._status.state, self._status.step)
                await self._set_state("holding", self.hold_text())
            else:
                before, shown = shown, None
                # Restore only what this reporter changed: the run may already have moved on.
                if before is not None and self._status.state == "holding" and not self.is_held():
                    await self._set_state(*before)

    async def _conclude_analysis(self) -> None:
        if self._analysis is None:
            return
        await self._set_state(self._judging_state(), "concluding analysis")
        verdict = await self._analysis.stop()
        self._status.gate = verdict
        if verdict.status == "failed":
            raise GateFailed(self._target.name, verdict)

    def interruption(self) -> Interrupted | None:
        """An abort, or a gate that failed while steps were running (safety beats hold)."""
        if self._analysis is not None and self._analysis.failed is not None:
            return GateFailed(self._target.name, self._analysis.failed)
        return super().interruption()

    def _judging_state(self) -> ClusterState:
        return "analyzing" if self._analysis is not None else "deploying"

    # --- waits --------------------------------------------------------------------------------

    async def _before_step(self) -> None:
        """No step starts outside the region's window or while held."""
        while True:
            self.raise_if_interrupted()
            if not await self._window_open():
                await self._wait_for_window()
                continue
            if self.is_held():
                await self._set_state("holding", self.hold_text())
                await self.unheld()
                continue
            return

    async def _window_open(self) -> bool:
        w = self._window
        now = workflow.now()
        if w is not None and w.open and (w.next_close is None or now < w.next_close):
            return True
        self._window = await workflow.execute_activity_method(
            ReleaseActivities.check_window,
            WindowInput(plan=self._inp.plan, region=self._target.region, at=now),
            summary=f"window of {self._target.region}",
            **options.WINDOW,
        )
        return self._window.open

    async def _wait_for_window(self) -> None:
        w = self._window
        assert w is not None
        wait = w.next_open - workflow.now() if w.next_open else WINDOW_RECHECK
        self._status.next_window = w.next_open
        await self._set_state("waiting-window", w.reason or "outside the deployment window")
        opens = f"opens {w.opens}" if w.opens else f"checked again in {wait}"
        await self.sleep(
            max(wait, timedelta(seconds=1)), f"waiting for the {self._target.region} window, {opens}"
        )
        self._status.next_window = None

    async def _await_approval(self, what: str) -> None:
        await self._before_step()
        self._awaiting_approval, self._approved = what, False
        await self._set_state("awaiting-approval", what)
        await self.until(lambda: self._approved)
        self._awaiting_approval = ""
        await self._set_state(self._judging_state(), f"approved: {what}")

    # --- activities ---------------------------------------------------------------------------

    async def _check_residency(self) -> None:
        await self._set_state("checking-residency", "gathering live evidence")
        result = await self._call(
            lambda: workflow.start_activity_method(
                ClusterActivities.check_residency,
                ResidencyInput(
                    release=self._inp.release,
                    cluster=self._target,
                    plan=self._inp.plan,
                    schedule=self._inp.schedule,
                    scheduled=None if self._inp.schedule else self._inp.cluster,
                    validators=self._inp.validators,
                    promoted=self._inp.promoted_before,
                ),
                summary=f"residency evidence in {self._target.name}",
                **options.CLUSTER_CALL,
            )
        )
        self._status.residency = result.decisions
        if not result.allowed:
            denied = [d for d in result.decisions if d.verdict == "deny"]
            self._status.message = "; ".join(f"{d.rule}: {d.reason}" for d in denied)
            raise _Denied

    async def _take_snapshot(self) -> None:
        self._snapshot = await self._call(
            lambda: workflow.start_activity_method(
                ClusterActivities.snapshot_cluster,
                SnapshotInput(release=self._inp.release, cluster=self._target, workload=self._inp.workload),
                summary=f"record {self._target.name} before the release",
                **options.CLUSTER_CALL,
            )
        )
        self._status.version = self._snapshot.version
        self._touched_at = workflow.now()

    async def _step(
        self, action: StepAction, label: str, weight: int | None = None, state: ClusterState = "deploying"
    ) -> StepResult:
        assert self._snapshot is not None
        await self._set_state(state, label)
        self._touched = True
        step = StepInput(
            release=self._inp.release,
            cluster=self._target,
            workload=self._inp.workload,
            strategy=self._inp.strategy,
            action=action,
            weight=weight,
            snapshot=self._snapshot,
        )
        try:
            result = await self._call(
                lambda: workflow.start_activity_method(
                    ClusterActivities.apply_step,
                    step,
                    summary=f"{label} in {self._target.name}",
                    **options.CLUSTER_CALL,
                )
            )
        except _StepFailed:
            _metrics.cluster_step(self._inp.strategy.kind, action, "failed")
            raise
        _metrics.cluster_step(self._inp.strategy.kind, action, "ok")
        self._status.weight = result.weight
        if action == "promote":
            self._status.version = self._inp.release.version
        await self._set_state(state if action != "set-weight" else self._judging_state(), label)
        return result

    async def _wait(self, target: RolloutTarget) -> WaitResult:
        wait = WaitInput(
            release=self._inp.release,
            cluster=self._target,
            workload=self._inp.workload,
            strategy=self._inp.strategy,
            target=target,
        )
        return await self._call(
            lambda: workflow.start_activity_method(
                ClusterActivities.wait_rollout,
                wait,
                summary=f"wait for the {target} rollout in {self._target.name}",
                **options.wait_rollout(600),
            )
        )

    async def _call(
        self,
        start: Callable[[], workflow.ActivityHandle[_T]],
        *,
        unreachable: str = "cluster unreachable",
        whole: Callable[[_T], None] | None = None,
    ) -> _T:
        """One call against the cluster, interruptible, holding the cluster while its API is unreachable.

        A permanent failure fails the step (and the cluster rolls back). A transient one that outlasts
        the call's own retries (an API server down for minutes: a control-plane upgrade, a network
        partition) holds this cluster as ``cluster unreachable`` (``unreachable``) with the last error,
        and the call runs again after a growing pause, or at once on ``resume``, until the API answers:
        the release goes on by itself. An abort or a failing gate still interrupts it.

        With ``whole`` (a flag step: seconds long), the call is never cut short: an abort, a failing
        gate or a cancellation waits for it to end and ``whole`` to record what it wrote, so the
        restore that follows judges Unleash against what is really there, then goes on.
        """
        held_from: tuple[ClusterState, str] | None = None
        round_ = 0
        while True:
            try:
                if whole is None:
                    result = await self.interruptible(start())
                else:
                    handle = start()
                    try:
                        result = await _to_its_end(handle)
                    except asyncio.CancelledError:
                        if _succeeded(handle):
                            whole(handle.result())
                        raise
                    whole(result)
                    self.raise_if_interrupted()
            except ActivityError as err:
                if _rollback.is_permanent(err) or not _patches.patched("unreachable-holds"):
                    raise _StepFailed(_rollback.describe(err)) from None
                round_ += 1
                pause = _rollback.pause_after(round_)
                if held_from is None:
                    held_from = (self._status.state, self._status.step)
                self._retry_now = False
                await self._set_state(
                    "holding", f"{unreachable} (trying again within {pause}): {_rollback.describe(err)}"
                )
                await self.until(
                    lambda: self._retry_now, limit=pause, summary=f"try {self._target.name} again in {pause}"
                )
                continue
            if held_from is not None and self._status.state == "holding":
                await self._set_state(*held_from)
            return result

    async def _roll_back(self, reason: str) -> bool:
        """Return the cluster to its snapshot; False when it could not be (a permanent failure).

        The rollback starts at once: it never waits for an analysis stretch to acknowledge its end,
        nor for the report to the parent (best effort, sent once the rollback activity is scheduled).
        Transient failures never end it (:func:`workflows._rollback.restore`).
        """
        rollback_first = _patches.patched("rollback-first")
        if self._analysis is not None:
            if rollback_first:
                self._analysis.abandon()
            else:
                await self._analysis.cancel()
        if not self._touched or self._snapshot is None:
            return True
        inp = RollbackInput(
            release=self._inp.release,
            cluster=self._target,
            workload=self._inp.workload,
            strategy=self._inp.strategy,
            snapshot=self._snapshot,
            reason=reason,
        )

        async def report(retrying: str) -> None:
            if retrying or rollback_first:
                await self._set_state("rolling-back", retrying or reason)

        if not rollback_first:
            # Histories recorded before "rollback-first" reported the rollback before starting it.
            await self._set_state("rolling-back", reason)
        failure = await _rollback.restore(inp, report)
        if failure is not None:
            await self._set_state("failed", f"rollback failed, needs attention: {failure}")
            return False
        self._status.weight = 0
        self._status.version = self._snapshot.version
        await self._set_state("rolled-back", reason)
        return True

    # --- reporting ----------------------------------------------------------------------------

    async def _set_state(
        self, state: ClusterState, step: str, *, weight: int | None = None, version: str | None = None
    ) -> None:
        s = self._status
        s.state, s.step = state, step
        if weight is not None:
            s.weight = weight
        if version is not None:
            s.version = version
        s.updated_at = workflow.now()
        workflow.set_current_details(self._details())
        if _patches.patched(MILESTONES):
            key = self._milestone()
            if not self._reported and key == "deploying":
                self._reported = key  # the release shows a cluster it started as deploying
        else:
            key = f"{s.state}|{s.step}|{s.weight}|{s.version}|{s.gate.status if s.gate else ''}"
        if key == self._reported:
            return
        self._reported = key
        await self._report()

    def _keeps_decisions(self) -> bool:
        """A cluster of a large release (no analysis report) keeps allowing decisions to itself: the
        release's record drops them anyway (``DECISIONS_KEPT_UP_TO``), and they were 1.5 KiB a cluster
        of its history. A denial always travels; this workflow's status and history hold them all."""
        return not self._inp.report_analysis and not any(d.verdict == "deny" for d in self._status.residency)

    def _details(self) -> str:
        """The UI's current details: where the rollout stands and what the gates last measured."""
        s = self._status
        new = self._inp.release.version
        if 0 < s.weight < 100 and s.version != new:
            traffic = f"{s.weight}% on {new}, the rest on {s.version or 'the previous version'}"
        else:
            traffic = f"on {s.version or '-'}"
        lines = [
            f"**{s.name}** ({s.region}) · **{s.state}** · {traffic}",
            "",
            s.step,
        ]
        if self.is_held() and s.state not in ENDED_STATES:
            lines += ["", f"Held: {self.hold_text()}"]
        if s.gate is not None:
            lines += ["", f"Gate **{s.gate.status}**: {s.gate.reason}"]
        if s.measurements:
            last = s.measurements[-1]
            lines += ["", f"| metric | value at {last.at:%H:%M:%S} | error |", "|---|---|---|"]
            lines += [
                f"| {m.metric} | {m.value if m.value is not None else '-'} | {m.error or ''} |"
                for m in last.measurements
            ]
        return "\n".join(lines)

    def _milestone(self) -> str:
        """Where this cluster stands in the release's terms: what its phase and controls act on.

        Waiting for a window, awaiting approval, holding and rolling back are each a milestone (the
        release's phase shows them, ``approve --cluster`` and ``resume`` act on them); every other
        step of a rollout is one milestone, ``deploying`` until its analysis starts and ``analyzing``
        from then on. An ending is reported by the result, not by a signal.
        """
        state = self._status.state
        if state in _PROGRESSING:
            return "analyzing" if self._analysis is not None and self._inp.report_analysis else "deploying"
        if state in ENDED_STATES:
            return self._reported  # the result says it
        if state == "holding" and _patches.patched(HOLD_KINDS):
            # What holds it is part of the milestone: a gate that failed under rollback.mode freeze
            # after an inconclusive one (no data yet, then bad data) is news the release must show.
            return "holding:failed" if self.gate_failures else "holding:gate" if self.gate_holds else state
        return state

    async def _report(self) -> None:
        """Send this cluster's status to the release (the parent), as of now."""
        s = self._status
        parent = workflow.info().parent
        if parent is not None:
            # Best effort: a parent that has closed (terminated, reset, timed out) must never turn
            # this report into a failure of the cluster's own rollout or rollback.
            try:
                release = workflow.get_external_workflow_handle(parent.workflow_id)
                report = s.model_copy(deep=True)  # as of now, whenever the signal's task runs
                # The residency decisions are made once: they travel in the first report that has
                # them, not in every report after (they were a third of the parent's history).
                if report.residency and self._residency_reported:
                    report.residency = []
                self._residency_reported = self._residency_reported or bool(report.residency)
                await _signals.send(lambda: release.signal("cluster_progress", report), "progress report")
            except FailureError as err:
                workflow.logger.info("progress not reported, the release workflow has closed: %s", err)

    def _result(self, outcome: str, message: str, *, rollback_ok: bool = True) -> ClusterRolloutResult:
        return ClusterRolloutResult.model_validate(
            {
                "cluster": self._target.name,
                "outcome": outcome,
                "snapshot": self._snapshot,
                "verdict": self._status.gate,
                # Sent once: the release keeps those it had in a report.
                "decisions": []
                if self._residency_reported or self._keeps_decisions()
                else self._status.residency,
                "message": message,
                "rollback_failed": not rollback_ok,
                "touched": self._touched,
                "touched_at": self._touched_at if self._touched else None,
                # Without what travels apart (decisions, above or in a report; the gate, as the verdict),
                # and with the last check only: the release's record of every cluster is its result,
                # and ten checks a cluster made a third of it. The checks stay in this history.
                "final": self._status.model_copy(
                    update={"residency": [], "gate": None, "measurements": self._status.measurements[-1:]}
                ),
            }
        )
