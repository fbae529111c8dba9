"""The workflow modules stay light: importing them never loads Kubernetes, Prometheus, aiohttp or scipy.

The CLI imports them for typed workflow handles, and the workflow sandbox passes the activity class
modules they reference through; both would pay for a heavy import on every start. Each check runs in
a fresh interpreter, so modules this test session already loaded cannot hide an import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy", "kubernetes", "aiohttp", "prometheus_api_client")


def _heavy_modules_after_importing(modules: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.split()


class TestWorkflowImports:
    @pytest.mark.parametrize(
        "modules",
        [
            ("workflows.release", "workflows.lane", "workflows.models"),
            ("workflows.cluster",),
            ("activities.release", "activities.rollout", "activities.analysis", "activities.notify"),
        ],
        ids=["cli-handles", "cluster-workflow", "activity-classes"],
    )
    def test_no_heavy_library_is_imported(self, modules: tuple[str, ...]) -> None:
        """Importing the workflows, or the activity classes they call, loads none of the heavy libraries."""
        assert _heavy_modules_after_importing(modules) == []
