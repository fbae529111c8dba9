"""Building blocks of the workflow tests: short plans, an in-process worker, scripted metrics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from activities import outcomes
from activities.identity import IdentityActivities
from activities.models import AnalyzeInput
from policies.fleet import Fleet
from policies.gates import Measurement
from policies.identity import Proof
from ringmaster import worker
from ringmaster.cli import status as view
from ringmaster.settings import Settings
from tests.support import fleets
from tests.support.fakes import FileClusterBackend
from workflows.lane import ReleaseLaneWorkflow, lane_id
from workflows.models import (
    ClusterRolloutResult,
    ClusterStatus,
    LaneState,
    ReleaseInput,
    ReleaseStatus,
    SubmitRequest,
    SubmitResult,
)
from workflows.release import ReleaseWorkflow, release_id

FLEET = fleets.example_fleet()

METRICS: list[dict[str, Any]] = [
    {
        "name": "success-rate",
        "query": 'sum(rate(ok{cluster="{{cluster}}"}[{{interval}}]))',
        "thresholdRange": {"min": 99},
    },
    {"name": "p99", "query": 'max(p99{cluster="{{cluster}}"})', "thresholdRange": {"max": 500}},
]


def canary(*steps: Any) -> dict[str, Any]:
    """A canary strategy from ``("w", 20)`` / ``("p", "2s")`` / ``("p", None)`` steps."""
    out: list[dict[str, Any]] = []
    for kind, value in steps:
        if kind == "w":
            out.append({"setWeight": value})
        else:
            out.append({"pause": {} if value is None else {"duration": value}})
    return {"canary": {"steps": out}}


def plan(
    service: str,
    rings: list[dict[str, Any]],
    *,
    metrics: bool = True,
    interval: str = "1s",
    scope: str = "release",
    mode: str = "automatic",
    windows: list[dict[str, Any]] | None = None,
    min_data_points: int = 1,
) -> str:
    """A release plan for the example fleet with short durations."""
    doc: dict[str, Any] = {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "ReleasePlan",
        "service": service,
        "workload": {"namespace": "api", "deployment": "api", "container": "api"},
        "dataResidency": {
            "dataClass": "personal",
            "dataEndpoints": {"EU": ["orders.db.eu.example.com"], "US": ["orders.db.us.example.com"]},
        },
        "rings": rings,
        "rollback": {"scope": scope, "mode": mode},
    }
    if metrics:
        doc["analysis"] = {
            "interval": interval,
            "threshold": 1,
            "minDataPoints": min_data_points,
            "metrics": METRICS,
        }
    if windows:
        doc["windows"] = windows
    return yaml.safe_dump(doc, sort_keys=False)


def three_rings(pause: str = "1s", bake: str = "1s") -> list[dict[str, Any]]:
    """internal (canary), beta (blue-green), broad (canary, 2 at once): the example's shape, shortened."""
    return [
        {
            "name": "internal",
            "clusters": ["euw1-internal"],
            "strategy": canary(("w", 20), ("p", pause), ("w", 50)),
            "bakeTime": bake,
        },
        {
            "name": "beta",
            "clusterSelector": {"audience": "beta"},
            "strategy": {"blueGreen": {"autoPromotionEnabled": True, "scaleDownDelaySeconds": 0}},
            "bakeTime": bake,
        },
        {
            "name": "broad",
            "clusterSelector": {"audience": "public"},
            "maxParallel": 2,
            "strategy": canary(("w", 50), ("p", pause)),
            "bakeTime": bake,
        },
    ]


def unique_service(prefix: str = "svc") -> str:
    """A service name no other test uses (workflow ids derive from it)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class ScriptedMetrics:
    """Good values everywhere, except bad ones in ``failing`` clusters (optionally only in one stage)."""

    failing: set[str] = field(default_factory=set)
    stage: str | None = None
    errors: set[str] = field(default_factory=set)
    calls: int = 0

    async def measure(self, inp: AnalyzeInput, at: datetime) -> list[Measurement]:
        """One measurement per metric."""
        self.calls += 1
        cluster = inp.cluster.name
        if cluster in self.errors:
            return [
                Measurement(metric=m.name, value=None, error="connection refused")
                for m in inp.analysis.metrics
            ]
        bad = cluster in self.failing and (self.stage is None or self.stage == inp.stage)
        values = {"success-rate": 90.0 if bad else 99.9, "p99": 900.0 if bad else 120.0}
        return [Measurement(metric=m.name, value=values.get(m.name, 1.0)) for m in inp.analysis.metrics]


@dataclass
class Harness:
    """A running in-process worker on its own task queue, with its fake clusters."""

    client: Client
    task_queue: str
    clusters: FileClusterBackend

    async def submit(
        self, plan_text: str, *, service: str, submitted_by: str = "alice"
    ) -> WorkflowHandle[Any, Any]:
        """Submit ``v2`` through the service's lane, as ``ringmaster submit`` does; the release's handle."""
        inp = ReleaseInput(
            service=service,
            version="v2",
            image=f"r/{service}:v2",
            plan_text=plan_text,
            submitted_by=submitted_by,
        )
        submitted = await submit_to_lane(self.client, self.task_queue, inp)
        return self.client.get_workflow_handle(submitted.workflow_id)

    async def start(
        self,
        plan_text: str,
        *,
        service: str,
        version: str = "v2",
        submitted_by: str = "alice",
        search_attributes: bool = True,
    ) -> WorkflowHandle[ReleaseWorkflow, ReleaseStatus]:
        """Start a release workflow directly (the lane is tested on its own)."""
        inp = ReleaseInput(
            service=service,
            version=version,
            image=f"registry.eu.example.com/{service}:{version}",
            plan_text=plan_text,
            submitted_by=submitted_by,
            search_attributes=search_attributes,
        )
        return await self.client.start_workflow(
            ReleaseWorkflow.run, inp, id=release_id(service, version), task_queue=self.task_queue
        )

    def versions(self) -> dict[str, str]:
        """Each cluster's workload version."""
        return {name: c["version"] for name, c in self.clusters.read().items()}


def worker_settings(**overrides: Any) -> Settings:
    """Worker settings for a test: a fresh task queue, quick heartbeats, room for every activity."""
    fields: dict[str, Any] = {
        "task_queue": f"tq-{uuid.uuid4().hex}",
        "max_concurrent_activities": 20,
        "heartbeat_throttle_seconds": 0.5,
        # Stretches stopped by cancellation learn of it within half a second, not an interval: the
        # production throttle (one heartbeat per interval) is measured in tests/activities.
        "analysis_heartbeat_throttle_seconds": 0.5,
        **overrides,
    }
    return Settings(**fields)


@asynccontextmanager
async def running_worker(
    client: Client,
    tmp_path: Path,
    *,
    metrics: Any = None,
    settings: Settings | None = None,
    identity: IdentityActivities | None = None,
    fleet: Fleet = FLEET,
) -> AsyncIterator[Harness]:
    """An in-process worker (both queues) with every real workflow and activity, over fake clusters.

    Identity is taken on the client's word (``trusted``) unless ``identity`` verifies it. ``fleet``
    (the example fleet unless given) is the worker's and the fake clusters'.
    """
    settings = settings or worker_settings()
    clusters = FileClusterBackend(tmp_path / "clusters.json", fleet)
    workers = worker.build_workers(
        client, settings, fleet, backend=clusters, metrics=metrics or ScriptedMetrics(), identity=identity
    )
    async with workers:
        yield Harness(client, settings.task_queue, clusters)


async def ended(handle: WorkflowHandle[Any, Any]) -> ReleaseStatus:
    """The release's final record, however it closed: its result when it succeeded, the detail of the
    failure it closes with otherwise (``activities.outcomes``)."""
    return await outcomes.ended(handle, ReleaseStatus)


async def ended_cluster(handle: WorkflowHandle[Any, Any]) -> ClusterRolloutResult:
    """A cluster workflow's result, however it closed (see :func:`ended`)."""
    return await outcomes.ended(handle, ClusterRolloutResult)


async def cluster_state(handle: WorkflowHandle[Any, Any], name: str) -> ClusterStatus | None:
    """One cluster's status as ``ringmaster status`` shows it: the release's record, and a running
    cluster workflow's own state (it reports only milestones to the release). None before the
    release is prepared."""
    status = await handle.query(ReleaseWorkflow.status)
    if not any(c.name == name for c in status.clusters):
        return None
    recorded = next(c for c in status.clusters if c.name == name)
    status = await view.live_clusters(handle._client, status)
    live = next((c for c in status.clusters if c.name == name), None)
    if live is not None and live.state == "awaiting-approval" and recorded.state != live.state:
        # ``approve --cluster`` acts on the release's record, which hears of the pause by the
        # cluster's milestone report a moment after the cluster's own status says so: until then the
        # cluster is not approvable, and a test that approves it would race the report.
        return live.model_copy(update={"state": recorded.state})
    return live


def small_rings(pause: str = "1s", bake: str = "1s") -> list[dict[str, Any]]:
    """Three rings of one cluster each, one per strategy: the cheapest walk through every ring."""
    return [
        {
            "name": "internal",
            "clusters": ["euw1-internal"],
            "strategy": canary(("w", 20), ("p", pause)),
            "bakeTime": bake,
        },
        {
            "name": "beta",
            "clusters": ["euc1-beta"],
            "strategy": {"blueGreen": {"autoPromotionEnabled": True, "scaleDownDelaySeconds": 0}},
            "bakeTime": bake,
        },
        {"name": "broad", "clusters": ["use1-prod"], "strategy": {"rolling": {}}, "bakeTime": bake},
    ]


async def submit_to_lane(
    client: Client,
    task_queue: str,
    inp: ReleaseInput,
    *,
    supersede: bool = False,
    rerun: bool = False,
    releases_per_run: int = 0,
    proof: Proof | None = None,
) -> SubmitResult:
    """Submit exactly as ``ringmaster submit`` does: update-with-start on the service's lane."""
    return await client.execute_update_with_start_workflow(
        ReleaseLaneWorkflow.submit,
        SubmitRequest(release=inp, supersede=supersede, rerun=rerun, proof=proof),
        start_workflow_operation=WithStartWorkflowOperation(
            ReleaseLaneWorkflow.run,
            LaneState(service=inp.service, releases_per_run=releases_per_run),
            id=lane_id(inp.service),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=task_queue,
        ),
    )
