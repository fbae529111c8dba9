"""Named background processes of the sandbox, tracked in a directory so another command can stop them.

``python -m sandbox up`` starts processes (the Kubernetes emulator today; a Temporal dev server,
a traffic simulator and Prometheus servers later) and returns; ``sandbox down`` runs in another
process and must find and stop all of them, whatever state they are in. So every process is
recorded in ``DIR/state.json`` (and ``DIR/<name>.pid``) with its pid, process group and the
kernel's start time of the pid, which tells a live process from a recycled pid. Each runs in its
own session (process group), its output goes to ``DIR/<name>.log``, and stopping sends SIGTERM
to the whole group, then SIGKILL after a grace period.

Usage::

    processes = Processes(Path(".sandbox"))
    record = processes.start(ProcessSpec("apiserver", [sys.executable, "-m", "..."], ready=check))
    processes.stop_all()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

STATE_FILE = "state.json"


class ProcessRecord(BaseModel):
    """What ``state.json`` remembers of one started process."""

    name: str
    pid: int
    pgid: int
    start_ticks: int | None = None
    """The process start time from ``/proc/<pid>/stat`` (clock ticks since boot), None off Linux."""
    argv: list[str]
    log: str
    started_at: str
    info: dict[str, Any] = Field(default_factory=dict)
    """What the starter learnt once the process was ready (port, URL...)."""


class SandboxState(BaseModel):
    """The whole ``state.json``: processes in start order, plus sandbox-level facts."""

    processes: dict[str, ProcessRecord] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one process and how to tell it is ready.

    ``ready`` is polled (with the record of the running process) until it returns a dict of facts
    to remember (a port, a URL) or ``True``; ``None``/``False`` means not yet.
    """

    name: str
    argv: list[str]
    ready: Callable[[ProcessRecord], Mapping[str, Any] | bool | None]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    startup_timeout: float = 30.0
    poll_interval: float = 0.05
    extra_files: tuple[str, ...] = field(default=())
    """Files in the directory that belong to this process and go when it is stopped."""


class ProcessError(Exception):
    """A process could not be started (it exited, or was not ready in time)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message + (f"\n--- last lines of its log ---\n{log_tail}" if log_tail else ""))
        self.log_tail = log_tail


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of ``/proc/<pid>/stat`` (state, ppid, pgrp, ...), None when unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(record: ProcessRecord) -> bool:
    """Whether the recorded process still runs (and its pid was not recycled for another one)."""
    _reap(record.pid)
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now holds the pid
    ticks = _start_ticks(record.pid)
    if ticks is not None and record.start_ticks is not None and ticks != record.start_ticks:
        return False
    fields = _stat_fields(record.pid)
    return fields is None or fields[0] != "Z"


def _group_exists(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies waiting for a parent do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now, for a process that must be told its port (bind it soon: another
    process could take it meanwhile; prefer processes that bind port 0 and report theirs)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def loopback_addresses(jurisdictions: list[str], configured: Mapping[str, str]) -> dict[str, str]:
    """A loopback address for each jurisdiction's server: the configured one, else 127.0.0.4, .5 ...
    (skipping configured ones), so a server's host alone tells which jurisdiction it serves."""
    taken = set(configured.values())
    spare = (f"127.0.0.{n}" for n in range(4, 255) if f"127.0.0.{n}" not in taken)
    return {j: configured.get(j) or next(spare) for j in jurisdictions}


def read_port(port_file: Path) -> int | None:
    """The port a process wrote to ``port_file`` once listening; None while it has not."""
    try:
        return int(port_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


class Processes:
    """The processes recorded in one sandbox directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def state_path(self) -> Path:
        """``DIR/state.json``."""
        return self.directory / STATE_FILE

    def load(self) -> SandboxState:
        """The recorded state (empty when nothing was started, or the file is unreadable)."""
        try:
            return SandboxState.model_validate_json(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return SandboxState()

    def save(self, state: SandboxState) -> None:
        """Write ``state.json`` atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_name(STATE_FILE + ".tmp")
        temporary.write_text(state.model_dump_json(indent=2) + "\n", encoding="utf-8")
        temporary.replace(self.state_path)

    def running(self) -> dict[str, ProcessRecord]:
        """Recorded processes that are alive."""
        return {name: rec for name, rec in self.load().processes.items() if is_alive(rec)}

    def start(self, spec: ProcessSpec) -> ProcessRecord:
        """Start ``spec`` in the background and return once it is ready; ProcessError otherwise."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if spec.name in self.running():
            raise ProcessError(f"{spec.name} is already running (see {self.state_path})")
        log_path = self.directory / f"{spec.name}.log"
        env = dict(os.environ if spec.env is None else spec.env)
        with log_path.open("ab") as log:
            child = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
            )
        record = ProcessRecord(
            name=spec.name,
            pid=child.pid,
            pgid=child.pid,
            start_ticks=_start_ticks(child.pid),
            argv=list(spec.argv),
            log=log_path.name,
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        (self.directory / f"{spec.name}.pid").write_text(f"{child.pid}\n", encoding="ascii")
        state = self.load()
        state.processes[spec.name] = record
        self.save(state)
        deadline = time.monotonic() + spec.startup_timeout
        while True:
            if child.poll() is not None:
                self.stop(spec.name)
                raise ProcessError(
                    f"{spec.name} exited with status {child.returncode} while starting", tail(log_path)
                )
            found = spec.ready(record)
            if found:
                if isinstance(found, Mapping):
                    record.info.update(found)
                    state = self.load()
                    state.processes[spec.name] = record
                    self.save(state)
                return record
            if time.monotonic() >= deadline:
                self.stop(spec.name)
                raise ProcessError(
                    f"{spec.name} was not ready within {spec.startup_timeout:g}s", tail(log_path)
                )
            time.sleep(spec.poll_interval)

    def stop(self, name: str, *, grace: float = 5.0) -> bool:
        """Stop one process and its group (SIGTERM, then SIGKILL after ``grace``); False if none ran."""
        state = self.load()
        record = state.processes.get(name)
        stopped = False
        if record is not None:
            stopped = self._terminate(record, grace)
            del state.processes[name]
            self.save(state)
        for leftover in (f"{name}.pid", f"{name}.port"):
            (self.directory / leftover).unlink(missing_ok=True)
        return stopped

    def stop_all(self, *, grace: float = 5.0) -> list[str]:
        """Stop every recorded process, newest first; returns the names of those that were running."""
        names = list(self.load().processes)
        return [name for name in reversed(names) if self.stop(name, grace=grace)]

    @staticmethod
    def _terminate(record: ProcessRecord, grace: float) -> bool:
        if not is_alive(record):
            fields = _stat_fields(record.pid)
            if fields is not None and fields[0] != "Z":
                return False  # the pid was recycled for another process: nothing of ours to stop
            # The leader is gone; members of its group may remain. Linux never hands out a pid that
            # is still a process group id, so a group that exists under the recorded id is ours.
            if not _group_exists(record.pgid):
                return False
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pgid, signum)
            deadline = time.monotonic() + (grace if signum == signal.SIGTERM else 5.0)
            while time.monotonic() < deadline:
                _reap(record.pid)
                if not _group_exists(record.pgid):
                    return True
                time.sleep(0.02)
        return True

    def remember(self, **info: Any) -> None:
        """Record sandbox-level facts in ``state.json`` (kubeconfig path, fleet file...)."""
        state = self.load()
        state.info.update(info)
        self.save(state)

    def forget(self) -> None:
        """Drop the sandbox-level facts (after everything is stopped)."""
        state = self.load()
        state.info = {}
        self.save(state)
