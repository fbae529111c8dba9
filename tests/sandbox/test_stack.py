"""The whole local stack (``make sandbox``): clusters, Prometheus, Temporal and a worker, as a user runs it.

One stack for the module, started through ``python -m sandbox up`` in a temporary directory; the
tests run in file order and the last one takes it down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import prometheus as sandbox_prometheus
from sandbox import stack
from sandbox import temporal as sandbox_temporal
from sandbox.processes import Processes, ProcessRecord, is_alive
from tests.sandbox.support import sandbox_cli
from tests.support.prometheus import query
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "examples" / "fleet.yaml"
PLAN = ROOT / "deploy" / "examples" / "demo-plan.yaml"
SETTINGS = """\
controller: {tickSeconds: 0.05, podReadySeconds: 0.1, progressDeadlineScale: 0.05}
identity: {mode: trusted}
"""
# Trusted: the worker takes the client's word, so this module's requests work whether or not the CLI
# signs them; tests/sandbox/test_identity.py verifies the sandbox's keys and issuer under `verified`.
pytestmark = pytest.mark.slow

BASE = ("apiserver", "postgres", "unleash-eu", "unleash-us", "traffic", "prometheus-eu", "prometheus-us")


def in_shell(directory: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in bash after ``source DIR/env``, from a bare environment (no venv on PATH)."""
    bare = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin", "GITHUB_ACTOR": "test"}
    return subprocess.run(
        ["bash", "-c", f"set -e; source {directory / 'env'}; {script}"],
        capture_output=True,
        text=True,
        env=bare,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def records(directory: Path) -> dict[str, ProcessRecord]:
    """The processes state.json records."""
    return Processes(directory).load().processes


def pids(directory: Path) -> dict[str, int]:
    """Pid of every recorded process."""
    return {name: record.pid for name, record in records(directory).items()}


def listening(address: str) -> bool:
    """Whether something accepts connections at ``host:port`` (``http://`` allowed)."""
    host, port = address.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example fleet's whole stack, started with ``python -m sandbox up``."""
    where = tmp_path_factory.mktemp("stack")
    (where / "sandbox.yaml").write_text(SETTINGS, encoding="utf-8")
    started = sandbox_cli("up", "--dir", str(where), "--fleet", str(FLEET))
    assert started.returncode == 0, started.stderr
    assert f"source {where / 'env'}" in started.stdout
    yield where
    stack.down(where)


class TestUp:
    def test_starts_every_process_of_the_stack(self, directory: Path) -> None:
        """up starts the clusters, PostgreSQL and one Unleash per jurisdiction, traffic, one Prometheus per
        jurisdiction, Temporal and a worker."""
        assert list(Processes(directory).running()) == [*BASE, "oidc", "temporal", "worker"]
        temporal = records(directory)["temporal"].info
        assert sandbox_temporal.healthy(temporal["address"])
        assert records(directory)["worker"].info == {
            "temporal": temporal["address"],
            "code": sandbox_temporal.code_digest(),
        }

    def test_up_again_reuses_a_healthy_stack(self, directory: Path) -> None:
        """A second up on a healthy stack with unchanged code restarts nothing."""
        before = pids(directory)
        again = sandbox_cli("up", "--dir", str(directory), "--fleet", str(FLEET))
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert pids(directory) == before

    def test_status_shows_temporal_the_worker_and_the_ui(self, directory: Path) -> None:
        """status lists every process, Temporal's UI link, and how to source the env file."""
        shown = sandbox_cli("status", "--dir", str(directory))
        assert shown.returncode == 0, shown.stderr
        for name in (*BASE, "oidc", "temporal", "worker"):
            assert f"{name}: running" in shown.stdout
        assert f"UI: {records(directory)['temporal'].info['ui']}" in shown.stdout
        assert f"source {(directory / 'env').resolve()}" in shown.stdout


class TestEnvFile:
    def test_exports_absolute_settings_for_ringmaster(self, directory: Path) -> None:
        """After sourcing DIR/env, a shell names the sandbox's Temporal, UI, fleet and kubeconfig."""
        temporal = records(directory)["temporal"].info
        done = in_shell(
            directory,
            'echo "$TEMPORAL_ADDRESS|$TEMPORAL_NAMESPACE|$RINGMASTER_UI_URL|$RINGMASTER_FLEET|'
            '$RINGMASTER_KUBECONFIG"; command -v ringmaster',
        )
        assert done.returncode == 0, done.stderr
        values, ringmaster = done.stdout.splitlines()
        assert values.split("|") == [
            temporal["address"],
            "default",
            temporal["ui"],
            str((directory / "fleet.yaml").resolve()),
            str((directory / "kubeconfig").resolve()),
        ]
        assert ringmaster == str(Path(sys.executable).with_name("ringmaster"))

    def test_exports_the_identity_files(self, directory: Path) -> None:
        """DIR/env names the worker's identity policy and attestation key, and alice's signing key."""
        done = in_shell(
            directory,
            'echo "$RINGMASTER_IDENTITY_POLICY|$RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE|'
            '$RINGMASTER_SIGNING_KEY"',
        )
        assert done.returncode == 0, done.stderr
        identity = (directory / "identity").resolve()
        assert done.stdout.strip().split("|") == [
            str(identity / "identity.yaml"),
            str(identity / "attestation.key"),
            str(identity / "alice"),
        ]

    def test_ringmaster_and_kubectl_reach_the_sandbox(self, directory: Path) -> None:
        """Through the env file, submit starts a release, the worker answers status, kubectl sees it."""
        done = in_shell(
            directory,
            f"ringmaster submit {PLAN} --version v2 --image registry.eu.example.com/api:v2 --output json;"
            " ringmaster status api:v2;"
            ' kubectl --kubeconfig "$RINGMASTER_KUBECONFIG" --context euw1-internal get deploy api -n api'
            " -o name",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "api:v2" in done.stdout
        assert done.stdout.rstrip().endswith("deployment.apps/api")


class TestRestarts:
    def test_a_worker_on_other_code_is_replaced_alone(self, directory: Path) -> None:
        """When the code differs from the worker's, up replaces that worker and nothing else."""
        before = records(directory)
        changed = stack.up(directory, FLEET, temporal=True, code="another digest")
        assert changed.started == ("worker",)
        assert changed.reasons == ("the code changed since the worker started",)
        after = records(directory)
        assert after["worker"].pid != before["worker"].pid
        assert after["worker"].info["code"] == "another digest"
        assert not is_alive(before["worker"])
        assert is_alive(after["worker"])
        assert {n: r.pid for n, r in after.items() if n != "worker"} == {
            n: r.pid for n, r in before.items() if n != "worker"
        }
        back = sandbox_cli("up", "--dir", str(directory), "--fleet", str(FLEET))
        assert back.returncode == 0, back.stderr
        assert "restarted because the code changed" in back.stdout
        assert records(directory)["worker"].info["code"] == sandbox_temporal.code_digest()

    def test_a_dead_temporal_is_replaced_with_its_worker(self, directory: Path) -> None:
        """When Temporal died, up starts a new one and a worker polling it; the clusters keep running."""
        before = records(directory)
        os.killpg(before["temporal"].pgid, signal.SIGKILL)
        eventually(lambda: not is_alive(before["temporal"]), timeout=10, what="Temporal killed")
        again = stack.up(directory, FLEET, temporal=True)
        assert again.started == ("temporal", "worker")
        after = records(directory)
        assert after["worker"].info["temporal"] == after["temporal"].info["address"] == again.temporal
        assert not is_alive(before["worker"])
        assert {n: after[n].pid for n in BASE} == {n: before[n].pid for n in BASE}
        assert f"export TEMPORAL_ADDRESS={again.temporal}" in (directory / "env").read_text()

    def test_a_prometheus_restarted_by_jurisdiction_keeps_its_address_and_data(self, directory: Path) -> None:
        """One jurisdiction's Prometheus, stopped and restarted, serves its old samples and scrapes anew."""
        processes = Processes(directory)
        before = records(directory)["prometheus-eu"]
        url = str(before.info["url"])
        samples = "sum(count_over_time(up[1h]))"
        had = query(url, samples)
        assert had is not None
        sandbox_prometheus.stop_server(processes, "EU")
        assert not listening(url)
        restarted_at = time.time()
        again = sandbox_prometheus.restart_server(processes, "EU")
        assert again.info["url"] == url
        assert again.pid != before.pid
        assert (query(url, samples) or 0) >= had
        eventually(
            lambda: (query(url, "max(timestamp(up))") or 0) > restarted_at, timeout=15, what="scraping again"
        )


class TestCodeDigest:
    def test_follows_sources_not_bytecode(self, tmp_path: Path) -> None:
        """The digest changes with a .py file's content or name, not with __pycache__ or other files."""
        package = tmp_path / "pkg"
        (package / "__pycache__").mkdir(parents=True)
        (package / "a.py").write_text("x = 1\n")
        first = sandbox_temporal.code_digest([package])
        (package / "__pycache__" / "a.cpython.pyc").write_bytes(b"\0")
        (package / "notes.txt").write_text("hello")
        assert sandbox_temporal.code_digest([package]) == first
        (package / "a.py").write_text("x = 2\n")
        assert sandbox_temporal.code_digest([package]) != first
        (package / "a.py").write_text("x = 1\n")
        (package / "a.py").rename(package / "b.py")
        assert sandbox_temporal.code_digest([package]) != first

    def test_covers_the_worker_packages(self) -> None:
        """The default digest reads every product package the worker imports, and the lock file."""
        names = {root.name for root in sandbox_temporal.code_roots()}
        assert names == {"policies", "workflows", "activities", "ringmaster", "uv.lock"}


class TestDown:
    def test_down_leaves_no_process_or_port(self, directory: Path) -> None:
        """down stops every process (Temporal and the worker too), frees every port and removes env."""
        before = records(directory)
        addresses = [
            str(before["apiserver"].info["url"]),
            str(before["traffic"].info["url"]),
            str(before["temporal"].info["address"]),
            str(before["temporal"].info["ui"]),
            str(before["oidc"].info["url"]),
            *(str(before[f"prometheus-{j}"].info["url"]) for j in ("eu", "us")),
            *(str(before[f"unleash-{j}"].info["url"]) for j in ("eu", "us")),
            str(before["postgres"].info["address"]),
        ]
        assert all(listening(a) for a in addresses)
        stopped = sandbox_cli("down", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert set(stopped.stdout.removeprefix("stopped: ").strip().split(", ")) == set(before)
        assert not any(is_alive(record) for record in before.values())
        eventually(lambda: not any(listening(a) for a in addresses), timeout=10, what="ports released")
        assert not (directory / "env").exists()
        assert not list(directory.glob("temporal.db*"))
        assert not (directory / "postgres-data").exists()
        mentions = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _mentions(p, directory)]
        assert mentions == []
        assert sandbox_cli("status", "--dir", str(directory)).returncode == 3


def _mentions(proc: Path, directory: Path) -> bool:
    """Whether a live (non-zombie) process names ``directory`` in its command line or environment."""
    try:
        said = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and str(directory).encode() in said
