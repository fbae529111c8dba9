"""Inputs and results of every activity: one pydantic model in, one out.

Workflows pass these through Temporal's pydantic data converter, so every field that may be
added later has a default. Nothing here carries a credential: clusters are named, never
addressed; the worker maps names to kubeconfig contexts and Prometheus endpoints itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from policies import authz, messages
from policies.flags import FlagServer, FlagSnapshot, UnleashStrategy
from policies.freeze import Freeze
from policies.gates import Check, GateVerdict
from policies.identity import Attestation, Expected, Proof, Verified
from policies.plan import Analysis, ReleasePlan, Strategy, Workload
from policies.residency import Decision, LiveEvidence
from policies.schedule import Schedule, ScheduledCluster


class _Model(messages.Message):
    model_config = ConfigDict(frozen=False)


class ReleaseRef(_Model):
    """Which release an activity works for; written as labels and annotations on every object."""

    service: str
    version: str
    image: str
    ring: str = ""
    run: str = ""
    """Which run of the release: its workflow's first run id. The same for a retried activity and for
    a reset or continued-as-new workflow, new for a rerun (``submit --rerun``); empty in inputs of
    releases started before runs were recorded."""

    @property
    def name(self) -> str:
        """The release's name, ``service:version``."""
        return f"{self.service}:{self.version}"

    @property
    def run_name(self) -> str:
        """One run of the release, ``service:version@run`` (just ``service:version`` without a run)."""
        return f"{self.name}@{self.run}" if self.run else self.name


class ClusterTarget(_Model):
    """A cluster by name, with the placement facts activities report on. No endpoint, no credential."""

    name: str
    region: str
    jurisdiction: str


# --- preparing a release --------------------------------------------------------------------------


class PrepareInput(_Model):
    """The plan as submitted, to be validated against the worker's fleet and scheduled."""

    plan_text: str
    plan_source: str = "plan.yaml"
    service: str
    version: str
    image: str


class PreparedRelease(_Model):
    """Everything the workflow decides from; recorded in history so a running release never changes."""

    plan: ReleasePlan
    schedule: Schedule
    static_decisions: dict[str, list[Decision]] = Field(default_factory=dict)
    plan_digest: str = ""
    fleet_digest: str = ""
    validators: dict[str, list[str]] | None = None
    """Per regulated cluster, the clusters that may validate it (``residency.validators``); None
    when prepared before cluster workflows got cluster-scoped inputs."""
    bake_chunk: int | None = None
    """A ring bake judging more clusters than this runs in bake workflows of this many clusters each
    (``RingBakeWorkflow``), not in the release's own history; None when prepared before (the release
    judges every bake itself). The worker's ``bake_partition_clusters``, recorded here."""
    worker: str = ""
    """The build of the worker that prepared it (``activities.build.describe``): it judged the static
    residency rules. Empty when prepared before builds were recorded."""
    notify: bool = False
    """The worker has webhooks: the release notifies people (``workflows._accounts``)."""
    archive: bool = False
    """The worker has an audit archive: the release writes its audit record there when it ends."""
    flag_servers: dict[str, FlagServer] = messages.added(default_factory=dict)
    """The flag server of each region a ``featureFlag`` ring reaches (the fleet's ``flags:``), by
    region; empty when the plan moves no flag."""

    def denials(self) -> list[Decision]:
        """Every static decision that denies a cluster, in schedule order."""
        order = [c.name for c in self.schedule.all_clusters()]
        return [d for name in order for d in self.static_decisions.get(name, []) if d.verdict == "deny"]


class WindowInput(_Model):
    """Is the cluster's region inside its deployment window at ``at``?"""

    plan: ReleasePlan
    region: str
    at: datetime


class WindowState(_Model):
    """A region's window at one instant: open or not, and when that changes."""

    region: str
    open: bool
    next_open: datetime | None = None
    next_close: datetime | None = None
    reason: str = ""
    opens: str = ""
    """When it next opens in the region's own time, for people ("Mon 09:00 Europe/Dublin"); "" when open."""


# --- residency ------------------------------------------------------------------------------------


class ResidencyInput(_Model):
    """Gather live evidence in one cluster and judge the live residency rules on it."""

    release: ReleaseRef
    cluster: ClusterTarget
    plan: ReleasePlan
    schedule: Schedule | None = None
    """The whole schedule (older inputs); else ``scheduled`` and ``validators`` say what is needed."""
    scheduled: ScheduledCluster | None = None
    validators: list[str] = Field(default_factory=list)
    promoted: list[str] = Field(default_factory=list)


class ResidencyResult(_Model):
    """The evidence gathered (hosts only) and every rule's decision record."""

    cluster: str
    evidence: LiveEvidence
    decisions: list[Decision]
    worker: str = ""
    """The build of the worker that judged them (``activities.build.describe``)."""

    @property
    def allowed(self) -> bool:
        """True when no rule denied the cluster."""
        return all(d.verdict == "allow" for d in self.decisions)


# --- changing a cluster ---------------------------------------------------------------------------


class SnapshotInput(_Model):
    """Record the workload in one cluster before the release changes it."""

    release: ReleaseRef
    cluster: ClusterTarget
    workload: Workload


class KeepFlagInput(_Model):
    """Keep a cluster's flag record beside its workload snapshot (the first record of a run wins)."""

    release: ReleaseRef
    cluster: ClusterTarget
    workload: Workload
    record: FlagRecord


class ClusterSnapshot(_Model):
    """The workload as ringmaster found it before touching the cluster: what a rollback restores."""

    cluster: str
    exists: bool = True
    image: str = ""
    version: str = ""
    replicas: int = 0
    hpa: str | None = None
    """Name of the HorizontalPodAutoscaler that owns the replica count, if any."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Backend-specific state needed to restore the cluster exactly (selectors, route weights...)."""
    flag: FlagRecord | None = messages.added()
    """The cluster's feature flag as the run found it and as its latest step left it; None until the
    run's first flag step (a rollback then restores the flag first, without touching the workload)."""


class FlagWrite(_Model):
    """What ringmaster's latest step left for a cluster: its strategy as written (with Unleash's id)
    and whether the flag was on in the environment afterwards. The next step and the restore judge
    what they read against it."""

    strategy: UnleashStrategy
    environment_enabled: bool


class FlagRecord(_Model):
    """Everything a rollback needs to put a cluster's flag back: where, as found, and as last written.

    Kept in the cluster workflow's :class:`ClusterSnapshot` (its state and its result), so the cluster's
    own rollback and the release's rollback of a promoted cluster both find it."""

    server: FlagServer
    snapshot: FlagSnapshot
    last_written: FlagWrite | None = None


class FindSnapshotsInput(_Model):
    """Look in ``clusters`` for snapshots this run of the release recorded (never taking new ones)."""

    release: ReleaseRef
    workload: Workload
    clusters: list[ClusterTarget]


class RecordedSnapshots(_Model):
    """The snapshots found, by cluster; a cluster without one was never touched by this release run."""

    found: dict[str, ClusterSnapshot] = Field(default_factory=dict)
    unreadable: dict[str, str] = Field(default_factory=dict)
    """Clusters whose snapshot could not be read, with the error."""


StepAction = Literal["deploy", "set-weight", "deploy-preview", "switch", "promote", "cleanup"]
"""What one step asks of a cluster.

``deploy`` (rolling: new image on the workload), ``set-weight`` (canary share of traffic),
``deploy-preview`` (blue-green preview at full size), ``switch`` (blue-green: the active Services
select the preview; the workload keeps the previous version), ``promote`` (the workload itself moves to the
new version and takes all traffic), ``cleanup`` (canary or preview objects removed).
"""

RolloutTarget = Literal["workload", "canary", "preview"]


class StepInput(_Model):
    """One idempotent change to one cluster."""

    release: ReleaseRef
    cluster: ClusterTarget
    workload: Workload
    strategy: Strategy
    action: StepAction
    weight: int | None = None
    snapshot: ClusterSnapshot


class StepResult(_Model):
    """What the step left in the cluster."""

    cluster: str
    action: StepAction
    weight: int = 0
    """The effective share of traffic on the new version after the step (0-100)."""
    message: str = ""


class WaitInput(_Model):
    """Wait until a rollout in the cluster completes, or its progress deadline passes."""

    release: ReleaseRef
    cluster: ClusterTarget
    workload: Workload
    strategy: Strategy
    target: RolloutTarget
    progress_deadline_seconds: int = 600


class WaitResult(_Model):
    """A completed rollout."""

    cluster: str
    target: RolloutTarget
    ready_replicas: int = 0
    message: str = ""


class RollbackInput(_Model):
    """Return the cluster to ``snapshot``, from whatever point the strategy reached."""

    release: ReleaseRef
    cluster: ClusterTarget
    workload: Workload
    strategy: Strategy
    snapshot: ClusterSnapshot
    reason: str = ""
    replaces: list[str] = Field(default_factory=list)
    """Images the rollback may replace (besides the snapshot's own, already restored): a workload
    running any other was changed by another writer since, and the rollback fails as an ownership
    conflict without writing. Empty: replace whatever runs (a running release's own rollback)."""


class RollbackResult(_Model):
    """The cluster after a rollback."""

    cluster: str
    restored_version: str = ""
    message: str = ""


# --- analysis -------------------------------------------------------------------------------------

AnalysisMode = Literal["until-stopped", "until-enough", "until-recovered"]
"""How an analysis stretch ends besides a failed or inconclusive verdict.

``until-stopped``: runs until the workflow cancels it, then returns the final verdict.
``until-enough``: returns as soon as ``minDataPoints`` checks have been judged.
``until-recovered``: after an inconclusive verdict, returns as soon as one check is judged again.
"""

AnalysisStage = Literal["canary", "preview", "rolling", "bake", "flag"]


class AnalyzeInput(_Model):
    """Judge one cluster over one stretch of analysis."""

    release: ReleaseRef
    cluster: ClusterTarget
    analysis: Analysis
    stage: AnalysisStage
    mode: AnalysisMode = "until-stopped"
    namespace: str = ""
    stable_version: str = ""
    touched_at: datetime | None = None
    """When ringmaster first touched the cluster: the pre-touch baseline window ends here."""
    prior_checks: list[Check] = Field(default_factory=list)
    """The tail of the previous stretch, so consecutive counts carry over."""
    deadline: datetime | None = None
    """When the stretch ends itself (the analysis worker's clock) with the final verdict, as it does
    when the workflow stops it by cancelling it. Given wherever the workflow knows the end (a bake, a
    canary's timed pause), so promotion never waits for a cancellation to reach the activity in a
    heartbeat's reply. None (inputs recorded before it existed too): until the workflow stops it."""
    feature: str | None = messages.added()
    """In the ``flag`` stage, the ring's feature flag: a metric with ``{{featureOn}}`` is judged flag-on
    against the same version's flag-off traffic. None in every other stage."""


class AnalyzeResult(_Model):
    """The stretch's verdict with the retained measurements (Argo's measurementRetention: 10)."""

    cluster: str
    stage: AnalysisStage
    verdict: GateVerdict
    checks: list[Check] = Field(default_factory=list)
    """The last checks of the stretch (at most 10 plus what the judgement's windows need)."""
    total_checks: int = 0
    deadline_reached: bool = False
    """The stretch ended itself at its ``deadline``: ``verdict`` is final, as at a stop."""


class AnalyzeProgress(messages.Message):
    """The ``analyze`` activity's heartbeat details: where a retried attempt resumes, what status shows.

    Field names are those heartbeated since the first release, so a running activity's details and a
    retried attempt still decode. Unknown fields are ignored rather than refused: a ``status`` older
    than the worker must still read a newer worker's heartbeats.
    """

    model_config = ConfigDict(extra="ignore")

    cluster: str
    stage: str
    checks: list[Check] = Field(default_factory=list)
    """The retained checks of the stretch so far, oldest first."""
    total_checks: int = 0
    """Checks taken in the stretch, including those no longer retained."""
    verdict: GateVerdict
    """The verdict on the checks so far (not final: the stretch is still running)."""


class VerifyInput(_Model):
    """A request's proof, and what the workflow about to act on it expects it to say."""

    expected: Expected
    proof: Proof | None = None
    """A person's proof (a submission, a control sent by the CLI)."""
    attestation: Attestation | None = None
    """Or the worker's attestation of one (an order a release forwards to its cluster workflow)."""
    claimed_by: str = ""
    """The client's word (``--by``): who acted under ``identity.mode: trusted``, ignored otherwise."""


class VerifyResult(_Model):
    """A verified principal, or why the request was refused (nothing is applied then)."""

    verified: Verified | None = None
    problem: str = ""
    """What failed, for the person refused: an unknown key, a wrong audience, an expired token, or the
    authorization policy's refusal (naming the rule)."""
    mode: Literal["verified", "trusted"] = "verified"
    authorization: list[authz.Decision] = Field(default_factory=list)
    """The authorization policy's decisions on the request (the first refusal ends them); empty when
    the worker has no authorization policy, or for an attestation (judged when its cause arrived)."""


class AttestInput(_Model):
    """Seal an order to a cluster workflow with the worker's attestation key."""

    attestation: Attestation


class FreezeCheckInput(_Model):
    """Which freezes hold a release of ``service`` deploying to ``regions`` (with ``known``: once changed)."""

    service: str
    regions: list[str] = Field(default_factory=list)
    known: list[str] | None = None
    """The keys of the freezes the caller knows to be in force: the activity returns once the set in
    force differs (polling the registry, heartbeating). None: answer at once."""


class FreezeCheck(_Model):
    """The freezes in force for the release, in scope order."""

    freezes: list[Freeze] = Field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """The keys of :attr:`freezes`."""
        return [f.key for f in self.freezes]


class FreezeNotice(_Model):
    """Tell the running releases of ``task_queue`` that ``key`` was frozen or unfrozen."""

    task_queue: str
    key: str = ""
