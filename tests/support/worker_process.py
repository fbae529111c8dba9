"""A real ``ringmaster worker`` process for end-to-end tests, and the plan its releases follow.

:func:`running` starts one (today's code by default, or another version's interpreter and checkout)
with its output in a log file, and stops it on the way out if the test has not; :func:`polling` waits
until it says it polls its task queue. :func:`gated_plan` is a plan of the given rings judged by the
sandbox's Prometheus on request success rate, quickly (a check every 2 s, two in a row decide).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ringmaster import readiness
from tests.support.prometheus import SUCCESS_RATE
from tests.support.waiting import assert_eventually

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running(
    env: dict[str, str], log: Path, *, python: Path | None = None, code: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """``ringmaster worker`` of the code in ``code`` under ``python`` (today's by default), logging to
    ``log``; stopped with SIGTERM (then killed) on the way out if it still runs."""
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


def text(log: Path) -> str:
    """What the worker logged so far."""
    return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


async def polling(proc: subprocess.Popen[bytes], log: Path, *, timeout: float = 90) -> None:
    """Wait until the worker polls its task queue; fail with its log if it exits first."""

    async def read() -> str:
        return await asyncio.to_thread(text, log)

    await assert_eventually(
        read,
        lambda t: readiness.READY in t or proc.poll() is not None,
        timeout=timeout,
        what="the worker polling",
    )
    assert proc.poll() is None, text(log)[-3000:]


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
