"""The stack ``bench_scale.py`` releases into, and what it watches while releases run.

:func:`up` starts the sandbox (:mod:`sandbox.stack`: the example fleet's seven emulated clusters,
traffic, a Prometheus per jurisdiction, the OIDC issuer with identity ``trusted``) and a Temporal
dev server of its own with a metrics port, since heartbeats reach no history and are counted from
the server's ``service_requests``. :func:`start_worker` starts a ``ringmaster worker`` process under
any name, so two can share the task queues. Services are seeded in namespaces named like them.
While a run goes, :class:`RequestLog` polls the emulator's request log of writes (it keeps only the
newest 10,000 requests per cluster) and :class:`Sampler` reads the workers' CPU and memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from ringmaster import readiness
from ringmaster.converter import data_converter
from sandbox import identity as sandbox_identity
from sandbox import seed
from sandbox import stack as sandbox_stack
from sandbox import temporal as sandbox_temporal
from sandbox.apiserver.adminclient import AdminClient
from sandbox.processes import Processes, ProcessRecord, ProcessSpec, free_port

FLEET = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "fleet.yaml"
CONFIG = """\
# Deadlines at 300 s: on a starved machine the controller is late, and that is not a failed rollout.
controller: {tickSeconds: 0.1, podReadySeconds: 0.5, progressDeadlineScale: 0.5}
traffic: {requestsPerSecond: 20}
prometheus: {scrapeIntervalSeconds: 1}
unleash: {enabled: false}
identity: {mode: trusted}   # the bench submits and approves without proofs, as two named people
startupTimeoutSeconds: 300
services: {count: %d}
"""
VERSION = "v2"
WRITES = ("create", "update", "patch", "delete")
HEARTBEAT_OPERATIONS = ("RecordActivityTaskHeartbeat", "RecordActivityTaskHeartbeatById")


def workload(service: str) -> dict[str, str]:
    """Where the sandbox seeds a service (:func:`sandbox.seed.workload`): a namespace, Deployment and
    container named like it."""
    return {"namespace": service, "deployment": service, "container": service}


def image(service: str, version: str) -> str:
    """The image of ``version`` of ``service``."""
    return f"registry.eu.example.com/{service}:{version}"


@dataclass
class Bench:
    """The running stack: sandbox, dev server (with its metrics port), client, admin, request log."""

    sandbox: sandbox_stack.Sandbox
    processes: Processes
    identity: sandbox_identity.Files
    address: str
    ui: str
    metrics_url: str
    client: Client
    admin: AdminClient
    log: RequestLog
    services: list[str]


def _start_temporal(processes: Processes) -> ProcessRecord:
    """The sandbox's dev server, with ``--metrics-port`` (heartbeats are counted from its metrics)."""
    port, ui_port, metrics_port = free_port(), free_port(), free_port()
    address = f"127.0.0.1:{port}"
    argv = [str(sandbox_temporal.temporal_binary()), "server", "start-dev", "--ip", "127.0.0.1"]
    argv += ["--port", str(port), "--ui-port", str(ui_port), "--metrics-port", str(metrics_port)]
    argv += ["--log-level", "warn", "--db-filename", str(processes.directory / "temporal.db")]
    argv += sandbox_temporal.search_attribute_flags()

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        if not sandbox_temporal.healthy(address):
            return None
        return {
            "address": address,
            "ui": f"http://127.0.0.1:{ui_port}",
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
        }

    spec = ProcessSpec(sandbox_temporal.TEMPORAL, argv, ready=ready, startup_timeout=60.0, poll_interval=0.5)
    return processes.start(spec)


def start_worker(bench: Bench, name: str) -> ProcessRecord:
    """A ``ringmaster worker`` process named ``name``, configured as the sandbox configures its own."""
    log = bench.processes.directory / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        with log.open("rb") as text:
            text.seek(offset)
            return (
                {"temporal": bench.address}
                if readiness.READY in text.read().decode(errors="replace")
                else None
            )

    env = sandbox_temporal.worker_env(
        address=bench.address,
        ui=bench.ui,
        fleet=bench.sandbox.fleet,
        kubeconfig=bench.sandbox.kubeconfig,
        identity=bench.identity,
    )
    # Heartbeats as production sends them (the sandbox's worker sends one a second, for snappy stops
    # in the demo): what reaches the server is one of the figures.
    env.pop("RINGMASTER_HEARTBEAT_THROTTLE_SECONDS", None)
    env.pop("RINGMASTER_ANALYSIS_HEARTBEAT_THROTTLE_SECONDS", None)
    argv = [sys.executable, "-m", "ringmaster.cli", "worker"]
    spec = ProcessSpec(name, argv, ready=ready, env=env, startup_timeout=120.0, poll_interval=0.2)
    return bench.processes.start(spec)


def _start(
    directory: Path, services: int
) -> tuple[sandbox_stack.Sandbox, sandbox_identity.Files, ProcessRecord]:
    """A fresh sandbox in ``directory`` running ``services`` services in every cluster (whatever an
    earlier run left there is stopped first), the identity files, the dev server."""
    directory.mkdir(parents=True, exist_ok=True)
    sandbox_stack.down(directory)
    (directory / "sandbox.yaml").write_text(CONFIG % services, encoding="utf-8")
    sandbox = sandbox_stack.up(directory, FLEET, directory / "sandbox.yaml")
    processes = Processes(directory)
    identity, _ = sandbox_identity.ensure(processes, "trusted", 120.0)
    return sandbox, identity, _start_temporal(processes)


async def up(directory: Path, services: int) -> Bench:
    """Start the stack in ``directory`` with ``services`` services (see the module docstring)."""
    sandbox, identity, temporal = await asyncio.to_thread(_start, directory, services)
    processes = Processes(directory)
    address = str(temporal.info["address"])
    client = await Client.connect(address, data_converter=data_converter)
    admin = AdminClient(sandbox.url, timeout=30.0)
    log = RequestLog(admin, sandbox.clusters)
    log.start()
    return Bench(
        sandbox=sandbox,
        processes=processes,
        identity=identity,
        address=address,
        ui=str(temporal.info["ui"]),
        metrics_url=str(temporal.info["metrics"]),
        client=client,
        admin=admin,
        log=log,
        services=seed.service_names(services),
    )


def down(bench: Bench) -> None:
    """Stop everything the bench started."""
    bench.log.stop()
    sandbox_stack.down(bench.sandbox.directory)


class RequestLog:
    """The emulator's request log of writes, polled while the run goes (the emulator keeps only the
    newest 10,000 requests of each cluster)."""

    def __init__(self, admin: AdminClient, clusters: list[str]) -> None:
        self._admin = admin
        self._clusters = clusters
        self._last = {(c, v): 0 for c in clusters for v in WRITES}
        self.records: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="request-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def poll(self) -> None:
        """Fetch every write logged since the last poll."""
        for cluster in self._clusters:
            for verb in WRITES:
                found = self._admin.requests(cluster, since=self._last[(cluster, verb)], verb=verb)
                if found:
                    self._last[(cluster, verb)] = int(found[-1]["seq"])
                    self.records += [{**r, "cluster": cluster} for r in found]

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(OSError, ValueError):
                self.poll()


class Sampler:
    """CPU seconds (since the sampler started) and memory of processes, and the machine's load
    average, read from ``/proc`` twice a second."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seen: dict[str, dict[str, float]] = {name: {} for name in pids}
        self.loads: list[float] = []
        """The 1-minute load average at each sample: other work on the machine slows every figure."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        """Read every worker still alive; a dead one keeps its last reading."""
        for name, pid in self.pids.items():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                status = Path(f"/proc/{pid}/status").read_text()
            except (OSError, IndexError):
                continue
            if stat[0] == "Z":
                continue
            memory = {
                line.split(":")[0]: float(line.split()[1]) / 1024
                for line in status.splitlines()
                if line.startswith(("VmRSS", "VmHWM"))
            }
            seen = self.seen[name]
            cpu = (int(stat[11]) + int(stat[12])) / self._tick
            seen.setdefault("cpu0", cpu)
            seen["cpu"] = cpu - seen["cpu0"]
            seen["rss"] = memory.get("VmRSS", 0.0)
            seen["hwm"] = max(seen.get("hwm", 0.0), memory.get("VmHWM", 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()
            self.loads.append(os.getloadavg()[0])


def heartbeats(metrics_url: str) -> float:
    """Heartbeats the dev server has answered since it started (its ``service_requests`` counter)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:  # noqa: S310 - our own server
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("service_requests{") and any(
            f'operation="{op}"' in line for op in HEARTBEAT_OPERATIONS
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total
