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

Feature flags are evaluated for real (``--unleash DIR/unleash.json``, which ``sandbox up`` passes):
the Services ``features`` names evaluate their flags with Unleash's official Python SDK, one client
per jurisdiction's Unleash with its client token, refreshing every ``flagRefreshSeconds`` (1 s by
default), on a sample of synthetic users per cluster and flag a tick (:mod:`sandbox.trafficflags`).
A Service evaluating several flags splits its requests equally among them (one endpoint per flag). A request
whose flag is on behaves as its version with the first matching ``featureProfiles`` entry applied
(by default a flag ending in ``-bad`` fails 8% and is three times slower); off, as its version.

Served at ``/clusters/<cluster>/metrics`` with ``cluster``, ``namespace``, ``service``, ``version``,
``track``, ``feature`` (the flag the request evaluated; empty when it evaluated none) and
``feature_on`` (``true``/``false``; ``false`` when it evaluated none) labels:
``http_requests_total{code}``, the ``http_request_duration_seconds`` histogram,
``checkouts_started_total`` and ``checkouts_completed_total``; a query that does not name
``feature`` sums over them, as before flags. ``/first-served`` tells when each version first served
a request in each cluster (the start of a reaction-time measurement); ``/served`` when each version,
and each flag switched on, first and last served one (``{cluster: {versions: {v: {first, last}},
features: {flag: {first, last}}}}``, Unix seconds: when a rollback's traffic ended);
``/healthz`` answers once every cluster was read.

The profiles can be changed while it runs (a scenario making one version bad in some clusters),
with bodies ``{"profiles": [...]}`` in the settings file's camelCase (``{match, clusters?,
errorRate?, ...}``): ``GET /profiles`` reads them, ``PUT /profiles`` replaces them, ``POST
/profiles`` puts the given ones before the existing ones (so they win); both answer the full list.
A body that does not validate answers 400 ``{"message"}`` naming the field, and changes nothing.

Run as ``python -m sandbox.traffic --apiserver URL [--settings FILE] [--unleash FILE] --port-file F``.
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
from collections.abc import Iterable
from pathlib import Path

import yaml
from aiohttp import web
from pydantic import ValidationError

from sandbox import _sampling, trafficflags
from sandbox import settings as sandbox_settings
from sandbox import unleash as sandbox_unleash
from sandbox._series import BUCKETS, Outcomes, Series, SeriesKey, Served, equal_shares
from sandbox._streams import Stream, streams
from sandbox.apiserver.adminclient import AdminClient, AdminError
from sandbox.settings import TrafficSettings, VersionProfile


class Simulator:
    """Cluster states read from the emulator, request generation, and the exposition per cluster."""

    def __init__(
        self,
        admin: AdminClient,
        settings: TrafficSettings,
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
        flags: trafficflags.Evaluator | None = None,
    ) -> None:
        self._admin = admin
        self._settings = settings
        self._rng = rng if rng is not None else random.Random(seed)  # noqa: S311 - simulated traffic
        self._flags = flags
        self._sampling = trafficflags.Sampling(settings.flag_evaluations, settings.users)
        self._versions: dict[str, str] = {}
        self._regions: dict[str, str] = {}
        self.streams: dict[str, list[Stream]] = {}
        self.series: dict[str, dict[SeriesKey, Series]] = defaultdict(dict)
        self.served: dict[str, Served] = defaultdict(Served)
        self._carry: dict[tuple[str, Stream], float] = defaultdict(float)
        self._behaviours: dict[tuple[str, str, str], Outcomes] = {}
        self._flags_of: dict[str, list[str]] = {}
        self._shares: dict[tuple[str, str], float] = {}

    def refresh(self) -> None:
        """Re-read every cluster whose resourceVersion moved (blocking: run it in a thread)."""
        for cluster in self._admin.clusters():
            name, version = cluster["name"], str(cluster.get("resourceVersion"))
            self._regions[name] = str(cluster.get("region") or "")
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

    @property
    def first_served(self) -> dict[str, dict[str, float]]:
        """When each version first served a request, per cluster (Unix seconds)."""
        return {c: {v: t[0] for v, t in s.versions.items()} for c, s in self.served.items()}

    def _outcomes(self, version: str, cluster: str, flag: str = "") -> Outcomes:
        """How ``version``'s requests come out in ``cluster``, where ``flag`` is on when one is named."""
        key = (version, cluster, flag)
        found = self._behaviours.get(key)
        if found is None:
            tuned = self._settings
            behaviour = (
                tuned.feature_behaviour(flag, version, cluster) if flag else tuned.behaviour(version, cluster)
            )
            found = self._behaviours[key] = Outcomes.of(behaviour)
        return found

    def _evaluated(self, cluster: str, service: str) -> list[str]:
        """The flags requests to ``service`` evaluate in ``cluster`` (none where no Unleash serves it)."""
        if self._flags is None or not self._flags.serves(cluster):
            return []
        found = self._flags_of.get(service)
        if found is None:
            found = self._flags_of[service] = self._settings.flags_of(service)
        return found

    def _record(self, cluster: str, stream: Stream, feature: tuple[str, bool], n: int) -> None:
        flag, on = feature
        labels = (
            stream.namespace,
            stream.service,
            stream.version,
            stream.track,
            flag,
            "true" if on else "false",
        )
        in_cluster = self.series[cluster]
        series = in_cluster.get(labels)
        if series is None:
            series = in_cluster[labels] = Series()
        series.record(n, self._outcomes(stream.version, cluster, flag if on else ""), self._rng)

    def _share_on(self, cluster: str, flag: str) -> float:
        """The share of ``cluster``'s users with ``flag`` on this tick: one SDK sample for all its streams."""
        key = (cluster, flag)
        found = self._shares.get(key)
        if found is None:
            if self._flags is None:  # never: only asked for the flags _evaluated returned
                return 0.0
            where = (cluster, self._regions.get(cluster, ""))
            found = self._shares[key] = trafficflags.share_on(
                self._flags, flag, where, sampling=self._sampling, rng=self._rng
            )
        return found

    def _serve(self, cluster: str, stream: Stream, n: int, now: float) -> None:
        """``n`` requests of ``stream``: split among its Service's flags, each split by the SDK's answers."""
        flags = self._evaluated(cluster, stream.service)
        served = self.served[cluster]
        served.saw(served.versions, stream.version, now)
        if not flags:
            self._record(cluster, stream, ("", False), n)
            return
        shares = [n] if len(flags) == 1 else equal_shares(len(flags)).draw(n, self._rng)
        for flag, count in zip(flags, shares, strict=True):
            if count == 0:
                continue
            on = _sampling.binomial(count, self._share_on(cluster, flag), self._rng)
            if on:
                self._record(cluster, stream, (flag, True), on)
                served.saw(served.features, flag, now)
            if count - on:
                self._record(cluster, stream, (flag, False), count - on)

    def tick(self, seconds: float) -> None:
        """Generate ``seconds`` worth of requests in every cluster."""
        now = time.time()
        rate = self._settings.requests_per_second
        self._shares.clear()  # a new SDK sample per cluster and flag every tick
        # refresh() runs in a thread and adds clusters meanwhile: iterate over a snapshot
        for cluster, found in list(self.streams.items()):
            for stream in found:
                key = (cluster, stream)
                due = self._carry[key] + rate * stream.share * seconds
                n = int(due)
                self._carry[key] = due - n
                if n > 0:
                    self._serve(cluster, stream, n, now)

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


def _labels(cluster: str, key: SeriesKey) -> str:
    namespace, service, version, track, feature, feature_on = (_escape(v) for v in key)
    return (
        f'cluster="{_escape(cluster)}",namespace="{namespace}",service="{service}",'
        f'version="{version}",track="{track}",feature="{feature}",feature_on="{feature_on}"'
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

    async def served(_: web.Request) -> web.Response:
        return web.json_response({c: s.json() for c, s in simulator.served.items()})

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
            web.get("/served", served),
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
    flags = None
    if args.unleash is not None:  # client tokens only are kept: the admin tokens stay in the file
        servers = sandbox_unleash.read_file(args.unleash).values()
        flags = trafficflags.UnleashFlags.of_servers(servers, settings.flag_refresh_seconds)
    simulator = Simulator(admin, settings, flags=flags)
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
    if flags is not None:  # registering and the first fetch block: the metrics are served meanwhile
        tasks.append(asyncio.create_task(asyncio.to_thread(flags.start)))
    await stopping.wait()
    for task in tasks:
        task.cancel()
    await runner.cleanup()
    if flags is not None:
        await asyncio.to_thread(flags.close)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until signalled; 2 for unusable settings."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.traffic", description=__doc__)
    parser.add_argument("--apiserver", required=True, help="base URL of the Kubernetes emulator")
    parser.add_argument("--settings", type=Path, help="TrafficSettings (YAML or JSON); none: defaults")
    parser.add_argument("--unleash", type=Path, help="the sandbox's unleash.json; none: no flag is evaluated")
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
