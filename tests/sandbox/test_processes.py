"""The sandbox's process manager: start when ready, report failures, stop whole groups whatever they do."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from sandbox.processes import (
    ProcessError,
    Processes,
    ProcessRecord,
    ProcessSpec,
    free_port,
    is_alive,
)
from tests.support.waiting import eventually

PY = sys.executable


def _ready_when_file(path: Path) -> ProcessSpec:
    return ProcessSpec(
        "worker",
        [PY, "-c", f"import pathlib, time; pathlib.Path({str(path)!r}).write_text('7'); time.sleep(60)"],
        ready=lambda _: {"port": int(path.read_text())} if path.exists() else None,
        startup_timeout=10,
    )


class TestProcesses:
    def test_start_waits_for_readiness_and_records_the_process(self, tmp_path: Path) -> None:
        """start returns once ready, with the facts the check found, recorded in state.json and a pid file."""
        processes = Processes(tmp_path)
        record = processes.start(_ready_when_file(tmp_path / "ready"))
        try:
            assert record.info == {"port": 7}
            assert is_alive(record)
            assert processes.load().processes["worker"].info == {"port": 7}
            assert (tmp_path / "worker.pid").read_text().strip() == str(record.pid)
            with pytest.raises(ProcessError, match="already running"):
                processes.start(_ready_when_file(tmp_path / "ready"))
        finally:
            assert processes.stop_all() == ["worker"]
        assert not is_alive(record)
        assert processes.load().processes == {}

    def test_a_process_that_exits_while_starting_reports_its_log(self, tmp_path: Path) -> None:
        """A process exiting before it is ready raises ProcessError carrying the end of its log."""
        spec = ProcessSpec(
            "broken", [PY, "-c", "import sys; print('bad config'); sys.exit(2)"], ready=lambda _: None
        )
        with pytest.raises(ProcessError, match="exited with status 2") as exc:
            Processes(tmp_path).start(spec)
        assert "bad config" in exc.value.log_tail
        assert Processes(tmp_path).load().processes == {}

    def test_a_process_never_ready_is_stopped_after_the_timeout(self, tmp_path: Path) -> None:
        """A process not ready in time raises ProcessError and is not left running."""
        started: list[ProcessRecord] = []

        def never(record: ProcessRecord) -> None:
            started.append(record)

        spec = ProcessSpec(
            "slow", [PY, "-c", "import time; time.sleep(60)"], ready=never, startup_timeout=0.3
        )
        with pytest.raises(ProcessError, match="not ready within"):
            Processes(tmp_path).start(spec)
        assert started
        assert not is_alive(started[0])

    def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(self, tmp_path: Path) -> None:
        """Stopping reaches children of the process and escalates to SIGKILL after the grace period."""
        child_pid = tmp_path / "child.pid"
        script = (
            "import os, signal, subprocess, sys, time, pathlib\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"pathlib.Path({str(child_pid)!r}).write_text(str(child.pid))\n"
            "time.sleep(60)\n"
        )
        spec = ProcessSpec(
            "stubborn", [PY, "-c", script], ready=lambda _: child_pid.exists(), startup_timeout=10
        )
        processes = Processes(tmp_path)
        record = processes.start(spec)
        child = record.model_copy(update={"pid": int(child_pid.read_text()), "start_ticks": None})
        assert processes.stop("stubborn", grace=0.2)
        assert not is_alive(record)
        eventually(lambda: not is_alive(child), timeout=5, what="child stopped")

    def test_stop_is_idempotent_and_ignores_dead_processes(self, tmp_path: Path) -> None:
        """Stopping what is not running (or was never started) is harmless and says so."""
        processes = Processes(tmp_path)
        record = processes.start(_ready_when_file(tmp_path / "ready"))
        processes.stop("worker")
        assert not processes.stop("worker")
        assert processes.stop_all() == []
        assert not is_alive(record)

    def test_a_recycled_pid_is_not_ours(self, tmp_path: Path) -> None:
        """A record whose pid now belongs to another process (another start time) is ignored, not killed."""
        impostor = ProcessRecord(
            name="ghost", pid=os.getpid(), pgid=os.getpid(), start_ticks=1, argv=[], log="x", started_at=""
        )
        assert not is_alive(impostor)
        processes = Processes(tmp_path)
        state = processes.load()
        state.processes["ghost"] = impostor
        processes.save(state)
        assert processes.stop_all() == []

    def test_free_port_can_be_bound(self) -> None:
        """free_port names a port nobody listens on, which a process can then bind."""
        port = free_port()
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
