"""A ring's bake over many clusters, judged in workflows of its own so the release's history stays flat.

A release judges a ring's bake itself (one analysis stretch per promoted cluster, in its own
history) while the ring is small. Past ``PreparedRelease.bake_chunk`` promoted clusters (the worker's
``bake_partition_clusters``), that would put three events and two payloads per cluster into one
history, and start or stop a thousand stretches in one workflow task: the release starts one
``RingBakeWorkflow`` per chunk instead, each judging its clusters until an end it is given, exactly
as the release would (:class:`workflows._steering.AnalysisRun`, timed stretches).

Collaborators: the release (:mod:`workflows.release`) starts these, forwards hold, resume and abort
to them as it does to cluster workflows, sealed, and keeps the bake's clock: time held does not
count, and a bake a hold extended past a workflow's end gets a new round. This workflow verifies
every control before acting (sealed orders) and reports each gate hold it places, or lifts, to the
release (``bake_hold``), which holds while one stands: its phase shows it, its clock stops, and
``resume`` reaches the hold through it. It changes no cluster: a cancellation (the release aborted,
rolled back or closed) stops judging at once and ends ``aborted``, with nothing to undo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.models import AnalysisMode, AnalyzeInput, AnalyzeResult
    from policies.gates import Check, GateVerdict
    from policies.identity import Action
    from workflows import _identity, _signals
    from workflows._steering import Aborted, AnalysisRun, GateFailed, Interrupted, Steering
    from workflows.models import (
        AbortRequest,
        BakeHold,
        BakeInput,
        BakeResult,
        BakeTarget,
        HoldRequest,
        ResumeRequest,
    )


@workflow.defn(name="RingBakeWorkflow")
class RingBakeWorkflow(Steering):
    """Judge a chunk of one ring's promoted clusters until the bake's end; report the first failure."""

    @workflow.init
    def __init__(self, inp: BakeInput) -> None:
        super().__init__()
        self._inp = inp
        self.held, self.hold_reason = inp.held, inp.hold_reason
        self._runs: dict[str, AnalysisRun] = {}
        self._gates: dict[str, GateVerdict] = {}
        self._controls = asyncio.Lock()
        self._ledger = _identity.Ledger()
        self._reported: dict[str, tuple[str, bool]] = {}
        # Held only so asyncio keeps it: the loop keeps weak references to tasks.
        self._reporter: asyncio.Task[None] | None = None

    # --- controls, from the release (see ClusterRolloutWorkflow: the same orders, verified) ---------

    @workflow.signal
    async def hold(self, req: HoldRequest) -> None:
        """The release holds: a stretch at its end judges on until the release's next round."""
        async with self._controls:
            if await self._accepts("hold", req, reason=req.reason):
                self.held, self.hold_reason = True, req.reason

    @workflow.signal
    async def resume(self, req: ResumeRequest) -> None:
        """Lift the hold, and with ``gate_holds`` the gates' holds (the verdict stands as it is)."""
        async with self._controls:
            if await self._accepts("resume", req):
                self.held, self.hold_reason = False, ""
                if req.gate_holds:
                    self.gate_holds.clear()
                    self.gate_failures.clear()

    @workflow.signal(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def abort(self, req: AbortRequest) -> None:
        """Stop judging and end (applied at once, verified for the record: nothing here to roll back)."""
        if self.abort_reason is None:
            self.abort_reason = req.reason
        await self._accepts("abort", req, reason=req.reason)

    async def _accepts(
        self, action: Action, req: HoldRequest | ResumeRequest | AbortRequest, *, reason: str = ""
    ) -> bool:
        """Whether this control is the release's sealed order (a person's own proof is refused)."""
        if req.proof is not None:
            workflow.logger.warning("%s refused: a bake takes controls only from its release", action)
            return False
        try:
            await self._ledger.verify(
                action,
                proof=None,
                attestation=req.attestation,
                claimed_by=req.by,
                workflow_id=workflow.info().workflow_id,
                reason=reason,
            )
        except _identity.Refused as refused:
            workflow.logger.warning("%s refused: %s", action, refused.problem)
            return False
        return True

    # --- the run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: BakeInput) -> BakeResult:
        """Judge every cluster until ``inp.end``; end early at a failed gate, an abort or a cancel."""
        for target in inp.clusters:
            run = AnalysisRun(
                self,
                self._make_input(target),
                self._on_result,
                hold_on_failure=inp.hold_on_failure,
                timed=True,
            )
            self._runs[target.cluster.name] = run
            run.start(inp.end)
        self._reporter = asyncio.create_task(self._report_holds())
        self._show()
        try:
            if inp.end > workflow.now():
                await self.until(
                    lambda: False, limit=inp.end - workflow.now(), summary="judge until the bake's end"
                )
            runs = list(self._runs.items())
            verdicts = await asyncio.gather(*(run.stop() for _, run in runs))
            for (name, _), verdict in zip(runs, verdicts, strict=True):
                self._gates[name] = verdict
                if verdict.status == "failed":
                    raise GateFailed(name, verdict)
        except GateFailed as failed:
            return BakeResult(failed=failed.cluster, verdict=failed.verdict, gates=self._gates)
        except (Aborted, asyncio.CancelledError):
            return BakeResult(aborted=True, gates=self._gates)
        except Interrupted as other:  # pragma: no cover - Aborted and GateFailed are the only kinds
            workflow.logger.warning("bake interrupted: %s", other)
            return BakeResult(aborted=True, gates=self._gates)
        finally:
            for run in self._runs.values():
                run.abandon()
        return BakeResult(gates=self._gates)

    def interruption(self) -> Interrupted | None:
        """An abort, or a gate that failed (safety beats hold)."""
        for name, run in self._runs.items():
            if run.failed is not None:
                return GateFailed(name, run.failed)
        return super().interruption()

    def _make_input(self, target: BakeTarget) -> Callable[[AnalysisMode, list[Check]], AnalyzeInput]:
        inp = self._inp
        return lambda mode, prior: target.stretch(inp.release, inp.analysis, inp.namespace, mode, prior)

    def _on_result(self, result: AnalyzeResult) -> None:
        self._gates[result.cluster] = result.verdict
        self._show()

    # --- what the release and the UI see ------------------------------------------------------

    def _show(self) -> None:
        inp = self._inp
        failed = sorted(c for c, v in self._gates.items() if v.status == "failed")
        lines = [
            f"**bake of ring {inp.release.ring}** · {len(inp.clusters)} clusters"
            f" until {inp.end:%H:%M:%S} UTC",
            "",
            f"judged {len(self._gates)}, failed {len(failed)}" + (f": {', '.join(failed)}" if failed else ""),
        ]
        if self.is_held():
            lines += ["", f"Held: {self.hold_text()}"]
        workflow.set_current_details("\n".join(lines))

    def _holds(self) -> dict[str, tuple[str, bool]]:
        view = {c: (r, False) for c, r in self.gate_holds.items()}
        view.update({c: (r, True) for c, r in self.gate_failures.items()})
        return view

    async def _report_holds(self) -> None:
        """Tell the release of every gate hold placed or lifted, so it holds while one stands."""
        while True:
            await workflow.wait_condition(lambda: self._holds() != self._reported)
            now, before = self._holds(), self._reported
            self._reported = now
            self._show()
            for cluster in sorted(set(now) | set(before)):
                if now.get(cluster) == before.get(cluster):
                    continue
                reason, failed = now.get(cluster, ("", False))
                await self._tell(
                    BakeHold(
                        cluster=cluster,
                        reason=reason,
                        failed=failed,
                        lifted=cluster not in now,
                        baker=workflow.info().workflow_id,
                    )
                )

    async def _tell(self, report: BakeHold) -> None:
        parent = workflow.info().parent
        if parent is None:
            return
        release = workflow.get_external_workflow_handle(parent.workflow_id)
        try:
            await _signals.send(lambda: release.signal("bake_hold", report), "bake hold report")
        except FailureError as err:
            workflow.logger.info("hold not reported, the release workflow has closed: %s", err)
