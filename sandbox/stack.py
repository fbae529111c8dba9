"""``sandbox up``, ``down`` and ``status``: the local fleet's processes and the files clients use.

``up`` reads the fleet, starts the Kubernetes emulator in the background (``python -m
sandbox.apiserver``, which picks a free port and writes it to ``DIR/apiserver.port``),
waits until it answers ``/readyz``, then writes ``DIR/kubeconfig`` (one context per fleet
cluster, named like it) and ``DIR/fleet.yaml`` (the fleet pointing at those contexts). Running it
again with the same fleet and settings is a no-op; with different ones it refuses until ``down``.
``down`` stops every recorded process whatever its state.

Unless the settings say ``prometheus: {enabled: false}``, ``up`` then starts the traffic simulator
(:mod:`sandbox.traffic`) and one real Prometheus per jurisdiction
(:mod:`sandbox.prometheus`), returns only once their samples are queryable, and writes
each region's ``prometheus:`` in ``DIR/fleet.yaml`` as its jurisdiction's sandbox Prometheus, with
the fleet's ``hosts`` table placing those loopback addresses in their jurisdictions.

Unless the settings say ``unleash: {enabled: false}``, ``up`` also starts PostgreSQL and one real
Unleash per jurisdiction (:mod:`sandbox.unleash`) before waiting on Prometheus, returns only once each
serves its seeded state (project, environment, context field ``cluster``, demo flag) to its admin
and client tokens, writes what clients need to ``DIR/unleash.json``, and places their hosts in the
fleet's ``hosts`` table too. The traffic simulator is given that file's path (``--unleash``) and
evaluates flags with the SDK and each server's client token (:mod:`sandbox.trafficflags`).

With ``temporal=True`` (what ``python -m sandbox up`` and ``make sandbox`` do; tests and scripts
that bring their own Temporal leave it off) ``up`` also keeps a Temporal dev server and a ringmaster
worker running (:func:`sandbox.temporal.ensure`: a worker started from other sources is replaced)
and writes ``DIR/env``, which a shell sources to point ``ringmaster`` at this sandbox. Before the
worker it starts the sandbox's OIDC issuer (process ``oidc``) and writes ``DIR/identity/`` (SSH keys
of alice and bob, the worker's identity policy and attestation key: :mod:`sandbox.identity`); the
worker verifies every request under that policy (``identity: {mode: trusted}`` in the settings
makes it take the client's word), and ``DIR/env`` signs with alice's key. The worker gets each
Unleash's admin token in its environment (``RINGMASTER_UNLEASH_ADMIN_TOKENS``, by host), so flag
releases work in the sandbox; ``DIR/env`` does not carry them.

Directory layout::

    DIR/state.json        processes (pid, group, start time, log, port) and sandbox facts
    DIR/apiserver.json    the emulator's configuration      DIR/apiserver.port  its port
    DIR/apiserver.log     its output                          DIR/apiserver.pid   its pid
    DIR/kubeconfig        contexts for every cluster          DIR/fleet.yaml      the sandbox fleet
    DIR/sandbox.yaml      optional settings (see :mod:`sandbox.settings`)
    DIR/traffic.{json,log,port}                    the simulator's settings, output and port
    DIR/prometheus-<j>.{yml,log}  DIR/prometheus-<j>-data/   each jurisdiction's Prometheus
    DIR/postgres.log  DIR/postgres-data/  DIR/unleash-<j>.log  DIR/unleash.json   flags, per jurisdiction
    DIR/temporal.{log,db}  DIR/worker.log  DIR/env     the dev server, the worker, the shell settings
    DIR/identity/  DIR/oidc.{log,port}             people's keys, the identity policy, the issuer
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from policies import loading
from policies.fleet import Fleet
from ringmaster.exitcodes import ExitCode
from sandbox import identity as sandbox_identity
from sandbox import kubeconfig, seed, settings
from sandbox import postgres as sandbox_postgres
from sandbox import prometheus as sandbox_prometheus
from sandbox import temporal as sandbox_temporal
from sandbox import unleash as sandbox_unleash
from sandbox.apiserver.adminclient import AdminClient
from sandbox.processes import ProcessError, Processes, ProcessRecord, ProcessSpec, read_port

APISERVER = "apiserver"
PROCESSES = (APISERVER,)
"""The processes every sandbox starts first; then the traffic simulator and one Prometheus per
jurisdiction (:func:`expected_processes`), unless disabled."""
DEFAULT_DIR = Path(".sandbox")
DEFAULT_FLEET = Path("deploy/examples/fleet.yaml")
ENV_FILE = "env"


class SandboxError(Exception):
    """A sandbox command cannot do what was asked; ``exit_code`` says how the CLI should end."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.INVALID) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox: where its files are and how to reach it."""

    directory: Path
    url: str
    clusters: list[str]
    kubeconfig: Path
    fleet: Path
    already_running: bool = False
    prometheus: dict[str, str] = field(default_factory=dict)
    """URL of each jurisdiction's Prometheus (empty when disabled)."""
    traffic: str = ""
    """URL of the traffic simulator (empty when disabled)."""
    unleash: dict[str, sandbox_unleash.Server] = field(default_factory=dict)
    """Each jurisdiction's Unleash: URL, tokens, project, environment (empty when disabled); the same
    as ``DIR/unleash.json``."""
    temporal: str = ""
    """Address of the dev server (empty without Temporal)."""
    ui: str = ""
    """URL of the Temporal UI (empty without Temporal)."""
    env: Path | None = None
    """``DIR/env``, for ``source`` (None without Temporal)."""
    identity: sandbox_identity.Files | None = None
    """``DIR/identity/``: keys, the worker's identity policy, the issuer (None without Temporal)."""
    started: tuple[str, ...] = ()
    """Processes this call started (empty when everything was reused)."""
    reasons: tuple[str, ...] = ()
    """Why running processes were replaced, when some were."""


def expected_processes(fleet: Fleet, tuned: settings.SandboxSettings) -> list[str]:
    """Names of every process ``up`` starts for ``fleet`` with ``tuned``, in order."""
    names = list(PROCESSES)
    if tuned.prometheus.enabled:
        names.append(sandbox_prometheus.TRAFFIC)
        names += [sandbox_prometheus.process_name(j) for j in fleet.jurisdictions()]
    if tuned.unleash.enabled:
        names.append(sandbox_postgres.POSTGRES)
        names += [sandbox_unleash.process_name(j) for j in fleet.jurisdictions()]
    return names


def _by_jurisdiction(fleet: Fleet) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {j: [] for j in fleet.jurisdictions()}
    for cluster in fleet.clusters:
        found[fleet.region_of(cluster.name).jurisdiction].append(cluster.name)
    return {j: names for j, names in found.items() if names}


def _apiserver_ready(port_file: Path) -> Callable[[ProcessRecord], dict[str, object] | None]:
    def ready(_: ProcessRecord) -> dict[str, object] | None:
        port = read_port(port_file)
        if port is None:
            return None
        url = f"http://127.0.0.1:{port}"
        return {"port": port, "url": url} if AdminClient(url, timeout=1.0).ready() else None

    return ready


def up(
    directory: Path,
    fleet_path: Path,
    config_path: Path | None = None,
    *,
    temporal: bool = False,
    code: str | None = None,
) -> Sandbox:
    """Start the sandbox described by ``fleet_path`` in ``directory`` (see the module docstring).

    With ``temporal``, also the dev server and a worker; ``code`` stands for the digest of the
    worker's sources (default: :func:`sandbox.temporal.code_digest` of this checkout).
    """
    clusters, tuned = _up_clusters(directory, fleet_path, config_path)
    if not temporal:
        return clusters
    processes = Processes(directory)
    try:
        identity, issuer_started = sandbox_identity.ensure(
            processes, tuned.identity.mode, tuned.startup_timeout_seconds
        )
        if issuer_started:
            processes.stop(sandbox_temporal.WORKER)  # its policy named the issuer's old port
        found = sandbox_temporal.ensure(
            processes,
            fleet=clusters.fleet,
            kubeconfig=clusters.kubeconfig,
            code=sandbox_temporal.code_digest() if code is None else code,
            identity=identity,
            tuning=tuned.worker.env() | sandbox_unleash.worker_env(clusters.unleash.values()),
        )
    except ProcessError as exc:
        down(directory)
        raise SandboxError(
            f"the OIDC issuer, Temporal or the worker did not start: {exc}", ExitCode.UNREACHABLE
        ) from None
    env = sandbox_temporal.client_env(
        address=found.address,
        ui=found.ui,
        fleet=clusters.fleet,
        kubeconfig=clusters.kubeconfig,
        identity=identity,
    )
    started = clusters.started + ((sandbox_identity.OIDC,) if issuer_started else ()) + tuple(found.started)
    return replace(
        clusters,
        already_running=not started,
        temporal=found.address,
        ui=found.ui,
        env=_write_env(directory / ENV_FILE, env),
        identity=identity,
        started=started,
        reasons=tuple(found.reasons),
    )


def _write_env(path: Path, values: dict[str, str]) -> Path:
    """``DIR/env``: ``export`` lines for bash, with absolute paths, and ``.venv/bin`` on PATH."""
    bin_dir = shlex.quote(str(Path(sys.executable).parent))
    lines = [
        f"# Written by `python -m sandbox up --dir {shlex.quote(str(path.parent))}`; `source` it to use",
        "# this sandbox from a shell: every ringmaster command talks to its Temporal, a `ringmaster worker`",
        "# started by hand uses its fleet and kubeconfig. KUBECONFIG is left alone (your kubectl keeps",
        "# its clusters): pass `kubectl --kubeconfig $RINGMASTER_KUBECONFIG --context <cluster>`.",
        *(f"export {key}={shlex.quote(value)}" for key, value in values.items()),
        f'case ":$PATH:" in *:{bin_dir}:*) ;; *) export PATH={bin_dir}:"$PATH" ;; esac',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.resolve()


def _up_clusters(
    directory: Path, fleet_path: Path, config_path: Path | None
) -> tuple[Sandbox, settings.SandboxSettings]:
    """The emulator, traffic and Prometheus part of :func:`up`, and the sandbox's settings."""
    try:
        fleet_text = fleet_path.read_text(encoding="utf-8")
        fleet = loading.parse_fleet(fleet_text, str(fleet_path))
    except OSError as exc:
        raise SandboxError(f"{fleet_path}: cannot read the fleet file: {exc.strerror or exc}") from None
    except loading.ConfigError as exc:
        raise SandboxError(str(exc)) from None
    try:
        tuned = settings.load(config_path, directory)
    except settings.SettingsError as exc:
        raise SandboxError(str(exc)) from None
    unknown = seed.unknown_overrides(fleet, tuned)
    if unknown:
        raise SandboxError(f"settings name clusters the fleet does not have: {', '.join(unknown)}")
    config_json = seed.emulator_config(fleet, tuned).model_dump_json(by_alias=True, indent=2)
    tuned_json = tuned.model_dump_json()
    digest = hashlib.sha256((config_json + fleet_text + tuned_json).encode()).hexdigest()
    names = [c.name for c in fleet.clusters]
    processes = Processes(directory)
    running = processes.running()
    if running:
        if processes.load().info.get("digest") != digest:
            raise SandboxError(
                f"a sandbox with another fleet or settings is already running in {directory}; "
                f"run `python -m sandbox down --dir {directory}` first"
            )
        unleash_ok = not tuned.unleash.enabled or sandbox_unleash.healthy(processes)
        if set(expected_processes(fleet, tuned)) <= set(running) and unleash_ok:
            info = processes.load().info
            known = {str(k): str(v) for k, v in (info.get("prometheus") or {}).items()}
            url = str(running[APISERVER].info["url"])
            reused = _files(
                directory,
                url,
                names,
                fleet_text,
                metrics=known,
                traffic=str(info.get("traffic", "")),
                unleash=sandbox_unleash.read(directory) if tuned.unleash.enabled else {},
                already=True,
            )
            return reused, tuned
    if tuned.unleash.enabled:
        _check_unleash_install(tuned)
    processes.stop_all()  # whatever is left of an earlier sandbox in this directory
    _remove_data(directory)
    timeout = tuned.startup_timeout_seconds
    try:
        apiserver = processes.start(_apiserver(directory, config_json, timeout))
        url = str(apiserver.info["url"])
        metrics: dict[str, str] = {}
        traffic = ""
        flags: list[sandbox_unleash.Server] = []
        if tuned.unleash.enabled:  # started first: its migrations run while Prometheus fills up
            flags = sandbox_unleash.launch(processes, _by_jurisdiction(fleet), tuned.unleash, timeout)
        if tuned.prometheus.enabled:
            unleash_file = directory / sandbox_unleash.FILE if flags else None  # written by launch
            spec = sandbox_prometheus.traffic_spec(
                directory, url, tuned.traffic, timeout, unleash=unleash_file
            )
            traffic = str(processes.start(spec).info["url"])
            servers = sandbox_prometheus.start(
                processes, _by_jurisdiction(fleet), traffic.removeprefix("http://"), tuned.prometheus, timeout
            )
            metrics = {s.jurisdiction: s.url for s in servers}
        sandbox_unleash.await_ready(processes, flags, timeout)
    except (ProcessError, sandbox_prometheus.PrometheusError, sandbox_unleash.UnleashError) as exc:
        processes.stop_all()
        raise SandboxError(f"the sandbox did not start: {exc}", ExitCode.UNREACHABLE) from None
    unleash = {s.jurisdiction: s for s in flags}
    sandbox = _files(
        directory, url, names, fleet_text, metrics=metrics, traffic=traffic, unleash=unleash, already=False
    )
    sandbox = replace(sandbox, started=tuple(processes.running()))
    processes.remember(
        digest=digest,
        kubeconfig=str(sandbox.kubeconfig),
        fleet=str(sandbox.fleet),
        url=sandbox.url,
        prometheus=metrics,
        traffic=traffic,
    )
    return sandbox, tuned


def _check_unleash_install(tuned: settings.SandboxSettings) -> None:
    """Fail before anything starts when PostgreSQL, node or unleash-server is missing, naming the fix."""
    try:
        sandbox_postgres.bin_dir(tuned.unleash.postgres_bin)
        sandbox_unleash.check_install()
    except (sandbox_postgres.PostgresError, sandbox_unleash.UnleashError) as exc:
        raise SandboxError(f"the sandbox cannot start Unleash: {exc}", ExitCode.UNREACHABLE) from None


def _apiserver(directory: Path, config_json: str, timeout: float) -> ProcessSpec:
    """The Kubernetes emulator: it binds a free port and writes it to ``DIR/apiserver.port``."""
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / f"{APISERVER}.json"
    config_file.write_text(config_json + "\n", encoding="utf-8")
    port_file = directory / f"{APISERVER}.port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "sandbox.apiserver", "--config", str(config_file)]
    argv += ["--port", "0", "--port-file", str(port_file)]
    return ProcessSpec(APISERVER, argv, ready=_apiserver_ready(port_file), startup_timeout=timeout)


def _files(
    directory: Path,
    url: str,
    names: list[str],
    fleet_text: str,
    *,
    metrics: dict[str, str],
    traffic: str,
    unleash: dict[str, sandbox_unleash.Server],
    already: bool,
) -> Sandbox:
    config_path = kubeconfig.write(directory / "kubeconfig", url, [(n, n) for n in names])
    fleet_out = directory / "fleet.yaml"
    placed = {j: [server.url] for j, server in unleash.items()}
    flag_servers = {
        j: seed.FlagServerPlace(server.url, server.project, server.environment)
        for j, server in unleash.items()
    }
    fleet_out.write_text(seed.sandbox_fleet(fleet_text, metrics, placed, flag_servers), encoding="utf-8")
    return Sandbox(
        directory,
        url,
        names,
        config_path,
        fleet_out,
        already_running=already,
        prometheus=metrics,
        traffic=traffic,
        unleash=unleash,
    )


def down(directory: Path) -> list[str]:
    """Stop every process of the sandbox in ``directory``; returns the names of those that ran."""
    processes = Processes(directory)
    stopped = processes.stop_all()
    processes.forget()
    _remove_data(directory)
    return stopped


def _remove_data(directory: Path) -> None:
    """What a stopped sandbox leaves that the next one must not inherit."""
    sandbox_prometheus.remove_data(directory)
    sandbox_unleash.remove_data(directory)
    sandbox_temporal.remove_data(directory)
    (directory / ENV_FILE).unlink(missing_ok=True)


def status(directory: Path) -> dict[str, dict[str, object]]:
    """Every recorded process with whether it runs and what is known about it."""
    processes = Processes(directory)
    running = processes.running()
    return {
        name: {
            "running": name in running,
            "pid": record.pid,
            "log": str(directory / record.log),
            **record.info,
        }
        for name, record in processes.load().processes.items()
    }
