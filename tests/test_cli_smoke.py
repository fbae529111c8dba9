"""The CLI starts and documents itself."""

from __future__ import annotations

import subprocess
import sys


def test_help_lists_the_command_groups() -> None:
    """`ringmaster --help` exits 0 and names itself, so the console script is wired."""
    out = subprocess.run(
        [sys.executable, "-m", "ringmaster.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "ringmaster" in out.stdout
