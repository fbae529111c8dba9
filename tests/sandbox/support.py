"""Helpers for the sandbox tests: ``python -m sandbox`` as a user runs it, raw HTTP requests, and the
workload most tests create."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from tests.support import manifests
from tests.support.fleets import ROOT


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
