"""``ReleaseWorkflow``: one durable release of one service version across every ring and region.

The first activity validates the plan against the worker's fleet, schedules it and judges the static
residency rules; its result is history, so a running release never changes when files or policy code
change. Then rings in order: approval, waves of ``ClusterRolloutWorkflow`` children, the bake. A
failure rolls back by the plan's ``rollback.scope``, newest first; an abort rolls back everything.

Id: ``release:<service>:<version>``. People steer it with updates (validated, answered) or signals
(for callers that must not block while no worker runs): hold, resume, abort, approve.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from activities import outcomes
    from activities.freeze import FreezeActivities
    from activities.models import (
        AnalysisMode,
        AnalyzeInput,
        AnalyzeResult,
        ClusterSnapshot,
        ClusterTarget,
        FindSnapshotsInput,
        FreezeCheck,
        FreezeCheckInput,
        PreparedRelease,
        PrepareInput,
        RecordedSnapshots,
        ReleaseRef,
        RollbackInput,
    )
    from activities.release import ReleaseActivities
    from activities.rollout import ClusterActivities
    from policies.freeze import Freeze
    from policies.gates import Check, GateVerdict
    from policies.identity import Verified
    from policies.plan import Analysis, ReleasePlan
    from policies.schedule import ScheduledCluster, ScheduledRing, Wave
    from workflows import _accounts, _identity, _metrics, _patches, _rollback, _signals, queues, search
    from workflows import _options as options
    from workflows._steering import Aborted, AnalysisRun, GateFailed, Interrupted, Steering
    from workflows.bake import RingBakeWorkflow
    from workflows.cluster import ClusterRolloutWorkflow
    from workflows.models import (
        TERMINAL_PHASES,
        AbortRequest,
        ApproveRequest,
        BakeHold,
        BakeInput,
        BakeResult,
        BakeTarget,
        ClusterRolloutInput,
        ClusterRolloutResult,
        ClusterStatus,
        ControlKind,
        ControlResult,
        FreezesChanged,
        HoldRequest,
        OperatorAction,
        Phase,
        ReleaseInput,
        ReleaseStatus,
        ResumeRequest,
    )

SYSTEM = "ringmaster"


def release_id(service: str, version: str) -> str:
    """The workflow id of a release."""
    return f"release:{service}:{version}"


def cluster_workflow_id(service: str, version: str, ring: str, cluster: str) -> str:
    """The workflow id of one cluster's rollout."""
    return f"{release_id(service, version)}:{ring}:{cluster}"


async def _signal_child(
    handle: workflow.ChildWorkflowHandle[Any, ClusterRolloutResult], signal: Any, arg: Any
) -> None:
    """Signal a cluster child; one that has already ended simply does not need it.

    The signal fails when the child closed first (Temporal answers "external workflow not found"),
    and uncaught that failure would fail the release itself, in ``run`` or in a control's handler.
    ``handle.done()`` is no guard: the child can close on the server before its completion reaches
    this workflow. What the child's end means is read from its result, never from the signal.
    """
    try:
        await _signals.send(lambda: handle.signal(signal, arg), f"signal to {handle.id}")
    except FailureError as err:
        workflow.logger.info("signal to %s not delivered, the child has ended: %s", handle.id, err)


CONTROLS_IN_ORDER = "controls-in-order"
"""Patch: controls are verified and applied one at a time, in the order they arrived."""

SEALED_ORDERS = "sealed-orders"
"""Patch: cluster children started from here verify every control (``sealed_orders``), and the
release seals what it sends them with the principal that caused it."""

STOP_EARLIER_CHILDREN = "stop-earlier-children"
"""Patch: an ending's sweep aborts every earlier run's cluster workflow still running in a cluster
this run did not reach, and outlasts it, before it looks for snapshots there."""

PREPARED_BEFORE_CANCEL = "prepared-before-cancel"
"""Patch: a cancel that met a prepare already completed (a reset run's first task) is an abort with
the release's schedule, so its ending stops an earlier run's cluster workflows and sweeps."""

FREEZE_HOLDS = "freeze-holds"
"""Patch: the release reads the freeze registry before its first step and watches it after; a freeze
in scope holds it (and its clusters) until unfrozen, whatever an operator resumes."""

DETAILS_ROWS = 50
"""Clusters the Temporal UI's current details list (all are in ``ringmaster status``)."""

FAILED_OUTCOMES = "failed-outcomes"
"""Patch: a release (and a cluster workflow) that does not succeed closes as a failed workflow whose
failure carries its record (:mod:`activities.outcomes`); before, it completed with the record."""

QUIET_ANALYSIS = "quiet-analysis"
"""Patch: cluster workflows of releases above ``DECISIONS_KEPT_UP_TO`` clusters do not report the start
of their analysis (``ClusterRolloutInput.report_analysis``)."""

WAVE_STARTS_TOGETHER = "wave-starts-together"
"""Patch: a wave's cluster workflows are started together, not each after the last one started."""

_UNREACHED = frozenset({"pending", "waiting-window", "checking-residency", "denied"})
"""Cluster states in which the release has not changed the cluster (``RingmasterClusters`` leaves it out)."""

_ControlAction = Literal["hold", "resume", "abort", "approve"]
_Control = HoldRequest | ResumeRequest | AbortRequest | ApproveRequest
_C = TypeVar("_C", HoldRequest, ResumeRequest, AbortRequest, ApproveRequest)


DECISIONS_KEPT_UP_TO = 250
"""Clusters up to which the release's record (its result and ``status``) carries every cluster's
residency decisions. A payload may not pass 2 MB, and five decisions with their evidence are about
1.5 KiB a cluster: past this many the record keeps the decisions of denied clusters only, and says
so; each cluster workflow keeps its own (its ``status`` query and its history)."""


def _within_payload_limit(st: ReleaseStatus) -> ReleaseStatus:
    """The record as it may travel: every decision, unless the fleet is too large for that."""
    if len(st.clusters) <= DECISIONS_KEPT_UP_TO:
        return st
    st.clusters = [
        c if any(d.verdict == "deny" for d in c.residency) else c.model_copy(update={"residency": []})
        for c in st.clusters
    ]
    st.omitted = (
        f"residency decisions of allowed clusters (more than {DECISIONS_KEPT_UP_TO} clusters): each "
        "cluster workflow's status and history hold its own"
    )
    return st


def _plan_for(plan: ReleasePlan, ring: str) -> ReleasePlan:
    """The plan as a cluster workflow needs it: its own ring, and no analysis (its input has that).

    The release's history holds every cluster workflow's input; the other rings' strategies and a
    second copy of the analysis were a third of each.
    """
    return plan.model_copy(update={"rings": [plan.ring(ring)], "analysis": Analysis()})


def _proved(req: _Control) -> bool:
    """The request carries a proof or an attestation (its principal is known once verified)."""
    return req.proof is not None or req.attestation is not None


@dataclass
class _Clock:
    """A bake's unheld time: all of it, and what is left of it."""

    total: timedelta
    remaining: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        self.remaining = self.total


class _RingFailed(Exception):
    """A cluster of the ring did not promote (or failed its bake)."""

    def __init__(self, ring: ScheduledRing, result: ClusterRolloutResult) -> None:
        super().__init__(f"{result.cluster}: {result.outcome}: {result.message}")
        self.ring = ring
        self.result = result


async def _tell_earlier_to_abort(child_id: str, reason: str) -> bool:
    """Tell an earlier run's cluster workflow under ``child_id`` to abort; False if it has ended.

    A reset leaves the earlier run's children running, and this run knows them only by id: the
    signal is both the order and the probe, as Temporal delivers it only to a running workflow.
    """
    try:
        earlier = workflow.get_external_workflow_handle(child_id)
        await _signals.send(
            lambda: earlier.signal(ClusterRolloutWorkflow.abort, AbortRequest(reason=reason, by=SYSTEM)),
            f"abort to {child_id}",
        )
    except FailureError as err:
        workflow.logger.info("earlier cluster workflow %s has ended: %s", child_id, err)
        return False
    return True


SWEEP_ROUNDS = 4
"""Rounds of looking for an earlier run's snapshots in a cluster that cannot be read, a growing pause
apart, before it is listed as needing attention."""


class _Promoted:
    """A cluster that completed: what the parent needs to roll it back later."""

    def __init__(self, cluster: ScheduledCluster, ring: ScheduledRing, result: ClusterRolloutResult) -> None:
        self.cluster = cluster
        self.ring = ring
        self.result = result


@workflow.defn(name="ReleaseWorkflow")
class ReleaseWorkflow(Steering):
    """Walk a release through every ring and cluster; roll back on failure or abort."""

    @workflow.init
    def __init__(self, inp: ReleaseInput) -> None:
        super().__init__()
        self._inp = inp
        self._status = ReleaseStatus(
            release=inp.release,
            workflow_id=workflow.info().workflow_id,
            service=inp.service,
            version=inp.version,
            image=inp.image,
            submitted_by=inp.submitted_by,
            started_at=workflow.now(),
        )
        self._prepared: PreparedRelease | None = None
        self._stage: Phase = "pending"
        self._final: Phase | None = None
        self._awaiting_ring = ""
        self._approved_rings: set[str] = set()
        self._children: dict[str, workflow.ChildWorkflowHandle[Any, ClusterRolloutResult]] = {}
        self._promoted: list[_Promoted] = []
        self._reached: set[str] = set()
        """Clusters this run started a cluster workflow for (a reset run may not reach them all)."""
        self._bake_runs: dict[str, AnalysisRun] = {}
        self._bakers: dict[str, workflow.ChildWorkflowHandle[Any, BakeResult]] = {}
        """The bake workflows judging the ring now, by workflow id (a large ring's bake, partitioned)."""
        self._baked: dict[str, list[str]] = {}
        """Each bake workflow's clusters, by workflow id."""
        self._published: tuple[str, str] = ("", "")
        self._metered: str = ""
        """The phase last counted in ``ringmaster_release_phases`` (:mod:`workflows._metrics`)."""
        self._holding_first = False
        self._ledger = _identity.Ledger()
        self._sealed: set[str] = set()
        self._controls = asyncio.Lock()
        self._in_flight = 0
        """Controls accepted and not yet applied (verifying who sent them, or waiting for their turn)."""
        """Cluster workflows (by id) that verify each control: this release seals what it sends them."""
        self._causes: dict[_ControlAction, Verified] = {}
        """Who caused the hold, resume and abort in force: their principal goes into the sealed orders."""
        self._freezes: list[Freeze] = []
        self._freeze_reads = False
        """Whether this release reads the freeze registry (patch ``freeze-holds``, until its ending)."""
        self._freeze_lock = asyncio.Lock()
        self._freeze_watch: asyncio.Task[None] | None = None
        self._accounts = _accounts.Accounts()

    # --- the run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ReleaseInput) -> ReleaseStatus:
        """Prepare, then every ring in order; the final status is the release's record.

        A release that succeeded returns it. One that ended otherwise closes as a failed workflow,
        red in the UI, with the record as its failure's detail (:mod:`activities.outcomes`).
        """
        status = await self._run(inp)
        if self._accounts.notify or self._accounts.archive:
            # Every notification delivered or given up, then the audit record: through any
            # cancellation, as an ending's rollback (the outcome is settled; this only reports it).
            where = await _rollback.to_completion(self._accounts.close(status))
            if where:
                self._status.archived = where
                status = status.model_copy(update={"archived": where})
        failure = outcomes.RELEASE_FAILURES.get(status.phase)
        if failure is not None and _patches.patched(FAILED_OUTCOMES):
            raise ApplicationError(
                f"{status.phase.replace('-', ' ')}: {status.reason}", status, type=failure, non_retryable=True
            )
        return status

    async def _run(self, inp: ReleaseInput) -> ReleaseStatus:
        # A cluster held by an inconclusive gate holds the release, even while others analyze.
        self._holding_first = _patches.patched("phase-holding-first")
        self._publish()
        preparing = workflow.start_activity_method(
            ReleaseActivities.prepare_release,
            PrepareInput(
                plan_text=inp.plan_text,
                plan_source=inp.plan_source,
                service=inp.service,
                version=inp.version,
                image=inp.image,
            ),
            summary="validate the plan against the worker's fleet and schedule it",
            **options.PREPARE,
        )
        cancelled_prepared = False
        try:
            # Shielded: a cancel that meets a prepare already completed must not lose its result.
            self._prepared = await asyncio.shield(preparing)
        except asyncio.CancelledError:
            cancelled_prepared = await self._prepared_all_the_same(preparing)
            if not cancelled_prepared:
                preparing.cancel()
                return await _rollback.to_completion(
                    self._end("aborted", "cancelled before anything was deployed")
                )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # Cancelled while preparing: nothing was deployed, and the input was not at fault.
                return await _rollback.to_completion(
                    self._end("aborted", "cancelled before anything was deployed")
                )
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            self._status.invalid = True
            return await self._end("failed", f"the release could not be prepared: {message}")
        prepared = self._prepared
        assert prepared is not None
        if (prepared.notify or prepared.archive) and _patches.patched(_accounts.ACCOUNTABLE):
            self._accounts.notify, self._accounts.archive = prepared.notify, prepared.archive
        self._status.plan_digest = prepared.plan_digest
        self._status.rollback_scope = prepared.plan.rollback.scope
        self._status.clusters = [
            ClusterStatus(
                name=c.name,
                ring=c.ring,
                region=c.region,
                jurisdiction=c.jurisdiction,
                residency=prepared.static_decisions.get(c.name, []),
            )
            for c in prepared.schedule.all_clusters()
        ]
        denials = prepared.denials()
        if denials:
            for d in denials:
                self._status.cluster(d.cluster).state = "denied"
            reasons = "; ".join(f"{d.cluster}: {d.rule}: {d.reason}" for d in denials)
            return await self._end("denied", f"denied before anything was deployed: {reasons}")
        ending: Coroutine[Any, Any, ReleaseStatus]
        try:
            if cancelled_prepared:
                # The cancel came with the prepare result: the same abort as a cancel arriving now.
                raise asyncio.CancelledError
            if _patches.patched(FREEZE_HOLDS):
                await self._honour_freezes()
            for ring in prepared.schedule.rings:
                await self._run_ring(ring)
        except Aborted as aborted:
            ending = self._abort(aborted.reason)
        except _RingFailed as failed:
            ending = self._fail(failed)
        except asyncio.CancelledError:
            # Cancelled through Temporal (UI or API): treated as an abort, rollback included.
            self.abort_reason = self.abort_reason or "cancelled through Temporal"
            ending = self._abort(self.abort_reason)
        except ActivityError as err:
            # An activity the run awaited outside any cluster (reading the freezes) was cancelled
            # with the release: the same abort. Left to propagate, it would end the release
            # CANCELED with no rollback and no sweep (seen reproducing chaos seed 3128).
            if not isinstance(err.cause, CancelledError):
                raise
            self.abort_reason = self.abort_reason or "cancelled through Temporal"
            ending = self._abort(self.abort_reason)
        else:
            self._status.flags_fully_on = self._flags_fully_on(prepared)
            ending = self._end("succeeded", "promoted in every ring")
        # Nothing holds an ending: its rollback (or its record) goes on whatever is frozen.
        self._freeze_reads = False
        if self._freeze_watch is not None:
            self._freeze_watch.cancel()
            self._freeze_watch = None
        self.freeze_hold = ""
        # Whatever ends the release, its ending (draining children, rolling back) completes through any
        # cancellation that arrives meanwhile.
        return await _rollback.to_completion(ending)

    def _flags_fully_on(self, prepared: PreparedRelease) -> list[str]:
        """The flags every ring moved, now at 100% in each of their clusters (from the clusters'
        reports: a result field only, nothing the run decides on)."""
        moved = {
            r.strategy.feature_flag.flag if r.strategy.feature_flag else None for r in prepared.schedule.rings
        }
        flag = moved.pop() if len(moved) == 1 else None
        clusters = prepared.schedule.all_clusters()
        if flag is None or any(self._status.cluster(c.name).flag_rollout != 100 for c in clusters):
            return []
        return [flag]

    async def _prepared_all_the_same(self, preparing: workflow.ActivityHandle[PreparedRelease]) -> bool:
        """Whether a cancellation met a prepare that had completed (patch ``prepared-before-cancel``).

        A reset run replays the prepare result in its first workflow task, and a cancel that reaches
        the run in that same task interrupts the await all the same. That run may be the second of
        a release whose first run's cluster workflows still run: with the result it goes on to its
        abort, whose ending stops them and restores what they changed (the rest of chaos seed 3128).
        The result, delivered in the same activation, completes the activity's task once that task
        runs: a few turns of the loop (no timer, no command) let it, and a prepare still running is
        not done after them.
        """
        if not _patches.patched(PREPARED_BEFORE_CANCEL):
            return False
        for _ in range(3):
            if preparing.done():
                break
            await asyncio.sleep(0)
        if not preparing.done() or preparing.cancelled() or preparing.exception() is not None:
            return False
        self._prepared = preparing.result()
        return True

    async def _run_ring(self, ring: ScheduledRing) -> None:
        workflow.logger.info("ring %s starts (%d waves)", ring.name, len(ring.waves))
        self._status.ring = ring.name
        self._stage = "deploying"
        self._publish()
        if ring.approval.required:
            self._awaiting_ring = ring.name
            self._stage = "awaiting-approval"
            self._status.waiting_for = f"approval of ring {ring.name}"
            self._publish()
            await self.until(lambda: ring.name in self._approved_rings)
            self._awaiting_ring, self._status.waiting_for = "", ""
        for wave in ring.waves:
            await self._read_freezes()
            await self.unheld()
            self._stage = "deploying"
            self._publish()
            results = await self._run_wave(ring, wave)
            self.raise_if_interrupted()
            for result in results:
                if result.outcome != "promoted":
                    raise _RingFailed(ring, result)
        await self._bake(ring)

    async def _run_wave(self, ring: ScheduledRing, wave: Wave) -> list[ClusterRolloutResult]:
        prepared = self._prepared
        assert prepared is not None
        promoted_before = [p.cluster.name for p in self._promoted]
        # Cluster-scoped inputs: the whole schedule and every promoted cluster made each child's input
        # (and the parent's history, which holds them all) grow with the fleet.
        slim = prepared.validators is not None
        # Past the size where the record keeps every decision, the start of each cluster's analysis
        # is not worth a signal (an event and a billable action per cluster): see ``report_analysis``.
        quiet = len(self._status.clusters) > DECISIONS_KEPT_UP_TO and _patches.patched(QUIET_ANALYSIS)
        handles: dict[str, workflow.ChildWorkflowHandle[Any, ClusterRolloutResult]] = {}
        inputs: list[tuple[ScheduledCluster, ClusterRolloutInput]] = []
        for cluster in wave.clusters:
            validators = (prepared.validators or {}).get(cluster.name, [])
            child_input = ClusterRolloutInput(
                release=self._ref(ring.name),
                cluster=cluster,
                workload=prepared.plan.workload,
                strategy=ring.strategy,
                analysis=prepared.plan.analysis,
                plan=_plan_for(prepared.plan, ring.name) if slim else prepared.plan,
                schedule=None if slim else prepared.schedule,
                validators=validators,
                promoted_before=[n for n in promoted_before if n in validators] if slim else promoted_before,
                held=self._child_held(),
                hold_reason=self._child_hold_reason(),
                sealed_orders=_patches.patched(SEALED_ORDERS),
                report_analysis=not quiet,
                flag_server=prepared.flag_servers.get(cluster.region) if ring.strategy.feature_flag else None,
            )
            inputs.append((cluster, child_input))
        if _patches.patched(WAVE_STARTS_TOGETHER):
            # Every start of the wave in one workflow task, their "started" events answered together:
            # started one after the other, each waited for a workflow task of its own (three events
            # per cluster in the release's history).
            launched = await asyncio.gather(*(self._start_child(ring, c, i) for c, i in inputs))
        else:
            launched = [await self._start_child(ring, c, i) for c, i in inputs]
        for (cluster, child_input), handle in zip(inputs, launched, strict=True):
            handles[cluster.name] = handle
            self._children[cluster.name] = handle
            if child_input.sealed_orders:
                self._sealed.add(handle.id)
            started = self._status.cluster(cluster.name)
            started.workflow_id = handle.id
            if started.state == "pending":
                # A cluster workflow reports only its milestones: until its first, it is deploying.
                started.state = "deploying"
            # Controls that arrived while the child was starting reach it now.
            if self._child_held() != child_input.held:
                await self._forward_hold(handle)
            if self.abort_reason is not None:
                await self._order(handle, AbortRequest(reason=self.abort_reason, by=SYSTEM))
        results: dict[str, ClusterRolloutResult] = {}
        while len(results) < len(handles):
            await workflow.wait_condition(
                lambda: any(h.done() for n, h in handles.items() if n not in results)
            )
            for name, handle in handles.items():
                if name in results or not handle.done():
                    continue
                result = await self._child_result(name, handle)
                results[name] = result
                self._children.pop(name, None)
                self._record_result(result)
                if result.outcome == "promoted":
                    cluster = next(c for c in wave.clusters if c.name == name)
                    self._promoted.append(_Promoted(cluster, ring, result))
                elif prepared.plan.rollback.scope != "cluster":
                    await self._stop_children(f"rollback: {name} {result.outcome}")
        return [results[c.name] for c in wave.clusters]

    async def _start_child(
        self, ring: ScheduledRing, cluster: ScheduledCluster, child_input: ClusterRolloutInput
    ) -> workflow.ChildWorkflowHandle[Any, ClusterRolloutResult]:
        """Start a cluster's child; if an earlier run's child still holds its id, have it roll back first.

        After a reset the previous run's children keep running (the server neither cancels them nor
        hands them to the new run), under the ids this run needs. Such a child is aborted, rolls its
        cluster back to the snapshot, and ends; the new child starts once the id is free, from a
        cluster as the release found it.
        """
        child_id = cluster_workflow_id(self._inp.service, self._inp.version, ring.name, cluster.name)
        round_ = 0
        while True:
            starting = workflow.start_child_workflow(
                ClusterRolloutWorkflow.run,
                child_input,
                id=child_id,
                cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"{self._inp.release} in {cluster.name} ({ring.name})",
                static_details=self._child_details(ring, cluster),
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(search.SERVICE, self._inp.service),
                        SearchAttributePair(search.VERSION, self._inp.version),
                        SearchAttributePair(search.RING, ring.name),
                        SearchAttributePair(search.CLUSTER, cluster.name),
                    ]
                )
                if self._inp.search_attributes
                else None,
            )
            try:
                if _patches.patched("child-start-completes"):
                    started = await self._start_despite_cancel(starting, cluster.name)
                else:
                    started = await starting
            except WorkflowAlreadyStartedError:
                round_ += 1
                pause = _rollback.pause_after(round_)
                status = self._status.cluster(cluster.name)
                status.step = f"an earlier run's cluster workflow rolls back first (next try in {pause})"
                self._publish()
                await _tell_earlier_to_abort(child_id, "replaced by a new run of the release (reset)")
                await self.sleep(pause, f"an earlier run rolls back {cluster.name} first")
                continue
            self._reached.add(cluster.name)
            return started

    def _child_details(self, ring: ScheduledRing, cluster: ScheduledCluster) -> str:
        """What the UI shows of a cluster workflow before it says anything itself: a line or two."""
        strategy = ring.strategy
        kind = "canary" if strategy.canary else "blue-green" if strategy.blue_green else "rolling update"
        who = self._inp.submitter.principal if self._inp.submitter else self._inp.submitted_by or "unknown"
        return (
            f"{self._inp.image} to {cluster.name} ({cluster.region}, {cluster.jurisdiction}), ring "
            f"{ring.name}, by {kind}. Release {self._inp.release}, submitted by {who}."
        )

    async def _start_despite_cancel(
        self,
        starting: Coroutine[Any, Any, workflow.ChildWorkflowHandle[Any, ClusterRolloutResult]],
        cluster: str,
    ) -> workflow.ChildWorkflowHandle[Any, ClusterRolloutResult]:
        """Start a cluster's child, and finish starting it if the release is cancelled meanwhile.

        Cancelled mid-start, the SDK asks to cancel the child and forgets it. A child the server has
        started all the same then deploys with nobody waiting for it, and rolls back only when its
        cancellation reaches it, after the release has ended (chaos seed 2020). Started on its own
        task and awaited through a shield, the start completes; a child that started is this run's,
        so the abort that follows the cancellation stops it and waits for its rollback.
        """
        task = asyncio.create_task(starting)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(WorkflowAlreadyStartedError):
                handle = await task
                self._reached.add(cluster)
                self._children[cluster] = handle
                self._status.cluster(cluster).workflow_id = handle.id
            raise

    async def _child_result(
        self, name: str, handle: workflow.ChildWorkflowHandle[Any, ClusterRolloutResult]
    ) -> ClusterRolloutResult:
        try:
            return await handle
        except ChildWorkflowError as err:
            # A cluster that did not promote closes as a failed workflow carrying its result; any
            # other failure of its workflow leaves a rollback nobody can vouch for.
            carried = outcomes.carried(err, ClusterRolloutResult)
            if carried is not None:
                return carried
            return ClusterRolloutResult(
                cluster=name,
                outcome="failed",
                message=f"cluster workflow failed: {err.cause or err}",
                rollback_failed=True,
                touched=True,
            )

    # --- bake ---------------------------------------------------------------------------------

    async def _bake(self, ring: ScheduledRing) -> None:
        prepared = self._prepared
        assert prepared is not None
        if ring.bake_time <= timedelta(0):
            return
        self._stage = "baking"
        self._status.waiting_for = f"bake of ring {ring.name} ({ring.bake_time})"
        self._publish()
        analysis = prepared.plan.analysis
        promoted = [p for p in self._promoted if p.ring.name == ring.name]
        chunk = prepared.bake_chunk
        if analysis.metrics and chunk is not None and len(promoted) > chunk:
            try:
                await self._bake_apart(ring, promoted, chunk)
            finally:
                self._status.waiting_for = ""
            return
        timed = False
        if analysis.metrics:
            # Each stretch ends at the bake's end by itself: the stop after the bake awaits answers
            # already given, not cancellations (a hold that extends the bake adds a stretch, see
            # AnalysisRun), and a 4-hour bake costs the events of a 1-minute one.
            timed = _patches.patched("timed-stretches")
            end = workflow.now() + ring.bake_time
            for p in promoted:
                self._bake_runs[p.cluster.name] = self._bake_run(p, timed=timed)
                self._bake_runs[p.cluster.name].start(end)
        try:
            await self.held_clock_wait(ring.bake_time, f"bake {ring.bake_time} ring {ring.name}")
            runs = list(self._bake_runs.items())
            verdicts = await asyncio.gather(*(run.stop() for _, run in runs))
            for (name, _), verdict in zip(runs, verdicts, strict=True):
                if verdict.status == "failed":
                    raise GateFailed(name, verdict)
        except GateFailed as failed:
            if _patches.patched("rollback-first"):
                for run in self._bake_runs.values():
                    run.abandon()
            else:
                for run in self._bake_runs.values():
                    await run.cancel()
            raise self._bake_failed(ring, failed) from None
        except Interrupted:
            # An abort rolls back: with timed stretches a cancellation reaches a stretch up to an
            # interval late, so the rollback no longer waits for it (the finally abandons them).
            if not timed:
                for run in self._bake_runs.values():
                    await run.cancel()
            raise
        finally:
            # However the bake ends (a cancellation of the release included), no stretch judges on.
            for run in self._bake_runs.values():
                run.abandon()
            self._bake_runs = {}
            self._status.waiting_for = ""

    def _bake_failed(self, ring: ScheduledRing, failed: GateFailed) -> _RingFailed:
        """A gate failed in the bake: the ring fails with it (the release rolls back)."""
        self._status.cluster(failed.cluster).gate = failed.verdict
        return _RingFailed(
            ring,
            ClusterRolloutResult(
                cluster=failed.cluster,
                outcome="rolled-back",
                verdict=failed.verdict,
                message=f"gate failed during the bake of ring {ring.name}: {failed.verdict.reason}",
                touched=True,
            ),
        )

    async def _bake_apart(self, ring: ScheduledRing, promoted: list[_Promoted], chunk: int) -> None:
        """Bake a large ring in bake workflows of ``chunk`` clusters each (``RingBakeWorkflow``).

        The release keeps the clock (time held does not count) and the verdict: a round of bake
        workflows judges until the clock's end as it stands; when a hold has moved the end past the
        round's, another round judges on. A failed gate in any ends the bake at once (the release
        rolls back, the other bake workflows are cancelled); an abort cancels them all.
        """
        prepared = self._prepared
        assert prepared is not None
        clock = _Clock(ring.bake_time)
        ticking = asyncio.create_task(self._count_unheld(clock, f"bake {ring.bake_time} ring {ring.name}"))
        try:
            round_ = 0
            while True:
                round_ += 1
                end = workflow.now() + max(clock.remaining, prepared.plan.analysis.interval)
                results = await self._bake_round(ring, promoted, chunk, end, round_)
                for result in results:
                    for name, gate in result.gates.items():
                        self._status.cluster(name).gate = gate
                failed = next((r for r in results if r.failed), None)
                if failed is not None and failed.verdict is not None:
                    raise GateFailed(failed.failed, failed.verdict)
                if ticking.done():
                    return
        except GateFailed as gate_failed:
            raise self._bake_failed(ring, gate_failed) from None
        finally:
            ticking.cancel()
            # However the bake ends, no bake workflow judges on, and none of their holds stands.
            for handle in self._bakers.values():
                handle.cancel()
            for names in self._baked.values():
                for name in names:
                    self.gate_holds.pop(name, None)
                    self.gate_failures.pop(name, None)
            self._bakers, self._baked = {}, {}

    async def _bake_round(
        self, ring: ScheduledRing, promoted: list[_Promoted], chunk: int, end: datetime, round_: int
    ) -> list[BakeResult]:
        """One round of bake workflows, every one judging until ``end``; their results once all have
        ended, or as soon as one reports a failed gate."""
        prepared = self._prepared
        assert prepared is not None
        results: dict[str, BakeResult] = {}
        starts = []
        # The run in the id: after a reset, an earlier run's bake may still be ending under it.
        run = workflow.info().run_id[:8]
        for i in range(0, len(promoted), chunk):
            part = promoted[i : i + chunk]
            inp = BakeInput(
                release=self._ref(ring.name),
                analysis=prepared.plan.analysis,
                namespace=prepared.plan.workload.namespace,
                end=end,
                clusters=[self._bake_target(p) for p in part],
                hold_on_failure=prepared.plan.rollback.frozen,
                held=self._child_held(),
                hold_reason=self._child_hold_reason(),
            )
            workflow_id = f"{workflow.info().workflow_id}:bake:{ring.name}:{round_}:{i // chunk + 1}:{run}"
            starts.append((workflow_id, [p.cluster.name for p in part], inp))
        handles = await asyncio.gather(
            *(
                workflow.start_child_workflow(
                    RingBakeWorkflow.run,
                    inp,
                    id=workflow_id,
                    cancellation_type=workflow.ChildWorkflowCancellationType.TRY_CANCEL,
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    static_summary=f"{self._inp.release}: bake of ring {ring.name}, {len(names)} clusters",
                )
                for workflow_id, names, inp in starts
            )
        )
        for (workflow_id, names, _), handle in zip(starts, handles, strict=True):
            self._bakers[workflow_id] = handle
            self._baked[workflow_id] = names
            self._sealed.add(handle.id)

        async def collect(workflow_id: str, handle: workflow.ChildWorkflowHandle[Any, BakeResult]) -> None:
            try:
                results[workflow_id] = await handle
            except ChildWorkflowError as err:
                # A bake that failed some other way judged nothing more: held as a failed gate would be.
                results[workflow_id] = BakeResult(
                    failed=self._baked[workflow_id][0],
                    verdict=GateVerdict(
                        status="failed", reason=f"bake workflow {workflow_id} failed: {err.cause or err}"
                    ),
                )

        collecting = [asyncio.create_task(collect(w, h)) for w, h in list(self._bakers.items())]
        try:
            await self.until(
                lambda: (
                    len(results) == len(collecting) or any(r.failed or r.aborted for r in results.values())
                )
            )
        finally:
            for task in collecting:
                task.cancel()
        for workflow_id, result in list(results.items()):
            if result.aborted and not result.failed:
                # Only this release stops its bakes, and only after it stopped waiting for them: one
                # that ended early was cancelled or aborted from outside, and judged nothing more.
                results[workflow_id] = result.model_copy(
                    update={
                        "failed": self._baked[workflow_id][0],
                        "verdict": GateVerdict(
                            status="failed",
                            reason=f"bake workflow {workflow_id} was stopped before the bake's end",
                        ),
                    }
                )
        for workflow_id in results:
            self._bakers.pop(workflow_id, None)
            for name in self._baked.pop(workflow_id, []):
                self.gate_holds.pop(name, None)
                self.gate_failures.pop(name, None)
        return list(results.values())

    async def _count_unheld(self, clock: _Clock, summary: str) -> None:
        """``held_clock_wait`` that says how much unheld time is left (a round's end is set by it).

        An interruption ends it quietly: the round's own wait raises it to the bake.
        """
        with contextlib.suppress(Interrupted):
            while clock.remaining > timedelta(0):
                await self.unheld()
                started = workflow.now()
                left = f" ({clock.remaining} left)" if clock.remaining != clock.total else ""
                if not await self.until(self.is_held, limit=clock.remaining, summary=f"{summary}{left}"):
                    clock.remaining = timedelta(0)
                    return
                clock.remaining -= workflow.now() - started

    def _bake_target(self, promoted: _Promoted) -> BakeTarget:
        snapshot = promoted.result.snapshot
        return BakeTarget(
            cluster=self._target(promoted.cluster),
            stable_version=snapshot.version if snapshot else "",
            touched_at=promoted.result.touched_at,
        )

    def _bake_run(self, promoted: _Promoted, *, timed: bool = False) -> AnalysisRun:
        prepared = self._prepared
        assert prepared is not None
        c = promoted.cluster
        target = self._bake_target(promoted)

        def make_input(mode: AnalysisMode, prior: list[Check]) -> AnalyzeInput:
            plan = prepared.plan
            return target.stretch(
                self._ref(promoted.ring.name), plan.analysis, plan.workload.namespace, mode, prior
            )

        def on_result(result: AnalyzeResult) -> None:
            status = self._status.cluster(c.name)
            status.gate, status.measurements = result.verdict, result.checks

        return AnalysisRun(
            self, make_input, on_result, hold_on_failure=prepared.plan.rollback.frozen, timed=timed
        )

    def interruption(self) -> Interrupted | None:
        """An abort, or a bake gate that failed."""
        for name, run in self._bake_runs.items():
            if run.failed is not None:
                return GateFailed(name, run.failed)
        return super().interruption()

    # --- endings ------------------------------------------------------------------------------

    async def _fail(self, failed: _RingFailed) -> ReleaseStatus:
        prepared = self._prepared
        assert prepared is not None
        scope = prepared.plan.rollback.scope
        result = failed.result
        await self._stop_children(f"rollback: {result.cluster} {result.outcome}")
        if prepared.plan.rollback.frozen:
            await self._drain_children()
            await self._stop_earlier_children(f"{result.cluster} {result.outcome}")
            ending: Phase = "denied" if result.outcome == "denied" else "failed"
            return await self._end(
                ending, f"{result.cluster} {result.outcome}: {result.message}{self._left_note()}"
            )
        if scope == "cluster":
            targets = [p for p in self._promoted if p.cluster.name == result.cluster]
        elif scope == "ring":
            targets = [p for p in self._promoted if p.ring.name == failed.ring.name]
        else:
            targets = list(self._promoted)
        await self._roll_back(targets, f"{result.cluster} {result.outcome}: {result.message}")
        await self._sweep(f"{result.cluster} {result.outcome}: {result.message}")
        if result.outcome == "denied":
            phase: Phase = "denied"
        elif result.outcome == "failed" or self._status.needs_attention:
            phase = "failed"
        else:
            phase = "rolled-back"
        if result.rollback_failed and result.cluster not in self._status.needs_attention:
            self._status.needs_attention.append(result.cluster)
            phase = "failed"
        return await self._end(phase, f"{result.cluster} {result.outcome}: {result.message}")

    async def _abort(self, reason: str) -> ReleaseStatus:
        await self._drain_children()
        prepared = self._prepared
        if prepared is not None and prepared.plan.rollback.frozen:
            await self._stop_earlier_children(f"aborted: {reason}")
            return await self._end("aborted", f"aborted: {reason}{self._left_note()}")
        await self._roll_back(list(self._promoted), f"aborted: {reason}")
        await self._sweep(f"aborted: {reason}")
        phase: Phase = "failed" if self._status.needs_attention else "aborted"
        return await self._end(phase, f"aborted: {reason}")

    def _left_note(self) -> str:
        """For a release that may not roll back: which clusters it changed stay as they are."""
        changed = [
            c.name for c in self._status.clusters if c.state in ("promoted", "left-in-place", "holding")
        ]
        listed = ", ".join(changed) if changed else "none"
        return f"; nothing rolled back (rollback.mode: freeze); changed clusters left as they are: {listed}"

    async def _drain_children(self) -> None:
        """Abort the clusters still rolling out and wait until each has rolled itself back."""
        await self._stop_children(self.abort_reason or "aborted")
        for name, handle in list(self._children.items()):
            result = await self._child_result(name, handle)
            self._children.pop(name, None)
            self._record_result(result)

    async def _stop_children(self, reason: str) -> None:
        for handle in list(self._children.values()):
            await self._order(handle, AbortRequest(reason=reason, by=SYSTEM))

    async def _roll_back(self, targets: list[_Promoted], reason: str) -> None:
        """Roll back completed clusters, newest first; one that fails permanently needs attention.

        Runs inside :func:`workflows._rollback.to_completion`: no cancellation interrupts it.
        """
        prepared = self._prepared
        assert prepared is not None
        self._stage = "rolling-back"
        self._publish()
        for p in reversed(targets):
            if p.result.snapshot is not None:
                await self._restore(p.cluster, p.ring, p.result.snapshot, reason)

    async def _restore(
        self, cluster: ScheduledCluster, ring: ScheduledRing, snapshot: ClusterSnapshot, reason: str
    ) -> None:
        """Roll one cluster back to ``snapshot``; a permanent failure leaves it needing attention."""
        prepared = self._prepared
        assert prepared is not None
        status = self._status.cluster(cluster.name)
        status.state, status.step = "rolling-back", reason

        async def report(retrying: str) -> None:
            status.step = retrying or reason
            self._publish()

        self._publish()
        failure = await _rollback.restore(
            RollbackInput(
                release=self._ref(ring.name),
                cluster=self._target(cluster),
                workload=prepared.plan.workload,
                strategy=ring.strategy,
                snapshot=snapshot,
                reason=reason,
            ),
            report,
        )
        _metrics.rollback("release", ok=failure is None)
        if failure is not None:
            status.state, status.message = "failed", f"rollback failed: {failure}"
            self._status.needs_attention.append(cluster.name)
            return
        status.state, status.step, status.weight, status.version = "rolled-back", reason, 0, snapshot.version

    @staticmethod
    def _target(cluster: ScheduledCluster) -> ClusterTarget:
        return ClusterTarget(name=cluster.name, region=cluster.region, jurisdiction=cluster.jurisdiction)

    async def _sweep(self, reason: str) -> None:
        """Restore the clusters this run never reached but the release changed all the same.

        After a reset the new run knows nothing of what the earlier run did. A reset does not
        cancel that run's cluster workflows: each still running is told to abort and outlasted
        first (patch ``stop-earlier-children``), so it rolls back instead of going on to promote
        after the release ended. Those that had promoted their cluster are done, and only this finds
        them, by the snapshots this release run recorded there. One read-only activity asks every
        cluster this run did not reach; a cluster nobody touched has no snapshot and is left alone,
        unwritten. (A run's identity cannot tell a reset run here: replaying a reset run's history
        reports the original run's id.)
        """
        prepared = self._prepared
        if prepared is None or not _patches.patched("sweep-unreached-clusters"):
            return
        unreached = self._unreached()
        if not unreached:
            return
        stopped = await self._stop_earlier_children(reason)
        found: dict[str, ClusterSnapshot] = {}
        unreadable: dict[str, str] = {}
        asking = [c for _, c in unreached]
        for round_ in range(1, SWEEP_ROUNDS + 1):
            try:
                recorded = await workflow.execute_activity_method(
                    ClusterActivities.find_snapshots,
                    FindSnapshotsInput(
                        release=self._ref(unreached[0][0].name),
                        workload=prepared.plan.workload,
                        clusters=[self._target(c) for c in asking],
                    ),
                    summary=f"look for earlier runs' changes in {len(asking)} clusters not reached",
                    **options.CLUSTER_CALL,
                )
            except ActivityError as err:
                recorded = RecordedSnapshots(unreadable={c.name: _rollback.describe(err) for c in asking})
            found.update(recorded.found)
            unreadable = recorded.unreadable
            asking = [c for c in asking if c.name in unreadable]
            if not asking:
                break
            if round_ < SWEEP_ROUNDS:
                await workflow.sleep(
                    _rollback.pause_after(round_), summary=f"look again at {len(asking)} unreadable clusters"
                )
        for ring, cluster in reversed(unreached):
            if cluster.name in unreadable:
                status = self._status.cluster(cluster.name)
                status.state = "failed"
                status.message = f"could not check for an earlier run's changes: {unreadable[cluster.name]}"
                self._status.needs_attention.append(cluster.name)
            elif cluster.name in found:
                # An earlier run's cluster workflow may still be running there (a reset leaves them
                # running): it is told to abort, so it rolls back instead of going on to promote.
                if not stopped:
                    await self._outlast_earlier_child(ring, cluster, reason)
                await self._restore(
                    cluster, ring, found[cluster.name], f"{reason} (changed by an earlier run)"
                )

    def _unreached(self) -> list[tuple[ScheduledRing, ScheduledCluster]]:
        """The clusters of the schedule this run started no cluster workflow for, in order."""
        prepared = self._prepared
        assert prepared is not None
        return [
            (ring, cluster)
            for ring in prepared.schedule.rings
            for cluster in ring.clusters()
            if cluster.name not in self._reached
        ]

    async def _stop_earlier_children(self, reason: str) -> bool:
        """Abort every earlier run's cluster workflow still running where this run never reached, and
        outlast each (patch ``stop-earlier-children``); False when the patch does not apply.

        An earlier run's cluster workflow that has not yet recorded its snapshot is invisible to the
        sweep's read, and goes on to promote after this run has ended unless it is told to stop. This
        run may never have told it: the cancel that ends the release can cut short the start that met
        it (chaos seed 3128), the retry after that, or come before this run got that far. Every
        cluster not reached is asked; where nothing runs (a release never reset), the signal fails at
        once and nothing is written. Under ``rollback.mode: freeze`` such a child ends where it stands.
        """
        if self._prepared is None or not _patches.patched(STOP_EARLIER_CHILDREN):
            return False
        unreached = self._unreached()
        await asyncio.gather(*(self._outlast_earlier_child(r, c, reason) for r, c in unreached))
        return True

    async def _outlast_earlier_child(
        self, ring: ScheduledRing, cluster: ScheduledCluster, reason: str
    ) -> None:
        """Abort an earlier run's cluster workflow still running in ``cluster`` and wait until it ends.

        A reset leaves the earlier run's children running. Told to abort, such a child rolls its
        cluster back by itself; the release must not end before it has, or the child's writes would
        land after the release's end. The abort is the probe: Temporal delivers a signal only to a
        running workflow, and answers "not found" once it has closed. Signals and timers only, so the
        wait replays.
        """
        child_id = cluster_workflow_id(self._inp.service, self._inp.version, ring.name, cluster.name)
        status = self._status.cluster(cluster.name)
        round_ = 0
        while True:
            if not await _tell_earlier_to_abort(child_id, f"{reason} (a newer run of the release ended)"):
                return
            round_ += 1
            pause = _rollback.pause_after(round_)
            status.step = f"an earlier run's cluster workflow rolls back first (asking again in {pause})"
            self._publish()
            await workflow.sleep(pause, summary=f"an earlier run rolls back {cluster.name} first")

    async def _end(self, phase: Phase, reason: str) -> ReleaseStatus:
        workflow.logger.info("release %s ended %s: %s", self._inp.release, phase, reason)
        self._final = phase
        self._status.reason = reason
        self._status.ended_at = workflow.now()
        self._status.held = False
        self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    # --- children's reports -------------------------------------------------------------------

    @workflow.signal
    def bake_hold(self, report: BakeHold) -> None:
        """A bake workflow's gate hold began or ended in one cluster: the release holds while it stands."""
        if report.baker not in self._bakers or report.cluster not in self._baked.get(report.baker, []):
            return  # a bake that has ended: its holds ended with it
        self.gate_holds.pop(report.cluster, None)
        self.gate_failures.pop(report.cluster, None)
        status = self._status.cluster(report.cluster)
        if report.lifted:
            status.state, status.step = "promoted", "baking"
        else:
            (self.gate_failures if report.failed else self.gate_holds)[report.cluster] = report.reason
            status.state, status.step = "holding", report.reason
        self._publish()

    @workflow.signal
    def cluster_progress(self, update: ClusterStatus) -> None:
        """A child's new state, weight or gate verdict (its residency decisions only once, when made)."""
        try:
            i = self._status.position(update.name)
        except KeyError:
            return
        if not update.residency:
            update.residency = self._status.clusters[i].residency
        self._status.clusters[i] = update
        self._publish()

    def _record_result(self, result: ClusterRolloutResult) -> None:
        if result.final is not None:
            # The cluster workflow's own record, as it ended (its reports were milestones only); the
            # decisions and measurements the release already has are not sent twice.
            kept = self._status.cluster(result.cluster)
            measured = result.final.measurements or kept.measurements
            final = result.final.model_copy(update={"residency": kept.residency, "measurements": measured})
            self._status.clusters[self._status.position(result.cluster)] = final
        status = self._status.cluster(result.cluster)
        status.state = {
            "promoted": "promoted",
            "rolled-back": "rolled-back",
            "aborted": "rolled-back",
            "denied": "denied",
            "failed": "failed",
        }[result.outcome]  # type: ignore[assignment]
        if result.left_in_place:
            status.state = "left-in-place"
        status.message = result.message
        if result.verdict is not None:
            status.gate = result.verdict
        if result.decisions:
            status.residency = result.decisions
        if result.rollback_failed and result.cluster not in self._status.needs_attention:
            self._status.needs_attention.append(result.cluster)
        self._publish()

    # --- operator controls --------------------------------------------------------------------

    @workflow.update
    async def hold(self, req: HoldRequest) -> ControlResult:
        """Start nothing new until resumed; gates keep judging and a failing gate still rolls back."""
        async with self._in_order():
            fields: dict[str, Any] = {"reason": req.reason}
            req, who = await self._verified_update("hold", req, fields)
            self._refuse("hold", req, self._hold_problem(req), who, fields)
            await self._hold(req, "update", who)
            return self._answer("held")

    @hold.validator
    def _validate_hold(self, req: HoldRequest) -> None:
        if not self._in_flight:
            self._reject_if(self._hold_problem(req))

    @workflow.update
    async def resume(self, req: ResumeRequest) -> ControlResult:
        """Lift a hold (an operator's, or one placed by an inconclusive gate)."""
        async with self._in_order():
            req, who = await self._verified_update("resume", req, {})
            self._refuse("resume", req, self._resume_problem(req), who, {})
            await self._resume(req, "update", who)
            return self._answer(f"resumed; still {self.freeze_hold}" if self.freeze_hold else "resumed")

    @resume.validator
    def _validate_resume(self, req: ResumeRequest) -> None:
        if not self._in_flight:
            self._reject_if(self._resume_problem(req))

    @workflow.update
    async def abort(self, req: AbortRequest) -> ControlResult:
        """Roll back every touched cluster, newest first, and end ``aborted``."""
        async with self._in_order():
            fields: dict[str, Any] = {"reason": req.reason}
            req, who = await self._verified_update("abort", req, fields)
            self._refuse("abort", req, self._abort_problem(req), who, fields)
            await self._abort_request(req, "update", who)
            return self._answer("aborting: rolling back every touched cluster")

    @abort.validator
    def _validate_abort(self, req: AbortRequest) -> None:
        if not self._in_flight:
            self._reject_if(self._abort_problem(req))

    @workflow.update
    async def approve(self, req: ApproveRequest) -> ControlResult:
        """Release a ring waiting for approval, or a cluster's approval step."""
        async with self._in_order():
            fields: dict[str, Any] = {"ring": req.ring, "cluster": req.cluster}
            req, who = await self._verified_update("approve", req, fields)
            self._refuse("approve", req, self._approve_problem(req, verified=True), who, fields)
            await self._approve(req, "update", who)
            return self._answer(f"approved {req.cluster or 'ring ' + req.ring}")

    @approve.validator
    def _validate_approve(self, req: ApproveRequest) -> None:
        if not self._in_flight:
            self._reject_if(self._approve_problem(req))

    @workflow.signal(name="hold-signal")
    async def hold_signal(self, req: HoldRequest) -> None:
        """``hold`` for callers that must not block; an invalid one is recorded as rejected."""
        async with self._in_order():
            fields: dict[str, Any] = {"reason": req.reason}
            if self._rejected("hold", req, self._hold_problem(req), **fields):
                return
            if (checked := await self._verified_signal("hold", req, fields)) is None:
                return
            req, who = checked
            if not self._rejected("hold", req, self._hold_problem(req), who=who, **fields):
                await self._hold(req, "signal", who)

    @workflow.signal(name="resume-signal")
    async def resume_signal(self, req: ResumeRequest) -> None:
        """``resume`` as a signal."""
        async with self._in_order():
            if self._rejected("resume", req, self._resume_problem(req)):
                return
            if (checked := await self._verified_signal("resume", req, {})) is None:
                return
            req, who = checked
            if not self._rejected("resume", req, self._resume_problem(req), who=who):
                await self._resume(req, "signal", who)

    @workflow.signal(name="abort-signal")
    async def abort_signal(self, req: AbortRequest) -> None:
        """``abort`` as a signal (also how a superseding release stops this one, with the lane's seal)."""
        async with self._in_order():
            fields: dict[str, Any] = {"reason": req.reason}
            if self._rejected("abort", req, self._abort_problem(req), **fields):
                return
            if (checked := await self._verified_signal("abort", req, fields)) is None:
                return
            req, who = checked
            if not self._rejected("abort", req, self._abort_problem(req), who=who, **fields):
                await self._abort_request(req, "signal", who)

    @workflow.signal(name="approve-signal")
    async def approve_signal(self, req: ApproveRequest) -> None:
        """``approve`` as a signal."""
        async with self._in_order():
            fields: dict[str, Any] = {"ring": req.ring, "cluster": req.cluster}
            if self._rejected("approve", req, self._approve_problem(req), **fields):
                return
            if (checked := await self._verified_signal("approve", req, fields)) is None:
                return
            req, who = checked
            problem = self._approve_problem(req, verified=True)
            if not self._rejected("approve", req, problem, who=who, **fields):
                await self._approve(req, "signal", who)

    @workflow.query
    def status(self) -> ReleaseStatus:
        """The whole release: phase, ring, every cluster, gates, residency decisions, operator actions."""
        phase = self._phase()
        held = (self.is_held() or phase == "holding") and self._final is None
        reasons = [self.hold_text()] if self.is_held() else []
        reasons += [f"{c.name}: {c.step}" for c in self._status.clusters if c.state == "holding"]
        return _within_payload_limit(
            self._status.model_copy(
                update={"phase": phase, "held": held, "hold_reason": "; ".join(reasons) if held else ""}
            )
        )

    # control validation: the same rules for updates (rejected before history) and signals (recorded)

    def _ended_problem(self) -> str:
        return f"the release has ended ({self._final})" if self._final else ""

    def _hold_problem(self, req: HoldRequest) -> str:
        if not req.by and not _proved(req):
            return "hold needs the operator's identity (by), or a proof"
        if not req.reason:
            return "hold needs a reason"
        if self.abort_reason is not None:
            return "the release is being aborted"
        if self.held:
            return f"already held: {self.hold_reason}"
        return self._ended_problem()

    def _resume_problem(self, req: ResumeRequest) -> str:
        if not req.by and not _proved(req):
            return "resume needs the operator's identity (by), or a proof"
        if ended := self._ended_problem():
            return ended
        if self.freeze_hold and not self.held and not self.gate_holds and not self.gate_failures:
            return f"{self.freeze_hold}: only ringmaster unfreeze lifts a freeze"
        # A cluster holds on its own (an inconclusive gate, an unreachable API): resume lifts that too.
        if not self.is_held() and not self._holding_clusters():
            return "the release is not held"
        return ""

    def _holding_clusters(self) -> list[str]:
        return [n for n in self._children if self._status.cluster(n).state == "holding"]

    def _abort_problem(self, req: AbortRequest) -> str:
        if not req.by and not _proved(req):
            return "abort needs the operator's identity (by), or a proof"
        if not req.reason:
            return "abort needs a reason"
        if ended := self._ended_problem():
            return ended
        if self.abort_reason is not None:
            return f"already aborting: {self.abort_reason}"
        return ""

    def _approve_problem(self, req: ApproveRequest, *, verified: bool = False) -> str:
        """Why ``req`` cannot be applied; ``verified`` once ``req.by`` is the verified principal."""
        if not req.by and not _proved(req):
            return "approve needs the approver's identity (by), or a proof"
        if ended := self._ended_problem():
            return ended
        if self._prepared is None:
            return "the release is still being prepared; nothing waits for approval yet"
        try:
            ring = next(r for r in self._prepared.schedule.rings if r.name == req.ring)
        except StopIteration:
            rings = ", ".join(r.name for r in self._prepared.schedule.rings)
            return f"no ring {req.ring!r} in this release (rings: {rings})"
        # Before verification a proof's principal is unknown: four eyes is judged on it afterwards.
        judged = verified or not _proved(req)
        if ring.approval.four_eyes and judged and (same := self._same_as_submitter(req.by)):
            return f"ring {ring.name} requires four eyes: {same}"
        if req.cluster is None:
            if self._awaiting_ring != ring.name:
                waiting = f"ring {self._awaiting_ring}" if self._awaiting_ring else "no ring"
                return f"ring {ring.name} is not waiting for approval ({waiting} is)"
            return ""
        if not any(c.name == req.cluster for w in ring.waves for c in w.clusters):
            return f"cluster {req.cluster!r} is not in ring {ring.name}"
        state = self._status.cluster(req.cluster).state
        if state != "awaiting-approval" or req.cluster not in self._children:
            return f"cluster {req.cluster} is not waiting for approval (it is {state})"
        return ""

    def _same_as_submitter(self, approver: str) -> str:
        """Why ``approver`` may not approve what the submitter submitted; empty when they may.

        Principals are compared as verified: the verify activity folded case and replaced aliases by
        the person they name, so ``Alice`` and ``alice@example.com`` can be one person.
        """
        submitter = self._inp.submitter
        if submitter is None:  # a release not verified at submission: the client's word, as before
            if approver == self._inp.submitted_by:
                return f"{approver} submitted this release and cannot approve it; another person must"
            return ""
        if not submitter.principal:
            return "the submitter is unknown, so another person's approval cannot be told apart"
        if approver.casefold() == submitter.principal.casefold():
            return (
                f"{approver} submitted this release (verified by {submitter.method}) and cannot "
                "approve it; another person must"
            )
        return ""

    # --- identity -------------------------------------------------------------------------------

    async def _verify(
        self, kind: _ControlAction, req: _C, fields: dict[str, Any]
    ) -> tuple[_C, Verified | None]:
        """``req`` with ``by`` replaced by the verified principal and its proof dropped.

        Raises :class:`_identity.Refused`. Histories from before verification return ``req`` as is.
        """
        if not _identity.active():
            return req, None
        info = workflow.info()
        who = await self._ledger.verify(
            kind,
            proof=req.proof,
            attestation=req.attestation,
            claimed_by=req.by,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            ring=str(fields.get("ring") or ""),
            cluster=str(fields.get("cluster") or ""),
            reason=str(fields.get("reason") or ""),
        )
        # The proof never goes further: not into status, not to a cluster workflow.
        return req.model_copy(update={"by": who.principal, "proof": None, "attestation": None}), who

    @contextlib.asynccontextmanager
    async def _in_order(self) -> AsyncIterator[None]:
        """One control at a time, in arrival order (patch ``controls-in-order``).

        Verifying who sent a control takes an activity, so without this a resume sent right after a
        hold could be judged ("the release is not held") or applied before the hold is. While a
        control is in flight the validators let the next one in; its handler judges it in turn.
        """
        self._in_flight += 1
        try:
            if _patches.patched(CONTROLS_IN_ORDER):
                async with self._controls:
                    yield
            else:
                yield
        finally:
            self._in_flight -= 1

    async def _verified_update(
        self, kind: _ControlAction, req: _C, fields: dict[str, Any]
    ) -> tuple[_C, Verified | None]:
        try:
            return await self._verify(kind, req, fields)
        except _identity.Refused as refused:
            self._refuse(kind, req, refused.problem, None, fields)
            raise AssertionError("unreachable") from None  # pragma: no cover

    async def _verified_signal(
        self, kind: _ControlAction, req: _C, fields: dict[str, Any]
    ) -> tuple[_C, Verified | None] | None:
        try:
            return await self._verify(kind, req, fields)
        except _identity.Refused as refused:
            self._rejected(kind, req, refused.problem, **fields)
            return None

    def _refuse(
        self, kind: ControlKind, req: _Control, problem: str, who: Verified | None, fields: dict[str, Any]
    ) -> None:
        """An update found invalid once verified: recorded as rejected, then refused."""
        if problem:
            self._record(kind, req, via="update", accepted=False, rejection=problem, who=who, **fields)
            self._reject_if(problem)

    @staticmethod
    def _reject_if(problem: str) -> None:
        if problem:
            raise ApplicationError(problem, type="ControlRejected", non_retryable=True)

    def _rejected(
        self, kind: ControlKind, req: _Control, problem: str, *, who: Verified | None = None, **fields: Any
    ) -> bool:
        if not problem:
            return False
        self._record(kind, req, via="signal", accepted=False, rejection=problem, who=who, **fields)
        return True

    def _record(
        self,
        kind: ControlKind,
        req: _Control,
        *,
        via: str,
        accepted: bool = True,
        rejection: str = "",
        who: Verified | None = None,
        **fields: Any,
    ) -> None:
        """One control in the release's record; ``by`` is the verified principal once verified."""
        self._status.actions.append(
            OperatorAction.model_validate(
                {
                    "kind": kind,
                    "by": req.by,
                    "identity": req.identity,
                    "at": workflow.now(),
                    "via": via,
                    "accepted": accepted,
                    "rejection": rejection,
                    "method": who.method if who else "",
                    "verification": who.detail if who else "",
                    **fields,
                }
            )
        )

    async def _hold(self, req: HoldRequest, via: str, who: Verified | None = None) -> None:
        self.held, self.hold_reason = True, f"{req.reason} (by {req.by})"
        self._cause("hold", who)
        self._record("hold", req, via=via, who=who, reason=req.reason)
        self._publish()
        for handle in self._controlled():
            await self._forward_hold(handle)

    async def _resume(self, req: ResumeRequest, via: str, who: Verified | None = None) -> None:
        self.held, self.hold_reason = False, ""
        self.gate_holds.clear()
        self.gate_failures.clear()
        self._record("resume", req, via=via, who=who)
        self._cause("resume", who)
        self._publish()
        if self.freeze_hold:
            # The clusters stay held by the freeze: a resume there would let them take a step before
            # a hold sent after it arrived. Their own gate holds wait for the unfreeze and a resume.
            return
        for handle in self._controlled():
            await self._order(handle, req)

    def _controlled(self) -> list[workflow.ChildWorkflowHandle[Any, Any]]:
        """The child workflows a hold, resume or freeze reaches: running clusters, then bakes."""
        return [*self._children.values(), *self._bakers.values()]

    def _child_held(self) -> bool:
        """Whether the clusters must hold: an operator's hold or a freeze (gates hold by themselves)."""
        return self.held or bool(self.freeze_hold)

    def _child_hold_reason(self) -> str:
        return "; ".join(r for r in (self.freeze_hold, self.hold_reason if self.held else "") if r)

    async def _forward_hold(
        self, handle: workflow.ChildWorkflowHandle[Any, Any], *, gate_holds: bool = True
    ) -> None:
        if self._child_held():
            await self._order(handle, HoldRequest(reason=self._child_hold_reason(), by=SYSTEM))
        elif gate_holds:
            await self._order(handle, ResumeRequest(by=SYSTEM))
        else:
            await self._order(handle, ResumeRequest(by=SYSTEM, gate_holds=False))

    # --- freezes ------------------------------------------------------------------------------

    def _freeze_input(self, known: list[str] | None) -> FreezeCheckInput:
        prepared = self._prepared
        assert prepared is not None
        regions = sorted({c.region for c in prepared.schedule.all_clusters()})
        return FreezeCheckInput(service=self._inp.service, regions=regions, known=known)

    async def _honour_freezes(self) -> None:
        """Read the freezes before the first step, and from now on whenever they may have changed.

        Every read is an activity, so the freezes this release saw are in its history and it replays
        with them. Reads happen here, before each wave, on the registry's ``freezes-changed`` signal
        (sent to every running release after each freeze and unfreeze), and, while a freeze holds the
        release, in one heartbeating activity that returns when the freezes change (an unfreeze whose
        signal was lost is noticed all the same). No activity runs while nothing is frozen, so a
        release's history stays flat and a time-skipping test server can skip its timers.
        """
        self._freeze_reads = True
        await self._read_freezes()

    async def _read_freezes(self) -> None:
        if not self._freeze_reads:
            return
        async with self._freeze_lock:
            found = await workflow.execute_activity_method(
                FreezeActivities.check,
                self._freeze_input(None),
                summary="which freezes hold this release",
                **options.FREEZE_READ,
            )
            if self._freeze_reads:
                await self._apply_freezes(found)

    async def _watch_thaw(self) -> None:
        """While frozen: wait for the freezes to change, and apply what they changed to."""
        while self._freeze_reads and self._freezes:
            known = [f.key for f in self._freezes]
            try:
                found = await workflow.execute_activity_method(
                    FreezeActivities.check,
                    self._freeze_input(known),
                    summary="wait for the freezes holding this release to change",
                    # Held for a whole freeze: on a queue of its own, so frozen releases never take
                    # the slots of steps, rollbacks (a failing gate still rolls back) or analyses.
                    task_queue=queues.freeze_queue(workflow.info().task_queue),
                    **options.FREEZE_WATCH,
                )
            except (asyncio.CancelledError, ActivityError):
                return  # the release's ending cancelled the watch
            async with self._freeze_lock:
                # A read on a signal may have seen the change first: then wait from what it saw.
                if self._freeze_reads and [f.key for f in self._freezes] == known:
                    await self._apply_freezes(found)
        self._freeze_watch = None

    @workflow.signal(name="freezes-changed")
    async def freezes_changed(self, _: FreezesChanged) -> None:
        """The freeze registry changed: read it (the signal carries no authority, only a prompt)."""
        if self._final is None:
            await self._read_freezes()

    async def _apply_freezes(self, found: FreezeCheck) -> None:
        """Hold (or stop holding) for the freezes in force: recorded, shown, and forwarded to the clusters."""
        before = {f.key: f for f in self._freezes}
        after = {f.key: f for f in found.freezes}
        was_held = self._child_held()
        self._freezes = list(found.freezes)
        self.freeze_hold = "; ".join(f.describe() for f in found.freezes)
        now = workflow.now()
        for key, f in after.items():
            if key not in before:
                self._status.actions.append(
                    OperatorAction(
                        kind="freeze",
                        by=f.by,
                        at=now,
                        reason=f"{key}: {f.reason}",
                        via="system",
                        method=f.method,
                    )
                )
        for key in before:
            if key not in after:
                self._status.actions.append(
                    OperatorAction(kind="unfreeze", by=SYSTEM, at=now, reason=f"{key} lifted", via="system")
                )
        self._publish()
        if self._freezes and self._freeze_watch is None:
            self._freeze_watch = asyncio.create_task(self._watch_thaw())
        if self._child_held() != was_held:
            for handle in self._controlled():
                await self._forward_hold(handle, gate_holds=False)

    async def _abort_request(self, req: AbortRequest, via: str, who: Verified | None = None) -> None:
        self.abort_reason = f"{req.reason} (by {req.by})"
        self._cause("abort", who)
        self._record("abort", req, via=via, who=who, reason=req.reason)
        self._publish()
        await self._stop_children(self.abort_reason)

    async def _approve(self, req: ApproveRequest, via: str, who: Verified | None = None) -> None:
        self._record("approve", req, via=via, who=who, ring=req.ring, cluster=req.cluster)
        if req.cluster is None:
            self._approved_rings.add(req.ring)
        elif (handle := self._children.get(req.cluster)) is not None:
            await self._order(handle, req, who)
        self._publish()

    def _cause(self, action: _ControlAction, who: Verified | None) -> None:
        if who is not None:
            self._causes[action] = who
        else:
            self._causes.pop(action, None)

    async def _order(
        self,
        handle: workflow.ChildWorkflowHandle[Any, Any],
        req: _Control,
        who: Verified | None = None,
    ) -> None:
        """Send a control to a cluster child, sealed for it when it verifies its controls.

        The seal names ``who`` (or whoever caused the hold, resume or abort in force; ringmaster
        itself when nobody did). An abort that cannot be sealed goes unsealed: the child applies
        aborts whatever their seal, and its rollback must not wait on one.
        """
        action: _ControlAction
        signal: Any  # the child's handler for this request's type
        fields: dict[str, str] = {}
        if isinstance(req, HoldRequest):
            action, signal, fields = "hold", ClusterRolloutWorkflow.hold, {"reason": req.reason}
        elif isinstance(req, ResumeRequest):
            action, signal = "resume", ClusterRolloutWorkflow.resume
        elif isinstance(req, AbortRequest):
            action, signal, fields = "abort", ClusterRolloutWorkflow.abort, {"reason": req.reason}
        else:
            action, signal = "approve", ClusterRolloutWorkflow.approve
            fields = {"ring": req.ring, "cluster": req.cluster or ""}
        order: _Control = req.model_copy(update={"proof": None, "attestation": None})
        if handle.id in self._sealed:
            cause = (
                who
                or self._causes.get(action)
                or Verified(principal=SYSTEM, method="attested", detail=f"ringmaster's own {action}")
            )
            try:
                sealed = await _identity.attest(cause, action, handle.id, **fields)
            except _identity.Refused as refused:
                workflow.logger.warning("%s to %s not sealed: %s", action, handle.id, refused.problem)
                if action != "abort":
                    return
            else:
                order = order.model_copy(update={"by": cause.principal, "attestation": sealed})
        await _signal_child(handle, signal, order)

    def _answer(self, message: str) -> ControlResult:
        return ControlResult(accepted=True, phase=self._phase(), message=message)

    # --- presentation -------------------------------------------------------------------------

    def _ref(self, ring: str) -> ReleaseRef:
        run = workflow.info().first_execution_run_id  # kept by retries, reset, continue-as-new; new per rerun
        return ReleaseRef(
            service=self._inp.service, version=self._inp.version, image=self._inp.image, ring=ring, run=run
        )

    def _phase(self) -> Phase:
        if self._final is not None:
            return self._final
        if self._stage == "rolling-back" or self.abort_reason is not None:
            return "rolling-back"
        if self.is_held():
            return "holding"
        if self._stage != "deploying":
            return self._stage
        states = {self._status.cluster(n).state for n in self._children}
        if self._holding_first and "holding" in states and "rolling-back" not in states:
            return "holding"
        for state, phase in (
            ("rolling-back", "rolling-back"),
            ("awaiting-approval", "awaiting-approval"),
            ("deploying", "deploying"),
            ("promoting", "deploying"),
            ("checking-residency", "deploying"),
            ("analyzing", "analyzing"),
            ("holding", "holding"),
            ("waiting-window", "waiting-window"),
        ):
            if state in states:
                return phase  # type: ignore[return-value]
        return "deploying"

    def _publish(self) -> None:
        """Search attributes (when phase or ring changed) and the UI's current details."""
        phase = self._phase()
        if phase != self._metered:
            self._metered = phase
            _metrics.release_phase(phase)
        key = (phase, self._status.ring)
        if key != self._published and self._inp.search_attributes:
            self._published = key
            # Who submitted and which clusters it reached ride on these upserts, never one of their
            # own: each upsert is an event and a billable action, and a release reaches clusters by
            # the hundred.
            submitter = self._inp.submitter
            reached = [c.name for c in self._status.clusters if c.state not in _UNREACHED]
            workflow.upsert_search_attributes(
                [
                    search.SERVICE.value_set(self._inp.service),
                    search.VERSION.value_set(self._inp.version),
                    search.PHASE.value_set(phase),
                    search.RING.value_set(self._status.ring),
                    search.CLUSTERS.value_set(search.bounded(reached)),
                    *([search.SUBMITTER.value_set(submitter.principal)] if submitter else []),
                ]
            )
        workflow.set_current_details(self._details(phase))
        self._accounts.watch(phase, self._status, self.status)

    def _details(self, phase: str) -> str:
        lines = [
            f"**{self._inp.release}** · phase **{phase}** · ring {self._status.ring or '-'}",
            "",
        ]
        if self.is_held() and phase not in TERMINAL_PHASES:
            lines += [f"Held: {self.hold_text()}", ""]
        if self._status.reason:
            lines += [self._status.reason, ""]
        rings: dict[str, Counter[str]] = {}
        for c in self._status.clusters:
            rings.setdefault(c.ring, Counter())[c.state] += 1
        if rings:
            lines += ["| ring | clusters |", "|---|---|"]
            lines += [
                f"| {name} | " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) + " |"
                for name, counts in rings.items()
            ]
            lines.append("")
        lines += ["| cluster | state | runs | gate |", "|---|---|---|---|"]
        shown = self._status.clusters
        if len(shown) > DETAILS_ROWS:
            # The clusters that need a look first, then the ring running now; the rest are counted.
            order = {"failed": 0, "rolling-back": 1, "holding": 2, "awaiting-approval": 3}
            ring = self._status.ring
            shown = sorted(
                shown, key=lambda c: (order.get(c.state, 4), c.ring != ring, c.state == "pending")
            )[:DETAILS_ROWS]
        new = self._inp.version
        for c in shown:
            # What the cluster serves: the new version's share while it is shifted, else one version.
            runs = f"{new} {c.weight}%" if 0 < c.weight < 100 and c.version != new else c.version or "-"
            lines.append(f"| {c.name} | {c.state} | {runs} | {c.gate.status if c.gate else ''} |")
        if len(shown) < len(self._status.clusters):
            counts = Counter(c.state for c in self._status.clusters)
            lines += [
                "",
                f"{len(self._status.clusters) - len(shown)} more; all clusters: "
                + ", ".join(f"{state} {n}" for state, n in sorted(counts.items())),
            ]
        return "\n".join(lines)
