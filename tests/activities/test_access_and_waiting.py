"""Cluster access (one client per cluster, credentials kept) and waiting (watches, heartbeats, aborts)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
import yaml

from activities.errors import ClusterError
from activities.kubernetes import KubernetesBackend
from activities.models import WaitInput
from policies.fleet import Fleet
from policies.plan import Workload
from tests.activities.support import NEVER_READY, Kube, Release, strategy

ROLLING = strategy({"rolling": {}})
CANARY = strategy({"canary": {"steps": [{"setWeight": 0}]}})
LEAK_SENTINEL = "leak-sentinel-7f3a9c"


class _Aborted(Exception):
    """What Temporal's heartbeat raises in a cancelled activity."""


def _two_clusters(kube: Kube, path: Path) -> Fleet:
    """A fleet of clusters ``a`` and ``b`` through two contexts (copies of the test's) written to ``path``."""
    raw = kube.fleet.model_dump(by_alias=True)
    context = raw["clusters"][0]["kubeContext"]
    document = yaml.safe_load(kube.kubeconfig.read_text())
    original = next(c for c in document["contexts"] if c["name"] == context)
    document["contexts"].append({**original, "name": f"{context}-b"})
    path.write_text(yaml.safe_dump(document))
    raw["clusters"] = [
        {"name": "a", "region": "eu-west-1", "kubeContext": context},
        {"name": "b", "region": "eu-west-1", "kubeContext": f"{context}-b"},
    ]
    return Fleet.model_validate(raw)


class TestClusterAccess:
    def test_one_client_per_cluster_built_once(self, kube: Kube, app: str, tmp_path: Path) -> None:
        """Every fleet cluster gets its own client at construction; the kubeconfig is not read again."""
        copy = tmp_path / "kubeconfig"
        backend = KubernetesBackend.from_kubeconfig(_two_clusters(kube, copy), copy)
        copy.unlink()
        clients = {name: api.api_client for name, api in backend.clusters.apis.items()}
        assert sorted(clients) == ["a", "b"] and clients["a"] is not clients["b"]
        workload = Workload(namespace=app, deployment="api", container="api")
        for name in ("a", "b", "a"):
            assert backend.evidence(name, workload).env_hosts
        assert {name: api.api_client for name, api in backend.clusters.apis.items()} == clients
        backend.close()

    def test_an_unknown_context_fails_at_construction(self, kube: Kube) -> None:
        """A cluster whose kubeContext is not in the kubeconfig is named before anything runs."""
        raw = kube.fleet.model_dump(by_alias=True)
        raw["clusters"][0]["kubeContext"] = "nowhere"
        with pytest.raises(ValueError, match=r"cluster rm-test: kubeContext 'nowhere'"):
            KubernetesBackend.from_kubeconfig(Fleet.model_validate(raw), kube.kubeconfig)

    def test_an_unknown_cluster_is_permanent(self, kube: Kube) -> None:
        """A cluster outside the worker's fleet is a permanent error."""
        with pytest.raises(ClusterError) as failed:
            kube.backend.evidence("elsewhere", Workload(namespace="a", deployment="b", container="c"))
        assert failed.value.kind == "permanent" and "not in this worker's fleet" in str(failed.value)

    def test_credentials_never_leave_the_worker(self, emulator: Kube, app: str, tmp_path: Path) -> None:
        """A kubeconfig token appears in no result, snapshot or error, even for refused requests."""
        assert emulator.admin is not None and emulator.emulated is not None
        document = yaml.safe_load(emulator.kubeconfig.read_text())
        document["users"][0]["user"] = {"token": LEAK_SENTINEL}
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(document))
        backend = KubernetesBackend.from_kubeconfig(emulator.fleet, path)
        release = Release(emulator, app, ROLLING, backend=backend)
        seen = [release.take_snapshot().model_dump_json(), release.step("deploy").model_dump_json()]
        seen.append(backend.evidence(emulator.cluster, release.workload).model_dump_json())
        emulator.admin.add_fault(emulator.emulated, verb="get", status=401, count=1)
        with pytest.raises(ClusterError) as failed:
            backend.evidence(emulator.cluster, release.workload)
        seen += [str(failed.value), failed.value.to_application_error().message]
        assert not [text for text in seen if LEAK_SENTINEL in text]
        backend.close()


class TestWaiting:
    def test_waits_heartbeat_every_few_seconds_and_stop_at_an_abort(self, kube: Kube, app: str) -> None:
        """While a rollout hangs the wait heartbeats within a watch's length; a raising heartbeat ends it."""
        release = Release(kube, app, ROLLING, version="v3", image=NEVER_READY)
        release.take_snapshot()
        release.step("deploy")
        beats: list[float] = []

        def heartbeat(_: str) -> None:
            beats.append(time.monotonic())
            if len(beats) == 7:
                raise _Aborted

        with pytest.raises(_Aborted):
            kube.backend.wait_rollout(_wait_input(release, "workload"), heartbeat)
        ended = time.monotonic()
        gaps = [b - a for a, b in itertools.pairwise(beats)]
        assert max(gaps) < 2.0, gaps
        assert max(gaps) > 0.5, "quiet stretches (no events) heartbeat too, once per watch"
        assert ended - beats[-1] < 0.5

    def test_no_progress_for_the_deadline_is_stuck(self, kube: Kube, app: str) -> None:
        """A status that stops changing for ``progress_deadline_seconds`` fails as rollout-stuck."""
        release = Release(kube, app, ROLLING, version="v3", image=NEVER_READY)
        release.take_snapshot()
        release.step("deploy")
        with pytest.raises(ClusterError) as failed:
            release.wait("workload", deadline=1)
        assert failed.value.kind == "rollout-stuck" and "no progress reported for 1s" in str(failed.value)

    def test_a_lost_watch_window_is_recovered(self, emulator: Kube, app: str) -> None:
        """A watch from a compacted version (410 Gone) reads the object again and keeps waiting."""
        assert emulator.admin is not None and emulator.emulated is not None
        admin, name = emulator.admin, emulator.emulated
        release = Release(emulator, app, ROLLING)
        release.take_snapshot()
        release.step("deploy")
        compacted: list[int] = []

        def heartbeat(_: str) -> None:
            if not compacted:  # move the cluster past the version just read, then forget the history
                emulator.core.create_namespaced_config_map(app, body={"metadata": {"name": "bump"}})
                compacted.append(admin.compact(name))

        since = emulator.last_request()
        result = emulator.backend.wait_rollout(_wait_input(release, "workload"), heartbeat)
        assert compacted and result.ready_replicas == 10
        reads = [r for r in emulator.requests(since) if r["verb"] == "get" and r["name"] == "api"]
        assert len(reads) >= 2, "the object is read again after the watch answered 410 Gone"

    def test_a_canary_at_zero_is_complete_at_once(self, kube: Kube, app: str) -> None:
        """Waiting on a canary of zero replicas returns immediately."""
        release = Release(kube, app, CANARY)
        release.take_snapshot()
        assert release.step("set-weight", 0).weight == 0
        assert release.wait("canary").ready_replicas == 0

    def test_a_deleted_deployment_ends_the_wait(self, kube: Kube, app: str) -> None:
        """A Deployment deleted while waited on is a permanent error, not an endless wait."""
        release = Release(kube, app, ROLLING, version="v3", image=NEVER_READY)
        release.take_snapshot()
        release.step("deploy")

        def heartbeat(_: str) -> None:
            if kube.deployment(app, "api") is not None:
                kube.apps.delete_namespaced_deployment("api", app)

        with pytest.raises(ClusterError) as failed:
            kube.backend.wait_rollout(_wait_input(release, "workload"), heartbeat)
        assert failed.value.kind == "permanent"

    def test_a_workload_changed_by_another_writer_fails_the_wait(self, kube: Kube, app: str) -> None:
        """Another tool takes the image while the release rolls out: the wait names the image it found
        instead of reporting the rollout complete (found by chaos seed 92)."""
        release = Release(kube, app, ROLLING)
        release.take_snapshot()
        release.step("deploy")
        taken = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": app},
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "r/api:hotfix"}]}}},
        }
        kube.apps.patch_namespaced_deployment(
            "api",
            app,
            taken,
            field_manager="hotfix-bot",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        with pytest.raises(ClusterError) as failed:
            release.wait("workload")
        assert failed.value.kind == "ownership-conflict"
        assert "r/api:hotfix" in str(failed.value) and release.ref.image in str(failed.value)


def _wait_input(release: Release, target: str) -> WaitInput:
    return WaitInput.model_validate(
        {
            "release": release.ref,
            "cluster": release.target,
            "workload": release.workload,
            "strategy": release.strategy,
            "target": target,
        }
    )
