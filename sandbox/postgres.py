"""The sandbox's PostgreSQL: one server, one database per Unleash server (:mod:`sandbox.unleash`).

PostgreSQL comes from Debian's ``postgresql`` package (``make install`` installs it): its programs
live in ``/usr/lib/postgresql/<major>/bin``, and the newest major found there is used, else
``initdb`` and ``postgres`` on PATH, else the folder ``unleash: {postgresBin: ...}`` names.

PostgreSQL refuses to run as root. A sandbox started by root (CI, this project's machines) runs
``initdb`` and ``postgres`` as the ``postgres`` user (``setpriv``), with the data directory handed to
that user; it keeps one capability, ``CAP_DAC_READ_SEARCH``, so it can reach a data directory below
folders only root may enter (pytest's ``/tmp/pytest-of-root`` is mode 0700). Anyone else runs them
as themselves.

The cluster lives in ``DIR/postgres-data`` (fsync off: it is thrown away at every fresh ``up`` and
at ``down``), listens on 127.0.0.1 only, on a port chosen at start, with no Unix socket, and trusts
every local connection (user ``postgres``, no password).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sandbox.processes import Processes, ProcessRecord, ProcessSpec, free_port

POSTGRES = "postgres"
"""The sandbox process, and the database superuser every client connects as."""
HOST = "127.0.0.1"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
RUN_AS = "postgres"
"""The system user root runs PostgreSQL as (Debian's package creates it)."""
SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "unix_socket_directories=")
"""A throwaway cluster: durability buys nothing, and no socket file is left in a shared folder."""


class PostgresError(Exception):
    """PostgreSQL is missing or cannot be started; the message names what to do."""


def _major(folder: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in folder.parent.name.split("."))
    except ValueError:
        return (0,)


def bin_dir(configured: Path | None = None) -> Path:
    """The folder of ``initdb``, ``postgres`` and ``psql``; PostgresError naming the fix if none."""
    programs = ("initdb", "postgres", "psql")
    if configured is not None:
        candidates: Iterable[Path] = [configured]
    else:
        debian = sorted(DEBIAN_ROOT.glob("*/bin"), key=_major, reverse=True)
        found = shutil.which("initdb")
        candidates = [*debian, *([Path(found).parent] if found else [])]
    for folder in candidates:
        if all((folder / program).is_file() for program in programs):
            return folder
    where = f"in {configured}" if configured is not None else f"in {DEBIAN_ROOT}/*/bin or on PATH"
    raise PostgresError(
        f"PostgreSQL (initdb, postgres, psql) is not installed {where}: run `make install` (it installs "
        "Debian's postgresql package), or set `unleash: {enabled: false}` in the sandbox settings"
    )


def _as_server_user() -> list[str]:
    """The argv prefix that runs a PostgreSQL program as a user it accepts (empty unless root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PostgresError(
            f"PostgreSQL refuses to run as root and there is no `{RUN_AS}` user to run it as: "
            "run `make install` (Debian's postgresql package creates it)"
        ) from None
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    keep = "+dac_read_search"
    return [setpriv, f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", *_keeping(keep)]


def _keeping(capability: str) -> list[str]:
    """setpriv flags keeping ``capability`` across the change of user and the exec of the program."""
    return [f"--inh-caps={capability}", f"--ambient-caps={capability}"]


def data_dir(directory: Path) -> Path:
    """Where the cluster lives (thrown away at every fresh start and at ``down``)."""
    return directory / f"{POSTGRES}-data"


def remove_data(directory: Path) -> None:
    """Throw the cluster away."""
    shutil.rmtree(data_dir(directory), ignore_errors=True)


@dataclass(frozen=True)
class Server:
    """The running PostgreSQL: where clients connect, and the programs that talk to it."""

    port: int
    programs: Path

    @property
    def host(self) -> str:
        """Its loopback address."""
        return HOST

    def psql(self, sql: str, database: str = "postgres", *, timeout: float = 10.0) -> str:
        """Run ``sql`` through ``psql`` and return its unaligned output; PostgresError when it fails."""
        argv = [str(self.programs / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", HOST, "-p", str(self.port), "-U", POSTGRES, "-d", database, "-c", sql]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"psql did not run: {exc}") from None
        if done.returncode != 0:
            raise PostgresError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` unless it exists (names are ours: lower-case letters and ``_``)."""
        if not name.replace("_", "").isalnum() or not name.islower():
            raise ValueError(f"not a database name the sandbox makes: {name!r}")
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608 - checked above
        if not self.psql(exists).strip():
            self.psql(f'CREATE DATABASE "{name}"')

    def accepting(self) -> bool:
        """Whether the server accepts connections (``pg_isready``)."""
        argv = [str(self.programs / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port), "-U", POSTGRES]
        try:
            return subprocess.run(argv, timeout=5, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


def _initdb(programs: Path, data: Path, log: Path) -> None:
    prefix = _as_server_user()
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    if prefix:
        account = pwd.getpwnam(RUN_AS)
        os.chown(data, account.pw_uid, account.pw_gid)
    argv = [*prefix, str(programs / "initdb"), "-D", str(data), "-U", POSTGRES, "--auth=trust"]
    argv += ["--encoding=UTF8", "--locale=C", "--no-sync"]
    with log.open("ab") as output:
        done = subprocess.run(argv, stdout=output, stderr=subprocess.STDOUT, timeout=120, check=False)
    if done.returncode != 0:
        raise PostgresError(f"initdb failed with status {done.returncode}: see {log}")


def start(processes: Processes, configured_bin: Path | None, timeout: float) -> Server:
    """A fresh cluster in ``DIR/postgres-data``, started as the process ``postgres``; returns once it
    accepts connections. PostgresError when PostgreSQL is missing or its initdb fails."""
    programs = bin_dir(configured_bin)
    prefix = _as_server_user()
    data = data_dir(processes.directory)
    remove_data(processes.directory)
    processes.directory.mkdir(parents=True, exist_ok=True)
    _initdb(programs, data, processes.directory / f"{POSTGRES}.log")
    port = free_port(HOST)
    server = Server(port, programs)
    argv = [*prefix, str(programs / "postgres"), "-D", str(data), "-p", str(port)]
    for setting in (f"listen_addresses={HOST}", *SETTINGS):
        argv += ["-c", setting]

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        return {"address": f"{HOST}:{port}", "bin": str(programs)} if server.accepting() else None

    processes.start(ProcessSpec(POSTGRES, argv, ready=ready, startup_timeout=timeout, poll_interval=0.1))
    return server


def running(processes: Processes) -> Server | None:
    """The sandbox's running PostgreSQL, None when it does not run."""
    record = processes.running().get(POSTGRES)
    if record is None or "address" not in record.info:
        return None
    port = int(str(record.info["address"]).rsplit(":", 1)[1])
    return Server(port, Path(str(record.info["bin"])))
