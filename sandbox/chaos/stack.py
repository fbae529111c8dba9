"""The local stack a chaos run releases into, and the faults it can do to it.

``up`` starts the whole sandbox (emulated clusters with fast rollouts, traffic, one Prometheus per
jurisdiction, a Temporal dev server on a SQLite file, a ``ringmaster worker`` process) in a
directory of its own. :class:`Stack` then does what a bad day does to it: the worker killed
(SIGKILL) or stopped (SIGTERM) and started again, the dev server stopped and started on the same
address and database, a Prometheus stopped and started, and Kubernetes API faults through the
emulator's admin endpoint, scoped to one scenario's namespace. Process faults are serialised: one
at a time, each waits out its downtime before the next begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from policies import loading
from ringmaster.converter import data_converter
from sandbox import prometheus as sandbox_prometheus
from sandbox import settings
from sandbox import stack as sandbox_stack
from sandbox import temporal as sandbox_temporal
from sandbox.apiserver.adminclient import AdminClient
from sandbox.processes import Processes
from sandbox.trafficclient import TrafficClient

CONFIG = """\
controller:
  tickSeconds: 0.1
  podReadySeconds: 0.3
  progressDeadlineScale: 0.05
traffic:
  requestsPerSecond: 40
prometheus:
  scrapeIntervalSeconds: 1
unleash:
  enabled: false  # no scenario reads a feature flag
identity:
  mode: trusted  # the runner sends its controls straight through the client, without proofs
worker:
  bakePartitionClusters: 1  # every ring bake in bake workflows of one cluster (the large-ring path)
"""

API_FAULTS: dict[str, dict[str, Any]] = {
    "api-5xx": {"status": 503, "message": "etcdserver: leader changed"},
    "api-429": {"status": 429, "message": "too many requests", "retryAfterSeconds": 1},
    "api-drop": {"drop": True},
}


@dataclass
class Stack:
    """A running chaos stack: the sandbox, its processes and a Temporal client."""

    sandbox: sandbox_stack.Sandbox
    client: Client
    admin: AdminClient
    traffic: TrafficClient
    code: str
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    counts: dict[str, int] = field(default_factory=dict)
    """Process faults done, by kind, and how many the stack recovered from."""

    @property
    def directory(self) -> Path:
        return self.sandbox.directory

    @property
    def processes(self) -> Processes:
        return Processes(self.sandbox.directory)

    def clusters(self) -> list[str]:
        """The clusters scenarios draw from (see :func:`drawable`)."""
        return drawable(self.sandbox.fleet)

    def env(self) -> dict[str, str]:
        """What a ``ringmaster`` command needs to use this stack."""
        return {
            **os.environ,
            **sandbox_temporal.client_env(
                address=self.sandbox.temporal,
                ui=self.sandbox.ui,
                fleet=self.sandbox.fleet,
                kubeconfig=self.sandbox.kubeconfig,
                identity=self.sandbox.identity,
            ),
        }

    # --- process faults -----------------------------------------------------------------------

    async def worker_down(self, sig: signal.Signals, downtime: float) -> None:
        """Stop the worker with ``sig`` (SIGKILL: no chance to hand anything over), start it again later."""
        async with self._lock:
            await asyncio.to_thread(self._stop_worker, sig)
            await asyncio.sleep(downtime)
            await asyncio.to_thread(self._start_worker)
            self._count("worker-kill" if sig == signal.SIGKILL else "worker-term")

    async def temporal_down(self, downtime: float) -> None:
        """Stop the dev server, and start it again on the same address and database."""
        async with self._lock:
            record = self.processes.running()[sandbox_temporal.TEMPORAL]
            port = int(str(record.info["address"]).rsplit(":", 1)[1])
            ui_port = int(str(record.info["ui"]).rsplit(":", 1)[1])
            await asyncio.to_thread(self.processes.stop, sandbox_temporal.TEMPORAL)
            await asyncio.sleep(downtime)
            await asyncio.to_thread(
                sandbox_temporal.start_temporal, self.processes, port=port, ui_port=ui_port
            )
            self._count("temporal-restart")

    async def prometheus_down(self, jurisdiction: str, downtime: float) -> None:
        """Stop one jurisdiction's Prometheus, and start it again on the same address."""
        async with self._lock:
            await asyncio.to_thread(sandbox_prometheus.stop_server, self.processes, jurisdiction)
            await asyncio.sleep(downtime)
            await asyncio.to_thread(sandbox_prometheus.restart_server, self.processes, jurisdiction)
            self._count("prometheus-restart")

    def _stop_worker(self, sig: signal.Signals) -> None:
        record = self.processes.running().get(sandbox_temporal.WORKER)
        if record is not None and sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pgid, signal.SIGKILL)
        self.processes.stop(sandbox_temporal.WORKER, grace=15.0)

    def _start_worker(self) -> None:
        sandbox_temporal.start_worker(
            self.processes,
            address=self.sandbox.temporal,
            ui=self.sandbox.ui,
            fleet=self.sandbox.fleet,
            kubeconfig=self.sandbox.kubeconfig,
            code=self.code,
            identity=self.sandbox.identity,
            tuning=settings.load(None, self.sandbox.directory).worker.env(),
        )

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    # --- Kubernetes API faults ----------------------------------------------------------------

    def api_fault(self, cluster: str, namespace: str, kind: str, seconds: float) -> str:
        """Add one fault to the requests of ``namespace`` in ``cluster``; returns its id."""
        path = f"*/namespaces/{namespace}/*"
        if kind == "api-latency":
            spec: dict[str, Any] = {"latencySeconds": seconds, "count": 1}
        elif kind == "api-403":
            spec = {"status": 403, "message": "chaos: RBAC revoked", "verb": "patch", "count": 1}
        else:
            spec = {**API_FAULTS[kind], "durationSeconds": seconds}
        added = self.admin.add_fault(cluster, path=path, **spec)
        return str(added["id"])

    def clear_faults(self, cluster: str, ids: list[str]) -> None:
        """Remove the given faults of ``cluster`` (those already expired are gone anyway)."""
        live = {str(f["id"]) for f in self.admin.faults(cluster)}
        for fault_id in ids:
            if fault_id in live:
                self.admin.remove_fault(cluster, fault_id)


FLEET = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "fleet.yaml"
"""The example fleet: seven clusters in four regions of two jurisdictions."""


def drawable(fleet: Path) -> list[str]:
    """The clusters of ``fleet`` scenarios draw from: all but the regulated ones.

    A regulated cluster is entered only after an earlier cluster of its jurisdiction, so drawn
    plans would mostly be denied; the residency tests cover that, scenarios cover rollouts.
    """
    return [c.name for c in loading.load_fleet(fleet).clusters if not c.regulated]


def _start(directory: Path) -> sandbox_stack.Sandbox:
    """A fresh stack: whatever an earlier run left in ``directory`` is stopped and forgotten."""
    directory.mkdir(parents=True, exist_ok=True)
    sandbox_stack.down(directory)
    (directory / settings.FILE_NAME).write_text(CONFIG)
    sandbox_temporal.remove_data(directory)
    return sandbox_stack.up(directory, FLEET, directory / settings.FILE_NAME, temporal=True)


def _quiet() -> Runtime:
    """A client runtime that logs only errors: retries while the dev server restarts are expected."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


async def up(directory: Path) -> Stack:
    """Start the chaos stack in ``directory`` (see the module docstring)."""
    code = sandbox_temporal.code_digest()
    started = await asyncio.to_thread(_start, directory)
    client = await Client.connect(started.temporal, data_converter=data_converter, runtime=_quiet())
    return Stack(
        sandbox=started,
        client=client,
        admin=AdminClient(started.url),
        traffic=TrafficClient(started.traffic),
        code=code,
    )


def down(stack: Stack) -> None:
    """Stop everything the stack started."""
    sandbox_stack.down(stack.directory)
