"""Regenerate the previous version's fixtures: ``python -m tests.compat.record`` (a few minutes).

Runs entirely in the previous version (``tests/compat/previous_version.toml``), checked out with its
own virtual environment (``tests.support.previous``): its own history recorder
(``tests/workflows/histories/record.py``: promote, rollback, hold and resume, abort, approval,
freeze, undo... on a dev server with an in-process worker) writes the histories of those paths, then
``surface.py`` under its interpreter keeps a few payloads per message key from them
(``payloads.json``) and lists its models' fields (``schema.json``), into
``tests/compat/fixtures/<tag>/``. So every payload there was written by the previous version's code,
and the schema is its own models' view. Run it once per tagged version, when
``previous_version.toml`` moves; never edit the fixtures by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import previous

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"


def run_surface(prev: previous.Previous, *args: str, timeout: float = 300) -> None:
    """``surface.py ARGS`` under the previous version's interpreter, with its code first on the path."""
    with tempfile.TemporaryDirectory() as scratch:
        # A copy, so that nothing of today's tree is on the previous version's sys.path.
        script = Path(scratch) / "surface.py"
        shutil.copy(HERE / "surface.py", script)
        env = {**os.environ, "PYTHONPATH": str(prev.directory)}
        env.pop("VIRTUAL_ENV", None)
        done = subprocess.run(
            [str(prev.python), str(script), *args],
            cwd=prev.directory,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    if done.returncode != 0:
        raise RuntimeError(f"surface.py {' '.join(args)} under {prev.tag}: {done.stderr[-3000:]}")


def main() -> int:
    """Record the previous version's paths and write its fixtures."""
    prev = previous.checkout()
    name = f"compat-{prev.tag}"
    histories = prev.directory / "tests" / "workflows" / "histories" / name
    shutil.rmtree(histories, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run(
        [str(prev.python), "-m", "tests.workflows.histories.record", name],
        cwd=prev.directory,
        env=env,
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
    )
    out = FIXTURES / prev.tag
    out.mkdir(parents=True, exist_ok=True)
    run_surface(prev, "extract", str(histories), str(out / "payloads.json"))
    run_surface(prev, "schema", str(out / "schema.json"))
    shutil.rmtree(histories, ignore_errors=True)
    print(f"fixtures of {prev.tag} ({prev.commit}) written to {out.relative_to(Path.cwd())}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
