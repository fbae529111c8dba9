"""The worker's health: liveness, readiness, and each dependency's reachability, over plain HTTP.

Endpoints on ``listen_host:health_port`` (:class:`Server`), each answering ``200`` or ``503`` with a
short text (``?verbose``: a JSON document):

- ``/livez``: the process's event loop answers. The server runs on that loop, so an answer is the
  proof; a loop blocked by a stuck call answers nothing, and the kubelet restarts the process.
- ``/readyz``: this process polls Temporal. Every Temporal worker of the process runs
  (``Worker.is_running``), and the last check of Temporal (:meth:`Monitor.check_temporal`, every
  ``health_probe_seconds``: a ``DescribeTaskQueue`` of the main task queue) answered within
  ``health_probe_timeout_seconds`` and lists a poller with this process' identity seen at most
  ``readiness_poll_age_seconds`` ago. The SDK exposes no "last successful poll" of its own; the
  server's record of our pollers is the same fact from the side that matters.
- ``/readyz?verbose`` (also ``/livez?verbose``): the same verdict with its reasons, the Temporal
  check, and every dependency's last reachability probe (kind, name, up, when, how long, error).

Dependencies (each fleet cluster, each region's Prometheus, each flag server:
:mod:`activities.reachability`) never decide readiness: one region's outage must not take every
worker out of service, or a fix could never roll out to the regions that work. They are probed in the
background, a few at a time (``health_probe_concurrency`` threads), each within
``health_probe_timeout_seconds``, and published as ``ringmaster_dependency_up{kind,name}``. Nothing
shown carries a credential: errors are a few words (:mod:`activities.reachability`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from activities import reachability, telemetry
from activities.kubernetes import KubernetesBackend
from policies.fleet import Fleet
from ringmaster.settings import Settings

log = structlog.get_logger("ringmaster.health")

MAX_REQUEST_BYTES = 8192
"""A probe's request line and headers fit easily; anything longer is not a probe."""


class Polling(Protocol):
    """A Temporal worker as readiness sees it (``temporalio.worker.Worker``)."""

    @property
    def is_running(self) -> bool:
        """Whether the worker runs (polls), not shut down or failed."""
        ...


@dataclass
class Result:
    """The last check of one thing: whether it answered, when, how long it took, why not."""

    up: bool = False
    checked_at: datetime | None = None
    took_ms: float = 0.0
    error: str = "not checked yet"

    def document(self) -> dict[str, Any]:
        """As shown by the verbose endpoints."""
        return {
            "up": self.up,
            "checkedAt": self.checked_at.isoformat() if self.checked_at else None,
            "tookMs": round(self.took_ms, 1),
            "error": self.error,
        }


@dataclass
class TemporalCheck(Result):
    """The last check of Temporal: did it answer, and when did it last see this process poll."""

    last_poll: datetime | None = None

    def document(self) -> dict[str, Any]:
        """As shown by the verbose endpoints."""
        return {**super().document(), "lastPoll": self.last_poll.isoformat() if self.last_poll else None}


@dataclass
class Monitor:
    """Checks Temporal and probes dependencies periodically; judges liveness and readiness."""

    client: Client
    settings: Settings
    workers: Sequence[Polling]
    probes: Sequence[reachability.Probe] = ()
    temporal: TemporalCheck = field(default_factory=TemporalCheck)
    dependencies: dict[tuple[str, str], Result] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.health_probe_concurrency, thread_name_prefix="health"
        )
        for probe in self.probes:
            self.dependencies[probe.kind, probe.name] = Result()

    def close(self) -> None:
        """Stop the probe threads (a probe in flight ends by its own timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- checks -------------------------------------------------------------------------------

    async def check_temporal(self) -> TemporalCheck:
        """Ask Temporal who polls the main task queue; record whether this process is among them."""
        timeout = self.settings.health_probe_timeout_seconds
        began = time.monotonic()
        request = DescribeTaskQueueRequest(
            namespace=self.client.namespace,
            task_queue=TaskQueue(name=self.settings.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        check = TemporalCheck(checked_at=datetime.now(UTC), last_poll=self.temporal.last_poll)
        try:
            answer = await self.client.workflow_service.describe_task_queue(
                request, timeout=timedelta(seconds=timeout)
            )
        except RPCError as err:
            check.error = (
                f"Temporal did not answer: {err.status.name if err.status else 'error'}: {err.message}"
            )
        except (TimeoutError, OSError, RuntimeError) as err:
            check.error = f"Temporal did not answer: {type(err).__name__}"
        else:
            ours = [
                p.last_access_time.ToDatetime(tzinfo=UTC)
                for p in answer.pollers
                if p.identity == self.client.identity
            ]
            check.up, check.error = True, ""
            if ours:
                check.last_poll = max(ours)
        check.took_ms = (time.monotonic() - began) * 1000
        self.temporal = check
        return check

    async def probe_dependencies(self) -> None:
        """Probe every dependency once, at most ``health_probe_concurrency`` at a time."""
        await asyncio.gather(*(self._probe(p) for p in self.probes))

    async def _probe(self, probe: reachability.Probe) -> None:
        timeout = self.settings.health_probe_timeout_seconds
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        result = Result(checked_at=datetime.now(UTC))
        try:
            # The check has its own timeout; this one only guards against a call that ignores it.
            await asyncio.wait_for(loop.run_in_executor(self._pool, probe.check, timeout), timeout * 2 + 1)
        except reachability.Unreachable as err:
            result.error = str(err)
        except TimeoutError:
            result.error = f"timed out after {timeout:g} s"
        else:
            result.up, result.error = True, ""
        took = time.monotonic() - began
        result.took_ms = took * 1000
        self.dependencies[probe.kind, probe.name] = result
        telemetry.dependency(probe.kind, probe.name, up=result.up, took=timedelta(seconds=took))
        if not result.up:
            log.warning("dependency unreachable", kind=probe.kind, name=probe.name, error=result.error)

    async def run(self) -> None:
        """Check Temporal and every dependency now, then every ``health_probe_seconds``, until cancelled."""
        while True:
            try:
                await asyncio.gather(self.check_temporal(), self.probe_dependencies())
            except Exception:  # a check that broke: readiness goes stale (unready), the loop goes on
                log.exception("health check failed")
            await asyncio.sleep(self.settings.health_probe_seconds)

    # --- verdicts -----------------------------------------------------------------------------

    def readiness(self) -> list[str]:
        """Why this process is not ready (empty: ready)."""
        problems: list[str] = []
        stopped = sum(1 for w in self.workers if not w.is_running)
        if stopped:
            problems.append(f"{stopped} of {len(self.workers)} Temporal workers not running")
        check = self.temporal
        now = datetime.now(UTC)
        stale = timedelta(
            seconds=2 * self.settings.health_probe_seconds + self.settings.health_probe_timeout_seconds
        )
        if check.checked_at is None:
            problems.append("Temporal not checked yet")
        elif not check.up:
            problems.append(check.error)
        elif now - check.checked_at > stale:
            problems.append(f"Temporal last checked {int((now - check.checked_at).total_seconds())} s ago")
        elif check.last_poll is None:
            problems.append(
                f"Temporal lists no poller of this process on task queue {self.settings.task_queue}"
            )
        elif (now - check.last_poll).total_seconds() > self.settings.readiness_poll_age_seconds:
            problems.append(
                f"Temporal last saw this process poll {int((now - check.last_poll).total_seconds())} s ago"
            )
        return problems

    def verbose(self) -> dict[str, Any]:
        """Readiness with its reasons, the Temporal check and every dependency's last probe."""
        problems = self.readiness()
        return {
            "live": True,
            "ready": not problems,
            "reasons": problems,
            "temporal": {"taskQueue": self.settings.task_queue, **self.temporal.document()},
            "dependencies": [
                {"kind": kind, "name": name, **result.document()}
                for (kind, name), result in sorted(self.dependencies.items())
            ],
        }


class Server:
    """``/livez`` and ``/readyz`` (with ``?verbose``) on an asyncio server of the worker's event loop.

    HTTP/1.1 kept minimal on purpose: probes send one GET and read one answer, and the answer must
    come from the event loop itself, which a server of its own (a thread, a framework) would not prove.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def answer(self, target: str) -> tuple[int, str, str]:
        """Status, content type and body for a request target (``/readyz?verbose``)."""
        path, _, query = target.partition("?")
        verbose = "verbose" in query.split("&") or any(q.startswith("verbose=") for q in query.split("&"))
        if path not in ("/livez", "/readyz"):
            return 404, "text/plain", "not found: try /livez, /readyz or /readyz?verbose\n"
        if verbose:
            document = self.monitor.verbose()
            ready = path == "/livez" or document["ready"]
            return (200 if ready else 503), "application/json", json.dumps(document, indent=2) + "\n"
        if path == "/readyz":
            problems = self.monitor.readiness()
            if problems:
                return 503, "text/plain", "not ready: " + "; ".join(problems) + "\n"
            return 200, "text/plain", "ready\n"
        return 200, "text/plain", "ok\n"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one request, then close the connection."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method not in ("GET", "HEAD"):
                status, kind, body = 405, "text/plain", "only GET\n"
            else:
                status, kind, body = self.answer(target)
            payload = body.encode()
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[
                status
            ]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}; charset=utf-8\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else payload)
            )
            await writer.drain()
        except (
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass  # not a probe's request, or gone: nothing to answer
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


class HealthUnavailable(Exception):
    """The health endpoints cannot be served (address in use); the message names the settings."""


def probes_for(settings: Settings, fleet: Fleet, backend: object) -> list[reachability.Probe]:
    """The dependencies of a worker over ``backend``: its clusters (a Kubernetes backend's), each
    region's Prometheus (with the worker's bearer token) and each flag server."""
    clusters = backend.clusters if isinstance(backend, KubernetesBackend) else None
    return reachability.probes(fleet, clusters, prometheus_headers=settings.prometheus_headers())


@asynccontextmanager
async def serving(
    client: Client,
    settings: Settings,
    workers: Sequence[Polling],
    probes: Sequence[reachability.Probe],
) -> AsyncIterator[Monitor | None]:
    """The monitor running (when a metrics or health port is set) and the health server listening
    (when ``health_port`` is set), for as long as the context lasts; yields the monitor or None."""
    if settings.health_port is None and settings.metrics_port is None:
        yield None
        return
    monitor = Monitor(client, settings, workers, probes)
    task = asyncio.create_task(monitor.run(), name="ringmaster health monitor")
    server = None
    try:
        if settings.health_port is not None:
            try:
                server = await asyncio.start_server(
                    Server(monitor).handle,
                    settings.listen_host,
                    settings.health_port,
                    limit=MAX_REQUEST_BYTES,
                )
            except OSError as err:
                raise HealthUnavailable(
                    f"RINGMASTER_HEALTH_PORT / RINGMASTER_LISTEN_HOST: cannot serve health on "
                    f"{settings.listen_host}:{settings.health_port}: {err.strerror or err}"
                ) from None
        yield monitor
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        monitor.close()
