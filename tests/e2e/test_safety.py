"""The safety core on the emulated clusters, judged with kubectl as an operator would.

The same combinations as ``tests/workflows/test_safety.py``, through the real Kubernetes activities:
a release workflow terminated mid-canary, and a cluster API answering 503 to every request for
longer than a step's retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from sandbox.apiserver.adminclient import AdminClient
from tests.e2e.test_kubernetes_release import images, kubernetes_worker, start
from tests.support.waiting import assert_eventually
from tests.workflows.support import canary, cluster_state, ended
from workflows.models import ApproveRequest, ReleaseStatus
from workflows.release import ReleaseWorkflow


def _parked(cluster: str) -> list[dict[str, Any]]:
    """One canary cluster that stops at weight 20 until approved."""
    return [{"name": "beta", "clusters": [cluster], "strategy": canary(("w", 20), ("p", None))}]


async def _until_parked(handle: WorkflowHandle[Any, ReleaseStatus], cluster: str) -> None:
    await assert_eventually(
        lambda: cluster_state(handle, cluster),
        lambda c: c is not None and c.state == "awaiting-approval",
        what="the canary at its pause",
    )


class TestClosedRelease:
    async def test_terminating_a_release_mid_canary_leaves_no_canary_running(self, client, sandbox):
        """`temporal workflow terminate` of a release mid-canary: the cluster's workflow rolls back,
        the canary Deployment is deleted and the stable image is untouched."""
        cluster = "usw2-prod"
        before = images(sandbox, cluster)
        async with kubernetes_worker(client, sandbox) as tq:
            handle = await start(client, tq, _parked(cluster), "v31")
            await _until_parked(handle, cluster)
            assert "api-canary" in images(sandbox, cluster)
            await handle.terminate(reason="operator cleanup")
            await assert_eventually(
                lambda: asyncio.to_thread(images, sandbox, cluster),
                lambda now: now == before,
                timeout=60,
                what="the canary gone and the stable image as before",
            )


@pytest.mark.usefixtures("fast_retries")
class TestApiOutage:
    async def test_an_outage_past_the_retries_holds_the_cluster_until_the_api_answers(self, client, sandbox):
        """Every request of one cluster answered 503 while a canary is promoted: the cluster holds as
        unreachable with the API's error, then finishes by itself once the API answers again."""
        cluster = "euc1-beta"
        admin = AdminClient(sandbox.url)
        async with kubernetes_worker(client, sandbox) as tq:
            handle = await start(client, tq, _parked(cluster), "v32")
            await _until_parked(handle, cluster)
            admin.add_fault(cluster, status=503, message="control plane upgrade")
            try:
                await handle.execute_update(
                    ReleaseWorkflow.approve, ApproveRequest(ring="beta", cluster=cluster, by="bob")
                )
                status = await assert_eventually(
                    lambda: handle.query(ReleaseWorkflow.status),
                    lambda s: s.phase == "holding" and "cluster unreachable" in s.cluster(cluster).step,
                    timeout=60,
                    what="the cluster held as unreachable",
                )
                assert "503" in status.hold_reason, status.hold_reason
            finally:
                admin.clear_faults(cluster)
            result = await ended(handle)
        assert result.phase == "succeeded", result.reason
        assert [a.kind for a in result.actions] == ["approve"], "nobody had to resume it"
        assert images(sandbox, cluster) == {"api": "registry.eu.example.com/api:v32"}

    async def test_an_outage_at_the_residency_check_holds_before_anything_is_deployed(self, client, sandbox):
        """The API down from the start: the residency check holds the cluster as unreachable, nothing
        is written, and the release deploys once the API answers again."""
        cluster = "use1-prod"
        admin = AdminClient(sandbox.url)
        rolling = [{"name": "broad", "clusters": [cluster], "strategy": {"rolling": {}}}]
        seen = max((r["seq"] for r in admin.requests(cluster)), default=0)
        admin.add_fault(cluster, status=503, message="control plane upgrade")
        try:
            async with kubernetes_worker(client, sandbox) as tq:
                handle = await start(client, tq, rolling, "v33")
                await assert_eventually(
                    lambda: handle.query(ReleaseWorkflow.status),
                    lambda s: s.phase == "holding" and "cluster unreachable" in s.cluster(cluster).step,
                    timeout=60,
                    what="the cluster held as unreachable at its residency check",
                )
                during = admin.requests(cluster, since=seen)
                admin.clear_faults(cluster)
                result = await ended(handle)
        finally:
            admin.clear_faults(cluster)
        assert during and all(r["status"] == 503 for r in during), "the outage answered every attempt"
        assert not [r for r in during if r["verb"] not in {"get", "list"}], "nothing written while held"
        assert result.phase == "succeeded", result.reason
        assert images(sandbox, cluster) == {"api": "registry.eu.example.com/api:v33"}
