"""A real ``ringmaster worker`` process for end-to-end tests: started with an environment (today's code,
or another version's interpreter and checkout), awaited until it polls (its ``readiness.READY``
line), stopped with SIGTERM; and :func:`gated_plan`, a plan judged by the sandbox's Prometheus on
request success rate, quickly (a check every 2 s, two in a row decide)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from ringmaster import readiness
from tests.support.prometheus import SUCCESS_RATE
from tests.support.waiting import assert_eventually

ROOT = Path(__file__).resolve().parents[2]


def base_env(client: Client, queue: str) -> dict[str, str]:
    """This process's environment without ringmaster's or Temporal's settings, pointed at ``client``'s
    Temporal and ``queue``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RINGMASTER_", "TEMPORAL_"))}
    return {
        **base,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "RINGMASTER_TASK_QUEUE": queue,
    }


@contextmanager
def running(
    env: dict[str, str], log: Path, *, python: Path | None = None, code: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """``ringmaster worker`` of the code in ``code`` under ``python`` (today's by default), with ``env``,
    its stdout and stderr in ``log``; stopped with SIGTERM (then killed) if it still runs at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(python or sys.executable), "-m", "ringmaster.cli", "worker"],
            env=env,
            cwd=code,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def read(path: Path) -> str:
    """The log so far ("" before it exists)."""
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


async def polling(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Return once the worker polls its queues; fail with its log if it exits first."""

    async def text() -> str:
        return read(log)

    await assert_eventually(
        text,
        lambda t: readiness.READY in t or proc.poll() is not None,
        timeout=timeout,
        what="the worker polling",
    )
    assert proc.poll() is None, read(log)


def gated_plan(service: str, namespace: str, rings: list[dict[str, Any]]) -> str:
    """A plan of ``rings`` for Deployment ``api`` in ``namespace``, gated on request success rate."""
    return yaml.safe_dump(
        {
            "apiVersion": "ringmaster.dev/v1",
            "kind": "ReleasePlan",
            "service": service,
            "workload": {"namespace": namespace, "deployment": "api", "container": "api"},
            # Personal data would deny a Secret-backed env it cannot inspect (fail closed): this
            # service's data is pseudonymous, so a release gets as far as its gate.
            "dataResidency": {"dataClass": "pseudonymous"},
            "rings": rings,
            "analysis": {"interval": "2s", "threshold": 2, "minDataPoints": 2, "metrics": [SUCCESS_RATE]},
        },
        sort_keys=False,
    )
