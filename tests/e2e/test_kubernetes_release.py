"""Releases through the real workflows and the Kubernetes activities, into `sandbox up`'s clusters.

The clusters are checked afterwards with kubectl, as an operator would. (Metric gates use the fake
source here; real Prometheus gates are the metric-gate tests' business.)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.kubernetes import KubernetesBackend
from policies import loading
from ringmaster import worker
from ringmaster.settings import Settings
from sandbox import stack
from tests.support.fakes import FakeMetrics
from tests.support.waiting import assert_eventually
from tests.workflows.support import canary, cluster_state, ended, plan, submit_to_lane
from workflows.lane import ReleaseLaneWorkflow, lane_id
from workflows.models import AbortRequest, ReleaseInput, ReleaseStatus
from workflows.release import ReleaseWorkflow, release_id

KUBECTL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl")


def kubectl(sandbox: stack.Sandbox, context: str, *args: str) -> Any:
    """``kubectl --context CONTEXT ARGS -o json`` against the sandbox, parsed."""
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", str(sandbox.kubeconfig), "--context", context, *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def images(sandbox: stack.Sandbox, context: str) -> dict[str, str]:
    """Deployment name -> image in namespace api."""
    listed = kubectl(sandbox, context, "-n", "api", "get", "deployments")
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in listed["items"]
    }


@asynccontextmanager
async def kubernetes_worker(client: Client, sandbox: stack.Sandbox) -> AsyncIterator[str]:
    """An in-process worker whose activities reach the sandbox through its kubeconfig."""
    fleet = loading.load_fleet(sandbox.fleet)
    backend = KubernetesBackend.from_kubeconfig(fleet, sandbox.kubeconfig)
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}",
        max_concurrent_activities=20,
        heartbeat_throttle_seconds=0.5,
        analysis_heartbeat_throttle_seconds=0.5,
    )
    try:
        async with worker.build_workers(client, settings, fleet, backend=backend, metrics=FakeMetrics()):
            yield settings.task_queue
    finally:
        backend.close()


def release_input(rings: list[dict[str, Any]], version: str, service: str = "api") -> ReleaseInput:
    """A release of image ``api:<version>`` into Deployment ``api`` of namespace ``api``."""
    return ReleaseInput(
        service=service,
        version=version,
        image=f"registry.eu.example.com/api:{version}",
        plan_text=plan(service, rings),
        submitted_by="ci",
    )


async def start(
    client: Client, task_queue: str, rings: list[dict[str, Any]], version: str, service: str = "api"
):
    return await client.start_workflow(
        ReleaseWorkflow.run,
        release_input(rings, version, service),
        id=release_id(service, version) + f"-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=ReleaseStatus,
    )


class TestReleaseIntoEmulatedClusters:
    async def test_promotes_through_every_ring_with_every_strategy(self, client, sandbox):
        """Canary, blue-green and rolling rings: each cluster ends on the new image, nothing extra left."""
        rings = [
            {
                "name": "internal",
                "clusters": ["euw1-internal"],
                "strategy": canary(("w", 20), ("p", "1s"), ("w", 50)),
            },
            {
                "name": "beta",
                "clusters": ["euc1-beta"],
                "strategy": {"blueGreen": {"autoPromotionEnabled": True, "scaleDownDelaySeconds": 1}},
            },
            {"name": "broad", "clusters": ["use1-prod"], "strategy": {"rolling": {}}},
        ]
        async with kubernetes_worker(client, sandbox) as tq:
            handle = await start(client, tq, rings, "v2")
            result = await ended(handle)
        assert result.phase == "succeeded", result.reason
        for context in ("euw1-internal", "euc1-beta", "use1-prod"):
            assert images(sandbox, context) == {"api": "registry.eu.example.com/api:v2"}, context
        labelled = kubectl(
            sandbox, "euw1-internal", "-n", "api", "get", "deploy", "-l", "ringmaster.dev/release=api.v2"
        )
        assert [d["metadata"]["name"] for d in labelled["items"]] == ["api"]
        service = kubectl(sandbox, "euc1-beta", "-n", "api", "get", "service", "api")
        assert service["spec"]["selector"] == {"app": "api"}, "blue-green hands traffic back to the workload"

    async def test_abort_mid_canary_restores_every_touched_cluster(self, client, sandbox):
        """An abort during a canary pause: canary objects gone, the stable image and replicas as before."""
        rings = [
            {"name": "internal", "clusters": ["euw1-prod"], "strategy": {"rolling": {}}},
            {"name": "broad", "clusters": ["usw2-prod"], "strategy": canary(("w", 30), ("p", "10m"))},
        ]
        before = {c: images(sandbox, c) for c in ("euw1-prod", "usw2-prod")}
        async with kubernetes_worker(client, sandbox) as tq:
            handle = await start(client, tq, rings, "v5")
            await assert_eventually(
                lambda: cluster_state(handle, "usw2-prod"),
                lambda c: c is not None and c.state == "analyzing" and c.weight == 30,
                what="the canary at 30%",
            )
            assert "api-canary" in images(sandbox, "usw2-prod")
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="test", by="ops"))
            result = await ended(handle)
        assert result.phase == "aborted", result.reason
        assert {c: images(sandbox, c) for c in ("euw1-prod", "usw2-prod")} == before
        stable = kubectl(sandbox, "usw2-prod", "-n", "api", "get", "deploy", "api")
        assert stable["spec"]["replicas"] == 10


class TestRerun:
    async def test_a_rerun_rolls_back_to_the_cluster_as_it_found_it(self, client, sandbox):
        """Given a promoted release and a cluster changed since (hotfix image, fewer replicas), when a
        --rerun of the release is aborted, its rollback restores the cluster as the rerun found it, not
        as the first run found it."""
        context, svc = (
            "use1-beta",
            f"api-{uuid.uuid4().hex[:6]}",
        )  # the lane and snapshot key are the test's own
        hotfix = "registry.eu.example.com/api:hotfix"
        rolling = [{"name": "beta", "clusters": [context], "strategy": {"rolling": {}}}]
        paused = [{"name": "beta", "clusters": [context], "strategy": canary(("w", 30), ("p", "10m"))}]
        async with kubernetes_worker(client, sandbox) as tq:
            first = await submit_to_lane(client, tq, release_input(rolling, "v7", svc))
            promoted = await ended(client.get_workflow_handle(first.workflow_id))
            assert promoted.phase == "succeeded", promoted.reason
            await assert_eventually(
                lambda: client.get_workflow_handle(lane_id(svc)).query(ReleaseLaneWorkflow.current),
                lambda lane: lane.current is None,
                what="the lane to see the first run end",
            )

            kubectl(sandbox, context, "-n", "api", "set", "image", "deploy/api", f"api={hotfix}")
            kubectl(sandbox, context, "-n", "api", "scale", "deploy/api", "--replicas=6")
            await assert_eventually(
                lambda: asyncio.to_thread(kubectl, sandbox, context, "-n", "api", "get", "deploy", "api"),
                lambda d: d["status"].get("updatedReplicas") == d["status"].get("readyReplicas") == 6,
                what="the hotfix rolled out",
            )

            rerun = await submit_to_lane(client, tq, release_input(paused, "v7", svc), rerun=True)
            assert rerun.created and rerun.workflow_id == first.workflow_id and rerun.run_id != first.run_id
            handle = client.get_workflow_handle(
                rerun.workflow_id, run_id=rerun.run_id, result_type=ReleaseStatus
            )
            await assert_eventually(
                lambda: cluster_state(handle, context),
                lambda c: c is not None and c.state == "analyzing" and c.weight > 0,  # 30% of 6 pods: 33
                what="the rerun's canary paused",
            )
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="test", by="ops"))
            aborted = await ended(handle)
        assert aborted.phase == "aborted", aborted.reason
        assert images(sandbox, context) == {"api": hotfix}
        assert kubectl(sandbox, context, "-n", "api", "get", "deploy", "api")["spec"]["replicas"] == 6
