"""The traffic simulator: synthetic production traffic for every emulated cluster, in Prometheus format.

Each cluster gets a steady request stream, split between the versions running there as the
cluster's current state in the emulator says (read through the admin endpoint, so it follows
whatever the Kubernetes backend writes):

- every Service receives ``requestsPerSecond``, unless an HTTPRoute sends traffic to it; a route
  receives that rate instead, shared equally by its rules and by ``backendRefs`` weights inside a
  rule (a blue-green preview Service, which no route names, gets its own stream: the smoke traffic
  a preview is judged on);
- a Service's share goes to the Deployments whose pod-template labels match its selector, in
  proportion to their ready replicas (a blue-green switch is the selector changing);
- a pod's version is its ``ringmaster.dev/version`` label, its track its ``ringmaster.dev/role``
  (``canary``, ``preview``), else ``stable``.

Requests behave per version and cluster (:class:`~sandbox.settings.TrafficSettings`: error rate,
log-normal latency, checkout conversion; by default a tag ending in ``-bad`` fails 8% of requests
and is three times slower everywhere). They are not played one by one: every tick, each stream's
``n`` requests are drawn in aggregate (:mod:`sandbox._sampling`): failures from Binomial(n, error
rate), the histogram's bucket counts from a multinomial over the log-normal's bucket probabilities,
the duration sum as ``n`` times the log-normal's mean plus Gaussian noise of the sum's deviation,
checkouts started and completed as binomials; so a tick costs a bounded number of random draws per
stream, whatever the rate, and 1000 services in 50 clusters stay cheap.

Served at ``/clusters/<cluster>/metrics`` with ``cluster``, ``namespace``, ``service``, ``version``
and ``track`` labels: ``http_requests_total{code}``, the ``http_request_duration_seconds``
histogram, ``checkouts_started_total`` and ``checkouts_completed_total``. ``/first-served`` tells
when each version first served a request in each cluster (the start of a reaction-time
measurement); ``/healthz`` answers once every cluster was read.

The profiles can be changed while it runs (a scenario making one version bad in some clusters),
with bodies ``{"profiles": [...]}`` in the settings file's camelCase (``{match, clusters?,
errorRate?, ...}``): ``GET /profiles`` reads them, ``PUT /profiles`` replaces them, ``POST
/profiles`` puts the given ones before the existing ones (so they win); both answer the full list.
A body that does not validate answers 400 ``{"message"}`` naming the field, and changes nothing.

Run as ``python -m sandbox.traffic --apiserver URL [--settings FILE] --port-file F``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import ValidationError

from sandbox import _sampling
from sandbox import settings as sandbox_settings
from sandbox.apiserver.adminclient import AdminClient, AdminError
from sandbox.settings import Behaviour, TrafficSettings, VersionProfile

VERSION = "ringmaster.dev/version"
ROLE = "ringmaster.dev/role"
TRACKS = ("canary", "preview")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Histogram bucket bounds in seconds (the Prometheus clients' defaults)."""
MAX_DRAWS = 2 * 5 + 2 * (len(BUCKETS) + 1)
"""Uniform draws :meth:`Series.record` takes at most, whatever the number of requests: four
binomials and a Gaussian (each at most two uniforms), and a multinomial over the buckets and the
overflow (at most two uniforms per category)."""


@dataclass(frozen=True)
class Stream:
    """A share of one entry point's traffic served by one version behind one Service."""

    namespace: str
    service: str
    version: str
    track: str
    share: float
    """Fraction of ``requestsPerSecond`` (of one entry point) this stream receives."""


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _backends(namespace: str, service: Mapping[str, Any], deployments: list[dict[str, Any]]) -> list[Stream]:
    """The versions behind one Service, weighted by ready replicas (shares sum to 1, or no stream)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    ready: dict[tuple[str, str], int] = defaultdict(int)
    for d in deployments:
        if d["metadata"].get("namespace") != namespace:
            continue
        labels = ((d.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        count = int((d.get("status") or {}).get("readyReplicas") or 0)
        if count > 0 and _matches(selector, labels):
            track = labels.get(ROLE) if labels.get(ROLE) in TRACKS else "stable"
            ready[(labels.get(VERSION, "unknown"), str(track))] += count
    total = sum(ready.values())
    name = service["metadata"]["name"]
    return [Stream(namespace, name, v, t, n / total) for (v, t), n in sorted(ready.items())] if total else []


def _route_refs(route: Mapping[str, Any]) -> list[list[tuple[str, float]]]:
    """Per rule, the Services a route sends to (in its namespace) with their weights."""
    namespace = route["metadata"].get("namespace")
    rules = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = []
        for ref in rule.get("backendRefs") or []:
            if ref.get("kind", "Service") != "Service" or ref.get("namespace", namespace) != namespace:
                continue
            refs.append((str(ref["name"]), float(ref.get("weight", 1))))
        rules.append(refs)
    return rules


def streams(
    deployments: list[dict[str, Any]], services: list[dict[str, Any]], routes: list[dict[str, Any]]
) -> list[Stream]:
    """Every stream of one cluster: per entry point (a route, or a Service no route names), its versions."""
    by_name = {(s["metadata"].get("namespace"), s["metadata"]["name"]): s for s in services}
    in_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in deployments:  # each Service looks only at its namespace's: no services x deployments
        in_namespace[str(d["metadata"].get("namespace"))].append(d)
    routed = {
        (r["metadata"].get("namespace"), name) for r in routes for rule in _route_refs(r) for name, _ in rule
    }
    out: list[Stream] = []
    for key, service in sorted(by_name.items()):
        if key not in routed:
            out += _backends(str(key[0]), service, in_namespace.get(str(key[0]), []))
    for route in routes:
        namespace = str(route["metadata"].get("namespace"))
        rules = [r for r in _route_refs(route) if r]
        for rule in rules:
            total = sum(w for _, w in rule)
            for name, weight in rule:
                target = by_name.get((namespace, name))
                if target is None or total <= 0 or weight <= 0:
                    continue
                for s in _backends(namespace, target, in_namespace.get(namespace, [])):
                    share = s.share * weight / total / len(rules)
                    out.append(Stream(s.namespace, s.service, s.version, s.track, share))
    return out


@dataclass(frozen=True)
class Outcomes:
    """How one behaviour's requests come out, worked out once for the aggregate draws."""

    error_rate: float
    buckets: _sampling.Categories
    """Probability of a duration in each histogram bucket, then above the last bound."""
    mean_seconds: float
    sd_seconds: float
    checkout_share: float
    checkout_conversion: float

    @classmethod
    def of(cls, behaviour: Behaviour) -> Outcomes:
        """The outcomes of ``behaviour``: its log-normal's bucket probabilities and moments."""
        median = behaviour.latency_median_seconds * behaviour.latency_factor
        mean, sd = _sampling.lognormal_moments(median, behaviour.latency_sigma)
        return cls(
            error_rate=behaviour.error_rate,
            buckets=_sampling.Categories(
                tuple(_sampling.lognormal_buckets(median, behaviour.latency_sigma, BUCKETS))
            ),
            mean_seconds=mean,
            sd_seconds=sd,
            checkout_share=behaviour.checkout_share,
            checkout_conversion=behaviour.checkout_conversion,
        )


@dataclass
class Series:
    """Counters of one (namespace, service, version, track) in one cluster."""

    codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    duration_sum: float = 0.0
    count: int = 0
    started: int = 0
    completed: int = 0

    def record(self, n: int, outcomes: Outcomes, rng: random.Random) -> None:
        """``n`` requests, drawn in aggregate: at most :data:`MAX_DRAWS` uniform draws whatever ``n``.

        As when each request was played: a request fails at the error rate, starts a checkout at the
        checkout share whether it failed or not, and completes that checkout at the conversion only
        if it did not fail; a status code appears in the exposition once it was first answered.
        """
        failed = _sampling.binomial(n, outcomes.error_rate, rng)
        for code, answered in (("200", n - failed), ("500", failed)):
            if answered:
                self.codes[code] += answered
        placed = outcomes.buckets.draw(n, rng)
        for index in range(len(BUCKETS)):
            self.buckets[index] += placed[index]
        self.duration_sum += _sampling.total(n, outcomes.mean_seconds, outcomes.sd_seconds, rng)
        self.count += n
        started_ok = _sampling.binomial(n - failed, outcomes.checkout_share, rng)
        self.started += started_ok + _sampling.binomial(failed, outcomes.checkout_share, rng)
        self.completed += _sampling.binomial(started_ok, outcomes.checkout_conversion, rng)


class Simulator:
    """Cluster states read from the emulator, request generation, and the exposition per cluster."""

    def __init__(
        self,
        admin: AdminClient,
        settings: TrafficSettings,
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._admin = admin
        self._settings = settings
        self._rng = rng if rng is not None else random.Random(seed)  # noqa: S311 - simulated traffic
        self._versions: dict[str, str] = {}
        self.streams: dict[str, list[Stream]] = {}
        self.series: dict[str, dict[tuple[str, str, str, str], Series]] = defaultdict(dict)
        self.first_served: dict[str, dict[str, float]] = defaultdict(dict)
        self._carry: dict[tuple[str, Stream], float] = defaultdict(float)
        self._behaviours: dict[tuple[str, str], Outcomes] = {}

    def refresh(self) -> None:
        """Re-read every cluster whose resourceVersion moved (blocking: run it in a thread)."""
        for cluster in self._admin.clusters():
            name, version = cluster["name"], str(cluster.get("resourceVersion"))
            if self._versions.get(name) == version and name in self.streams:
                continue
            try:
                deployments = self._admin.objects(name, "Deployment")
                services = self._admin.objects(name, "Service")
            except AdminError:
                continue  # removed meanwhile: read again next time
            try:
                routes = self._admin.objects(name, "HTTPRoute")
            except AdminError:
                routes = []  # an emulator without Gateway API
            self.streams[name] = streams(deployments, services, routes)
            self._versions[name] = version

    @property
    def profiles(self) -> list[VersionProfile]:
        """The profiles in use, first match wins."""
        return list(self._settings.profiles)

    def set_profiles(self, profiles: list[VersionProfile]) -> None:
        """Use ``profiles`` from the next request on."""
        self._settings = self._settings.model_copy(update={"profiles": list(profiles)})
        self._behaviours.clear()

    def _outcomes(self, version: str, cluster: str) -> Outcomes:
        key = (version, cluster)
        found = self._behaviours.get(key)
        if found is None:
            found = self._behaviours[key] = Outcomes.of(self._settings.behaviour(version, cluster))
        return found

    def tick(self, seconds: float) -> None:
        """Generate ``seconds`` worth of requests in every cluster."""
        now = time.time()
        rate = self._settings.requests_per_second
        for cluster, found in self.streams.items():
            for stream in found:
                key = (cluster, stream)
                due = self._carry[key] + rate * stream.share * seconds
                n = int(due)
                self._carry[key] = due - n
                if n == 0:
                    continue
                labels = (stream.namespace, stream.service, stream.version, stream.track)
                in_cluster = self.series[cluster]
                series = in_cluster.get(labels)
                if series is None:
                    series = in_cluster[labels] = Series()
                series.record(n, self._outcomes(stream.version, cluster), self._rng)
                self.first_served[cluster].setdefault(stream.version, now)

    def exposition(self, cluster: str) -> str:
        """The cluster's metrics in Prometheus' text format."""
        lines = [
            "# HELP http_requests_total Requests served, by status code.",
            "# TYPE http_requests_total counter",
        ]
        found = sorted(self.series.get(cluster, {}).items())
        base = {k: _labels(cluster, k) for k, _ in found}
        for key, s in found:
            lines += [
                f'http_requests_total{{{base[key]},code="{c}"}} {n}' for c, n in sorted(s.codes.items())
            ]
        lines += [
            "# HELP http_request_duration_seconds Request durations.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for key, s in found:
            running = 0
            for bound, n in zip(BUCKETS, s.buckets, strict=True):
                running += n
                lines.append(f'http_request_duration_seconds_bucket{{{base[key]},le="{bound:g}"}} {running}')
            lines.append(f'http_request_duration_seconds_bucket{{{base[key]},le="+Inf"}} {s.count}')
            lines.append(f"http_request_duration_seconds_sum{{{base[key]}}} {s.duration_sum:.6f}")
            lines.append(f"http_request_duration_seconds_count{{{base[key]}}} {s.count}")
        for metric, what in (
            ("checkouts_started_total", "started"),
            ("checkouts_completed_total", "completed"),
        ):
            lines += [f"# HELP {metric} Checkouts {what}.", f"# TYPE {metric} counter"]
            lines += [f"{metric}{{{base[key]}}} {getattr(s, what)}" for key, s in found]
        return "\n".join(lines) + "\n"


def _labels(cluster: str, key: tuple[str, str, str, str]) -> str:
    namespace, service, version, track = (_escape(v) for v in key)
    return (
        f'cluster="{_escape(cluster)}",namespace="{namespace}",service="{service}",'
        f'version="{version}",track="{track}"'
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --- the process --------------------------------------------------------------------------------


def _listed(profiles: list[VersionProfile]) -> web.Response:
    return web.json_response({"profiles": [p.model_dump(by_alias=True, exclude_none=True) for p in profiles]})


async def _profiles_in(request: web.Request) -> list[VersionProfile]:
    """The profiles of a request's body; 400 naming the problem when it is not a valid list."""
    try:
        body = await request.json()
        return sandbox_settings.Profiles.model_validate(body).profiles
    except ValueError as exc:  # ValidationError is one: say which field, not the raw exception
        problem = sandbox_settings.problems(exc) if isinstance(exc, ValidationError) else "not valid JSON"
        raise web.HTTPBadRequest(
            text=json.dumps({"message": f"the body is not a list of profiles: {problem}"}),
            content_type="application/json",
        ) from None


def app(simulator: Simulator, clusters: Iterable[str]) -> web.Application:
    """The HTTP endpoints: per-cluster metrics, first-served times, health, profiles."""
    known = set(clusters)

    async def metrics(request: web.Request) -> web.Response:
        cluster = request.match_info["cluster"]
        if cluster not in known:
            raise web.HTTPNotFound(text=f"unknown cluster {cluster}\n")
        return web.Response(text=simulator.exposition(cluster), content_type="text/plain")

    async def first_served(_: web.Request) -> web.Response:
        return web.json_response(simulator.first_served)

    async def healthz(_: web.Request) -> web.Response:
        ok = known <= set(simulator.streams)
        return web.Response(text="ok\n" if ok else "not yet\n", status=200 if ok else 503)

    async def get_profiles(_: web.Request) -> web.Response:
        return _listed(simulator.profiles)

    async def put_profiles(request: web.Request) -> web.Response:
        simulator.set_profiles(await _profiles_in(request))
        return _listed(simulator.profiles)

    async def post_profiles(request: web.Request) -> web.Response:
        simulator.set_profiles(await _profiles_in(request) + simulator.profiles)
        return _listed(simulator.profiles)

    application = web.Application()
    application.add_routes(
        [
            web.get("/clusters/{cluster}/metrics", metrics),
            web.get("/first-served", first_served),
            web.get("/healthz", healthz),
            web.get("/profiles", get_profiles),
            web.put("/profiles", put_profiles),
            web.post("/profiles", post_profiles),
        ]
    )
    return application


async def _run(args: argparse.Namespace, settings: TrafficSettings) -> None:
    admin = AdminClient(args.apiserver, timeout=5.0)
    clusters = [c["name"] for c in admin.clusters()]
    simulator = Simulator(admin, settings)
    runner = web.AppRunner(app(simulator, clusters), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]
    if args.port_file is not None:
        temporary = args.port_file.with_name(args.port_file.name + ".tmp")
        temporary.write_text(f"{port}\n", encoding="utf-8")
        temporary.replace(args.port_file)
    sys.stderr.write(f"traffic simulator for {', '.join(clusters)} on http://{args.host}:{port}\n")
    sys.stderr.flush()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    async def refresh() -> None:
        while True:
            with contextlib.suppress(OSError, AdminError, ValueError):
                await asyncio.to_thread(simulator.refresh)
            await asyncio.sleep(settings.refresh_seconds)

    async def generate() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(settings.tick_seconds)
            now = time.monotonic()
            simulator.tick(now - last)
            last = now

    tasks = [asyncio.create_task(refresh()), asyncio.create_task(generate())]
    await stopping.wait()
    for task in tasks:
        task.cancel()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until signalled; 2 for unusable settings."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.traffic", description=__doc__)
    parser.add_argument("--apiserver", required=True, help="base URL of the Kubernetes emulator")
    parser.add_argument("--settings", type=Path, help="TrafficSettings (YAML or JSON); none: defaults")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the bound port once listening")
    args = parser.parse_args(argv)
    try:
        raw = yaml.safe_load(args.settings.read_text(encoding="utf-8")) if args.settings else {}
        settings = TrafficSettings.model_validate(raw or {})
    except (OSError, yaml.YAMLError, ValueError) as exc:
        sys.stderr.write(f"cannot use the traffic settings: {exc}\n")
        return 2
    asyncio.run(_run(args, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
