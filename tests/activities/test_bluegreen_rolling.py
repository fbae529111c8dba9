"""The blue-green and rolling strategies against a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from activities.errors import ClusterError
from tests.activities.support import NEVER_READY, V1, V2, Kube, Release, autoscale, hpa, strategy
from tests.support.cluster import container_image

BLUE_GREEN = strategy({"blueGreen": {"scaleDownDelaySeconds": 0}})
ROLLING = strategy({"rolling": {}})
PREVIEW_SELECTOR = {"ringmaster.dev/role": "preview", "ringmaster.dev/workload": "api"}


def _selector(kube: Kube, ns: str, name: str = "api") -> dict[str, str]:
    service = kube.service(ns, name)
    assert service is not None
    return dict(service["spec"]["selector"])


def _deployment(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    found = kube.deployment(ns, name)
    assert found is not None, name
    return found


class TestBlueGreen:
    def test_preview_runs_at_full_size_without_live_traffic(self, kube: Kube, app: str) -> None:
        """deploy-preview: a full-size preview behind its own Service; the active Service is unchanged."""
        release = Release(kube, app, BLUE_GREEN)
        release.take_snapshot()
        assert release.step_twice("deploy-preview").weight == 0
        preview = _deployment(kube, app, "api-preview")
        assert preview["spec"]["replicas"] == 10 and container_image(preview) == V2
        labels = preview["spec"]["template"]["metadata"]["labels"]
        assert "app" not in labels and labels["ringmaster.dev/version"] == "v2"
        assert _selector(kube, app) == {"app": "api"}
        assert _selector(kube, app, "api-preview") == PREVIEW_SELECTOR
        assert release.wait("preview").ready_replicas == 10

    def test_the_switch_keeps_the_previous_version_up(self, kube: Kube, app: str) -> None:
        """switch: the active Service selects the preview; the workload still runs v1 at full size."""
        release = Release(kube, app, BLUE_GREEN)
        release.take_snapshot()
        release.step("deploy-preview")
        release.wait("preview")
        assert release.step_twice("switch").weight == 100
        assert _selector(kube, app) == PREVIEW_SELECTOR
        stable = _deployment(kube, app, "api")
        assert container_image(stable) == V1 and stable["spec"]["replicas"] == 10
        release.rollback()
        assert _selector(kube, app) == {"app": "api"}, "a rollback in the delay is a switch back"
        assert kube.deployment(app, "api-preview") is None

    def test_promotion_switches_the_service_once_then_moves_the_workload(self, kube: Kube, app: str) -> None:
        """promote: the active Service selects the ready preview pods, then the workload rolls."""
        release = Release(kube, app, BLUE_GREEN)
        release.take_snapshot()
        release.step("deploy-preview")
        release.wait("preview")
        assert release.step_twice("promote").weight == 100
        assert _selector(kube, app) == PREVIEW_SELECTOR
        stable = _deployment(kube, app, "api")
        assert container_image(stable) == V2 and stable["spec"]["replicas"] == 10
        release.wait("workload")
        release.step_twice("cleanup")
        assert _selector(kube, app) == {"app": "api"}  # the workload itself serves the release
        assert kube.deployment(app, "api-preview") is None and kube.service(app, "api-preview") is None
        service = kube.service(app, "api")
        assert service is not None and service["metadata"]["labels"]["ringmaster.dev/release"] == "api.v2"

    def test_the_switch_is_one_write_per_service(self, emulator: Kube, app: str) -> None:
        """Promotion changes the active Service in one successful write (a refused apply changes nothing)."""
        release = Release(emulator, app, BLUE_GREEN)
        release.take_snapshot()
        release.step("deploy-preview")
        release.wait("preview")
        since = emulator.last_request()
        release.step("promote")
        writes = [
            r for r in emulator.requests(since) if r["method"] == "PATCH" and r["resource"] == "services"
        ]
        assert [r["name"] for r in writes if r["status"] == 200] == ["api"]

    def test_promotion_waits_for_a_ready_preview(self, kube: Kube, app: str) -> None:
        """A preview that never becomes ready is never given traffic: promote fails and the Service stays."""
        impatient = kube.backend_with(ready_wait_seconds=1.0)
        release = Release(kube, app, BLUE_GREEN, version="v3", image=NEVER_READY, backend=impatient)
        release.take_snapshot()
        release.step("deploy-preview")
        with pytest.raises(ClusterError) as failed:
            release.step("promote")
        assert failed.value.kind in ("transient", "rollout-stuck")
        assert _selector(kube, app) == {"app": "api"}
        assert container_image(_deployment(kube, app, "api")) == V1

    def test_cleanup_waits_for_the_released_workload(self, kube: Kube, app: str) -> None:
        """cleanup never points the Service back at a workload that is not fully available."""
        release = Release(kube, app, BLUE_GREEN)
        release.take_snapshot()
        release.step("deploy-preview")
        release.wait("preview")
        release.step("promote")
        release.wait("workload")
        release.step("cleanup")
        assert _selector(kube, app) == {"app": "api"}

    def test_preview_matches_the_autoscaled_count(self, kube: Kube, app: str) -> None:
        """With an HPA the preview gets the autoscaler's current count, and the workload's is left alone."""
        hpa(kube, app)
        autoscale(kube, app, 6)
        release = Release(kube, app, BLUE_GREEN)
        release.take_snapshot()
        release.step("deploy-preview")
        assert _deployment(kube, app, "api-preview")["spec"]["replicas"] == 6
        release.wait("preview")
        release.step("promote")
        assert _deployment(kube, app, "api")["spec"]["replicas"] == 6


class TestRolling:
    def test_deploy_sets_the_image_and_version(self, kube: Kube, app: str) -> None:
        """deploy: the workload's container image and pod version label move to the release, then it rolls."""
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        assert release.step_twice("deploy").weight == 100
        stable = _deployment(kube, app, "api")
        assert container_image(stable) == V2
        assert stable["spec"]["template"]["metadata"]["labels"]["ringmaster.dev/version"] == "v2"
        assert stable["metadata"]["labels"]["ringmaster.dev/ring"] == "beta"
        assert stable["metadata"]["annotations"]["ringmaster.dev/version"] == "v2"
        assert release.wait("workload").ready_replicas == 10
        assert release.beats, "the wait heartbeats"

    def test_a_stuck_rollout_fails_the_wait(self, kube: Kube, app: str) -> None:
        """An image that never becomes ready fails the wait as rollout-stuck after the progress deadline."""
        kube.apps.patch_namespaced_deployment(
            "api", app, body={"spec": {"progressDeadlineSeconds": 20}}, field_manager="kubectl-edit"
        )
        release = Release(kube, app, ROLLING, version="v3", image=NEVER_READY)
        release.take_snapshot()
        release.step("deploy")
        with pytest.raises(ClusterError) as failed:
            release.wait("workload")
        assert failed.value.kind == "rollout-stuck"
        assert "ProgressDeadlineExceeded" in str(failed.value) or "progress" in str(failed.value)
        error = failed.value.to_application_error()
        assert error.non_retryable and error.type == "RolloutStuck"

    def test_versions_that_are_not_label_values_are_hashed_in_labels(self, kube: Kube, app: str) -> None:
        """A version such as ``1.4.0+build5`` is exact in annotations and a valid, stable label value."""
        release = Release(kube, app, ROLLING, version="1.4.0+build5")
        release.take_snapshot()
        release.step("deploy")
        stable = _deployment(kube, app, "api")
        label = stable["metadata"]["labels"]["ringmaster.dev/version"]
        assert label.startswith("1.4.0-build5-") and len(label) <= 63
        assert stable["metadata"]["annotations"]["ringmaster.dev/version"] == "1.4.0+build5"
        assert stable["spec"]["template"]["metadata"]["labels"]["ringmaster.dev/version"] == label
        assert kube.backend.inspect(kube.cluster, release.workload).version == "1.4.0+build5"
