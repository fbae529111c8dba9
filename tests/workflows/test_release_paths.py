"""A release end to end on a real Temporal dev server: promotion, rollback by scope, abort, denial."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.waiting import assert_eventually
from tests.workflows.support import (
    ScriptedMetrics,
    canary,
    cluster_state,
    ended,
    plan,
    running_worker,
    small_rings,
    three_rings,
    unique_service,
)
from workflows import search
from workflows.models import AbortRequest, ClusterRolloutInput, ResumeRequest
from workflows.release import ReleaseWorkflow


def _ops(clusters: dict[str, Any], op: str) -> list[tuple[int, str]]:
    """(sequence, cluster) of every ``op`` in the fake fleet, in the order they happened."""
    return sorted((o["seq"], name) for name, c in clusters.items() for o in c["ops"] if o["op"] == op)


class TestPromotion:
    async def test_a_good_version_is_promoted_through_every_ring(self, client, tmp_path):
        """Every cluster of every ring ends on the new version, each rollout a child with its own id."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, three_rings()), service=svc)
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            assert set(h.versions().values()) == {"v2"}
            assert [c.state for c in result.clusters] == ["promoted"] * 7
            assert all(c.workflow_id.startswith(f"release:{svc}:v2:") for c in result.clusters)
            # Rings ran in order: the last internal promotion precedes the first beta change.
            beta = [o["op"] for o in h.clusters.read()["euc1-beta"]["ops"]]
            assert beta == ["deploy-preview", "switch", "promote", "cleanup"], "blue-green switches first"
            promotes = _ops(h.clusters.read(), "promote")
            assert promotes[0][1] == "euw1-internal"
            assert promotes[-1][1] == "euc1-prod", "the regulated cluster comes last in its ring"

    async def test_each_cluster_workflow_gets_its_own_part_of_the_release_not_the_whole_fleet(
        self, client, tmp_path
    ):
        """A child's input holds no schedule and, of the promoted clusters, only those that may
        validate it: the parent's history (which holds every child's input) grows with the fleet,
        not with its square. The regulated cluster is still let in only after one of them."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, three_rings()), service=svc)
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            inputs: dict[str, ClusterRolloutInput] = {}
            async for event in handle.fetch_history_events():
                if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                    attrs = event.start_child_workflow_execution_initiated_event_attributes
                    [inp] = await client.data_converter.decode(attrs.input.payloads, [ClusterRolloutInput])
                    inputs[inp.cluster.name] = inp
        assert all(i.schedule is None for i in inputs.values())
        assert {n: [r.name for r in i.plan.rings] for n, i in inputs.items()}["euc1-prod"] == ["broad"]
        assert all(len(i.plan.rings) == 1 and not i.plan.analysis.metrics for i in inputs.values())
        assert all(i.analysis.metrics for i in inputs.values()), "the analysis travels once, apart"
        assert inputs["euc1-prod"].validators == ["euw1-internal", "euc1-beta", "euw1-prod"]
        assert inputs["euc1-prod"].promoted_before == ["euw1-internal", "euc1-beta", "euw1-prod"]
        assert all(not i.validators and not i.promoted_before for n, i in inputs.items() if n != "euc1-prod")
        regulated = next(
            d for d in result.cluster("euc1-prod").residency if d.rule == "regulated-after-validation"
        )
        assert regulated.verdict == "allow" and "euw1-prod" in regulated.reason

    async def test_phase_is_searchable_fleet_wide(self, client, tmp_path):
        """The release's phase, ring, the clusters it changed and its verified submitter are search
        attributes, so `what is running where, and whose` is one query."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [{"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}}]
            handle = await h.submit(plan(svc, rings), service=svc)
            await ended(handle)

            async def found(query: str) -> list[str]:
                return [w.id async for w in client.list_workflows(f"RingmasterService = '{svc}' AND {query}")]

            for query in (
                "RingmasterPhase = 'succeeded'",
                "RingmasterClusters = 'euw1-internal'",
                "RingmasterSubmitter = 'alice'",
            ):
                await assert_eventually(lambda q=query: found(q), lambda ids: ids == [handle.id], what=query)
            assert await found("RingmasterClusters = 'euc1-beta'") == []
            assert await found("RingmasterSubmitter = 'bob'") == []

    def test_the_clusters_attribute_keeps_within_the_size_a_search_attribute_may_have(self):
        """Names are kept in order until the next would pass the bound; a release of a thousand
        clusters publishes a prefix of them, never a value the server refuses."""
        names = [f"cluster-{i:04d}" for i in range(1000)]
        kept = search.bounded(names)
        assert kept == names[: len(kept)] and 100 < len(kept) < 1000
        assert len(json.dumps(kept).encode()) <= search.CLUSTERS_BYTES
        assert search.bounded(names[:3]) == names[:3]


class TestRollbackScopes:
    async def test_a_failure_in_the_last_ring_rolls_back_every_ring_newest_first(self, client, tmp_path):
        """Scope `release`: every touched cluster returns to v1, in reverse order of promotion."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={"use1-prod"})) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, small_rings()), service=svc)
            result = await ended(handle)
            assert result.phase == "rolled-back", result.reason
            assert "use1-prod" in result.reason
            assert set(h.versions().values()) == {"v1"}
            clusters = h.clusters.read()
            promoted = [name for _, name in _ops(clusters, "promote")]
            rolled_back = [name for _, name in _ops(clusters, "rollback")]
            # The failing cluster rolls itself back first; then the parent undoes the rest, newest first.
            assert rolled_back[0] == "use1-prod"
            assert rolled_back[1:] == list(reversed(promoted)) == ["euc1-beta", "euw1-internal"]
            gate = result.cluster("use1-prod").gate
            assert gate is not None and gate.status == "failed" and gate.metric in ("success-rate", "p99")

    async def test_scope_cluster_rolls_back_only_the_failing_cluster(self, client, tmp_path):
        """Scope `cluster`: the release stops, the failed cluster returns to v1, earlier rings stay on v2."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={"euc1-beta"})) as h:
            svc = unique_service()
            rings = small_rings()
            rings[1]["clusterSelector"] = {"audience": "beta"}
            del rings[1]["clusters"]
            handle = await h.start(plan(svc, rings, scope="cluster"), service=svc)
            result = await ended(handle)
            assert result.phase == "rolled-back"
            versions = h.versions()
            assert versions["euw1-internal"] == "v2"
            assert versions["euc1-beta"] == "v1"
            assert not h.clusters.read()["use1-beta"]["ops"], "nothing starts after the failure"

    async def test_scope_ring_rolls_back_the_failing_ring_during_its_bake(self, client, tmp_path):
        """Scope `ring`: a gate failing in the bake rolls back the whole ring, not the rings before it."""
        metrics = ScriptedMetrics(failing={"use1-prod"}, stage="bake")
        async with running_worker(client, tmp_path, metrics=metrics) as h:
            svc = unique_service()
            rings = [
                {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
                {
                    "name": "broad",
                    "clusters": ["euw1-prod", "use1-prod"],
                    "maxParallel": 2,
                    "strategy": canary(("w", 50), ("p", "1s")),
                    "bakeTime": "2s",
                },
            ]
            handle = await h.start(plan(svc, rings, scope="ring"), service=svc)
            result = await ended(handle)
            assert result.phase == "rolled-back"
            assert "bake" in result.reason
            assert h.versions()["euw1-internal"] == "v2"
            assert h.versions()["euw1-prod"] == h.versions()["use1-prod"] == "v1"


class TestSiblingsFailTogether:
    @pytest.mark.parametrize("attempt", range(3))
    async def test_two_clusters_of_one_wave_failing_roll_back_the_whole_release(
        self, client, tmp_path, attempt
    ):
        """Both clusters of a wave fail their gate: the release ends rolled back (never a failed
        workflow from signalling a child that already ended) and the earlier ring is restored too.
        Repeated because the race between the siblings' ends decides whether a signal meets a
        closed child."""
        failing = {"euw1-prod", "use1-prod"}
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing=failing)) as h:
            svc = unique_service()
            rings = [
                {
                    "name": "internal",
                    "clusters": ["euw1-internal"],
                    "strategy": canary(("w", 50)),
                    "bakeTime": "1s",
                },
                {
                    "name": "broad",
                    "clusters": sorted(failing),
                    "maxParallel": 2,
                    "strategy": canary(("w", 50), ("p", "1s")),
                },
            ]
            handle = await h.start(plan(svc, rings, scope="release"), service=svc)
            result = await ended(handle)
            assert result.phase == "rolled-back", result.reason
            assert set(h.versions().values()) == {"v1"}
            assert result.cluster("euw1-internal").state == "rolled-back"
            assert {result.cluster(n).state for n in failing} == {"rolled-back"}
            assert not result.needs_attention


class TestAbort:
    async def test_abort_mid_canary_rolls_back_every_touched_cluster(self, client, tmp_path):
        """An operator's abort during a canary pause rolls back that canary and every earlier ring."""
        async with running_worker(client, tmp_path) as h:
            svc = unique_service()
            rings = [
                {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
                {"name": "broad", "clusters": ["use1-prod"], "strategy": canary(("w", 25), ("p", "10m"))},
            ]
            handle = await h.start(plan(svc, rings), service=svc)
            await assert_eventually(
                lambda: cluster_state(handle, "use1-prod"),
                lambda c: c is not None and c.state == "analyzing" and c.weight == 25,
                what="canary at 25%",
            )
            answer = await handle.execute_update(
                ReleaseWorkflow.abort, AbortRequest(reason="customer reports errors", by="bob")
            )
            assert answer.accepted
            result = await ended(handle)
            assert result.phase == "aborted"
            assert set(h.versions().values()) == {"v1"}
            assert [c.state for c in result.clusters if c.name in ("euw1-internal", "use1-prod")] == [
                "rolled-back",
                "rolled-back",
            ]
            assert result.actions[-1].kind == "abort" and result.actions[-1].by == "bob"


class TestResidencyDenial:
    async def test_live_evidence_of_the_wrong_region_denies_the_cluster_before_any_change(
        self, client, tmp_path
    ):
        """Nodes labelled with another region: the cluster is denied, nothing is deployed anywhere."""
        async with running_worker(client, tmp_path) as h:
            h.clusters.configure("euw1-internal", node_region="us-east-1")
            svc = unique_service()
            rings = [{"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}}]
            handle = await h.start(plan(svc, rings), service=svc)
            result = await ended(handle)
            assert result.phase == "denied"
            decisions = {d.rule: d.verdict for d in result.cluster("euw1-internal").residency}
            assert decisions["cluster-location"] == "deny"
            assert not h.clusters.read()["euw1-internal"]["ops"]


class TestRollbackModeFreeze:
    """``rollback: {mode: freeze}``: a release whose changes cannot be undone is never rolled back."""

    @staticmethod
    def _rings() -> list[dict[str, Any]]:
        return [
            {"name": "internal", "clusters": ["euw1-internal"], "strategy": {"rolling": {}}},
            {"name": "broad", "clusters": ["use1-prod"], "strategy": canary(("w", 25), ("p", "2s"))},
        ]

    async def _held_by_the_failed_gate(self, handle: Any) -> None:
        async def status() -> Any:
            return await handle.query(ReleaseWorkflow.status)

        await assert_eventually(
            status,
            lambda s: s.phase == "holding" and "rollback.mode: freeze" in s.hold_reason,
            what="the release held by the failed gate",
        )

    async def test_a_failed_gate_holds_and_after_the_fix_a_resume_judges_again_and_promotes(
        self, client, tmp_path
    ):
        """The failing canary stays at its weight, nothing is rolled back; once the cause is fixed a
        resume judges the gate afresh (the failed checks do not count again) and the release goes on."""
        metrics = ScriptedMetrics(failing={"use1-prod"})
        async with running_worker(client, tmp_path, metrics=metrics) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, self._rings(), mode="freeze"), service=svc)
            await self._held_by_the_failed_gate(handle)
            prod = await cluster_state(handle, "use1-prod")
            assert prod is not None and prod.state == "holding" and prod.weight == 25
            assert prod.gate is not None and prod.gate.status == "failed"
            ops = h.clusters.read()
            assert not _ops(ops, "rollback"), "nothing is rolled back"
            assert h.versions()["euw1-internal"] == "v2"

            metrics.failing.clear()  # the fix went forward
            answer = await handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            assert answer.accepted
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            assert h.versions()["use1-prod"] == h.versions()["euw1-internal"] == "v2"
            assert not _ops(h.clusters.read(), "rollback")

    async def test_an_abort_of_a_held_release_leaves_every_cluster_as_it_stands(self, client, tmp_path):
        """Abort ends the release without writing the previous version back anywhere."""
        async with running_worker(client, tmp_path, metrics=ScriptedMetrics(failing={"use1-prod"})) as h:
            svc = unique_service()
            handle = await h.start(plan(svc, self._rings(), mode="freeze"), service=svc)
            await self._held_by_the_failed_gate(handle)
            before = h.clusters.read()
            await handle.execute_update(ReleaseWorkflow.abort, AbortRequest(reason="fix forward", by="bob"))
            result = await ended(handle)
            assert result.phase == "aborted"
            assert "nothing rolled back" in result.reason and "use1-prod" in result.reason
            after = h.clusters.read()
            assert {n: (c["version"], c["weight"]) for n, c in after.items()} == {
                n: (c["version"], c["weight"]) for n, c in before.items()
            }
            assert not _ops(after, "rollback")
            assert result.cluster("use1-prod").state == "left-in-place"
            assert result.cluster("euw1-internal").state == "promoted"

    async def test_a_gate_failing_in_the_bake_holds_the_bake_instead_of_rolling_back(self, client, tmp_path):
        """The ring's bake holds (its clock stops) on a failed gate; after the fix a resume finishes it."""
        metrics = ScriptedMetrics(failing={"use1-prod"}, stage="bake")
        async with running_worker(client, tmp_path, metrics=metrics) as h:
            svc = unique_service()
            rings = [
                {"name": "broad", "clusters": ["use1-prod"], "strategy": {"rolling": {}}, "bakeTime": "3s"}
            ]
            handle = await h.start(plan(svc, rings, mode="freeze"), service=svc)
            await self._held_by_the_failed_gate(handle)
            assert h.versions()["use1-prod"] == "v2"
            metrics.failing.clear()
            await handle.execute_update(ReleaseWorkflow.resume, ResumeRequest(by="bob"))
            result = await ended(handle)
            assert result.phase == "succeeded", result.reason
            assert not _ops(h.clusters.read(), "rollback")
