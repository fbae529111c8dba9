"""Helpers for the sandbox tests: ``python -m sandbox`` as a user runs it, the flag servers' stack, raw
HTTP requests, and the workload most tests create."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sandbox import postgres, stack, unleash
from tests.support import manifests
from tests.support.fleets import ROOT

FLAG_STACK_SETTINGS = """\
controller: {tickSeconds: 0.05, podReadySeconds: 0.1}
prometheus: {enabled: false}
"""
"""The sandbox settings of a flag-server stack: fast emulated clusters, no Prometheus."""


def sandbox_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sandbox`` from the checkout, as ``make sandbox`` and a user do."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )


@contextmanager
def flag_stack(where: Path, fleet: Path, settings: str = FLAG_STACK_SETTINGS) -> Iterator[Path]:
    """``fleet``'s clusters with PostgreSQL and an Unleash per jurisdiction in ``where``, started by the
    CLI (``up --no-temporal``) with ``settings`` (``sandbox.yaml``; default: no Prometheus) and taken
    down after; skips when PostgreSQL or Unleash is not installed."""
    try:
        unleash.check_install()
        postgres.bin_dir()
    except (unleash.UnleashError, postgres.PostgresError) as exc:
        pytest.skip(str(exc))
    (where / "sandbox.yaml").write_text(settings, encoding="utf-8")
    started = sandbox_cli("up", "--no-temporal", "--dir", str(where), "--fleet", str(fleet))
    assert started.returncode == 0, started.stderr
    try:
        yield where
    finally:
        stack.down(where)


def http(
    method: str, url: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, Any, Any]:
    """A raw request (for bodies the official client would refuse to send): status, headers, JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our emulator over http
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def deployment(
    name: str, *, replicas: int = 3, image: str = "registry.example.com/app:v1", **spec: Any
) -> dict[str, Any]:
    """The sandbox tests' workload: Deployment ``name`` selecting ``app: <name>``, an app and a sidecar."""
    containers = [
        manifests.container("app", image, env=[{"name": "MODE", "value": "a"}]),
        manifests.container("sidecar", "registry.example.com/proxy:1"),
    ]
    return manifests.deployment(name, containers, replicas=replicas, **spec)
