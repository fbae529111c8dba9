"""Rollback from every point each strategy can reach, and the snapshots it restores."""

from __future__ import annotations

import re
from typing import Any

import pytest

from activities.errors import ClusterError
from activities.kubernetes import marks, snapshots
from activities.kubernetes.scene import Scene
from activities.models import ClusterSnapshot, FlagRecord, FlagWrite, ReleaseRef
from policies import flags
from policies.flags import FlagServer, FlagSnapshot
from policies.plan import Strategy
from tests.activities.support import (
    MANAGER,
    V1,
    V2,
    Kube,
    Release,
    autoscale,
    fingerprint,
    hpa,
    seed,
    strategy,
)
from tests.support import manifests
from tests.support.cluster import container_image

RATIO = strategy({"canary": {"steps": [{"setWeight": 20}, {"setWeight": 50}]}})
ROUTED = strategy({"canary": {"steps": [{"setWeight": 20}], "trafficRouting": {"httpRoute": "api"}}})
BLUE_GREEN = strategy({"blueGreen": {"scaleDownDelaySeconds": 0}})
ROLLING = strategy({"rolling": {}})

Plan = list[tuple[str, str | int | None]]
"""Steps as the workflow runs them: ``("step", action/weight)`` or ``("wait", target)``."""

CANARY_PATH: Plan = [
    ("set-weight", 20),
    ("wait", "canary"),
    ("set-weight", 50),
    ("promote", None),
    ("wait", "workload"),
    ("cleanup", None),
]
BLUE_GREEN_PATH: Plan = [
    ("deploy-preview", None),
    ("wait", "preview"),
    ("switch", None),
    ("promote", None),
    ("wait", "workload"),
    ("cleanup", None),
]
ROLLING_PATH: Plan = [("deploy", None), ("wait", "workload")]


def _prefixes(name: str, plan: Strategy, path: Plan) -> list[object]:
    """One case per point of the path: nothing done yet (just the snapshot), after each step."""
    return [
        pytest.param(plan, path[:n], id=f"{name}-after-{path[n - 1][0] if n else 'snapshot'}-{n}")
        for n in range(len(path) + 1)
    ]


def _run(release: Release, path: Plan) -> None:
    for action, arg in path:
        if action == "wait":
            release.wait(str(arg))
        else:
            release.step(action, arg if isinstance(arg, int) else None)  # type: ignore[arg-type]


def _route(kube: Kube, ns: str) -> None:
    rule = manifests.route_rule([{"name": "api", "port": 80}])
    body = manifests.http_route("api", {"name": "public"}, rule)
    kube.create_route(ns, body, manager=MANAGER)


class TestRollbackFromEveryPoint:
    @pytest.mark.parametrize(
        ("plan", "path"),
        [
            *_prefixes("canary", RATIO, CANARY_PATH),
            *_prefixes("bluegreen", BLUE_GREEN, BLUE_GREEN_PATH),
            *_prefixes("rolling", ROLLING, ROLLING_PATH),
        ],
    )
    def test_rollback_restores_the_cluster_exactly(
        self, kube: Kube, app: str, plan: Strategy, path: Plan
    ) -> None:
        """Whatever point the release reached, rollback leaves every object as it was before, twice over."""
        before = fingerprint(kube, app, generations=False)
        release = Release(kube, app, plan)
        release.take_snapshot()
        _run(release, path)
        result = release.rollback()
        assert result.restored_version == "v1"
        assert fingerprint(kube, app, generations=False) == before
        again = release.rollback()
        assert again.message == "nothing to restore"
        assert fingerprint(kube, app, generations=False) == before

    @pytest.mark.usefixtures("gateway_api")
    @pytest.mark.parametrize("steps", [1, 2, 3, 4], ids=["set-weight", "promote", "wait", "cleanup"])
    def test_rollback_restores_route_weights(self, kube: Kube, app: str, steps: int) -> None:
        """A routed canary's rollback brings back the recorded rules and removes its Service."""
        _route(kube, app)
        before = fingerprint(kube, app, generations=False)
        release = Release(kube, app, ROUTED)
        release.take_snapshot()
        _run(
            release, [("set-weight", 20), ("promote", None), ("wait", "workload"), ("cleanup", None)][:steps]
        )
        release.rollback()
        assert fingerprint(kube, app, generations=False) == before

    @pytest.mark.usefixtures("gateway_api")
    def test_a_route_found_with_an_earlier_releases_canary_is_restored_without_it(
        self, kube: Kube, app: str
    ) -> None:
        """An earlier release left its canary at 50% (its rollback failed); the next release records
        the route as found, adopts the canary, and its rollback removes the canary's Service: the
        restored route must not point at it (seed 7075 left half the traffic on a deleted Service)."""
        _route(kube, app)
        earlier = Release(kube, app, ROUTED)
        earlier.take_snapshot()
        _run(earlier, [("set-weight", 50), ("wait", "canary")])
        found = kube.route(app, "api")
        assert found is not None and len(found["spec"]["rules"][0]["backendRefs"]) == 2, "the leftover"
        later = Release(kube, app, ROUTED, version="v3")
        later.take_snapshot()
        _run(later, [("set-weight", 20), ("wait", "canary")])
        later.rollback()
        route = kube.route(app, "api")
        assert route is not None
        refs = route["spec"]["rules"][0]["backendRefs"]
        assert [r["name"] for r in refs] == ["api"], refs
        assert kube.deployment(app, "api-canary") is None

    def test_rollback_waits_until_the_workload_runs_the_snapshot(self, kube: Kube, app: str) -> None:
        """When rollback returns, the workload's rollout back to the recorded version is complete."""
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        release.step("deploy")
        release.rollback()
        stable = kube.deployment(app, "api")
        assert stable is not None and container_image(stable) == V1
        status = stable["status"]
        assert status["updatedReplicas"] == status["availableReplicas"] == status["replicas"] == 10
        assert any("10/10 updated" in beat for beat in release.beats)

    def test_rollback_leaves_an_autoscaled_count_alone(self, kube: Kube, app: str) -> None:
        """Replicas an HPA owns are never restored over it; image and version are."""
        hpa(kube, app)
        release = Release(kube, app, RATIO)
        release.take_snapshot()
        release.step("set-weight", 20)
        release.step("promote")
        autoscale(kube, app, 13)
        release.rollback()
        stable = kube.deployment(app, "api")
        assert stable is not None
        assert stable["spec"]["replicas"] == 13 and container_image(stable) == V1
        assert kube.deployment(app, "api-canary") is None

    def test_a_foreign_object_named_like_a_canary_is_never_deleted(self, kube: Kube, app: str) -> None:
        """``api-canary`` created by someone else is left alone and reported, not taken over."""
        seed_other = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api-canary"},
            "spec": {
                "selector": {"matchLabels": {"app": "other"}},
                "template": {
                    "metadata": {"labels": {"app": "other"}},
                    "spec": {"containers": [{"name": "x", "image": V1}]},
                },
            },
        }
        kube.apps.create_namespaced_deployment(app, body=seed_other)
        release = Release(kube, app, RATIO)
        release.take_snapshot()
        with pytest.raises(ClusterError) as failed:
            release.step("set-weight", 20)
        assert failed.value.kind == "permanent" and "not created by ringmaster" in str(failed.value)
        with pytest.raises(ClusterError):
            release.rollback()
        assert kube.deployment(app, "api-canary") is not None

    def test_an_image_written_by_another_writer_during_the_rollback_fails_it(
        self, kube: Kube, app: str
    ) -> None:
        """A hotfix applied after the rollback read the workload is not reported as restored (chaos 2042)."""
        release = Release(kube, app, BLUE_GREEN)
        release.take_snapshot()
        release.step("deploy-preview")
        hotfix = V1.rsplit(":", 1)[0] + ":hotfix"

        def other_writer(beat: str) -> None:
            if beat == "removing the preview":
                kube.apply_as(
                    "hotfix-bot",
                    app,
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": "api"},
                        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": hotfix}]}}},
                    },
                    force=True,
                )

        with pytest.raises(ClusterError) as failed:
            release.rollback(on_beat=other_writer)
        assert failed.value.kind == "ownership-conflict"
        assert f"runs {hotfix}, not the restored {V1}" in str(failed.value)

    def test_an_undo_never_overwrites_an_image_it_was_not_told_to_replace(self, kube: Kube, app: str) -> None:
        """Undoing an ended release whose workload another writer changed since: nothing is written and
        the failure names the image that runs."""
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        _run(release, ROLLING_PATH)
        newer = V1.rsplit(":", 1)[0] + ":newer"
        _deploy_as_newer_release(kube, app, newer)
        with pytest.raises(ClusterError) as failed:
            release.rollback(replaces=[V2])
        assert failed.value.kind == "ownership-conflict"
        assert f"runs {newer}, not {V2}" in str(failed.value)
        stable = kube.deployment(app, "api")
        assert stable is not None and container_image(stable) == newer, "nothing was written"

    def test_an_undo_writes_only_over_the_deployment_it_checked(
        self, kube: Kube, app: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A newer release writing between the undo's check and its write: the write is pinned to
        the resourceVersion it checked, so it fails (409, retried) instead of overwriting; the retry's
        check then refuses, naming the newer image."""
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        _run(release, ROLLING_PATH)
        newer = V1.rsplit(":", 1)[0] + ":newer"
        read = Scene.read
        raced: list[str] = []

        def read_then_a_newer_release_writes(scene: Scene) -> Any:
            live = read(scene)
            if not raced:
                raced.append(newer)
                # A newer ringmaster release writes as ringmaster: no field-ownership conflict.
                _deploy_as_newer_release(kube, app, newer, manager=marks.FIELD_MANAGER)
            return live

        monkeypatch.setattr(Scene, "read", read_then_a_newer_release_writes)
        with pytest.raises(ClusterError) as first:
            release.rollback(replaces=[V2])
        assert first.value.kind == "transient" and "modified" in str(first.value)
        stable = kube.deployment(app, "api")
        assert stable is not None and container_image(stable) == newer, "the newer release's image stays"
        with pytest.raises(ClusterError) as retried:
            release.rollback(replaces=[V2])
        assert retried.value.kind == "ownership-conflict" and f"runs {newer}" in str(retried.value)


def _deploy_as_newer_release(kube: Kube, app: str, image: str, manager: str = "newer-release") -> None:
    kube.apply_as(
        manager,
        app,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}},
        },
        force=True,
    )


def _flag_record(*, environment_enabled: bool = False, written: bool = False) -> FlagRecord:
    """A flag record as a first flag step keeps it; ``written``: with a latest write (never kept)."""
    server = FlagServer(url="https://unleash.eu.example.com/api", project="default", environment="euw1")
    snapshot = FlagSnapshot(
        cluster="euw1-prod",
        flag="checkout-v2",
        project="default",
        environment="euw1",
        environment_enabled=environment_enabled,
    )
    strategy = flags.rollout_strategy(server, "checkout-v2", "euw1-prod", 5, "userId")
    last = FlagWrite(strategy=strategy.model_copy(update={"id": "s1"}), environment_enabled=True)
    return FlagRecord(server=server, snapshot=snapshot, last_written=last if written else None)


class TestSnapshots:
    @pytest.mark.parametrize("run", ["", "01a2462f-28b5-7d41-8071-c02fc8cf2af8"], ids=["no-run", "run"])
    def test_the_first_snapshot_of_a_release_wins(self, kube: Kube, app: str, run: str) -> None:
        """A repeated snapshot of the same run (a retried activity, a reset workflow) returns the
        recorded state even after the cluster changed; so does one of a release without a run."""
        release = Release(kube, app, ROLLING, run=run)
        first = release.take_snapshot()
        release.step("deploy")
        again = release.take_snapshot()
        assert again == first
        assert (first.image, first.version, first.replicas, first.hpa) == (V1, "v1", 10, None)

    def test_a_rerun_records_the_cluster_as_it_is_then(self, kube: Kube, app: str) -> None:
        """A new run of the same release (``--rerun``) gets its own snapshot of the changed cluster,
        and the first run keeps the one it took."""
        first = Release(kube, app, ROLLING, run="run-1")
        before_first = first.take_snapshot()
        first.step("deploy")
        first.wait("workload")
        kube.apps.patch_namespaced_deployment_scale("api", app, body={"spec": {"replicas": 4}})
        rerun = Release(kube, app, ROLLING, run="run-2").take_snapshot()
        assert (rerun.image, rerun.version, rerun.replicas) == (V2, "v2", 4)
        assert first.take_snapshot() == before_first
        stored = kube.core.read_namespaced_config_map("ringmaster-api-snapshot", app)
        assert sorted(stored.data) == ["api.v2.run-run-1", "api.v2.run-run-2"]

    def test_a_release_without_a_run_keeps_its_old_key(self, kube: Kube, app: str) -> None:
        """Releases started before runs were recorded still find the snapshot stored under ``api.v2``
        (and a run's snapshot is never taken for it)."""
        legacy = Release(kube, app, ROLLING)
        first = legacy.take_snapshot()
        legacy.step("deploy")
        Release(kube, app, ROLLING, run="run-1").take_snapshot()
        assert legacy.take_snapshot() == first
        stored = kube.core.read_namespaced_config_map("ringmaster-api-snapshot", app)
        assert sorted(stored.data) == ["api.v2", "api.v2.run-run-1"]

    @pytest.mark.parametrize(
        ("version", "run"),
        [("v2", "01a2462f-28b5-7d41-8071-c02fc8cf2af8"), ("1.4.0+build5", "a/b c"), ("v" * 80, "r" * 80)],
    )
    def test_snapshot_keys_are_configmap_keys(self, version: str, run: str) -> None:
        """Whatever the version and run id, the key is a valid ConfigMap data key, distinct per run."""
        ref = ReleaseRef(service="api", version=version, image=V1, run=run)
        key = marks.snapshot_key(ref)
        assert re.fullmatch(r"[-._a-zA-Z0-9]+", key) and len(key) <= 253, key
        assert key != marks.snapshot_key(ref.model_copy(update={"run": run + "x"}))
        assert key.startswith(marks.release_label(ref) + ".run-")

    def test_snapshot_records_what_rollback_needs(self, kube: Kube, app: str) -> None:
        """Selectors, the version label, marks and active Services are recorded in the details."""
        snapshot = Release(kube, app, ROLLING).take_snapshot()
        recorded = snapshots.recorded(snapshot)
        assert recorded.selector == {"app": "api"}
        assert recorded.template_version == "v1"
        assert recorded.marks == {"labels": {"ringmaster.dev/version": "v1"}, "annotations": {}}
        assert {name: s.selector for name, s in recorded.services.items()} == {"api": {"app": "api"}}

    def test_snapshots_live_in_a_configmap_per_workload(self, kube: Kube, app: str) -> None:
        """One ConfigMap ``ringmaster-api-snapshot`` holds one entry per release, found by label."""
        Release(kube, app, ROLLING).take_snapshot()
        Release(kube, app, ROLLING, version="v3").take_snapshot()
        stored = kube.core.read_namespaced_config_map("ringmaster-api-snapshot", app)
        assert sorted(stored.data) == ["api.v2", "api.v3"]
        assert stored.metadata.labels["ringmaster.dev/role"] == "snapshot"
        assert ClusterSnapshot.model_validate_json(stored.data["api.v2"]).version == "v1"

    def test_old_snapshots_are_pruned(self, kube: Kube, app: str) -> None:
        """Only the newest releases' snapshots are kept."""
        backend = kube.backend_with(snapshots_kept=2)
        for version in ("v2", "v3", "v4"):
            Release(kube, app, ROLLING, version=version, backend=backend).take_snapshot()
        stored = kube.core.read_namespaced_config_map("ringmaster-api-snapshot", app)
        assert sorted(stored.data) == ["api.v3", "api.v4"]

    def test_a_flag_record_is_kept_in_the_snapshot_and_the_first_one_wins(self, kube: Kube, app: str) -> None:
        """The flag as found joins the run's stored snapshot (without the run's latest write), every
        later read of the snapshot carries it, and a second record (a repeated first step that read its
        own write) changes nothing."""
        release = Release(kube, app, ROLLING, run="run-1")
        release.take_snapshot()
        found = _flag_record(environment_enabled=False, written=True)
        kept = kube.backend.keep_flag(kube.cluster, release.workload, release.ref, found)
        assert kept == found.model_copy(update={"last_written": None})
        again = kube.backend.keep_flag(
            kube.cluster, release.workload, release.ref, _flag_record(environment_enabled=True, written=False)
        )
        assert again == kept
        stored = kube.backend.recorded_snapshot(kube.cluster, release.workload, release.ref)
        assert stored is not None and stored.flag == kept
        assert release.take_snapshot().flag == kept
        other_run = Release(kube, app, ROLLING, run="run-2").take_snapshot()
        assert other_run.flag is None

    def test_a_flag_record_needs_the_snapshot_first(self, kube: Kube, app: str) -> None:
        """Without the run's workload snapshot there is nothing to keep the flag beside: a permanent
        error naming the ConfigMap, and nothing written."""
        release = Release(kube, app, ROLLING, run="run-1")
        with pytest.raises(ClusterError) as failed:
            kube.backend.keep_flag(kube.cluster, release.workload, release.ref, _flag_record())
        assert failed.value.kind == "permanent"
        assert f"{app}/ringmaster-api-snapshot" in str(failed.value)
        assert kube.backend.recorded_snapshot(kube.cluster, release.workload, release.ref) is None

    def test_snapshot_of_a_missing_workload_fails_permanently(self, kube: Kube, ns: str) -> None:
        """No Deployment, no snapshot: a permanent error naming the object."""
        with pytest.raises(ClusterError) as failed:
            Release(kube, ns, ROLLING).take_snapshot()
        assert failed.value.kind == "permanent"
        assert f"Deployment {ns}/api" in str(failed.value) and "404" in str(failed.value)

    def test_snapshot_records_an_autoscaler(self, kube: Kube, ns: str) -> None:
        """The HPA targeting the workload is named in the snapshot."""
        seed(kube, ns, replicas=4)
        hpa(kube, ns)
        assert Release(kube, ns, ROLLING).take_snapshot().hpa == "api"
