"""Undoing an ended release in `sandbox up`'s clusters, checked with kubectl as an operator would."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client

from sandbox import stack
from tests.e2e.test_kubernetes_release import kubectl, kubernetes_worker, release_input
from tests.support.waiting import assert_eventually
from tests.workflows.support import canary, ended, submit_to_lane
from workflows.lane import ReleaseLaneWorkflow, lane_id
from workflows.release import release_id
from workflows.undo import UndoInput, UndoStatus, UndoWorkflow, undo_id

CLUSTERS = ("euw1-internal", "euc1-beta", "use1-prod")
RINGS = [
    {"name": "internal", "clusters": ["euw1-internal"], "strategy": canary(("w", 20), ("p", "1s"))},
    {
        "name": "beta",
        "clusters": ["euc1-beta"],
        "strategy": {"blueGreen": {"autoPromotionEnabled": True, "scaleDownDelaySeconds": 1}},
    },
    {"name": "broad", "clusters": ["use1-prod"], "strategy": {"rolling": {}}},
]
BROAD_ONLY = [{"name": "broad", "clusters": ["use1-prod"], "strategy": {"rolling": {}}}]


def _ours(meta: dict[str, Any], key: str) -> dict[str, str]:
    return {k: v for k, v in (meta.get(key) or {}).items() if k.startswith("ringmaster.dev/")}


def workload(sandbox: stack.Sandbox, context: str) -> dict[str, Any]:
    """What a rollback must restore in namespace api: each Deployment's image, replicas, pod labels and
    ringmaster marks, and each Service's selector and marks."""
    deployments = kubectl(sandbox, context, "-n", "api", "get", "deployments")["items"]
    services = kubectl(sandbox, context, "-n", "api", "get", "services")["items"]
    return {
        "deployments": {
            d["metadata"]["name"]: (
                d["spec"]["template"]["spec"]["containers"][0]["image"],
                d["spec"]["replicas"],
                d["spec"]["template"]["metadata"].get("labels"),
                _ours(d["metadata"], "labels"),
                _ours(d["metadata"], "annotations"),
            )
            for d in deployments
        },
        "services": {
            s["metadata"]["name"]: (s["spec"].get("selector"), _ours(s["metadata"], "labels"))
            for s in services
        },
    }


async def _released(client: Client, tq: str, svc: str, rings: list[dict[str, Any]], version: str) -> None:
    submitted = await submit_to_lane(client, tq, release_input(rings, version, svc))
    record = await ended(client.get_workflow_handle(submitted.workflow_id))
    assert record.phase == "succeeded", record.reason
    await assert_eventually(
        lambda: client.get_workflow_handle(lane_id(svc)).query(ReleaseLaneWorkflow.current),
        lambda lane: lane.current is None,
        what="the lane to see the release end",
    )


async def _undo(client: Client, tq: str, svc: str, version: str, cluster: str = "") -> UndoStatus:
    inp = UndoInput(release_workflow_id=release_id(svc, version), cluster=cluster, by="ops")
    return await client.execute_workflow(UndoWorkflow.run, inp, id=undo_id(svc, version), task_queue=tq)


class TestRollbackOfASucceededRelease:
    async def test_every_cluster_returns_exactly_as_it_was_and_a_newer_release_is_left_alone(
        self, client, sandbox
    ):
        """Given v8 promoted through canary, blue-green and rolling rings and v9 then in the broad ring:
        undoing v8 restores the first two exactly and refuses the broad one naming v9; undoing v9 there,
        then v8 there, leaves it exactly as before v8."""
        svc = f"api-{uuid.uuid4().hex[:6]}"
        before = {c: workload(sandbox, c) for c in CLUSTERS}
        async with kubernetes_worker(client, sandbox) as tq:
            await _released(client, tq, svc, RINGS, "v8")
            await _released(client, tq, svc, BROAD_ONLY, "v9")
            promoted = {c: workload(sandbox, c) for c in CLUSTERS}

            first = await _undo(client, tq, svc, "v8")
            assert first.phase == "incomplete", first
            assert [(c.name, c.outcome) for c in first.clusters] == [
                ("use1-prod", "refused"),
                ("euc1-beta", "restored"),
                ("euw1-internal", "restored"),
            ]
            assert "runs version v9" in first.clusters[0].message
            assert workload(sandbox, "use1-prod") == promoted["use1-prod"], "the newer release is left alone"
            for context in ("euw1-internal", "euc1-beta"):
                assert workload(sandbox, context) == before[context], context

            assert (await _undo(client, tq, svc, "v9")).phase == "restored"
            last = await _undo(client, tq, svc, "v8", cluster="use1-prod")
            assert last.phase == "restored", last
        assert workload(sandbox, "use1-prod") == before["use1-prod"]
