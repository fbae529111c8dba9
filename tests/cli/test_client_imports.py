"""Client commands import only what they use: never the worker's Kubernetes, Prometheus or scipy stack.

Each command runs for real as a subprocess under ``python -X importtime``, which lists every module
imported until the process ends (including imports inside functions, up to ``os._exit``), against an
address where no Temporal listens, so it exits 3 once it has done all it can before connecting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
HEAVY = {"scipy", "kubernetes", "aiohttp", "prometheus_api_client"}

CLIENT_COMMANDS = {
    "status": ["status", "api:v2"],
    "status-json": ["status", "api:v2", "--output", "json"],
    "hold": ["hold", "api:v2", "--reason", "checking imports"],
    "resume": ["resume", "api:v2"],
    "abort": ["abort", "api:v2", "--reason", "checking imports"],
    "approve": ["approve", "api:v2", "--ring", "beta"],
    "rollback": ["rollback", "api:v2", "--reason", "checking imports"],
    "retry": ["retry", "api:v2", "--cluster", "euw1-internal"],
    "freeze": ["freeze", "--all", "--reason", "checking imports"],
    "unfreeze": ["unfreeze", "--all"],
    "freezes": ["freezes"],
    "audit": ["audit", "api:v2", "--source", "history"],
    "list": ["list", "--cluster", "euw1-prod", "--since", "1d"],
    "replay": ["replay", "--closed-within", "1d"],
    "patches": ["patches", "--check", "rollback-first"],
    "deployment-current": ["deployment", "current", "0.1.0-abc"],
    "deployment-drained": ["deployment", "drained", "0.1.0-abc"],
    "submit": [
        "submit",
        str(EXAMPLES / "plan.yaml"),
        "--version",
        "v2",
        "--image",
        "r/api:v2",
        "--fleet",
        str(EXAMPLES / "fleet.yaml"),
    ],
}


def _imported(args: list[str]) -> tuple[int, set[str], str]:
    """Run ``ringmaster ARGS`` against an unreachable Temporal: exit code, top-level modules, output."""
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ringmaster.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return done.returncode, modules, done.stdout + done.stderr


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[int, set[str], str]]:
    """Every client command, and the worker as the control, run once."""
    return {name: _imported(args) for name, args in {**CLIENT_COMMANDS, "worker": ["worker"]}.items()}


class TestClientCommandImports:
    @pytest.mark.parametrize("name", list(CLIENT_COMMANDS))
    def test_client_commands_never_import_the_worker_stack(
        self, runs: dict[str, tuple[int, set[str], str]], name: str
    ) -> None:
        """status, submit and every control reach the point of connecting (exit 3) without scipy & co."""
        code, modules, output = runs[name]
        assert code == 3, output[-2000:]
        assert "cannot reach Temporal" in output
        assert "temporalio" in modules, "the import listing was read (the client itself is in it)"
        assert not modules & HEAVY, f"{name} imported {sorted(modules & HEAVY)}"

    def test_the_worker_command_does_import_it(self, runs: dict[str, tuple[int, set[str], str]]) -> None:
        """The worker imports its stack, so the listing above would show a client command doing so too."""
        _, modules, _ = runs["worker"]
        assert {"scipy", "kubernetes", "prometheus_api_client"} <= modules

    def test_validate_never_imports_temporal(self) -> None:
        """validate checks files only: it imports neither Temporal nor the worker stack."""
        code, modules, stderr = _imported(
            ["validate", str(EXAMPLES / "plan.yaml"), "--fleet", str(EXAMPLES / "fleet.yaml")]
        )
        assert code == 0, stderr[-2000:]
        assert "policies" in modules
        assert not modules & (HEAVY | {"temporalio"})

    def test_policy_check_never_imports_temporal(self) -> None:
        """policy check reads files only: it imports neither Temporal nor the worker stack."""
        code, modules, output = _imported(
            [
                "policy",
                "check",
                "--policy",
                str(EXAMPLES / "authorization.yaml"),
                "--as",
                "bob@example.com",
                "approve",
                "payments:v42",
                "--ring",
                "broad",
            ]
        )
        assert code == 0, output[-2000:]
        assert "only-sre-approve-broad" in output
        assert "policies" in modules
        assert not modules & (HEAVY | {"temporalio"})

    def test_flags_stale_never_imports_the_worker_stack(self) -> None:
        """flags stale reads the flag servers only: none of the worker's Kubernetes, Prometheus or scipy."""
        code, modules, output = _imported(["flags", "stale", "--fleet", str(EXAMPLES / "fleet.yaml")])
        assert code == 2, output[-2000:]
        assert "no admin token for unleash.eu.example.com" in output
        assert "activities" in modules
        assert not modules & HEAVY
