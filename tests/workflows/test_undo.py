"""Undoing an ended release on a real worker: ``ringmaster rollback`` and ``ringmaster retry``.

Each test runs a whole release over the fake clusters, then ``UndoWorkflow`` as the CLI starts it,
and judges the result on the clusters themselves (image, version, replicas, canary, preview, weight).
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Replayer

from activities import children
from activities.identity import IdentityActivities
from policies.authz import AuthorizationPolicy
from ringmaster import worker
from ringmaster.cli import status
from ringmaster.converter import data_converter
from tests.support.identity import make_office
from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    Harness,
    ScriptedMetrics,
    canary,
    cluster_state,
    ended,
    plan,
    running_worker,
    small_rings,
    unique_service,
)
from tests.workflows.test_durability import worker_process
from workflows.models import ReleaseStatus
from workflows.release import ReleaseWorkflow, release_id
from workflows.undo import UndoInput, UndoStatus, UndoWorkflow, undo_id

INTERNAL, BETA, PROD = "euw1-internal", "euc1-beta", "use1-prod"
TOUCHED = (INTERNAL, BETA, PROD)
WORKLOAD_FIELDS = ("image", "version", "replicas", "canary", "preview", "weight")


def _workloads(h: Harness) -> dict[str, dict[str, Any]]:
    """Every cluster's workload as the fake holds it (what a rollback must restore exactly)."""
    return {name: {k: c[k] for k in WORKLOAD_FIELDS} for name, c in h.clusters.read().items()}


async def _release(h: Harness, service: str, version: str = "v2", rings: list | None = None) -> ReleaseStatus:
    handle = await h.start(
        plan(service, rings or small_rings(), metrics=False), service=service, version=version
    )
    return await ended(handle)


async def _undo(h: Harness, service: str, version: str = "v2", **fields: Any) -> UndoStatus:
    inp = UndoInput(release_workflow_id=release_id(service, version), by="alice", **fields)
    return await h.client.execute_workflow(
        UndoWorkflow.run, inp, id=undo_id(service, version), task_queue=h.task_queue
    )


def _rollback_order(h: Harness) -> list[str]:
    """The clusters in the order their rollbacks wrote, by the fleet-wide change sequence."""
    ops = [
        (op["seq"], name)
        for name, c in h.clusters.read().items()
        for op in c["ops"]
        if op["op"] == "rollback"
    ]
    return [name for _, name in sorted(ops)]


class TestRollbackOfASucceededRelease:
    async def test_every_promoted_cluster_returns_exactly_to_its_previous_state_newest_first(
        self, client, tmp_path
    ):
        """A succeeded release is undone: each cluster exactly as before it, the last ring's first."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            before = _workloads(h)
            released = await _release(h, svc)
            assert released.phase == "succeeded", released.reason
            assert {n: v for n, v in h.versions().items() if n in TOUCHED} == dict.fromkeys(TOUCHED, "v2")

            result = await _undo(h, svc, reason="bad after an hour")
        assert result.phase == "restored", result.problem
        assert [(c.name, c.outcome, c.to_version) for c in result.clusters] == [
            (PROD, "restored", "v1"),
            (BETA, "restored", "v1"),
            (INTERNAL, "restored", "v1"),
        ]
        assert (result.by, result.release) == ("alice", f"{svc}:v2")
        assert _workloads(h) == before
        assert _rollback_order(h) == [PROD, BETA, INTERNAL]

    async def test_a_named_cluster_is_the_only_one_undone(self, client, tmp_path):
        """`--cluster` restores that cluster and leaves the release's other clusters promoted."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            await _release(h, svc)
            result = await _undo(h, svc, cluster=PROD)
        assert result.phase == "restored", result.problem
        assert [(c.name, c.outcome) for c in result.clusters] == [(PROD, "restored")]
        versions = h.versions()
        assert (versions[PROD], versions[BETA], versions[INTERNAL]) == ("v1", "v2", "v2")

    async def test_a_cluster_a_newer_release_touched_is_refused_naming_it_and_the_others_are_restored(
        self, client, tmp_path
    ):
        """v3 reached one cluster after v2: undoing v2 leaves v3 there, says why, and undoes the rest."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            await _release(h, svc)
            newer = [{"name": "broad", "clusters": [PROD], "strategy": {"rolling": {}}, "bakeTime": "1s"}]
            assert (await _release(h, svc, "v3", newer)).phase == "succeeded"

            result = await _undo(h, svc)
        assert result.phase == "incomplete"
        prod = result.clusters[0]
        assert (prod.name, prod.outcome) == (PROD, "refused")
        assert "runs version v3" in prod.message and "newer release" in prod.message
        assert [(c.name, c.outcome) for c in result.clusters[1:]] == [
            (BETA, "restored"),
            (INTERNAL, "restored"),
        ]
        versions = h.versions()
        assert (versions[PROD], versions[BETA], versions[INTERNAL]) == ("v3", "v1", "v1")

    async def test_a_newer_release_writing_after_the_check_is_still_not_overwritten(self, client, tmp_path):
        """v3 lands while the undo of v2 is already restoring the cluster: the rollback itself sees it,
        writes nothing and leaves the cluster needing attention."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            await _release(h, svc)
            h.clusters.configure(PROD, rollback_delay=3)
            inp = UndoInput(release_workflow_id=release_id(svc, "v2"), by="alice", cluster=PROD)
            handle = await h.client.start_workflow(
                UndoWorkflow.run, inp, id=undo_id(svc, "v2"), task_queue=h.task_queue
            )
            await assert_eventually(
                lambda: handle.query(UndoWorkflow.status),
                lambda s: bool(s.clusters) and s.clusters[0].outcome == "restoring",
                what="the restore to start",
            )
            h.clusters.configure(PROD, image=f"registry.eu.example.com/{svc}:v3", version="v3")
            result = await handle.result()
        assert result.phase == "incomplete"
        assert result.clusters[0].outcome == "failed" and "another writer" in result.clusters[0].message
        assert h.versions()[PROD] == "v3"

    async def test_a_cancel_while_restoring_lets_every_chosen_cluster_finish(self, client, tmp_path):
        """Cancelled while its first cluster is being restored: the undo still restores all three and
        ends with its result, not cancelled; its history replays."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            before = _workloads(h)
            await _release(h, svc)
            h.clusters.configure(PROD, rollback_delay=3)
            inp = UndoInput(release_workflow_id=release_id(svc, "v2"), by="alice")
            handle = await h.client.start_workflow(
                UndoWorkflow.run, inp, id=undo_id(svc, "v2"), task_queue=h.task_queue
            )
            await assert_eventually(
                lambda: handle.query(UndoWorkflow.status),
                lambda s: bool(s.clusters) and s.clusters[0].outcome == "restoring",
                what="the first cluster's restore to start",
            )
            await handle.cancel()
            result = await handle.result()
            history = await handle.fetch_history()
        assert result.phase == "restored", result.clusters
        assert _workloads(h) == before
        replayer = Replayer(
            workflows=[UndoWorkflow], workflow_runner=worker.RUNNER, data_converter=data_converter
        )
        await replayer.replay_workflow(history)  # deterministic, cancellation included

    async def test_a_worker_killed_mid_restore_is_replaced_and_the_restore_is_applied_once(
        self, client, tmp_path
    ):
        """SIGKILL while the undo restores a cluster; the next worker finishes it, one rollback written."""
        rings = [{"name": "internal", "clusters": [INTERNAL], "strategy": {"rolling": {}}}]
        with worker_process(client, tmp_path) as (proc, clusters, tq):
            await assert_eventually(proc.polling, bool, what="the worker to poll")
            svc = unique_service()
            h = Harness(client, tq, clusters)
            assert (await _release(h, svc, rings=rings)).phase == "succeeded"
            clusters.configure(INTERNAL, rollback_delay=2.0)
            inp = UndoInput(release_workflow_id=release_id(svc, "v2"), by="alice")
            handle = await client.start_workflow(UndoWorkflow.run, inp, id=undo_id(svc, "v2"), task_queue=tq)
            await assert_eventually(
                lambda: handle.query(UndoWorkflow.status),
                lambda s: bool(s.clusters) and s.clusters[0].outcome == "restoring",
                what="the restore to start",
            )
            proc.kill()
            proc.start()
            result = await handle.result()
        assert result.phase == "restored", result.clusters
        ops = [op["op"] for op in clusters.read()[INTERNAL]["ops"]]
        assert (ops.count("rollback"), clusters.read()[INTERNAL]["version"]) == (1, "v1")

    async def test_a_release_still_running_or_unknown_is_refused_and_nothing_changes(self, client, tmp_path):
        """Only an ended release can be undone; a running one is aborted instead."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            unknown = await _undo(h, svc, version="v9")
            assert unknown.phase == "refused"
            assert f"no release {release_id(svc, 'v9')}" in unknown.problem
            lane = await h.client.execute_workflow(
                UndoWorkflow.run,
                UndoInput(release_workflow_id=f"lane:{svc}"),
                id=undo_id(svc, "lane"),
                task_queue=h.task_queue,
            )
            assert lane.phase == "refused" and "not a release's workflow id" in lane.problem

            paused = [
                {"name": "internal", "clusters": [INTERNAL], "strategy": {"rolling": {}}, "bakeTime": "1h"}
            ]
            handle = await h.start(plan(svc, paused, metrics=False), service=svc)
            before = _workloads(h)
            running = await _undo(h, svc)
            assert running.phase == "refused" and "still running" in running.problem
            assert _workloads(h) == before
            await handle.terminate("test over")


class TestRetryOfAFailedRollback:
    async def test_retry_after_a_fixed_403_restores_the_cluster_that_needed_attention(self, client, tmp_path):
        """The release left beta needing attention (403 on its rollback); retry fails while the 403 lasts,
        then restores it once fixed; a cluster not needing attention is refused."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={PROD})) as h:
            h.clusters.configure(BETA, fail_rollback=True)
            svc = unique_service()
            before = _workloads(h)
            handle = await h.start(plan(svc, small_rings()), service=svc)
            released = await ended(handle)
            assert released.phase == "failed", released.reason
            assert released.needs_attention == [BETA]

            wrong = await _undo(h, svc, mode="retry", cluster=INTERNAL)
            assert wrong.phase == "refused" and "does not need attention" in wrong.problem

            still = await _undo(h, svc, mode="retry", cluster=BETA)
            assert still.phase == "incomplete"
            assert (still.clusters[0].outcome, still.needs_attention) == ("failed", [BETA])
            assert "403" in still.clusters[0].message
            assert h.versions()[BETA] == "v2"

            h.clusters.configure(BETA, fail_rollback=False)
            fixed = await _undo(h, svc, mode="retry", cluster=BETA, reason="RBAC fixed")
        assert fixed.phase == "restored", fixed.clusters
        assert [(c.name, c.outcome) for c in fixed.clusters] == [(BETA, "restored")]
        assert _workloads(h) == before


AUTHORIZATION = AuthorizationPolicy.model_validate(
    {"rules": [{"name": "bob-rolls-back", "principals": ["bob@example.com"], "actions": ["rollback"]}]}
)


class TestWhoMayUndo:
    @pytest.mark.parametrize(
        ("who", "why"),
        [
            (None, "sign"),
            ("mallory", "not in the worker's allowed signers"),
            ("alice", "not authorized: no rule allows alice@example.com"),
        ],
    )
    async def test_an_unverified_or_unauthorised_request_changes_nothing(self, client, tmp_path, who, why):
        """Unsigned, signed by an unknown key, or by someone the policy does not allow: refused with the
        reason, every cluster left as the release left it."""
        office = make_office(tmp_path / "keys")
        acts = IdentityActivities(office.policy(), secrets.token_bytes(32), authorization=AUTHORIZATION)
        async with running_worker(client, tmp_path, identity=acts) as h:
            svc = unique_service()
            await _release(h, svc)
            after_release = _workloads(h)
            wid = release_id(svc, "v2")
            proof = getattr(office, who).sign("rollback", wid) if who else None
            refused = await _undo(h, svc, proof=proof)
            assert refused.phase == "refused", refused
            assert why in refused.problem
            assert refused.clusters == []
            assert _workloads(h) == after_release

            allowed = await _undo(h, svc, proof=office.bob.sign("rollback", wid, reason="bad"), reason="bad")
        assert allowed.phase == "restored", allowed.problem
        assert (allowed.by, allowed.method) == ("bob@example.com", "ssh")
        assert "bob-rolls-back" in allowed.verification


class TestUndoOfATerminatedRelease:
    async def test_the_promoted_rings_of_a_terminated_release_are_read_from_its_cluster_workflows(
        self, client, tmp_path
    ):
        """A terminated release has no record: its cluster workflows' own results say which clusters
        it promoted (ring 1) and which rolled back when the release closed (ring 2), and the undo
        restores the promoted ones; refused while a cluster workflow is still rolling back."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            before = _workloads(h)
            rings = [
                {"name": "internal", "clusters": [INTERNAL], "strategy": {"rolling": {}}},
                {"name": "broad", "clusters": [PROD], "strategy": canary(("w", 25), ("p", "1h"))},
            ]
            handle = await h.start(plan(svc, rings, metrics=False), service=svc)
            await assert_eventually(
                lambda: cluster_state(handle, PROD),
                lambda c: c is not None and c.weight == 25,
                what="the broad ring's canary at 25%",
            )
            h.clusters.configure(PROD, rollback_delay=3)
            await handle.terminate("the operator's console was the wrong tab")
            early = await _undo(h, svc)
            assert early.phase == "refused" and f"{PROD} are still rolling back" in early.problem

            async def child_ended() -> Any:
                child = h.client.get_workflow_handle(f"{release_id(svc, 'v2')}:broad:{PROD}")
                return (await child.describe()).status

            await assert_eventually(
                # Aborted and rolled back: a failed workflow (red in the UI) that carries its result.
                child_ended,
                lambda s: s == WorkflowExecutionStatus.FAILED,
                what="the child's rollback",
            )
            assert h.versions()[INTERNAL] == "v2", "ring 1 promoted before the terminate"
            assert h.versions()[PROD] == "v1", "ring 2 rolled itself back when its release closed"

            ends = await children.cluster_workflows(h.client, release_id(svc, "v2"), "")
            assert [(e.cluster, e.state) for e in ends] == [(INTERNAL, "promoted"), (PROD, "rolled-back")]

            undone = await _undo(h, svc, reason="terminated by mistake")
            assert undone.phase == "restored", undone.problem
            assert [c.name for c in undone.clusters] == [INTERNAL]
            assert _workloads(h) == before
            # What `ringmaster status` shows of it: the query as of the terminate, corrected by the
            # cluster workflows, and the undo.
            st = status.with_cluster_workflows(await handle.query(ReleaseWorkflow.status), "terminated", ends)
            assert (st.phase, st.cluster(INTERNAL).state, st.cluster(PROD).state) == (
                "terminated",
                "promoted",
                "rolled-back",
            )
            shown = await status.undo_of(h.client, st)
            assert shown is not None and shown.phase == "restored" and shown.reason == "terminated by mistake"
