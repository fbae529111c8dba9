"""The previous tagged version of ringmaster, checked out with its own virtual environment.

``tests/compat/previous_version.toml`` names it by tag and commit. The tag is used when the clone has
it (and must point at the recorded commit); a checkout without tags (CI's) falls back to the commit,
which every full clone holds. With neither, :func:`checkout` fails saying so: a compatibility test
that cannot find the version it checks against must not pass silently.

The checkout is a detached ``git worktree`` in a stable cache directory keyed by the commit
(``$RINGMASTER_VERSIONS_CACHE`` or ``~/.cache/ringmaster/versions/<sha>``), with a ``.venv`` made by
``uv sync --frozen`` from that version's own lock file: about a second when uv's cache holds the
wheels (it does once ``make install`` ran), and reused by later runs. A file lock keeps two pytest
workers from building it at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "tests" / "compat" / "previous_version.toml"
READY = ".ringmaster-ready"


class PreviousVersionUnavailable(RuntimeError):
    """Neither the previous version's tag nor its commit is in this clone, or it cannot be installed."""


@dataclass(frozen=True)
class Previous:
    """The previous version: what the record says, and where it is checked out."""

    version: str
    tag: str
    commit: str
    strict_decoding: bool
    directory: Path

    @property
    def python(self) -> Path:
        """The interpreter of its virtual environment (its code importable from :attr:`directory`)."""
        return self.directory / ".venv" / "bin" / "python"


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)


def record() -> dict[str, object]:
    """``previous_version.toml`` as a dict."""
    return tomllib.loads(RECORD.read_text(encoding="utf-8"))


def resolve_commit() -> str:
    """The previous version's commit: its tag's when present else the record's."""
    found = record()
    tag, commit = str(found["tag"]), str(found["commit"])
    tagged = _git("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    if tagged.returncode == 0:
        sha = tagged.stdout.strip()
        if sha != commit:
            raise PreviousVersionUnavailable(
                f"tag {tag} points at {sha} but {os.path.relpath(RECORD, ROOT)} records {commit}: fix one"
            )
        return sha
    if _git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0:
        return commit
    raise PreviousVersionUnavailable(
        f"the previous version ({tag}, commit {commit}, from {os.path.relpath(RECORD, ROOT)}) is not in this "
        "clone: fetch it (`git fetch --tags`, or a full clone rather than a shallow one)"
    )


def _cache() -> Path:
    configured = os.environ.get("RINGMASTER_VERSIONS_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ringmaster" / "versions"


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    for python in ("python3", sys.executable):
        probe = subprocess.run([python, "-m", "uv", "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [python, "-m", "uv"]
    raise PreviousVersionUnavailable("installing the previous version needs uv (`make install` installs it)")


def _base_python() -> str:
    # The interpreter our venv was made from, not the venv's: uv makes the new venv from it.
    return str(Path(sys._base_executable).resolve()) if hasattr(sys, "_base_executable") else sys.executable


def checkout() -> Previous:
    """The previous version checked out with its own ``.venv``, built once and then reused."""
    found = record()
    commit = resolve_commit()
    directory = _cache() / commit
    directory.parent.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f"{commit}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _usable(directory, commit):
            _build(directory, commit)
    return Previous(
        version=str(found["version"]),
        tag=str(found["tag"]),
        commit=commit,
        strict_decoding=bool(found.get("strict_decoding", False)),
        directory=directory,
    )


def _usable(directory: Path, commit: str) -> bool:
    """Built to the end, and still a worktree at ``commit`` (of a clone that still exists)."""
    if not (directory / READY).exists():
        return False
    head = subprocess.run(
        ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return head.returncode == 0 and head.stdout.strip() == commit


def _build(directory: Path, commit: str) -> None:
    if directory.exists():
        _git("worktree", "remove", "--force", str(directory))
        shutil.rmtree(directory, ignore_errors=True)
    _git("worktree", "prune")
    added = _git("worktree", "add", "--detach", "--force", str(directory), commit)
    if added.returncode != 0:
        raise PreviousVersionUnavailable(f"git worktree add {commit}: {added.stderr.strip()}")
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    synced = subprocess.run(
        [*_uv(), "sync", "--frozen", "--python", _base_python(), "--quiet"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if synced.returncode != 0:
        raise PreviousVersionUnavailable(f"uv sync --frozen in {directory}: {synced.stderr.strip()[-2000:]}")
    (directory / READY).write_text(commit + "\n", encoding="utf-8")
