"""``ringmaster worker``: runs the release workflows and every activity against the fleet it holds.

Cluster credentials live here and nowhere else: the fleet names clusters, the worker's kubeconfig
reaches them.

Capacity: one process runs two Temporal workers (:class:`Workers`), so a deploy never leaves a queue
unpolled. The main queue (``task_queue``) runs the workflows, the release activities and every
cluster change, with ``max_concurrent_activities`` slots and as many threads for blocking cluster
calls. The analysis queue (:func:`workflows.queues.analysis_queue`) runs only the long ``analyze``
stretches, with ``max_concurrent_analyses`` slots of their own: however many canaries are under
analysis, steps and rollbacks always find a slot. A third worker polls the freeze queue
(:func:`workflows.queues.freeze_queue`): each frozen release's watch (``check_freezes`` waiting
for the unfreeze, a coroutine held for the whole freeze), ``max_concurrent_freeze_watches`` at
once; the quick freeze checks and the registry's prompts to releases run on the main queue. Each
activity start is logged with its schedule-to-start latency (:mod:`ringmaster.latency`).

Identity: the main queue also runs ``verify_identity`` and ``attest_identity``
(:mod:`activities.identity`), under the policy file ``identity_policy`` names and the attestation key
every worker shares (:func:`identity_activities`; ``ringmaster worker`` exits 2 naming the file or
setting when they cannot work). Without a policy the worker takes the client's word and warns once.
``verify_identity`` also judges each request against the authorization policy
``authorization_policy`` names (:mod:`policies.authz`); without one every principal may do
everything, and the worker says so once at start.

Undo: ``UndoWorkflow`` (``ringmaster rollback`` and ``retry``) runs here too, with two reads of its
own (:func:`undo_activities`): ``read_release``, an ended release's record through this worker's
Temporal client, and ``inspect_workload``, through the cluster backend.

Versions: every worker of the process is one version of the Temporal worker deployment
(:mod:`ringmaster.versioning`, ``worker_versioning``): with versioning on, the deployment's current
version runs every workflow (each moves to it at its next task) and old builds serve only runs an
operator pinned to them; off, the build id is only stamped on each workflow task. The workflow
types, sandbox and interceptors come from :mod:`ringmaster.registry`, which the replays use too.

On SIGTERM both workers stop polling. Analysis stretches hand over at once (they fail retryably with
their checks heartbeated, and another worker resumes them); cluster changes get
``graceful_shutdown_seconds`` to finish, then are cancelled and retried elsewhere.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.analysis import AnalysisActivities, MetricsSource
from activities.archive import open_archive
from activities.archiving import ArchiveActivities
from activities.flags import FlagActivities
from activities.freeze import FreezeActivities, TemporalFreezes
from activities.identity import IdentityActivities, IdentityMisconfigured
from activities.jwks import HttpJwks
from activities.kubernetes import KubernetesBackend
from activities.notify import NotifyActivities
from activities.prometheus import PrometheusMetrics
from activities.release import ReleaseActivities
from activities.rollout import ClusterActivities, ClusterBackend
from activities.undo import UndoActivities
from policies import loading
from policies.authz import AuthorizationPolicy
from policies.fleet import Fleet
from policies.identity import IdentityPolicy
from ringmaster import health, readiness, registry, versioning
from ringmaster.settings import Settings
from workflows import freezes, queues, search

WORKFLOWS = registry.WORKFLOWS
RUNNER = registry.RUNNER
"""The workflow sandbox (:data:`ringmaster.registry.RUNNER`), read here when the workers are built."""

MIN_ATTESTATION_KEY_BYTES = 32
"""The shortest attestation key accepted: HMAC-SHA256 wants a key at least as long as its output."""

log = structlog.get_logger("ringmaster.worker")


async def ensure_search_attributes(client: Client) -> None:
    """Register ringmaster's search attributes (idempotent): unregistered keys make workflows hang."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    # Each key with its own type: RingmasterClusters is a keyword list, and registered as a keyword a
    # release's list of clusters would not be searchable by one of them.
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in search.ALL
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=client.namespace)
        )


def activities_for(
    fleet: Fleet,
    backend: ClusterBackend,
    metrics: MetricsSource,
    executor: Executor,
    identity: IdentityActivities | None = None,
    *,
    freeze: FreezeActivities | None = None,
    bake_chunk: int | None = None,
    notify: NotifyActivities | None = None,
    archive: ArchiveActivities | None = None,
    flags: FlagActivities | None = None,
) -> list[Callable[..., Any]]:
    """Every activity ringmaster registers on its main queue, bound to their clients.

    ``analyze`` is here too, only for stretches scheduled on the main queue by workflow code from
    before the analysis queue existed; new stretches go to :func:`analysis_activities`' queue.
    The identity activities run here, beside the release and lane workflows that call them
    (``identity`` None: :func:`trusted_identity`). ``check_freezes`` reads the freeze registry
    through the worker's Temporal client (:func:`build_workers` gives it); without it, a release or
    a submission that asks fails closed. The flag activities (``flags``) move a ring's
    feature flag for the cluster workflows (``featureFlag`` strategies) and restore it in rollbacks.
    """
    release = ReleaseActivities(
        fleet,
        bake_chunk=bake_chunk,
        notify=notify is not None and notify.configured,
        archive=archive is not None and archive.configured,
    )
    cluster = ClusterActivities(backend, fleet, executor)
    identity = identity if identity is not None else trusted_identity()
    return [
        identity.verify,
        identity.attest,
        release.prepare_release,
        release.check_window,
        cluster.check_residency,
        cluster.snapshot_cluster,
        cluster.find_snapshots,
        cluster.keep_flag_snapshot,
        cluster.apply_step,
        cluster.wait_rollout,
        cluster.rollback_cluster,
        *analysis_activities(metrics),
        *(freeze_activities(freeze) if freeze is not None else []),
        *([notify.notify] if notify is not None else []),
        *([archive.archive_release] if archive is not None else []),
        *(flag_activities(flags) if flags is not None else []),
    ]


def flag_activities(flags: FlagActivities) -> list[Callable[..., Any]]:
    """The activities that move feature flags on the fleet's Unleash servers."""
    return [flags.snapshot_flag, flags.set_flag_rollout, flags.restore_flag]


def undo_activities(client: Client, backend: ClusterBackend, executor: Executor) -> list[Callable[..., Any]]:
    """The reads of ``UndoWorkflow``: an ended release's record (through ``client``) and a workload."""
    undo = UndoActivities(client, backend, executor)
    return [undo.read_release, undo.inspect_workload]


def freeze_activities(freeze: FreezeActivities) -> list[Callable[..., Any]]:
    """The freeze registry's activities of the main queue: a quick read, and prompting releases."""
    return [freeze.check, freeze.tell]


def analysis_activities(metrics: MetricsSource) -> list[Callable[..., Any]]:
    """The activities of the analysis queue: the ``analyze`` stretch."""
    return [AnalysisActivities(metrics).analyze]


def backends(settings: Settings, fleet: Fleet) -> tuple[ClusterBackend, MetricsSource]:
    """The worker's clients: each cluster's Kubernetes API and each region's Prometheus.

    Raises ValueError naming every fleet cluster whose kubeconfig context cannot be loaded.
    """
    headers = settings.prometheus_headers()
    metrics = PrometheusMetrics(fleet, timeout=settings.prometheus_timeout_seconds, headers=headers)
    return KubernetesBackend.from_kubeconfig(fleet, settings.kubeconfig), metrics


def trusted_identity(
    attestation_key: bytes | None = None, authorization: AuthorizationPolicy | None = None
) -> IdentityActivities:
    """Identity activities that take the client's word (``mode: trusted``), sealing attestations
    with ``attestation_key`` (None: a random key of this process, lost at its exit), and judging
    requests against ``authorization`` when given."""
    key = attestation_key if attestation_key is not None else secrets.token_bytes(MIN_ATTESTATION_KEY_BYTES)
    return IdentityActivities(IdentityPolicy(mode="trusted"), key, HttpJwks(), authorization=authorization)


def identity_activities(settings: Settings) -> IdentityActivities:
    """The identity activities the settings describe (``identity_policy``, its attestation key, and
    ``authorization_policy``).

    Raises ``loading.ConfigError`` for an invalid identity or authorization policy file, and
    IdentityMisconfigured naming the file and setting for a missing or short attestation key or an
    unreadable allowed-signers file.
    """
    authorization = (
        loading.load_authorization_policy(settings.authorization_policy)
        if settings.authorization_policy is not None
        else None
    )
    key_file = settings.identity_attestation_key_file
    key = _attestation_key(key_file) if key_file is not None else None
    if settings.identity_policy is None:
        return trusted_identity(key, authorization)
    policy = loading.load_identity_policy(settings.identity_policy)
    if key is None:
        raise IdentityMisconfigured(
            "RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE is required with RINGMASTER_IDENTITY_POLICY "
            f"({settings.identity_policy}): a file of at least {MIN_ATTESTATION_KEY_BYTES} random bytes, "
            "the same on every worker"
        )
    signers = policy.allowed_signers
    if signers is not None:
        try:
            signers.read_bytes()
        except OSError as err:
            raise IdentityMisconfigured(
                f"{settings.identity_policy}: allowedSigners: cannot read {signers}: {err.strerror or err}"
            ) from None
        if shutil.which("ssh-keygen") is None:
            raise IdentityMisconfigured(
                f"{settings.identity_policy}: allowedSigners: verifying SSH signatures needs ssh-keygen "
                "(the OpenSSH client) on PATH"
            )
    return IdentityActivities(policy, key, HttpJwks(), authorization=authorization)


def _attestation_key(path: Path) -> bytes:
    where = f"RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE ({path})"
    try:
        key = path.read_bytes()
    except OSError as err:
        raise IdentityMisconfigured(f"{where}: cannot read the file: {err.strerror or err}") from None
    if len(key) < MIN_ATTESTATION_KEY_BYTES:
        raise IdentityMisconfigured(
            f"{where}: holds {len(key)} bytes; an attestation key is at least {MIN_ATTESTATION_KEY_BYTES} "
            f"random bytes (head -c {MIN_ATTESTATION_KEY_BYTES} /dev/urandom > FILE)"
        )
    return key


class Workers:
    """The Temporal workers of one ringmaster process, started and stopped together.

    ``async with`` starts them (polling the main, the analysis and the freeze queue) and stops them
    all on exit; the cluster thread pool lives as long as they do.
    """

    def __init__(
        self, main: Worker, analysis: Worker, pool: ThreadPoolExecutor, watches: Worker | None = None
    ) -> None:
        self.main = main
        self.analysis = analysis
        self.watches = watches
        self._pool = pool
        self._stack = AsyncExitStack()

    @property
    def all(self) -> list[Worker]:
        """Every Temporal worker of the process (readiness wants each of them running)."""
        return [self.main, self.analysis, *([self.watches] if self.watches is not None else [])]

    async def __aenter__(self) -> Self:
        """Start polling both queues."""
        await self._stack.__aenter__()
        self._stack.callback(self._pool.shutdown)
        await self._stack.enter_async_context(self.main)
        await self._stack.enter_async_context(self.analysis)
        if self.watches is not None:
            await self._stack.enter_async_context(self.watches)
        return self

    async def shutdown(self) -> None:
        """Stop polling every queue at once and wait for every worker to finish (repeatable)."""
        others = [self.watches.shutdown()] if self.watches is not None else []
        await asyncio.gather(self.main.shutdown(), self.analysis.shutdown(), *others)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Shut both down (together: neither queue keeps polling while the other drains)."""
        await self.shutdown()
        await self._stack.__aexit__(kind, exc, tb)


def build_workers(
    client: Client,
    settings: Settings,
    fleet: Fleet,
    *,
    backend: ClusterBackend,
    metrics: MetricsSource,
    identity: IdentityActivities | None = None,
) -> Workers:
    """Both workers of a ringmaster process over the given cluster and metric clients (not started).

    ``identity`` None takes the client's word for who acts (:func:`trusted_identity`).
    """
    pool = ThreadPoolExecutor(max_workers=settings.max_concurrent_activities, thread_name_prefix="cluster")
    warn_after = timedelta(seconds=settings.schedule_to_start_warn_seconds)
    common: dict[str, Any] = {
        "graceful_shutdown_timeout": timedelta(seconds=settings.graceful_shutdown_seconds),
        "max_heartbeat_throttle_interval": timedelta(seconds=settings.heartbeat_throttle_seconds),
        "default_heartbeat_throttle_interval": timedelta(seconds=settings.heartbeat_throttle_seconds),
        "interceptors": registry.interceptors(warn_after),
        # Every worker of the process is the same version of the deployment: a run pinned to a build
        # has its analysis stretches and freeze watches run there too, like its cluster changes.
        "deployment_config": versioning.deployment_config(settings),
    }
    freeze = FreezeActivities(
        TemporalFreezes(client, freezes.registry_id(settings.task_queue)), settings.freeze_poll_seconds
    )
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        workflow_runner=RUNNER,
        activities=[
            *activities_for(
                fleet,
                backend,
                metrics,
                pool,
                identity,
                freeze=freeze,
                bake_chunk=settings.bake_partition_clusters,
                notify=NotifyActivities(settings.webhooks, ui_url=settings.ui_url),
                archive=ArchiveActivities(
                    client, open_archive(settings.archive_url) if settings.archive_url else None
                ),
                flags=FlagActivities.with_tokens(
                    settings.unleash_admin_tokens, pool, timeout=settings.unleash_timeout_seconds
                ),
            ),
            *undo_activities(client, backend, pool),
        ],
        activity_executor=pool,
        max_concurrent_activities=settings.max_concurrent_activities,
        **common,
    )
    # The analysis worker throttles by each stretch's heartbeat timeout, not by the common setting:
    # at most one heartbeat per analysis interval reaches the server (Settings.analysis_heartbeat_...).
    analysis_throttle = timedelta(seconds=settings.analysis_heartbeat_throttle_seconds)
    analysis = Worker(
        client,
        task_queue=queues.analysis_queue(settings.task_queue),
        activities=analysis_activities(metrics),
        max_concurrent_activities=settings.max_concurrent_analyses,
        **{
            **common,
            "max_heartbeat_throttle_interval": analysis_throttle,
            "default_heartbeat_throttle_interval": analysis_throttle,
        },
    )
    watches = Worker(
        client,
        task_queue=queues.freeze_queue(settings.task_queue),
        activities=[freeze.check],
        max_concurrent_activities=settings.max_concurrent_freeze_watches,
        **common,
    )
    return Workers(main, analysis, pool, watches)


async def run(
    client: Client,
    settings: Settings,
    fleet: Fleet,
    backend: ClusterBackend,
    metrics: MetricsSource,
    *,
    identity: IdentityActivities | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (closing the clusters' and metrics' clients).

    ``identity`` comes from :func:`identity_activities`; None takes the client's word. A worker
    that takes it, or that has no authorization policy, says so once, at start.
    """
    identity = identity if identity is not None else trusted_identity()
    if identity.policy.mode == "trusted":
        log.warning(
            "identity not verified: this worker takes the client's word for who acts (--by); "
            "set RINGMASTER_IDENTITY_POLICY to verify signed requests",
            identity_policy=str(settings.identity_policy or ""),
        )
    if identity.authorization is None:
        log.warning(
            "authorization not configured: every principal may submit, approve, hold, resume and "
            "abort every release; set RINGMASTER_AUTHORIZATION_POLICY to say who may do what",
        )
    elif identity.policy.mode == "trusted":
        log.warning(
            "authorization judges the client's word: without verified identity anyone can name "
            "a principal the policy allows",
            authorization_policy=str(settings.authorization_policy or ""),
        )
    await ensure_search_attributes(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            build_workers(
                client, settings, fleet, backend=backend, metrics=metrics, identity=identity
            ) as workers,
            health.serving(client, settings, workers.all, health.probes_for(settings, fleet, backend)),
        ):
            analysis = queues.analysis_queue(settings.task_queue)
            version = versioning.version(settings)
            log.info(
                "worker version",
                deployment=version.deployment_name,
                build_id=version.build_id,
                versioning=settings.worker_versioning,
            )
            print(f"{readiness.READY} {settings.task_queue} {analysis}", file=sys.stderr, flush=True)  # noqa: T201
            await stop.wait()
    finally:
        if isinstance(backend, KubernetesBackend):
            backend.close()
        if isinstance(metrics, PrometheusMetrics):
            metrics.close()
