"""The worker's health verdicts and endpoints, on real Temporal workers, and the settings they need.

:class:`ringmaster.health.Monitor` judges readiness from real ``temporalio`` workers polling the dev
server (the end-to-end tests in ``tests/e2e/test_worker_telemetry.py`` run the whole process); the
endpoints are served by :func:`ringmaster.health.serving` on a free port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import reachability
from ringmaster import health
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings, settings_problems
from sandbox.processes import free_port
from tests.support import worker_process
from tests.support.waiting import assert_eventually

ROOT = Path(__file__).resolve().parents[2]


@workflow.defn(name="idle")
class Idle:
    """Gives the worker workflow tasks to poll for, as the main queue's workflows do."""

    @workflow.run
    async def run(self) -> None:
        """Nothing: no test starts it."""


def polling_worker(client: Client, queue: str) -> Worker:
    """A worker polling ``queue`` for workflow tasks, like ringmaster's main worker."""
    return Worker(client, task_queue=queue, workflows=[Idle], workflow_runner=UnsandboxedWorkflowRunner())


def settings(**fields: object) -> Settings:
    """Settings of a worker on a fresh queue, checking quickly."""
    return Settings.model_validate(
        {
            "task_queue": f"tq-{uuid.uuid4().hex}",
            "health_probe_seconds": 0.2,
            "health_probe_timeout_seconds": 2,
            "listen_host": "127.0.0.1",
            **fields,
        }
    )


def _request(url: str, method: str) -> tuple[int, str]:
    try:
        request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def get(url: str, method: str = "GET") -> tuple[int, str]:
    """Status and body of a request (an error status is an answer), from a thread: the server
    answers on this test's own event loop."""
    return await asyncio.to_thread(_request, url, method)


def unreachable(timeout: float) -> None:
    """A dependency that never answers."""
    raise reachability.Unreachable(f"timed out after {timeout:g} s")


class TestReadiness:
    async def test_a_polling_worker_is_ready_and_a_stopped_one_is_not(self, client: Client) -> None:
        """Ready once Temporal lists this client's poller on the queue; not ready, naming the cause,
        once the worker stops, though Temporal still remembers the poll."""
        tuned = settings()
        worker = polling_worker(client, tuned.task_queue)
        monitor = health.Monitor(client, tuned, [worker])
        assert monitor.readiness() == ["1 of 1 Temporal workers not running", "Temporal not checked yet"]
        async with worker:

            async def check() -> list[str]:
                await monitor.check_temporal()
                return monitor.readiness()

            await assert_eventually(check, lambda problems: problems == [], what="ready")
            assert monitor.temporal.last_poll is not None
        await monitor.check_temporal()
        assert monitor.readiness() == ["1 of 1 Temporal workers not running"]
        monitor.close()

    async def test_a_queue_nobody_polls_is_not_ready(self, client: Client) -> None:
        """Temporal answering is not enough: it must have seen this process poll the queue."""
        tuned = settings()
        monitor = health.Monitor(client, tuned, [])
        await monitor.check_temporal()
        assert monitor.temporal.up
        assert monitor.readiness() == [
            f"Temporal lists no poller of this process on task queue {tuned.task_queue}"
        ]
        monitor.close()

    async def test_an_unreachable_dependency_is_reported_but_never_decides_readiness(
        self, client: Client
    ) -> None:
        """A dependency down is listed down with its error and time; the verdict stays Temporal's."""
        tuned = settings()
        worker = polling_worker(client, tuned.task_queue)
        probes = [
            reachability.Probe("cluster", "euw1-prod", unreachable),
            reachability.Probe("prometheus", "eu-west-1", lambda _: None),
        ]
        monitor = health.Monitor(client, tuned, [worker], probes)
        async with worker:
            await monitor.probe_dependencies()

            async def check() -> list[str]:
                await monitor.check_temporal()
                return monitor.readiness()

            await assert_eventually(check, lambda problems: problems == [], what="ready")
            shown = monitor.verbose()
        monitor.close()
        assert shown["ready"] is True
        assert [(d["kind"], d["name"], d["up"], d["error"]) for d in shown["dependencies"]] == [
            ("cluster", "euw1-prod", False, "timed out after 2 s"),
            ("prometheus", "eu-west-1", True, ""),
        ]
        assert all(d["checkedAt"] for d in shown["dependencies"])


class TestEndpoints:
    async def test_livez_readyz_verbose_and_unknown_paths(self, client: Client) -> None:
        """/livez answers ok; /readyz 503 with reasons until the worker polls, then 200; the verbose
        form is JSON with the same verdict; any other path is 404 and any other method 405."""
        tuned = settings(health_port=free_port())
        base = f"http://127.0.0.1:{tuned.health_port}"
        worker = polling_worker(client, tuned.task_queue)
        async with health.serving(client, tuned, [worker], []):
            assert await get(f"{base}/livez") == (200, "ok\n")
            status, body = await get(f"{base}/readyz")
            assert status == 503 and body.startswith("not ready: "), body
            async with worker:

                async def ready() -> tuple[int, str]:
                    return await get(f"{base}/readyz")

                await assert_eventually(ready, lambda a: a == (200, "ready\n"), what="/readyz")
                status, body = await get(f"{base}/readyz?verbose")
                document = json.loads(body)
                assert status == 200 and document["ready"] is True and document["reasons"] == []
                assert document["temporal"]["taskQueue"] == tuned.task_queue
            assert (await get(f"{base}/metrics"))[0] == 404
            assert (await get(f"{base}/livez", "POST"))[0] == 405

    async def test_a_taken_health_port_is_refused_naming_the_setting(self, client: Client) -> None:
        """Another process on the port: HealthUnavailable naming RINGMASTER_HEALTH_PORT."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            tuned = settings(health_port=taken.getsockname()[1])
            with pytest.raises(health.HealthUnavailable, match="RINGMASTER_HEALTH_PORT"):
                async with health.serving(client, tuned, [], []):
                    pass


class TestSettings:
    def test_metrics_and_health_share_no_port(self) -> None:
        """One port for both is refused by name: each endpoint has its own server."""
        with pytest.raises(ValidationError) as invalid:
            Settings(metrics_port=9464, health_port=9464)
        assert (
            "RINGMASTER_HEALTH_PORT: Value error, must differ from RINGMASTER_METRICS_PORT"
            in settings_problems(invalid.value)
        )

    def test_the_worker_exits_2_naming_a_taken_metrics_port(self) -> None:
        """``ringmaster worker`` whose metrics port is taken stops at once with exit 2 and the setting."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            done = worker_process.refused(
                {
                    "RINGMASTER_LISTEN_HOST": "127.0.0.1",
                    "RINGMASTER_METRICS_PORT": str(taken.getsockname()[1]),
                }
            )
        assert done.returncode == ExitCode.INVALID, done.stderr
        assert done.stderr.startswith("error: RINGMASTER_METRICS_PORT"), done.stderr
        assert "Address already in use" in done.stderr
