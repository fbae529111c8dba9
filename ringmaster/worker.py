"""``ringmaster worker``: runs the release workflows and every activity against the fleet it holds.

Cluster credentials live here and nowhere else: the fleet names clusters, the worker's kubeconfig
reaches them. Blocking cluster calls run on a thread pool; the analysis loop runs on the event loop.
On SIGTERM the worker stops polling and gives running activities ``graceful_shutdown_seconds``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

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
from ringmaster import readiness
from ringmaster.settings import Settings
from workflows import search
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


def activities_for(fleet: Fleet, backend: ClusterBackend, metrics: MetricsSource) -> list[Callable[..., Any]]:
    """Every activity ringmaster registers, bound to their clients."""
    release = ReleaseActivities(fleet)
    cluster = ClusterActivities(backend, fleet)
    analysis = AnalysisActivities(metrics)
    return [
        release.prepare_release,
        release.check_window,
        cluster.check_residency,
        cluster.snapshot_cluster,
        cluster.apply_step,
        cluster.wait_rollout,
        cluster.rollback_cluster,
        analysis.analyze,
    ]


def backends(settings: Settings, fleet: Fleet) -> tuple[ClusterBackend, MetricsSource]:
    """The worker's clients: each cluster's Kubernetes API and each region's Prometheus.

    Raises ValueError naming every fleet cluster whose kubeconfig context cannot be loaded.
    """
    token = settings.prometheus_bearer_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else None
    metrics = PrometheusMetrics(fleet, timeout=settings.prometheus_timeout_seconds, headers=headers)
    return KubernetesBackend.from_kubeconfig(fleet, settings.kubeconfig), metrics


def build_worker(
    client: Client,
    settings: Settings,
    fleet: Fleet,
    pool: ThreadPoolExecutor,
    *,
    backend: ClusterBackend,
    metrics: MetricsSource,
) -> Worker:
    """A worker for every ringmaster workflow and activity, over the given cluster and metric clients."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        workflow_runner=RUNNER,
        activities=activities_for(fleet, backend, metrics),
        activity_executor=pool,
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        max_heartbeat_throttle_interval=timedelta(seconds=settings.heartbeat_throttle_seconds),
        default_heartbeat_throttle_interval=timedelta(seconds=settings.heartbeat_throttle_seconds),
    )


async def run(
    client: Client, settings: Settings, fleet: Fleet, backend: ClusterBackend, metrics: MetricsSource
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully (closing the backend's clients)."""
    await ensure_search_attributes(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        with ThreadPoolExecutor(max_workers=settings.max_concurrent_activities) as pool:
            worker = build_worker(client, settings, fleet, pool, backend=backend, metrics=metrics)
            async with worker:
                print(f"{readiness.READY} {settings.task_queue}", file=sys.stderr, flush=True)  # noqa: T201
                await stop.wait()
    finally:
        if isinstance(backend, KubernetesBackend):
            backend.close()
