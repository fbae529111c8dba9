"""``deploy/worker/rollout.sh render``: each build of the worker is a Deployment of its own.

Rendered with the real ``kubectl kustomize`` (skipped where kubectl is missing); applying and
retiring need a Kubernetes cluster and a Temporal, which ``ringmaster deployment`` is tested against
(``tests/cli/test_upgrade_commands.py``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "worker" / "rollout.sh"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def _render(build: str, image: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "render", build, image], capture_output=True, text=True, timeout=60, check=False
    )


def _deployment(build: str, image: str) -> dict[str, Any]:
    done = _render(build, image)
    assert done.returncode == 0, done.stderr
    [deployment] = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "Deployment"]
    return deployment


class TestRender:
    def test_two_builds_are_two_deployments_side_by_side(self) -> None:
        """Each build gets its own name, selector, image and build id, so applying a new build leaves
        the old build's pods running (no rolling update across builds)."""
        old = _deployment("0.1.0-aaaaaaaaaaaa", "ghcr.io/example/ringmaster:0.1.0")
        new = _deployment("0.2.0-bbbbbbbbbbbb", "ghcr.io/example/ringmaster:0.2.0")
        assert old["metadata"]["name"] == "ringmaster-worker-0-1-0-aaaaaaaaaaaa"
        assert new["metadata"]["name"] == "ringmaster-worker-0-2-0-bbbbbbbbbbbb"
        for deployment, build, tag in (
            (old, "0.1.0-aaaaaaaaaaaa", "0.1.0"),
            (new, "0.2.0-bbbbbbbbbbbb", "0.2.0"),
        ):
            selector = deployment["spec"]["selector"]["matchLabels"]
            assert selector["ringmaster.dev/build-id"] == build
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            assert container["image"] == f"ghcr.io/example/ringmaster:{tag}"
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env["RINGMASTER_BUILD_ID"] == build
            assert env["RINGMASTER_WORKER_VERSIONING"] == "true"
            assert env["RINGMASTER_DEPLOYMENT_NAME"] == "ringmaster"
        assert not list((ROOT / "deploy" / "worker").glob(".render.*")), "the overlay is removed"

    def test_a_build_id_that_is_no_build_id_is_refused(self) -> None:
        """Exit 2 naming what a build id may hold, before anything is rendered."""
        done = _render("0.2.0 bad;id", "ghcr.io/example/ringmaster:0.2.0")
        assert done.returncode == 2
        assert "use letters, digits" in done.stderr
        assert not done.stdout
