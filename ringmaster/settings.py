"""Settings of the worker and the CLI, from ``RINGMASTER_*`` environment variables (or a ``.env``).

The Temporal connection is not here: it comes from the SDK's environment configuration
(``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings and profiles in
``temporal.toml``), so ringmaster connects exactly where the ``temporal`` CLI does.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activities.webhooks import Webhook


class Settings(BaseSettings):
    """Everything configurable about a ringmaster process."""

    model_config = SettingsConfigDict(env_prefix="RINGMASTER_", env_file=".env", extra="ignore")

    fleet: Path = Field(default=Path("deploy/examples/fleet.yaml"))
    """The fleet file the worker schedules against: the authority over clusters and regions."""

    task_queue: str = "ringmaster"
    """Task queue of the release workflows and their activities."""

    temporal_profile: str | None = None
    """Profile in the Temporal client config file; None uses the default profile and environment."""

    worker_versioning: bool = False
    """Run the worker as a version of the Temporal worker deployment ``deployment_name``, with build id
    ``build_id`` (Worker Versioning: ``docs/design.md``, "Upgrading the worker"): the deployment's
    current version (``ringmaster deployment current``) decides which build runs the workflows (they
    move to it at their next task: auto-upgrade), and an old build's workers go once no run is pinned
    to it (``ringmaster deployment drained``). Off (the default), workers of every build share the task
    queue, as in the sandbox and the tests; the build id is still recorded in every workflow task the
    worker completes."""

    deployment_name: str = Field(default="ringmaster", pattern=r"^[A-Za-z0-9_-]+$", max_length=100)
    """The Temporal worker deployment the workers belong to (no ``.``: Temporal writes a version as
    ``<deployment>.<build id>``). One per namespace and task queue family."""

    build_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]+$", max_length=100)
    """This worker's build id; None derives it from the package version and the commit,
    ``<version>-<commit>`` (``activities.build.build_id``). Set it when the image build knows better."""

    ui_url: str = "http://localhost:8233"
    """Base URL of the Temporal UI, for the links the CLI prints."""

    prometheus_timeout_seconds: float = Field(default=10.0, gt=0, lt=15)
    """How long one Prometheus query may take before it counts as an error (not a failure). Below an
    analysis stretch's shortest heartbeat timeout (15 s, ``activities.analysis.HEARTBEAT_TIMEOUT_FLOOR``)
    so no single query could outlast it even if it blocked the heartbeat."""

    prometheus_threads: int = Field(default=16, ge=1)
    """Threads the worker's Prometheus queries run on (their own pool, not the event loop's default
    executor): the most queries in flight at once, across every running analysis."""

    prometheus_bearer_token: SecretStr | None = None
    """Sent as ``Authorization: Bearer`` to every Prometheus, when they need one. Lives only here:
    never in a workflow input, a measurement or a log."""

    unleash_admin_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    """Admin API tokens of the fleet's flag servers (the regions' ``flags:``), by the server's host
    (``host:port`` where one host serves several Unleash): JSON, e.g.
    ``{"unleash.eu.example.com": "*:*.3f9c..."}``, sent as Unleash's ``Authorization`` header. Lives
    only here: never in a plan, fleet, workflow input, result, log or error message. A worker
    without one for a host fails the flag steps there permanently, naming the host and this setting."""

    unleash_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    """How long one Admin API request to a flag server may take, in seconds, before it counts as the
    server unreachable (retried, then the cluster held). The flag activities heartbeat meanwhile."""

    kubeconfig: Path | None = None
    """Kubeconfig with one context per fleet cluster (``kubeContext``); None uses ``$KUBECONFIG``.
    The worker talks to each cluster through it and judges gates on each region's Prometheus (the
    fleet's ``prometheus:`` URL); there is no other backend in the product."""

    max_concurrent_activities: int = Field(default=50, ge=1)
    """Cluster changes (snapshots, steps, rollout waits, rollbacks) and release activities one worker
    runs at once, on the main task queue; each holds a thread of the cluster pool while it runs.
    Analysis stretches never take these slots: they have their own (``max_concurrent_analyses``)."""

    bake_partition_clusters: int = Field(default=100, ge=1)
    """A ring bake judging more promoted clusters than this runs in bake workflows of this many
    clusters each instead of in the release's own history (``workflows.bake``): a release's history
    then grows by about three events a cluster less, and no workflow task starts or stops more than
    this many analysis stretches. Recorded in each release when it is prepared."""

    max_concurrent_analyses: int = Field(default=200, ge=1)
    """Analysis stretches one worker runs at once, on the analysis task queue (``<task_queue>-analysis``).
    A stretch holds its slot for a whole canary step or bake but is a coroutine, not a thread, so
    hundreds are cheap; past this many, new stretches wait (see ``schedule_to_start`` in the logs)."""

    schedule_to_start_warn_seconds: float = Field(default=5.0, ge=0)
    """An activity that waited longer than this for a slot is logged as a warning (``activity started
    late``): the worker's slots for its queue are all taken."""

    heartbeat_throttle_seconds: float = Field(default=5.0, gt=0)
    """Longest gap between heartbeats actually sent to the server by the main and freeze workers. A
    cancellation (an abort) reaches a running activity in a heartbeat's answer, so this bounds how late
    it can arrive; lower means more RPCs per running activity. The analysis worker has its own
    (``analysis_heartbeat_throttle_seconds``)."""

    analysis_heartbeat_throttle_seconds: float = Field(default=3600.0, gt=0)
    """The analysis worker's own longest gap between heartbeats sent to the server, in seconds. Long
    (an hour) so each stretch's own throttle governs: the SDK sends a stretch's heartbeats at most once
    per 0.8 x its heartbeat timeout, which is ``max(15 s, 1.25 x interval)``
    (``activities.analysis.heartbeat_timeout``), so at most one per analysis interval (each heartbeat
    is a billable action on Temporal Cloud). The trade: a stretch ended by cancellation learns of it
    up to about one interval (at least 12 s) late; promotion gives the stretch a deadline wherever it
    can, and a rollback never waits for a stretch. Lower only to stop stretches sooner in tests."""

    max_concurrent_freeze_watches: int = Field(default=1000, ge=1)
    """Freeze watches one worker runs at once, on the freeze queue (``<task_queue>-freezes``): one per
    frozen release, held for the whole freeze, a coroutine polling the freeze registry for the
    unfreeze. Past this many, a frozen release's watch waits for a slot (a prompted release still
    reads the unfreeze at once)."""

    freeze_poll_seconds: float = Field(default=2.0, gt=0, le=10)
    """How often a frozen release's watch reads the freeze registry, in seconds: how late an unfreeze
    whose prompt the release missed can reach it (a prompted release reads at once). At most 10, well
    inside the watch's heartbeat timeout (``workflows._options.FREEZE_WATCH``)."""

    graceful_shutdown_seconds: float = Field(default=20.0, ge=0)
    """On SIGTERM, how long running activities get to finish before they are cancelled."""

    identity_policy: Path | None = None
    """The worker's identity policy (YAML, ``policies.identity.IdentityPolicy``): who may sign
    requests (an allowed-signers file) and which OIDC issuers' tokens count. None: the worker takes
    the client's word for who acts (``--by``), says so in a warning at start, and is for local
    experiments only."""

    authorization_policy: Path | None = None
    """The worker's authorization policy (YAML, ``policies.authz.AuthorizationPolicy``): which verified
    principals or groups may submit, approve, hold, resume, abort and roll back which services and
    rings; what no rule allows is refused. Judged on the worker when a request's identity is verified.
    None: every principal may do everything (the worker warns at start). ``ringmaster policy check``
    reads it too."""

    identity_attestation_key_file: Path | None = None
    """At least 32 random bytes, the same on every worker of a namespace: the worker seals the orders
    a release gives its cluster workflows with it (HMAC-SHA256), and verifies them. Required with an
    identity policy; without one, a random key of the process is used."""

    webhooks: list[Webhook] = Field(default_factory=list)
    """Where the worker tells people that a release needs them or ended (JSON, e.g.
    ``[{"name": "oncall", "url": "https://hooks.slack.com/services/...", "format": "slack"}]``;
    ``activities.notify.Webhook``). The URLs are credentials: they live only in the worker's settings,
    never in a workflow input, a history, a log or the audit record (which names each webhook)."""

    archive_url: str | None = None
    """Where the worker writes each release run's audit record, and ``ringmaster audit`` reads it once
    Temporal's history is gone: a directory (a path or ``file:///...``) or S3
    (``s3://bucket/prefix?endpoint=...&region=...``, credentials from the AWS default chain, never
    in the URL). None: no archive (``audit`` then reads history only)."""

    listen_host: str = "0.0.0.0"  # noqa: S104 - a container's probes and scrapes arrive from outside it
    """Address the worker's metrics and health endpoints listen on (``metrics_port``, ``health_port``):
    all interfaces by default, as a container's kubelet and Prometheus reach it from outside; set
    ``127.0.0.1`` to keep them to the machine."""

    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the worker's Prometheus endpoint (``/metrics``): the Temporal SDK's worker metrics
    (slots, schedule-to-start and poll latencies, with the ``temporal_`` prefix) and ringmaster's own
    (``ringmaster_*``), served by one exporter, the SDK runtime's. None (the default): no endpoint, so
    several workers can share a machine (the sandbox, a laptop); the manifests in ``deploy/worker``
    set 9464. See docs/operating.md for the metrics and their labels."""

    health_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the worker's health endpoints: ``/livez`` (the process's event loop answers),
    ``/readyz`` (every Temporal worker of the process runs and Temporal has seen this process poll
    its task queue within ``readiness_poll_age_seconds``) and ``/readyz?verbose`` (also each fleet
    cluster's, Prometheus' and flag server's last reachability probe, which never affects readiness:
    one region's outage must not stop a fix from rolling out elsewhere). None (the default): not
    served; the manifests in ``deploy/worker`` set 8080. The reachability probes run whenever this
    or ``metrics_port`` is set (they feed ``ringmaster_dependency_up``). See docs/operating.md."""

    readiness_poll_age_seconds: float = Field(default=90.0, ge=5)
    """``/readyz`` says ready only if Temporal saw this process poll its main task queue at most this
    long ago, in seconds. An idle long poll is renewed about every 60 s, so less than 70 would make an
    idle, healthy worker flap."""

    health_probe_seconds: float = Field(default=15.0, gt=0)
    """How often, in seconds, the worker checks Temporal (for readiness) and probes each dependency
    (clusters, Prometheus, flag servers) for ``ringmaster_dependency_up`` and ``/readyz?verbose``."""

    health_probe_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    """How long one probe (a cluster's ``/version``, a Prometheus' ``/-/ready``, an Unleash ``/health``,
    Temporal's task queue description) may take, in seconds, before it counts as unreachable."""

    health_probe_concurrency: int = Field(default=8, ge=1, le=64)
    """Dependency probes in flight at once (each holds a thread while it waits): a fleet of hundreds of
    clusters is probed a few at a time, never all at once."""

    def prometheus_headers(self) -> dict[str, str] | None:
        """The headers of every request to a region's Prometheus (the bearer token, when set)."""
        token = self.prometheus_bearer_token
        return {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else None

    @field_validator("health_port")
    @classmethod
    def _distinct_ports(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value == info.data.get("metrics_port"):
            raise ValueError("must differ from RINGMASTER_METRICS_PORT: each endpoint has its own server")
        return value

    @field_validator("webhooks")
    @classmethod
    def _unique_webhooks(cls, value: list[Webhook]) -> list[Webhook]:
        names = [w.name for w in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"webhook names must be unique; given more than once: {', '.join(twice)}")
        return value


def settings_problems(err: ValidationError) -> str:
    """``invalid settings: RINGMASTER_X: <problem>; ...``: each invalid variable by its name."""
    problems = "; ".join(
        f"RINGMASTER_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}" for e in err.errors()
    )
    return f"invalid settings: {problems}"
