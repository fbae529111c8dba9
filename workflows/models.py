"""Inputs, controls and the status model of the release workflows.

Workflow state lives in one model (:class:`ReleaseStatus`); the ``status`` query returns it, the
Temporal UI shows a rendering of it, and ``ringmaster status`` prints it. New fields get defaults so
histories recorded by older code still decode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, PrivateAttr

from activities.models import AnalysisMode, AnalyzeInput, ClusterSnapshot, ClusterTarget, ReleaseRef
from policies import messages
from policies.flags import FlagServer
from policies.freeze import Freeze
from policies.freeze import Scope as FreezeScope
from policies.gates import Check, GateVerdict
from policies.identity import Attestation, Method, Proof, Verified
from policies.plan import Analysis, ReleasePlan, Strategy, Workload
from policies.residency import Decision
from policies.schedule import Schedule, ScheduledCluster

Phase = Literal[
    "pending",
    "waiting-window",
    "awaiting-approval",
    "deploying",
    "analyzing",
    "baking",
    "holding",
    "rolling-back",
    "succeeded",
    "rolled-back",
    "aborted",
    "denied",
    "failed",
]
TERMINAL_PHASES: frozenset[str] = frozenset({"succeeded", "rolled-back", "aborted", "denied", "failed"})

ClusterState = Literal[
    "pending",
    "waiting-window",
    "checking-residency",
    "deploying",
    "analyzing",
    "awaiting-approval",
    "holding",
    "promoting",
    "promoted",
    "rolling-back",
    "rolled-back",
    "left-in-place",
    "denied",
    "failed",
]
"""``left-in-place``: the cluster's rollout ended (aborted, or a step failed) under
``rollback.mode: freeze``, so nothing was rolled back: it stays as the release left it."""

ENDED_STATES: frozenset[ClusterState] = frozenset(
    {"promoted", "rolled-back", "denied", "failed", "left-in-place"}
)
"""A cluster's states once its cluster workflow has ended (its result says which)."""

ClusterOutcome = Literal["promoted", "rolled-back", "aborted", "denied", "failed"]


class _Model(messages.Message):
    """Strict when built, tolerant when decoded from a payload (``policies.messages``)."""


class ReleaseInput(_Model):
    """A release as submitted: the plan travels as text and is pinned for the release's life."""

    service: str
    version: str
    image: str
    plan_text: str
    plan_source: str = "plan.yaml"
    submitted_by: str = ""
    submitted_identity: str = ""
    """The Temporal client identity of the submitter (host and process), recorded beside ``by``."""
    submitter: Verified | None = None
    """Who submitted, as the lane verified it (four eyes compares approvers with this principal);
    None for a release started by older code or without the lane."""
    search_attributes: bool = True
    """Publish search attributes. Only the time-skipping test server, which cannot register custom
    search attributes, runs releases without them."""

    @property
    def release(self) -> str:
        """``service:version``."""
        return f"{self.service}:{self.version}"


# --- operator controls ----------------------------------------------------------------------------

ControlKind = Literal["hold", "resume", "abort", "approve", "supersede", "freeze", "unfreeze"]
"""``freeze`` and ``unfreeze``: a freeze of the registry began or ended holding the release."""


class _Control(_Model):
    """What every control carries: who says they act, and what proves it.

    ``by`` is the client's word and decides nothing when the worker verifies identity: the proof
    (a person's signed statement or CI token) or the attestation (the worker's seal on an order a
    release forwards) names the principal that is recorded and judged.
    """

    by: str = ""
    identity: str = ""
    proof: Proof | None = None
    attestation: Attestation | None = None


class HoldRequest(_Control):
    """Stop starting new steps, waves, rings and promotions; gates keep judging."""

    reason: str


class ResumeRequest(_Control):
    """Lift an operator's hold (or a hold caused by an inconclusive gate)."""

    gate_holds: bool = True
    """Lift the holds of inconclusive gates too. False when a release lifts only its own hold on a
    cluster (the end of a freeze): an inconclusive gate there still waits for data or a person."""


class AbortRequest(_Control):
    """Roll back every touched cluster and end ``aborted``."""

    reason: str


class ApproveRequest(_Control):
    """Release a ring waiting for approval, or one cluster's ``pause: {}`` or manual blue-green promotion."""

    ring: str
    cluster: str | None = None


class OperatorAction(_Model):
    """One control as recorded: who, when, why, and whether it was accepted."""

    kind: ControlKind
    by: str
    identity: str = ""
    at: datetime
    reason: str = ""
    ring: str | None = None
    cluster: str | None = None
    via: Literal["update", "signal", "system"] = "update"
    accepted: bool = True
    rejection: str = ""
    method: Method | Literal[""] = ""
    """How ``by`` was established: ``ssh``, ``oidc``, ``attested`` (an order from a release the
    worker sealed), ``trusted`` (the client's word); empty in histories from before verification."""
    verification: str = ""
    """What verified it: the key's fingerprint, or the token's issuer and subject."""


class ControlResult(_Model):
    """What an accepted control changed."""

    accepted: bool
    phase: Phase
    message: str = ""


# --- status ---------------------------------------------------------------------------------------


class ClusterStatus(_Model):
    """One cluster as the release sees it."""

    name: str
    ring: str
    region: str = ""
    jurisdiction: str = ""
    state: ClusterState = "pending"
    version: str = ""
    """The version serving the majority of the cluster's traffic (the stable one until promotion)."""
    weight: int = 0
    """Share of traffic on the release's version, 0-100."""
    flag_rollout: int | None = messages.added()
    """Share of the cluster's users the ring's feature flag is on for, 0-100; None before its first
    flag step (or when the ring moves no flag)."""
    step: str = ""
    message: str = ""
    workflow_id: str = ""
    gate: GateVerdict | None = None
    measurements: list[Check] = Field(default_factory=list)
    residency: list[Decision] = Field(default_factory=list)
    next_window: datetime | None = None
    updated_at: datetime | None = None
    controls: list[OperatorAction] = Field(default_factory=list)
    """The controls this cluster's workflow received, accepted or refused, newest last (the last
    :data:`CLUSTER_CONTROLS_KEPT`): a refused one is a control sent without its release's seal."""


CLUSTER_CONTROLS_KEPT = 10


class ReleaseStatus(_Model):
    """The whole release: what the ``status`` query returns."""

    release: str
    workflow_id: str = ""
    service: str
    version: str
    image: str
    phase: Phase = "pending"
    reason: str = ""
    ring: str = ""
    rollback_scope: str = ""
    held: bool = False
    hold_reason: str = ""
    waiting_for: str = ""
    submitted_by: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    plan_digest: str = ""
    clusters: list[ClusterStatus] = Field(default_factory=list)
    actions: list[OperatorAction] = Field(default_factory=list)
    needs_attention: list[str] = Field(default_factory=list)
    """Clusters a person must look at: a rollback that could not complete, a step that failed."""
    flags_fully_on: list[str] = messages.added(default_factory=list)
    """Feature flags the release took to 100% in every cluster of every ring: the code behind each is
    now what everyone runs, and the flag is debt to remove (``ringmaster flags stale`` lists them)."""
    invalid: bool = False
    """The worker's fleet rejected the plan: nothing was deployed (the CLI exits 2, not 1)."""
    omitted: str = ""
    """What this record leaves out, and where to read it (a release across a fleet too large for its
    record to carry every cluster's residency decisions)."""
    archived: str = ""
    """Where the run's audit record was archived (``<archive>/<key>``), once it ended; empty without
    an archive or before (``ringmaster audit`` reads it)."""

    _positions: dict[str, int] = PrivateAttr(default_factory=dict)

    def position(self, name: str) -> int:
        """The index of ``name`` in ``clusters`` (looked up, not searched: releases span a thousand)."""
        i = self._positions.get(name)
        if i is None or i >= len(self.clusters) or self.clusters[i].name != name:
            self._positions = {c.name: k for k, c in enumerate(self.clusters)}
            i = self._positions.get(name)
            if i is None:
                raise KeyError(name)
        return i

    def cluster(self, name: str) -> ClusterStatus:
        """The status entry of ``name``."""
        return self.clusters[self.position(name)]


# --- the per-cluster child workflow ---------------------------------------------------------------


class ClusterRolloutInput(_Model):
    """One cluster's rollout, as the parent release hands it over."""

    release: ReleaseRef
    cluster: ScheduledCluster
    workload: Workload
    strategy: Strategy
    analysis: Analysis | None = None
    plan: ReleasePlan
    schedule: Schedule | None = None
    """The whole schedule: only in inputs of releases prepared before ``validators`` (it made every
    child's input, and the parent's history with it, grow with the fleet)."""
    validators: list[str] = Field(default_factory=list)
    """The clusters whose promotion lets this (regulated) cluster in (``residency.validators``)."""
    promoted_before: list[str] = Field(default_factory=list)
    """Clusters promoted before this one started: all of them in older inputs, else only validators."""
    held: bool = False
    hold_reason: str = ""
    sealed_orders: bool = False
    """The release seals every control it sends (an attestation naming who caused it), and this
    workflow verifies each one before acting: a control sent to it by anyone else changes nothing.
    False for children of releases from before sealed orders, which send them unsealed."""
    report_analysis: bool = True
    """Whether the start of the analysis is a milestone the release hears of (``analyzing``). False in
    releases of more than ``DECISIONS_KEPT_UP_TO`` clusters: one signal per cluster, an event and a
    billable action each, for a state the release's phase shows only while no cluster of the wave is
    still deploying; ``status`` reads each running cluster from its own workflow either way. Its
    result then carries its residency decisions only if one denies (the release keeps no others)."""
    flag_server: FlagServer | None = messages.added()
    """The cluster's region's flag server, when the ring's strategy moves a feature flag."""


# --- a ring's bake, partitioned -------------------------------------------------------------------


class BakeTarget(_Model):
    """One promoted cluster a bake workflow judges."""

    cluster: ClusterTarget
    stable_version: str = ""
    touched_at: datetime | None = None

    def stretch(
        self, release: ReleaseRef, analysis: Analysis, namespace: str, mode: AnalysisMode, prior: list[Check]
    ) -> AnalyzeInput:
        """The input of one bake stretch judging this cluster (the release's own bake and a bake
        workflow's alike)."""
        return AnalyzeInput(
            release=release,
            cluster=self.cluster,
            analysis=analysis,
            stage="bake",
            mode=mode,
            namespace=namespace,
            stable_version=self.stable_version,
            touched_at=self.touched_at,
            prior_checks=prior,
        )


class BakeInput(_Model):
    """Judge these promoted clusters of one ring until ``end`` (``RingBakeWorkflow``)."""

    release: ReleaseRef
    analysis: Analysis
    namespace: str = ""
    end: datetime
    clusters: list[BakeTarget]
    hold_on_failure: bool = False
    """``rollback.mode: freeze``: a failed gate holds (reported to the release) instead of ending."""
    held: bool = False
    hold_reason: str = ""


class BakeResult(_Model):
    """How a bake workflow's clusters were judged: the first failure, or every verdict at the end."""

    failed: str = ""
    """The cluster whose gate failed (the bake ended there), or ""."""
    verdict: GateVerdict | None = None
    gates: dict[str, GateVerdict] = Field(default_factory=dict)
    """Each cluster's last verdict."""
    aborted: bool = False
    """Stopped by its release (an abort, a rollback elsewhere) before it concluded."""


class BakeHold(_Model):
    """A bake workflow's gate hold begins or ends in one cluster (the release holds while one stands)."""

    cluster: str
    reason: str = ""
    failed: bool = False
    """A failed gate held under ``rollback.mode: freeze`` (else an inconclusive one)."""
    lifted: bool = False
    baker: str = ""
    """The reporting bake workflow's id: the release ignores reports of bakes it no longer runs."""


class ClusterRolloutResult(_Model):
    """How a cluster's rollout ended, and the state it found (so the parent can roll it back later)."""

    cluster: str
    outcome: ClusterOutcome
    snapshot: ClusterSnapshot | None = None
    verdict: GateVerdict | None = None
    decisions: list[Decision] = Field(default_factory=list)
    message: str = ""
    rollback_failed: bool = False
    touched: bool = False
    touched_at: datetime | None = None
    """When ringmaster first touched the cluster: a bake's pre-touch baseline window ends here."""
    left_in_place: bool = False
    """The rollout ended without a rollback because the plan forbids one (``rollback.mode: freeze``)."""
    final: ClusterStatus | None = None
    """The cluster workflow's own status as it ended, without its residency decisions (``decisions``
    or an earlier report carried them) and with its last check only. A cluster workflow reports only
    its milestones to the release while it runs: this is how the release's record gets the weight,
    version, step and controls it ended with."""


# --- the per-service lane -------------------------------------------------------------------------


class SubmitRequest(_Model):
    """A submission from CI: start this release unless the service already runs another."""

    release: ReleaseInput
    supersede: bool = False
    rerun: bool = False
    proof: Proof | None = None
    """The submitter's signed statement or CI token (action ``submit``): the lane verifies it and
    hands the release the verified principal; ``release.submitted_by`` is only the client's word."""


class SubmitResult(_Model):
    """What became of a submission."""

    release: str
    workflow_id: str
    run_id: str = ""
    created: bool
    message: str = ""


class LaneState(_Model):
    """The lane's memory: which release of the service runs now."""

    service: str
    current: ReleaseInput | None = None
    current_workflow_id: str = ""
    current_run_id: str = ""
    used_nonces: list[str] = Field(default_factory=list)
    """Nonces of the newest submissions this lane accepted: a signed submission is accepted once."""
    used_token_ids: list[str] = Field(default_factory=list)
    """Ids of the newest CI tokens this lane accepted."""
    releases_per_run: int = 0
    """Releases one run of the lane waits for before it continues as new (0: only when Temporal
    suggests it, as history grows). Tests lower it to reach the continue-as-new path."""


# --- freezes ----------------------------------------------------------------------------------------


class FreezeRequest(_Control):
    """Hold every release in ``scope`` (and refuse its new submissions) until unfrozen."""

    scope: FreezeScope
    target: str = ""
    """The service or region; empty for ``all``."""
    reason: str


class UnfreezeRequest(_Control):
    """Lift the freeze of ``scope``."""

    scope: FreezeScope
    target: str = ""


class FreezesChanged(_Model):
    """The registry's prompt to a running release: read the freezes again. It carries no authority:
    the release reads what is frozen from the registry through its own activity."""

    key: str = ""
    """The scope that was frozen or unfrozen, for the record."""


class FreezeEvent(_Model):
    """A freeze or an unfreeze, as the registry records it."""

    kind: Literal["freeze", "unfreeze"]
    key: str
    reason: str = ""
    by: str
    method: Method | Literal[""] = ""
    at: datetime


class FreezeRegistryState(_Model):
    """The registry's memory: every freeze in force, and the recent freezes and unfreezes."""

    freezes: list[Freeze] = Field(default_factory=list)
    log: list[FreezeEvent] = Field(default_factory=list)
    """The newest :data:`FREEZE_LOG_KEPT` freezes and unfreezes, newest last."""
    used_nonces: list[str] = Field(default_factory=list)
    used_token_ids: list[str] = Field(default_factory=list)


FREEZE_LOG_KEPT = 200


class FreezeResult(_Model):
    """What a freeze or unfreeze changed, and every freeze in force after it."""

    message: str
    freezes: list[Freeze] = Field(default_factory=list)
