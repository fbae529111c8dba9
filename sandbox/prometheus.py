"""The sandbox's Prometheus servers (one per jurisdiction) and its traffic simulator, as sandbox processes.

Each jurisdiction gets a real Prometheus (the Debian package's ``prometheus`` binary) on its own
loopback address (EU on 127.0.0.2, US on 127.0.0.3 by default), so the fleet's ``hosts`` table can
place it and the telemetry-locality rule holds; it scrapes only that jurisdiction's clusters from
the simulator (:mod:`sandbox.traffic`), every ``scrapeIntervalSeconds``. Its
configuration is rendered from ``prometheus.yml.tmpl`` beside this module; its TSDB lives in
``DIR/prometheus-<jurisdiction>-data`` and is thrown away at every start and at ``down``.

A Prometheus counts as ready only once samples of every one of its clusters are queryable (about
5.5 s after start, at a 1 s scrape interval), not when its port opens. Both servers start before
either is waited for, so the wait is paid once.

How each server was started is remembered in ``DIR/state.json``, so one jurisdiction's Prometheus
can be stopped (:func:`stop_server`, an outage) and started again on the same address, with the
same configuration and TSDB (:func:`restart_server`), by a test or a chaos scenario.

:func:`scrape_stats` tells whether a server keeps up (targets up, scrape durations, samples a round,
series in its head); ``python -m sandbox status`` shows it for each.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml

from sandbox.processes import (
    Processes,
    ProcessRecord,
    ProcessSpec,
    free_port,
    loopback_addresses,
    read_port,
)
from sandbox.settings import PrometheusSettings, TrafficSettings

TRAFFIC = "traffic"
STARTED = "prometheus_servers"
"""Key of the sandbox facts in ``state.json``: each server's ``argv`` and ``url``, to start it again."""
TEMPLATE = Path(__file__).with_name("prometheus.yml.tmpl")
"""Shipped beside this module, so it is found wherever the sandbox package is."""
BINARY_NAMES = ("prometheus",)
FALLBACK_BINARY = Path("/usr/bin/prometheus")


class PrometheusError(Exception):
    """The sandbox's Prometheus cannot be started."""


def process_name(jurisdiction: str) -> str:
    """``prometheus-eu`` for the EU."""
    return f"prometheus-{jurisdiction.lower()}"


def binary() -> Path:
    """The ``prometheus`` binary (PATH, then /usr/bin); PrometheusError naming the fix when missing."""
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    if FALLBACK_BINARY.exists():
        return FALLBACK_BINARY
    raise PrometheusError(
        "prometheus is not installed: run `make install` (it installs the Debian package), "
        "or set `prometheus: {enabled: false}` in the sandbox settings"
    )


def addresses(jurisdictions: list[str], settings: PrometheusSettings) -> dict[str, str]:
    """The loopback address of each jurisdiction's Prometheus."""
    return loopback_addresses(jurisdictions, settings.addresses)


def render(
    jurisdiction: str,
    clusters: list[str],
    simulator: str,
    settings: PrometheusSettings,
    workers: Path = Path("prometheus-workers.json"),
) -> str:
    """The configuration of one jurisdiction's Prometheus, from the template; ``workers`` is the file
    listing the ringmaster workers it scrapes (:func:`scrape_workers`)."""
    interval = f"{int(settings.scrape_interval_seconds * 1000)}ms"
    timeout = f"{int(settings.scrape_interval_seconds * 800)}ms"
    raw = TEMPLATE.read_text(encoding="utf-8")
    text = Template(raw).safe_substitute(
        scrape_interval=interval, scrape_timeout=timeout, jurisdiction=jurisdiction, workers_file=str(workers)
    )
    document = yaml.safe_load(text)
    cluster_job, *others = document["scrape_configs"]
    job = yaml.safe_dump(cluster_job)
    document["scrape_configs"] = [
        yaml.safe_load(Template(job).substitute(cluster=c, simulator=simulator)) for c in clusters
    ] + others
    header = f"# Rendered from {TEMPLATE.name} by `python -m sandbox up`: the {jurisdiction} Prometheus.\n"
    return header + yaml.safe_dump(document, sort_keys=False)


def query(url: str, promql: str, *, timeout: float = 2.0) -> list[dict[str, object]] | None:
    """An instant query's result vector; None when Prometheus does not answer or refuses."""
    target = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310 - our own loopback server
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    result = answer.get("data", {}).get("result")
    return list(result) if isinstance(result, list) else None


def scraping(url: str, clusters: list[str]) -> bool:
    """Whether samples of every one of ``clusters`` are queryable on the Prometheus at ``url``."""
    found = query(url, "count by (cluster) (http_requests_total) or count by (job) (up == 1)")
    if found is None:
        return False
    seen: set[str] = set()
    for series in found:
        labels = series.get("metric")
        if isinstance(labels, dict):
            seen.update(str(v) for k, v in labels.items() if k in ("cluster", "job"))
    return set(clusters) <= seen


@dataclass(frozen=True)
class ScrapeStats:
    """Whether a Prometheus keeps up with its targets, from its own per-target series and TSDB status."""

    targets_up: int
    targets_total: int
    scrape_seconds_max: float
    """The slowest target's last scrape, in seconds (``max(scrape_duration_seconds)``); near the scrape
    timeout (0.8 of the interval) means scrapes are about to fail."""
    scrape_seconds_mean: float
    samples_scraped: int
    """Samples of the last scrape of every target together (``sum(scrape_samples_scraped)``)."""
    head_series: int
    """Series in the TSDB head (``/api/v1/status/tsdb``), what memory grows with."""

    def summary(self) -> str:
        """One line for ``python -m sandbox status``."""
        return (
            f"targets {self.targets_up}/{self.targets_total} up, scrape max {self.scrape_seconds_max:.3f}s"
            f" mean {self.scrape_seconds_mean:.3f}s, {self.samples_scraped} samples a round,"
            f" {self.head_series} head series"
        )


def _scalar(url: str, promql: str, timeout: float) -> float | None:
    """The value of an aggregating query: 0 when it has no series, None when Prometheus does not answer."""
    found = query(url, promql, timeout=timeout)
    if found is None:
        return None
    if not found:
        return 0.0
    value = found[0].get("value")
    try:
        return float(value[1]) if isinstance(value, list) else 0.0
    except (TypeError, ValueError):
        return 0.0


def head_series(url: str, *, timeout: float = 2.0) -> int | None:
    """Series in the TSDB head of the Prometheus at ``url``; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/status/tsdb", timeout=timeout) as response:  # noqa: S310 - our own loopback server
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    found = answer.get("data", {}).get("headStats", {}).get("numSeries")
    return int(found) if isinstance(found, int) else None


def scrape_stats(url: str, *, timeout: float = 2.0) -> ScrapeStats | None:
    """How the Prometheus at ``url`` keeps up: targets up, scrape durations, samples, head series.

    None when it does not answer (stopped, or too busy to within ``timeout`` seconds).
    """
    values = {
        name: _scalar(url, promql, timeout)
        for name, promql in (
            ("up", "count(up == 1)"),
            ("total", "count(up)"),
            ("max", "max(scrape_duration_seconds)"),
            ("mean", "avg(scrape_duration_seconds)"),
            ("samples", "sum(scrape_samples_scraped)"),
        )
    }
    series = head_series(url, timeout=timeout)
    if series is None or any(v is None for v in values.values()):
        return None
    known = {k: v or 0.0 for k, v in values.items()}
    return ScrapeStats(
        targets_up=int(known["up"]),
        targets_total=int(known["total"]),
        scrape_seconds_max=known["max"],
        scrape_seconds_mean=known["mean"],
        samples_scraped=int(known["samples"]),
        head_series=series,
    )


def is_server(name: str) -> bool:
    """Whether the sandbox process ``name`` is one of its Prometheus servers."""
    return name.startswith("prometheus-")


@dataclass(frozen=True)
class Server:
    """One jurisdiction's Prometheus as started."""

    jurisdiction: str
    url: str
    clusters: list[str]


def traffic_spec(
    directory: Path,
    apiserver: str,
    settings: TrafficSettings,
    timeout: float,
    *,
    unleash: Path | None = None,
) -> ProcessSpec:
    """The simulator: it binds a free port and writes it to ``DIR/traffic.port``. With ``unleash``
    (``DIR/unleash.json``) its requests evaluate flags there; the file's path is passed, never a token."""
    settings_file = directory / f"{TRAFFIC}.json"
    settings_file.write_text(settings.model_dump_json(by_alias=True, indent=2) + "\n", encoding="utf-8")
    port_file = directory / f"{TRAFFIC}.port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "sandbox.traffic", "--apiserver", apiserver]
    argv += ["--settings", str(settings_file), "--port", "0", "--port-file", str(port_file)]
    if unleash is not None:
        argv += ["--unleash", str(unleash)]

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        port = read_port(port_file)
        if port is None:
            return None
        url = f"http://127.0.0.1:{port}"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as response:  # noqa: S310 - loopback
                ok = response.status == 200
        except (OSError, urllib.error.URLError):
            ok = False
        return {"port": port, "url": url} if ok else None

    return ProcessSpec(TRAFFIC, argv, ready=ready, startup_timeout=timeout)


def _spec(name: str, argv: list[str], url: str, timeout: float) -> ProcessSpec:
    """One Prometheus, ready once it answers ``/-/ready`` (after replaying its TSDB's WAL)."""

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1.0) as response:  # noqa: S310 - loopback
                return {"url": url} if response.status == 200 else None
        except (OSError, urllib.error.URLError):
            return None

    return ProcessSpec(name, argv, ready=ready, startup_timeout=timeout, poll_interval=0.1)


def workers_file(directory: Path) -> Path:
    """The file every Prometheus of the sandbox in ``directory`` reads its ringmaster workers from."""
    return directory / "prometheus-workers.json"


def scrape_workers(directory: Path, targets: list[str]) -> None:
    """Have the sandbox's Prometheus servers scrape the workers' metrics at ``targets`` (``host:port``;
    empty: none), replacing the list. Written whole, then renamed: Prometheus never reads half a file."""
    path = workers_file(directory)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps([{"targets": targets}] if targets else []), encoding="utf-8")
    partial.replace(path)


def data_dir(directory: Path, jurisdiction: str) -> Path:
    """Where one jurisdiction's TSDB lives (thrown away at every start and at ``down``)."""
    return directory / f"{process_name(jurisdiction)}-data"


def start(
    processes: Processes,
    clusters: Mapping[str, list[str]],
    simulator: str,
    settings: PrometheusSettings,
    timeout: float,
) -> list[Server]:
    """Start one Prometheus per jurisdiction of ``clusters`` and return once all are scraping."""
    directory = processes.directory
    program = binary()
    hosts = addresses(list(clusters), settings)
    servers = []
    for jurisdiction, names in clusters.items():
        name = process_name(jurisdiction)
        config = directory / f"{name}.yml"
        if not workers_file(directory).exists():
            scrape_workers(directory, [])
        config.write_text(
            render(jurisdiction, names, simulator, settings, workers_file(directory)), encoding="utf-8"
        )
        data = data_dir(directory, jurisdiction)
        shutil.rmtree(data, ignore_errors=True)
        host = hosts[jurisdiction]
        port = free_port(host)
        url = f"http://{host}:{port}"
        argv = [
            str(program),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={host}:{port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        processes.start(_spec(name, argv, url, timeout))
        started = dict(processes.load().info.get(STARTED) or {})
        processes.remember(**{STARTED: {**started, name: {"argv": argv, "url": url}}})
        servers.append(Server(jurisdiction, url, list(names)))
    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting:
        waiting = [s for s in waiting if not scraping(s.url, s.clusters)]
        if waiting and time.monotonic() > deadline:
            late = ", ".join(f"{s.jurisdiction} ({s.url})" for s in waiting)
            raise PrometheusError(f"Prometheus of {late} had no samples of its clusters within {timeout:g}s")
        if waiting:
            time.sleep(0.25)
    return servers


def stop_server(processes: Processes, jurisdiction: str) -> ProcessRecord:
    """Stop one jurisdiction's Prometheus, keeping its data (an outage); its record starts it again."""
    record = processes.load().processes[process_name(jurisdiction)]
    processes.stop(record.name)
    return record


def start_server(processes: Processes, record: ProcessRecord, timeout: float = 30.0) -> None:
    """Start a Prometheus stopped by :func:`stop_server` again: same address, configuration and data."""
    processes.start(_spec(record.name, record.argv, str(record.info["url"]), timeout))


def restart_server(processes: Processes, jurisdiction: str, *, timeout: float = 30.0) -> ProcessRecord:
    """Start one jurisdiction's Prometheus again as :func:`start` started it (same address, port,
    configuration and TSDB), stopping it first if it runs; ready once it answers, which is before
    it has scraped anew. PrometheusError when :func:`start` never started it in this directory."""
    name = process_name(jurisdiction)
    started = (processes.load().info.get(STARTED) or {}).get(name)
    if started is None:
        raise PrometheusError(f"no Prometheus of {jurisdiction} was started in {processes.directory}")
    processes.stop(name)
    return processes.start(_spec(name, list(started["argv"]), str(started["url"]), timeout))


def remove_data(directory: Path) -> None:
    """Throw away every TSDB of the sandbox in ``directory``."""
    for data in directory.glob("prometheus-*-data"):
        shutil.rmtree(data, ignore_errors=True)
