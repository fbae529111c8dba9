"""Which ringmaster build this worker runs: recorded beside every residency decision it makes.

``ringmaster <version> (<commit>)``: the package's version, and the commit it was built from, from
``RINGMASTER_COMMIT`` (set by the image build, ``deploy/``) or, in a checkout, ``git rev-parse``;
``unknown`` when neither says. An auditor then knows exactly which code judged a cluster, beside
the rule set's digest (``policies.residency.policy_digest``).
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

COMMIT_ENV = "RINGMASTER_COMMIT"


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("ringmaster")
    except metadata.PackageNotFoundError:
        return "unknown"


def commit() -> str:
    """The commit this build came from (12 hex digits), or ``unknown``."""
    given = os.environ.get(COMMIT_ENV, "").strip()
    if given:
        return given[:12]
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown"
    try:
        found = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return found.stdout.strip() or "unknown"


@cache
def describe() -> str:
    """``ringmaster <version> (<commit>)``, computed once per process."""
    return f"ringmaster {version()} ({commit()})"


def build_id() -> str:
    """``<version>-<commit>``: the Temporal build id of this build's workers (``ringmaster.versioning``).

    ``<version>-unknown`` when the commit is unknown; a versioned worker refuses to start with it,
    since two different builds would then share one id.
    """
    return f"{version()}-{commit()}"
