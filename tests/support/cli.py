"""The outcome of one ``ringmaster`` invocation, as the CLI tests inspect it, and a way to run the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    """The outcome of one CLI invocation."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.stdout)


def run_worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``ringmaster worker ARGS`` from the repository root, with ``env`` and none of the calling
    shell's RINGMASTER_ or TEMPORAL_ variables (so a developer's settings cannot leak in)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RINGMASTER_", "TEMPORAL_"))}
    return subprocess.run(
        [sys.executable, "-m", "ringmaster.cli", "worker", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=ROOT,
        timeout=120,
        check=False,
    )
