"""The canary strategy against a cluster: replica ratio, HTTPRoute weights, autoscaled workloads."""

from __future__ import annotations

import pytest

from activities.errors import ClusterError
from activities.kubernetes import canary
from tests.activities.support import MANAGER, V1, V2, Kube, Release, autoscale, hpa, strategy
from tests.support import manifests
from tests.support.cluster import container_image, owners

RATIO = strategy({"canary": {"steps": [{"setWeight": 20}, {"setWeight": 50}]}})
ROUTED = strategy({"canary": {"steps": [{"setWeight": 20}], "trafficRouting": {"httpRoute": "api"}}})


def _replicas(kube: Kube, ns: str, name: str) -> int | None:
    return kube.replicas(ns, name)


class TestReplicaSplit:
    @pytest.mark.parametrize(
        ("base", "weight", "autoscaled", "expected"),
        [
            (10, 20, False, (2, 8, 20)),
            (10, 5, False, (1, 9, 10)),
            (10, 50, False, (5, 5, 50)),
            (10, 99, False, (9, 1, 90)),
            (10, 100, False, (10, 0, 100)),
            (10, 0, False, (0, 10, 0)),
            (3, 33, False, (1, 2, 33)),
            (1, 20, False, (1, 1, 50)),
            (0, 20, False, (0, 0, 0)),
            (10, 20, True, (3, None, 23)),
            (10, 50, True, (10, None, 50)),
            (10, 90, True, (10, None, 50)),
            (4, 5, True, (1, None, 20)),
        ],
    )
    def test_split_is_the_closest_share(
        self, base: int, weight: int, autoscaled: bool, expected: tuple[int, int | None, int]
    ) -> None:
        """The split gives the share closest to the weight, with a pod on each side while partial."""
        parts = canary.split(base, weight, autoscaled=autoscaled)
        assert (parts.canary, parts.stable, parts.effective) == expected


class TestCanaryByReplicaRatio:
    def test_set_weight_splits_the_replicas(self, kube: Kube, app: str) -> None:
        """setWeight 20 of 10 replicas: a 2-replica canary of the new version beside an 8-replica stable."""
        release = Release(kube, app, RATIO)
        release.take_snapshot()
        result = release.step_twice("set-weight", 20)
        assert (result.weight, result.action) == (20, "set-weight")
        canary_obj = kube.deployment(app, "api-canary")
        stable = kube.deployment(app, "api")
        assert canary_obj is not None and stable is not None
        assert canary_obj["spec"]["replicas"] == 2 and stable["spec"]["replicas"] == 8
        assert container_image(canary_obj) == V2 and container_image(stable) == V1
        pod_labels = canary_obj["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app"] == "api"  # behind the workload's own Service
        assert pod_labels["ringmaster.dev/version"] == "v2"
        assert canary_obj["metadata"]["labels"]["ringmaster.dev/release"] == "api.v2"
        assert canary_obj["metadata"]["annotations"]["ringmaster.dev/release"] == "api:v2"
        assert "ringmaster:Apply" in owners(canary_obj, ("f:spec", "f:replicas"))
        assert release.wait("canary").ready_replicas == 2

    def test_weights_move_and_report_the_effective_share(self, kube: Kube, app: str) -> None:
        """Each setWeight resizes both sides; a weight replicas cannot express reports what they give."""
        release = Release(kube, app, RATIO)
        release.take_snapshot()
        assert release.step("set-weight", 5).weight == 10
        assert release.step_twice("set-weight", 50).weight == 50
        assert (_replicas(kube, app, "api-canary"), _replicas(kube, app, "api")) == (5, 5)

    def test_a_lower_weight_grows_the_stable_before_the_canary_shrinks(
        self, emulator: Kube, app: str
    ) -> None:
        """Going from 50 to 20, the stable is resized before the canary, so capacity never dips."""
        release = Release(emulator, app, RATIO)
        release.take_snapshot()
        release.step("set-weight", 50)
        since = emulator.last_request()
        assert release.step("set-weight", 20).weight == 20
        writes = [
            r["name"] for r in emulator.requests(since) if r["method"] == "PATCH" and r["status"] == 200
        ]
        assert writes == ["api", "api-canary"]
        assert (_replicas(emulator, app, "api-canary"), _replicas(emulator, app, "api")) == (2, 8)

    def test_every_written_object_is_found_by_release_label(self, kube: Kube, app: str) -> None:
        """``-l ringmaster.dev/release=api.v2`` finds the canary and the stable Deployment it resized."""
        release = Release(kube, app, RATIO)
        release.take_snapshot()
        release.step("set-weight", 20)
        listed = kube.apps.list_namespaced_deployment(app, label_selector="ringmaster.dev/release=api.v2")
        assert sorted(d.metadata.name for d in listed.items) == ["api", "api-canary"]
        stable = kube.deployment(app, "api")
        assert stable is not None
        assert stable["metadata"]["labels"]["ringmaster.dev/version"] == "v1"  # what its pods still run

    def test_promotion_moves_the_stable_then_cleanup_removes_the_canary(self, kube: Kube, app: str) -> None:
        """promote puts the stable on the release at full size; cleanup then removes the canary."""
        release = Release(kube, app, RATIO)
        release.take_snapshot()
        release.step("set-weight", 20)
        release.wait("canary")
        assert release.step_twice("promote").weight == 100
        stable = kube.deployment(app, "api")
        assert stable is not None
        assert container_image(stable) == V2 and stable["spec"]["replicas"] == 10
        assert stable["spec"]["template"]["metadata"]["labels"]["ringmaster.dev/version"] == "v2"
        assert kube.deployment(app, "api-canary") is not None  # serves while the stable rolls
        assert release.wait("workload").ready_replicas == 10
        release.step_twice("cleanup")
        assert kube.deployment(app, "api-canary") is None

    def test_every_write_is_a_server_side_apply_by_ringmaster(self, emulator: Kube, app: str) -> None:
        """All of a canary's writes are PATCHes with the apply content type and field manager ringmaster."""
        since = emulator.last_request()
        release = Release(emulator, app, RATIO)
        release.take_snapshot()
        release.step("set-weight", 20)
        release.step("promote")
        release.wait("workload")
        release.step("cleanup")
        writes = [r for r in emulator.requests(since) if r["method"] in ("PATCH", "PUT", "POST")]
        assert writes
        assert {(r["method"], r["contentType"], r["fieldManager"]) for r in writes} == {
            ("PATCH", "application/apply-patch+yaml", "ringmaster")
        }


def _route(kube: Kube, ns: str, weights: list[tuple[str, int]] | None = None) -> None:
    refs = [{"name": name, "port": 80, "weight": weight} for name, weight in (weights or [("api", 1)])]
    body = manifests.http_route(
        "api",
        {"name": "public", "namespace": "gateways"},
        manifests.route_rule(refs, prefix="/"),
        manifests.route_rule([{"name": "cdn", "port": 80}], prefix="/static"),
    )
    kube.create_route(ns, body, manager=MANAGER)


def _backends(kube: Kube, ns: str, rule: int = 0) -> list[tuple[str, int, str | None]]:
    route = kube.route(ns, "api")
    assert route is not None
    refs = route["spec"]["rules"][rule]["backendRefs"]
    return [(r["name"], r.get("weight", 1), r.get("namespace")) for r in refs]


@pytest.mark.usefixtures("gateway_api")
class TestCanaryByHTTPRoute:
    def test_set_weight_gives_the_exact_share_to_a_canary_service(self, kube: Kube, app: str) -> None:
        """The route sends exactly the weight to ``api-canary`` (a Service of the same namespace)."""
        _route(kube, app)
        release = Release(kube, app, ROUTED)
        release.take_snapshot()
        assert release.step_twice("set-weight", 20).weight == 20
        assert _backends(kube, app) == [("api", 80, None), ("api-canary", 20, None)]
        assert _backends(kube, app, rule=1) == [("cdn", 1, None)]  # a rule not serving the workload
        service = kube.service(app, "api-canary")
        canary_obj = kube.deployment(app, "api-canary")
        assert service is not None and canary_obj is not None
        assert service["spec"]["selector"] == {
            "ringmaster.dev/role": "canary",
            "ringmaster.dev/workload": "api",
        }
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, 8080)]
        pod_labels = canary_obj["spec"]["template"]["metadata"]["labels"]
        assert "app" not in pod_labels  # the stable Service never selects canary pods
        assert canary_obj["spec"]["replicas"] == 2
        assert _replicas(kube, app, "api") == 10  # the stable keeps its size

    def test_weights_keep_the_proportions_of_several_backends(self, kube: Kube, app: str) -> None:
        """Backends already splitting a rule keep their proportions among the traffic left to them."""
        _route(kube, app, [("api", 3), ("legacy", 1)])
        release = Release(kube, app, ROUTED)
        release.take_snapshot()
        release.step("set-weight", 50)
        assert _backends(kube, app) == [("api", 150, None), ("legacy", 50, None), ("api-canary", 200, None)]

    def test_a_promotion_over_an_earlier_releases_leftover_canary_routes_all_to_the_stable(
        self, kube: Kube, app: str
    ) -> None:
        """An earlier release left its canary at 50%; the next one records the route as found, adopts
        the canary and promotes: cleanup removes the canary and its backend, never a dangling one."""
        _route(kube, app)
        earlier = Release(kube, app, ROUTED)
        earlier.take_snapshot()
        earlier.step("set-weight", 50)
        later = Release(kube, app, ROUTED, version="v3")
        later.take_snapshot()
        later.step("set-weight", 20)
        later.step_twice("promote")
        later.wait("workload")
        later.step_twice("cleanup")
        assert [name for name, _, _ in _backends(kube, app)] == ["api"]
        assert kube.service(app, "api-canary") is None

    def test_promote_and_cleanup_restore_the_route(self, kube: Kube, app: str) -> None:
        """After promotion the recorded rules come back and the canary Service and Deployment are gone."""
        _route(kube, app)
        release = Release(kube, app, ROUTED)
        release.take_snapshot()
        release.step("set-weight", 20)
        release.step_twice("promote")
        assert _backends(kube, app) == [("api", 80, None), ("api-canary", 20, None)]
        release.wait("workload")
        release.step_twice("cleanup")
        assert _backends(kube, app) == [("api", 1, None)]
        assert kube.service(app, "api-canary") is None and kube.deployment(app, "api-canary") is None
        stable = kube.deployment(app, "api")
        assert stable is not None and container_image(stable) == V2

    def test_a_missing_route_fails_permanently(self, kube: Kube, app: str) -> None:
        """trafficRouting naming a route that does not exist is a permanent error naming it."""
        release = Release(kube, app, ROUTED)
        release.take_snapshot()
        with pytest.raises(ClusterError) as failed:
            release.step("set-weight", 20)
        assert failed.value.kind == "permanent"
        assert f"HTTPRoute {app}/api not found" in str(failed.value)

    def test_a_route_to_other_services_fails_permanently(self, kube: Kube, app: str) -> None:
        """A route that sends nothing to the workload's Services is refused rather than rewired."""
        _route(kube, app, [("other", 1)])
        release = Release(kube, app, ROUTED)
        release.take_snapshot()
        with pytest.raises(ClusterError) as failed:
            release.step("set-weight", 20)
        assert failed.value.kind == "permanent"
        assert "sends no traffic to a Service of Deployment api" in str(failed.value)


class TestCanaryWithAutoscaler:
    def test_canary_is_sized_from_the_current_count_and_the_stable_never_written(
        self, kube: Kube, app: str
    ) -> None:
        """With an HPA the stable keeps the autoscaler's count; the canary is added beside it."""
        hpa(kube, app)
        autoscale(kube, app, 8)
        release = Release(kube, app, RATIO)
        snapshot = release.take_snapshot()
        assert snapshot.hpa == "api"
        result = release.step_twice("set-weight", 20)
        assert (_replicas(kube, app, "api-canary"), _replicas(kube, app, "api")) == (2, 8)
        assert result.weight == 20
        release.step("promote")
        stable = kube.deployment(app, "api")
        assert stable is not None
        assert stable["spec"]["replicas"] == 8
        assert not any(o.startswith("ringmaster:") for o in owners(stable, ("f:spec", "f:replicas")))

    def test_promotion_keeps_a_count_the_autoscaler_changed(self, kube: Kube, app: str) -> None:
        """A count the HPA sets during the release is the count after promotion."""
        hpa(kube, app)
        release = Release(kube, app, RATIO)
        release.take_snapshot()
        release.step("set-weight", 20)
        autoscale(kube, app, 12)
        release.step("promote")
        release.wait("workload")
        assert _replicas(kube, app, "api") == 12
