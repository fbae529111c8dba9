"""A real ``ringmaster worker`` process for end-to-end tests: started with an environment, awaited
until it polls (its ``readiness.READY`` line), stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporalio.client import Client

from ringmaster import readiness
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
def running(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``ringmaster worker`` with ``env``, its stdout and stderr in ``log``; stopped with SIGTERM."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ringmaster.cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
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
