"""Fixtures of the deploy-file tests: the sandbox's Kubernetes API emulator (the sandbox tests' own
fixtures, shared), and the tools that check the files, each from a PyPI wheel in the venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.sandbox.conftest import cluster, emulator

__all__ = ["BIN", "ROOT", "cluster", "emulator", "tool"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(
    name: str, *args: str | Path, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a checker installed in the venv (``kubectl``, ``hadolint``, ``actionlint``,
    ``check-jsonschema``) from the repository root; never raises on its exit code."""
    return subprocess.run(
        [str(BIN / name), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(Path.home()), **env},
        timeout=120,
        check=False,
    )
