"""The chaos suite's own parts that need no stack: scenarios drawn from seeds, and the invariants' judgement.

A judge that cannot fail proves nothing, so each invariant is shown catching the cluster states it
exists for (a canary left behind, a half-rolled-back ring, a stale step applied after a newer one,
a write after the release ended) and letting the legitimate ones through.
"""

from __future__ import annotations

import pytest
import yaml

from policies import loading
from sandbox.chaos import __main__ as chaos_main
from sandbox.chaos import invariants, scenario
from sandbox.chaos.runner import Report
from sandbox.chaos.scenario import Ring, Scenario
from workflows import models

CLUSTERS = ["euw1-internal", "euc1-beta", "use1-beta", "euw1-prod", "euc1-prod", "use1-prod", "usw2-prod"]
IMAGE = "registry.eu.example.com/api:v9"


def _deployment(
    image: str = "registry.eu.example.com/api:v1", version: str = "v1", replicas: int = 10
) -> dict:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "api"}},
        "labels": {"app": "api", "ringmaster.dev/version": version},
        "containers": [{"name": "api", "image": image, "env": None}],
    }


BEFORE = {
    "Deployment/api": _deployment(),
    "Service/api": {"selector": {"app": "api"}, "ports": [{"port": 80}]},
}
NEW = invariants.promoted(BEFORE, IMAGE, "v9")
CANARY = {**BEFORE, "Deployment/api-canary": _deployment(IMAGE, "v9", 2)}


def _scenario(scope: str = "release", rings: list[list[str]] | None = None) -> Scenario:
    rings = rings or [["a"], ["b", "c"], ["d"]]
    return Scenario(
        seed=1,
        service="c1",
        version="v9",
        next_version="v3-s1",
        rings=[Ring(name=f"r{i}", clusters=r, strategy="canary") for i, r in enumerate(rings)],
        scope=scope,  # type: ignore[arg-type]
    )


def _judge(sc: Scenario, phase: str, after: dict[str, dict], attention: tuple[str, ...] = ()) -> list[str]:
    before = dict.fromkeys(sc.clusters, BEFORE)
    return invariants.outcome(sc, phase, list(attention), before, after, image=IMAGE, version="v9")


class TestScenarios:
    def test_a_seed_always_draws_the_same_scenario(self) -> None:
        """Replaying a failing seed runs what failed: generation depends on the seed alone."""
        assert scenario.generate(42, CLUSTERS) == scenario.generate(42, CLUSTERS)
        assert scenario.generate(42, CLUSTERS) != scenario.generate(43, CLUSTERS)

    @pytest.mark.parametrize("seed", range(50))
    def test_every_scenario_is_a_valid_plan_over_distinct_clusters(self, seed: int) -> None:
        """Each drawn plan passes ringmaster's own plan validation, and no cluster is in two rings."""
        drawn = scenario.generate(seed, CLUSTERS)
        assert len(drawn.clusters) == len(set(drawn.clusters))
        loading.parse_plan(yaml.safe_dump(scenario.plan(drawn)), "plan.yaml")
        assert drawn.bound_seconds() > sum(e.seconds for e in drawn.events)

    def test_forced_kinds_are_drawn_in(self) -> None:
        """``kinds`` guarantees an event of each kind named, so a fixed seed set can cover every fault."""
        drawn = scenario.generate(7, CLUSTERS, kinds=["temporal-restart", "ownership-conflict"])
        assert {"temporal-restart", "ownership-conflict"} <= set(drawn.kinds())


class TestOutcomes:
    def test_a_success_needs_every_cluster_promoted_with_nothing_left_over(self) -> None:
        """``succeeded`` with a canary Deployment still in a cluster is a violation naming it."""
        sc = _scenario()
        after = dict.fromkeys(sc.clusters, NEW)
        assert _judge(sc, "succeeded", after) == []
        after["b"] = {**NEW, "Deployment/api-canary": _deployment(IMAGE, "v9", 2)}
        problems = _judge(sc, "succeeded", after)
        assert len(problems) == 1 and problems[0].startswith("b:") and "api-canary left over" in problems[0]

    def test_an_abort_restores_every_cluster_whatever_the_scope(self) -> None:
        """``aborted`` under scope cluster still needs every cluster back on its previous spec."""
        sc = _scenario("cluster")
        after = dict.fromkeys(sc.clusters, BEFORE)
        assert _judge(sc, "aborted", after) == []
        after["a"] = NEW
        assert [p.split(":")[0] for p in _judge(sc, "aborted", after)] == ["a"]

    def test_scope_ring_rolls_back_whole_rings(self) -> None:
        """Under scope ring, a ring with one cluster promoted and one restored is a violation."""
        sc = _scenario("ring")
        whole = {"a": NEW, "b": BEFORE, "c": BEFORE, "d": BEFORE}
        assert _judge(sc, "rolled-back", whole) == []
        assert _judge(sc, "rolled-back", {**whole, "b": NEW}) != []

    def test_scope_cluster_allows_one_mixed_ring_and_nothing_promoted_after_it(self) -> None:
        """Under scope cluster a ring may end mixed, but no later ring may be promoted."""
        sc = _scenario("cluster")
        assert _judge(sc, "rolled-back", {"a": NEW, "b": NEW, "c": BEFORE, "d": BEFORE}) == []
        assert _judge(sc, "rolled-back", {"a": BEFORE, "b": BEFORE, "c": BEFORE, "d": NEW}) != []

    def test_a_half_released_cluster_is_never_acceptable_after_a_rollback(self) -> None:
        """A canary still serving after ``rolled-back`` is caught, whatever the scope."""
        for scope in ("cluster", "ring", "release"):
            sc = _scenario(scope)
            after = {"a": CANARY, "b": BEFORE, "c": BEFORE, "d": BEFORE}
            assert any(p.startswith("a:") for p in _judge(sc, "rolled-back", after)), scope

    def test_failed_lists_exactly_the_clusters_that_differ(self) -> None:
        """``failed`` must name every half-released cluster, and only those."""
        sc = _scenario()
        after = {"a": BEFORE, "b": CANARY, "c": BEFORE, "d": BEFORE}
        assert _judge(sc, "failed", after, ("b",)) == []
        assert _judge(sc, "failed", after, ()) != []
        assert _judge(sc, "failed", after, ("b", "c")) != []

    def test_a_cluster_whose_rollback_was_refused_outright_may_hold_its_new_spec(self) -> None:
        """A rollback refused at its first write (a 403) leaves the cluster on the new version, and
        the release lists it as needing attention: that is honest (seeds 4095, 4136)."""
        sc = _scenario()
        after = {"a": NEW, "b": BEFORE, "c": BEFORE, "d": BEFORE}
        assert _judge(sc, "failed", after, ("a",)) == []
        assert _judge(sc, "failed", after, ("a", "b")) != [], "b is back on its previous spec"


class TestTerminatedAfterAFailedRollback:
    """A terminated release has no ``needs_attention`` of its own; its cluster workflows' results say
    which rollbacks failed (seeds 3137, 3146: another writer took the image, the release was
    terminated, and the cluster's rollback met the other writer's image and stopped)."""

    HOTFIX = "registry.eu.example.com/api:hotfix"
    CONFLICTED = {
        **BEFORE,
        "Deployment/api": _deployment(HOTFIX, "v1"),
        "Deployment/api-preview": {
            **_deployment(IMAGE, "v9"),
            "labels": {"ringmaster.dev/version": "v9", "ringmaster.dev/role": "preview"},
        },
        "Service/api-preview": {"selector": {"ringmaster.dev/role": "preview"}, "ports": [{"port": 80}]},
    }

    def test_a_cluster_whose_own_workflow_reports_a_failed_rollback_may_be_left_between(self) -> None:
        """Terminated or cancelled, a cluster its own workflow reports unrestored needs attention."""
        sc = _scenario("cluster")
        after = {"a": BEFORE, "b": self.CONFLICTED, "c": BEFORE, "d": BEFORE}
        assert _judge(sc, "terminated", {**after, "a": NEW}, ("b",)) == []
        for phase in ("terminated", "cancelled"):
            assert _judge(sc, phase, after, ("b",)) == [], phase
            assert [p.split(":")[0] for p in _judge(sc, phase, after)] == ["b"], phase

    def test_a_cluster_left_between_without_a_failed_rollback_is_still_half_released(self) -> None:
        """A failed rollback in one cluster excuses only that one, and no ring order around it."""
        sc = _scenario("cluster")
        after = {"a": NEW, "b": self.CONFLICTED, "c": CANARY, "d": BEFORE}
        assert _judge(sc, "terminated", after, ("b",)) == ["c: half released (between)"]
        after = {"a": BEFORE, "b": self.CONFLICTED, "c": BEFORE, "d": NEW}
        assert _judge(sc, "terminated", after, ("b",)) != []

    def test_the_clusters_needing_attention_are_those_whose_rollback_failed(self) -> None:
        """Read from each cluster workflow's own result, as the release reads them when it can."""
        results = {
            "a": models.ClusterRolloutResult(cluster="a", outcome="rolled-back"),
            "b": models.ClusterRolloutResult(cluster="b", outcome="failed", rollback_failed=True),
            "c": None,
        }
        assert invariants.needing_attention(results) == ["b"]


def _change(  # noqa: PLR0917 - a table row of a change
    t: float, state_image: str, version: str, seq: int, op: str = "updated", name: str = "api"
) -> dict:
    obj = {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "c1"},
        "spec": {
            "replicas": 10,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api", "ringmaster.dev/version": version}},
                "spec": {"containers": [{"name": "api", "image": state_image}]},
            },
        },
    }
    return {
        "seq": seq,
        "time": t,
        "op": op,
        "kind": "Deployment",
        "namespace": "c1",
        "name": name,
        "object": obj,
    }


class TestHistory:
    def test_a_rollback_may_return_to_the_first_state_but_a_stale_step_may_not(self) -> None:
        """Back to the previous content is a rollback; back to an intermediate content is a stale write."""
        canary = _change(1, IMAGE, "v9", 1, "created", "api-canary")
        deleted = _change(3, IMAGE, "v9", 3, "deleted", "api-canary")
        again = _change(5, IMAGE, "v9", 5, "created", "api-canary")
        assert invariants.no_going_back("a", BEFORE, [canary, deleted, again]) == [], "a reset runs again"
        v2 = "registry.eu.example.com/api:v2"
        stale = [_change(1, v2, "v2", 1), _change(2, IMAGE, "v9", 2), _change(3, v2, "v2", 3)]
        problems = invariants.no_going_back("a", BEFORE, stale)
        assert len(problems) == 1 and "Deployment/api went back" in problems[0] and "change 3" in problems[0]

    def test_nothing_may_change_a_cluster_after_the_release_ended(self) -> None:
        """A write after the release and its cluster workflows closed is reported with its delay."""
        changes = [_change(10.0, IMAGE, "v9", 1), _change(12.5, IMAGE, "v9", 2)]
        assert invariants.quiet_after("a", changes, 12.5) == []
        late = invariants.quiet_after("a", changes, 11.0)
        assert late == ["a: updated Deployment/api 1.5s after the release ended"]

    def test_another_writers_late_write_is_not_the_releases(self) -> None:
        """The conflicting writer's image landing after the end (its request held by an API fault) is its
        own doing (seed 231); a late write of anything else still counts."""
        hotfix = "registry.eu.example.com/api:hotfix"
        changes = [_change(13.0, hotfix, "v9", 1), _change(13.1, IMAGE, "v9", 2)]
        late = invariants.quiet_after("a", changes, 12.5, others=[hotfix])
        assert late == ["a: updated Deployment/api 0.6s after the release ended"]

    def test_status_must_agree_with_the_clusters(self) -> None:
        """``status`` calling a cluster promoted while it holds its previous spec is a violation."""
        before = {"a": BEFORE}
        reported = {"phase": "succeeded", "clusters": [{"name": "a", "state": "promoted"}]}
        assert (
            invariants.status_agrees(reported, "succeeded", before, {"a": NEW}, image=IMAGE, version="v9")
            == []
        )
        assert invariants.status_agrees(
            reported, "succeeded", before, {"a": BEFORE}, image=IMAGE, version="v9"
        )


def _request(t: float, ms: float, agent: str = "ringmaster", status: int = 200) -> dict:
    return {"time": t, "durationMs": ms, "userAgent": agent, "status": status}


class TestAnotherWritersChange:
    """Seed 2042 as the emulator and Temporal recorded it (seconds past 20:06): after an abort the
    rollback removed the blue-green preview, and its last request ended at 12.7176; the release still
    said the cluster was deploying, so the other writer struck, its change logged at 12.7348; the
    cluster workflow and the release closed at 12.890 and 13.048."""

    HOTFIX = "registry.eu.example.com/api:hotfix"
    CHANGES = (
        _change(12.2745, IMAGE, "v9", 1, "created", "api-preview"),
        _change(12.7174, IMAGE, "v9", 2, "deleted", "api-preview"),
        _change(12.7348, HOTFIX, "v1", 3),
    )
    RINGMASTER = (_request(12.0449, 0.35), _request(12.6986, 0.32), _request(12.7171, 0.5))
    HOTFIX_BOT = _request(12.7330, 2.31, agent="OpenAPI-Generator/37.0.2/python")
    CLOSED = 13.048

    def _judged(self, changes: tuple[dict, ...], requests: tuple[dict, ...]) -> list[str]:
        sc = _scenario("release", [["use1-beta"]])
        last = invariants.last_request_end(requests)
        end = invariants.end_state(BEFORE, changes, self.CLOSED, last_request=last, others=[self.HOTFIX])
        before, after = {"use1-beta": BEFORE}, {"use1-beta": end}
        reported = {"phase": "aborted", "clusters": [{"name": "use1-beta", "state": "rolled-back"}]}
        return invariants.outcome(
            sc, "aborted", [], before, after, image=IMAGE, version="v9"
        ) + invariants.status_agrees(reported, "aborted", before, after, image=IMAGE, version="v9")

    def test_a_change_after_ringmasters_last_request_is_not_the_releases(self) -> None:
        """The other writer's image landing once ringmaster's last request had ended, even before the
        workflows closed, is beyond what ringmaster could see: the cluster is judged as ringmaster left it."""
        assert self._judged(self.CHANGES, (*self.RINGMASTER, self.HOTFIX_BOT)) == []
        whole_log = invariants.replay(BEFORE, self.CHANGES, self.CLOSED)[-1]
        assert invariants.classify(BEFORE, whole_log, IMAGE, "v9") == "between", "what the run was judged on"

    def test_a_change_ringmaster_could_still_have_met_is_the_releases(self) -> None:
        """The same image landing before ringmaster's last request (here: between the rollback's read of
        the workload and its removal of the preview) is ringmaster's to meet, and still a violation."""
        early = _change(12.7100, self.HOTFIX, "v1", 2)
        changes = (self.CHANGES[0], early, {**self.CHANGES[1], "seq": 3})
        problems = self._judged(changes, (*self.RINGMASTER, self.HOTFIX_BOT))
        assert [p.split(" (")[0] for p in problems] == [
            "use1-beta: between, not previous",
            "status says use1-beta is rolled-back, the cluster holds its between spec",
        ]

    def test_without_a_known_end_of_ringmasters_requests_every_change_counts(self) -> None:
        """A request still unanswered (an API fault holds it), or none of ringmaster's in the log (it is
        bounded): the judge assumes nothing, and the other writer's change counts as before."""
        unanswered = (*self.RINGMASTER, _request(12.7000, 0.0, status=0), self.HOTFIX_BOT)
        assert self._judged(self.CHANGES, unanswered) != []
        assert self._judged(self.CHANGES, (self.HOTFIX_BOT,)) != []


class TestFigures:
    def test_the_cost_of_an_event_is_recovered_from_releases_struck_by_several(self) -> None:
        """Releases struck by mixes of kinds: the fit finds each kind's own cost and the base overrun."""
        costs = {"worker-kill": 8.0, "api-latency": 30.0}
        reports = []
        for i in range(24):
            done = [f"worker-kill@{i}s [deploying]"] * (i % 3) + [f"api-latency@{i}s [analyzing] a"] * (i % 2)
            overrun = 5.0 + sum(costs[label.split("@")[0]] for label in done) + (0.5 if i % 4 else -0.5)
            reports.append(
                Report(
                    seed=i, kinds=[], phases=["succeeded"], seconds=60.0 + overrun, planned=60.0, done=done
                )
            )
        base, fitted = chaos_main.event_costs(reports)
        assert base == pytest.approx(5.0, abs=0.5)
        assert fitted["worker-kill"]["seconds"] == pytest.approx(8.0, abs=0.5)
        assert fitted["api-latency"]["seconds"] == pytest.approx(30.0, abs=0.5)
        assert fitted["worker-kill"]["struck"] == sum(i % 3 for i in range(24))

    def test_a_saved_run_is_read_back_as_it_was_written(self) -> None:
        """``--figures-of`` reads ``--json`` output, older runs without newer fields included."""
        report = Report(seed=7, kinds=["hold"], phases=["aborted"], done=["hold@1.0s [deploying]"])
        entry = report.as_json()
        assert Report.from_json(entry).as_json() == entry
        entry.pop("resumed")
        assert Report.from_json(entry).resumed == []


class TestPromotedAfterAFailure:
    def test_a_promotion_over_an_earlier_releases_leftover_canary_is_new(self) -> None:
        """A release that failed left its canary; the next one promoted and removed it: that is ``new``,
        and a canary still there is not (seed 1147)."""
        canary = _deployment(IMAGE, "v9", 2)
        canary["labels"] = {**canary["labels"], "ringmaster.dev/role": "canary"}
        leftover = {**BEFORE, "Deployment/api-canary": canary}
        expected = invariants.promoted(BEFORE, "registry.eu.example.com/api:v10", "v10")
        assert invariants.classify(leftover, expected, "registry.eu.example.com/api:v10", "v10") == "new"
        still = {**expected, "Deployment/api-canary": canary}
        assert invariants.classify(leftover, still, "registry.eu.example.com/api:v10", "v10") == "between"


class TestAfterAnEarlierReleasesLeftovers:
    """Seed 3033 as the emulator recorded it in ``euc1-beta``: v2 made its blue-green preview, the other
    writer took the image, v2's rollback met the conflict and left the preview (v2 failed, listing the
    cluster). v3 superseded it, took its snapshot of the cluster as found (the other writer's image),
    adopted the preview, switched, met the conflict, and its rollback restored the Service and removed
    the preview: it left the cluster as it found it, less v2's preview."""

    HOTFIX = "registry.eu.example.com/api:hotfix"
    V3 = "registry.eu.example.com/api:v3-s3033"
    PREVIEW_SERVICE = {
        "selector": {"ringmaster.dev/role": "preview", "ringmaster.dev/workload": "api"},
        "ports": [{"port": 80}],
    }

    def _left_by_v2(self) -> dict:
        preview = _deployment("registry.eu.example.com/api:v2-s3033", "v2-s3033")
        preview["labels"] = {"ringmaster.dev/version": "v2-s3033", "ringmaster.dev/role": "preview"}
        return {
            **BEFORE,
            "Deployment/api": _deployment(self.HOTFIX),
            "Deployment/api-preview": preview,
            "Service/api-preview": self.PREVIEW_SERVICE,
        }

    def _judged(self, after: dict, attention: tuple[str, ...] = ()) -> list[str]:
        sc = _scenario("ring", [["use1-beta"], ["euc1-beta"]])
        start = {
            "use1-beta": invariants.promoted(BEFORE, self.V3, "v3-s3033"),
            "euc1-beta": self._left_by_v2(),
        }
        now = {"use1-beta": start["use1-beta"], "euc1-beta": after}
        return invariants.outcome(
            sc, "failed", list(attention), start, now, image=self.V3, version="v3-s3033"
        )

    def test_removing_an_earlier_releases_leftover_preview_in_a_rollback_is_previous(self) -> None:
        """A release that failed in a cluster where it removed the earlier release's leftover preview and
        otherwise restored what it found owes no attention there (seed 3033)."""
        restored = {**BEFORE, "Deployment/api": _deployment(self.HOTFIX)}
        assert self._judged(restored) == []
        assert self._judged(self._left_by_v2()) == [], "leftovers it never touched are as it found them"

    def test_a_partial_cleanup_or_a_switched_service_is_still_between(self) -> None:
        """Half the leftovers removed, or the active Service left on the preview, is between and must be
        listed."""
        half = {
            **BEFORE,
            "Deployment/api": _deployment(self.HOTFIX),
            "Service/api-preview": self.PREVIEW_SERVICE,
        }
        switched = {
            **BEFORE,
            "Deployment/api": _deployment(self.HOTFIX),
            "Service/api": {"selector": self.PREVIEW_SERVICE["selector"], "ports": [{"port": 80}]},
        }
        for after in (half, switched):
            assert [p.split(":")[0] for p in self._judged(after)] == ["euc1-beta"]
            assert self._judged(after, ("euc1-beta",)) == []

    def test_a_promotion_removes_an_earlier_releases_preview_service_too(self) -> None:
        """The new spec holds none of ringmaster's objects, Services included."""
        expected = invariants.promoted(self._left_by_v2(), self.V3, "v3-s3033")
        assert sorted(expected) == ["Deployment/api", "Service/api"]

    def test_the_workloads_service_switched_to_a_preview_stays_the_workloads(self) -> None:
        """An active Service left selecting the preview (a switch the earlier release never undid) is
        the workload's own, not a leftover to drop: it must be restored, not vanish."""
        left = {**self._left_by_v2(), "Service/api": {"selector": self.PREVIEW_SERVICE["selector"]}}
        assert "Service/api" in invariants.without_own_objects(left)
        assert "Service/api-preview" not in invariants.without_own_objects(left)


class TestAnEarlierReleasesLeftoverCanaryRoute:
    """Seed 7075 in ``euw1-internal``: v2's routed canary at 50% stayed when its rollback met another
    writer; v3 adopted it and rolled back, removing the canary and its share of the route."""

    CANARY_SERVICE = {"selector": {"ringmaster.dev/role": "canary", "ringmaster.dev/workload": "api"}}

    def _route(self, *refs: tuple[str, int]) -> dict:
        return {"rules": [{"backendRefs": [{"kind": "Service", "name": n, "weight": w} for n, w in refs]}]}

    def _left_by_v2(self) -> dict:
        canary = _deployment("registry.eu.example.com/api:v2-s7075", "v2-s7075", 5)
        canary["labels"] = {"ringmaster.dev/version": "v2-s7075", "ringmaster.dev/role": "canary"}
        return {
            **BEFORE,
            "Deployment/api-canary": canary,
            "Service/api-canary": self.CANARY_SERVICE,
            "HTTPRoute/api": self._route(("api", 5000), ("api-canary", 5000)),
        }

    def test_the_route_without_the_leftover_canarys_share_is_the_previous_spec(self) -> None:
        """The canary gone and the route back on the stable Service alone (its weight as it was): previous."""
        left = self._left_by_v2()
        restored = {**BEFORE, "HTTPRoute/api": self._route(("api", 5000))}
        assert invariants.classify(left, restored, IMAGE, "v9") == "previous"
        assert invariants.classify(left, left, IMAGE, "v9") == "previous", "untouched leftovers"

    def test_a_route_still_sending_traffic_to_a_removed_canary_is_between(self) -> None:
        """The canary's Deployment and Service removed while the route still names the Service: between."""
        left = self._left_by_v2()
        dangling = {**BEFORE, "HTTPRoute/api": self._route(("api", 5000), ("api-canary", 5000))}
        assert invariants.classify(left, dangling, IMAGE, "v9") == "between"
