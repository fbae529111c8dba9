"""``ringmaster worker``: runs the release workflows and every activity against the fleet it holds.

Cluster credentials live here and nowhere else: the fleet names clusters, the worker's kubeconfig
reaches them.

Capacity: one process runs two Temporal workers (:class:`Workers`), so a deploy never leaves a queue
unpolled. The main queue (``task_queue``) runs the workflows, the release activities and every
cluster change, with ``max_concurrent_activities`` slots and as many threads for blocking cluster
calls. The analysis queue (:func:`workflows.queues.analysis_queue`) runs only the long ``analyze``
stretches, with ``max_concurrent_analyses`` slots of their own: however many canaries are under
analysis, steps and rollbacks always find a slot. Each activity start is logged with its
schedule-to-start latency (:mod:`ringmaster.latency`).

On SIGTERM both workers stop polling. Analysis stretches hand over at once (they fail retryably with
their checks heartbeated, and another worker resumes them); cluster changes get
``graceful_shutdown_seconds`` to finish, then are cancelled and retried elsewhere.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.analysis import AnalysisActivities, MetricsSource
from activities.kubernetes import KubernetesBackend
from activities.prometheus import PrometheusMetrics
from activities.release import ReleaseActivities
from activities.rollout import ClusterActivities, ClusterBackend
from policies.fleet import Fleet
from ringmaster import latency, readiness
from ringmaster.settings import Settings
from workflows import queues, search
from workflows.cluster import ClusterRolloutWorkflow
from workflows.lane import ReleaseLaneWorkflow
from workflows.release import ReleaseWorkflow

WORKFLOWS: Sequence[type] = (ReleaseWorkflow, ClusterRolloutWorkflow, ReleaseLaneWorkflow)

RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows._options")
)
"""The workflow sandbox, sharing the activity call options with the worker's process: they are
constants (no state, no I/O), so one copy for every workflow run is safe and cheaper to load."""


async def ensure_search_attributes(client: Client) -> None:
    """Register ringmaster's search attributes (idempotent): unregistered keys make workflows hang."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in search.ALL
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=client.namespace)
        )


def activities_for(
    fleet: Fleet, backend: ClusterBackend, metrics: MetricsSource, executor: Executor
) -> list[Callable[..., Any]]:
    """Every activity ringmaster registers on its main queue, bound to their clients.

    ``analyze`` is here too, only for stretches scheduled on the main queue by workflow code from
    before the analysis queue existed; new stretches go to :func:`analysis_activities`' queue.
    """
    release = ReleaseActivities(fleet)
    cluster = ClusterActivities(backend, fleet, executor)
    return [
        release.prepare_release,
        release.check_window,
        cluster.check_residency,
        cluster.snapshot_cluster,
        cluster.find_snapshots,
        cluster.apply_step,
        cluster.wait_rollout,
        cluster.rollback_cluster,
        *analysis_activities(metrics),
    ]


def analysis_activities(metrics: MetricsSource) -> list[Callable[..., Any]]:
    """The activities of the analysis queue: the ``analyze`` stretch."""
    return [AnalysisActivities(metrics).analyze]


def backends(settings: Settings, fleet: Fleet) -> tuple[ClusterBackend, MetricsSource]:
    """The worker's clients: each cluster's Kubernetes API and each region's Prometheus.

    Raises ValueError naming every fleet cluster whose kubeconfig context cannot be loaded.
    """
    token = settings.prometheus_bearer_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else None
    metrics = PrometheusMetrics(fleet, timeout=settings.prometheus_timeout_seconds, headers=headers)
    return KubernetesBackend.from_kubeconfig(fleet, settings.kubeconfig), metrics


class Workers:
    """The two Temporal workers of one ringmaster process, started and stopped together.

    ``async with`` starts both (polling the main and the analysis queue) and stops both on exit;
    the cluster thread pool lives as long as they do.
    """

    def __init__(self, main: Worker, analysis: Worker, pool: ThreadPoolExecutor) -> None:
        self.main = main
        self.analysis = analysis
        self._pool = pool
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        """Start polling both queues."""
        await self._stack.__aenter__()
        self._stack.callback(self._pool.shutdown)
        await self._stack.enter_async_context(self.main)
        await self._stack.enter_async_context(self.analysis)
        return self

    async def shutdown(self) -> None:
        """Stop polling both queues at once and wait for both workers to finish (repeatable)."""
        await asyncio.gather(self.main.shutdown(), self.analysis.shutdown())

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
) -> Workers:
    """Both workers of a ringmaster process over the given cluster and metric clients (not started)."""
    pool = ThreadPoolExecutor(max_workers=settings.max_concurrent_activities, thread_name_prefix="cluster")
    warn_after = timedelta(seconds=settings.schedule_to_start_warn_seconds)
    common: dict[str, Any] = {
        "graceful_shutdown_timeout": timedelta(seconds=settings.graceful_shutdown_seconds),
        "max_heartbeat_throttle_interval": timedelta(seconds=settings.heartbeat_throttle_seconds),
        "default_heartbeat_throttle_interval": timedelta(seconds=settings.heartbeat_throttle_seconds),
        "interceptors": [latency.LatencyInterceptor(warn_after)],
    }
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        workflow_runner=RUNNER,
        activities=activities_for(fleet, backend, metrics, pool),
        activity_executor=pool,
        max_concurrent_activities=settings.max_concurrent_activities,
        **common,
    )
    analysis = Worker(
        client,
        task_queue=queues.analysis_queue(settings.task_queue),
        activities=analysis_activities(metrics),
        max_concurrent_activities=settings.max_concurrent_analyses,
        **common,
    )
    return Workers(main, analysis, pool)


async def run(
    client: Client, settings: Settings, fleet: Fleet, backend: ClusterBackend, metrics: MetricsSource
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (closing the clusters' and metrics' clients)."""
    await ensure_search_attributes(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with build_workers(client, settings, fleet, backend=backend, metrics=metrics):
            analysis = queues.analysis_queue(settings.task_queue)
            print(f"{readiness.READY} {settings.task_queue} {analysis}", file=sys.stderr, flush=True)  # noqa: T201
            await stop.wait()
    finally:
        if isinstance(backend, KubernetesBackend):
            backend.close()
        if isinstance(metrics, PrometheusMetrics):
            metrics.close()
