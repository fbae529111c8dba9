"""Reachability probes of the worker's dependencies: each fleet cluster, Prometheus and flag server.

Each :class:`Probe` is one cheap, read-only request, blocking, with its own timeout: a cluster's
``GET /version`` (through the cluster's own client and credentials, so it proves what the rollout
activities need), a Prometheus' ``GET /-/ready`` (with the worker's bearer token when it has one),
an Unleash server's ``GET /health``. ``ringmaster.health`` runs them periodically on a few threads and
serves the results; none of them is a workflow activity.

A failed probe raises :class:`Unreachable` with a few words on why (``connection refused``,
``timed out after 2 s``, ``HTTP 503``): never a URL, a header or the exception's own text, which
could carry an address with credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import urllib3

from activities import _webhook
from activities.errors import ClusterError
from activities.kubernetes.clients import Clusters
from policies.fleet import Fleet
from policies.hosts import Url

Kind = Literal["cluster", "prometheus", "flags"]


class Unreachable(Exception):
    """The dependency did not answer as expected; the message is safe to show."""


@dataclass(frozen=True)
class Probe:
    """One dependency and how to check it: ``check(timeout)`` returns, or raises :class:`Unreachable`."""

    kind: Kind
    name: str
    """The cluster's or the region's name, or the flag server's host: fleet names, bounded."""
    check: Callable[[float], None]


def probes(
    fleet: Fleet, clusters: Clusters | None, *, prometheus_headers: Mapping[str, str] | None
) -> list[Probe]:
    """A probe per fleet cluster (when the worker has their clients), region Prometheus and flag server."""
    pool = urllib3.PoolManager(retries=False, num_pools=32, maxsize=1)
    found: list[Probe] = []
    if clusters is not None:
        found += [Probe("cluster", name, _cluster_check(clusters, name)) for name in sorted(clusters.apis)]
    headers = dict(prometheus_headers or {})
    for region in fleet.regions:
        url = region.prometheus_url
        found.append(Probe("prometheus", region.name, _http_check(pool, url, "/-/ready", headers)))
    servers = {r.flags.host: r.flags for r in fleet.regions if r.flags is not None}
    for host, server in sorted(servers.items()):
        base = server.api_url
        root = Url(base.scheme, base.host, base.port, base.path.removesuffix("/").removesuffix("/api"))
        found.append(Probe("flags", host, _http_check(pool, root, "/health", {})))
    return found


def _cluster_check(clusters: Clusters, name: str) -> Callable[[float], None]:
    def check(timeout: float) -> None:
        try:
            clusters[name].version(timeout)
        except ClusterError as err:
            raise Unreachable(_cluster_reason(err)) from None

    return check


def _cluster_reason(err: ClusterError) -> str:
    """The error's reason without the verb the client put first (``get /version: ...``)."""
    return str(err).removeprefix("get /version: ")


def _http_check(
    pool: urllib3.PoolManager, url: Url, path: str, headers: dict[str, str]
) -> Callable[[float], None]:
    target = url.connect_form().rstrip("/") + path

    def check(timeout: float) -> None:
        try:
            response = pool.request(
                "GET",
                target,
                headers=headers,
                timeout=urllib3.Timeout(total=timeout),
                redirect=False,
                retries=False,
            )
        except Exception as exc:  # every failure to get an answer is "unreachable", said safely
            raise Unreachable(_webhook.describe(exc, timeout)) from None
        if not 200 <= response.status <= 299:
            raise Unreachable(f"HTTP {response.status}")

    return check
