"""The traffic simulator's feature flags: Unleash's official Python SDK, one client per Unleash server.

The simulator (:mod:`sandbox.traffic`) asks, every tick, which share of a cluster's requests have
a flag on. :func:`share_on` answers with real evaluations: it draws ``flagEvaluations`` synthetic
users of the cluster (``user-0`` ... ``user-<users - 1>``) and asks the SDK ``is_enabled(flag,
context)`` for each, with the context a service in that cluster would give it: ``userId``, the
fleet's context field (``cluster``, as the fleet documents) set to the cluster's name, and
``region`` (the cluster's cloud region). Nothing else is in the context, so the answer is the same
for every Service and version of the cluster: one sample per cluster and flag a tick serves all its
streams, each drawing its flag-on count from Binomial(n, share). A tick so costs ``flagEvaluations``
SDK calls per cluster and flag, whatever the rate and however many Services evaluate the flag (an
SDK call costs about 30 us: per stream, 200 services in 50 clusters would take 36 CPU seconds a
second).

:class:`UnleashFlags` holds one :class:`UnleashClient` per Unleash server (one per jurisdiction in
the sandbox, ``DIR/unleash.json``), pointed at the server's client API with its client (backend)
token, never the admin token, refreshing every ``flagRefreshSeconds`` (1 s by default; the SDK's own
default, 15 s, would dominate a rollback measured in seconds). The clients register and send usage
metrics as the SDK does by default (every 60 s), so Unleash's UI shows the flags being evaluated.
Until a client's first fetch, or while its server is down, the SDK answers from what it last
fetched (off at first): the traffic goes on either way.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from UnleashClient.clients.unleash_client import UnleashClient
from UnleashClient.utils import InstanceAllowType

from sandbox import unleashclient
from sandbox.unleash import Server

APP_NAME = "sandbox-traffic"
"""The ``appName`` the clients register under: what Unleash's UI lists as evaluating the flags."""


class Evaluator(Protocol):
    """Who answers whether a flag is on for one request (the SDK, or a test's stand-in)."""

    def serves(self, cluster: str) -> bool:
        """Whether some Unleash serves ``cluster``'s flags (else its requests evaluate none)."""
        ...

    def enabled(self, flag: str, cluster: str, region: str, user: str) -> bool:
        """Whether ``flag`` is on for ``user``'s request served in ``cluster`` of ``region``."""
        ...


@dataclass(frozen=True)
class Client:
    """One SDK client, its server's base URL, and the context field naming the cluster there."""

    sdk: UnleashClient
    context_field: str
    url: str = ""
    """Where the client waits for ``/health`` before it starts (empty: it starts at once)."""


class UnleashFlags:
    """Flags evaluated by the Unleash SDK: cluster -> the client of the server serving it."""

    def __init__(self, clients: Mapping[str, Client], *, cache: Path | None = None) -> None:
        self._clients = dict(clients)
        self._cache = cache
        self._closing = threading.Event()

    @classmethod
    def of_servers(cls, servers: Iterable[Server], refresh_seconds: int) -> UnleashFlags:
        """A client per server (not started: :meth:`start`), with the server's client token only."""
        cache = Path(tempfile.mkdtemp(prefix="sandbox-traffic-unleash-"))
        clients: dict[str, Client] = {}
        for server in servers:
            sdk = UnleashClient(
                url=f"{server.url}/api",
                app_name=APP_NAME,
                environment=server.environment,
                instance_id=f"{APP_NAME}-{server.jurisdiction.lower()}",
                refresh_interval=refresh_seconds,
                request_timeout=5,
                custom_headers={"Authorization": server.client_token},
                cache_directory=str(cache / server.jurisdiction.lower()),
                multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,  # one per server, on purpose
            )
            for cluster in server.clusters:
                clients[cluster] = Client(sdk, server.context_field, server.url)
        return cls(clients, cache=cache)

    def _distinct(self) -> list[Client]:
        return list({id(c.sdk): c for c in self._clients.values()}.values())

    def start(self) -> None:
        """Register every client and start its polling, each once its server answers ``/health``
        (blocking: run it in a thread). Waiting first matters: a fetch sent while Unleash is still
        migrating its database would hang for the SDK's timeout and retries, and the SDK skips the
        polls that fall meanwhile."""
        for client in self._distinct():
            while client.url and not unleashclient.healthy(client.url):
                if self._closing.wait(0.5):
                    return
            client.sdk.initialize_client()

    def close(self) -> None:
        """Stop every client (its last metrics are sent) and remove the SDK's file cache."""
        self._closing.set()
        for client in self._distinct():
            client.sdk.destroy()
        if self._cache is not None:
            shutil.rmtree(self._cache, ignore_errors=True)

    def serves(self, cluster: str) -> bool:
        """Whether a server of the sandbox serves ``cluster`` (its jurisdiction has an Unleash)."""
        return cluster in self._clients

    def enabled(self, flag: str, cluster: str, region: str, user: str) -> bool:
        """The SDK's answer for one request (see the module docstring for the context)."""
        client = self._clients[cluster]
        context = {"userId": user, "properties": {client.context_field: cluster, "region": region}}
        return bool(client.sdk.is_enabled(flag, context))


@dataclass(frozen=True)
class Sampling:
    """How many users :func:`share_on` evaluates, and how many a cluster has."""

    evaluations: int
    users: int


def share_on(
    evaluator: Evaluator, flag: str, where: tuple[str, str], *, sampling: Sampling, rng: random.Random
) -> float:
    """The share of ``sampling.evaluations`` random users of ``where`` (cluster, region) who have
    ``flag`` on, by the evaluator's answers (see the module docstring)."""
    cluster, region = where
    asked = sampling.evaluations
    on = sum(
        evaluator.enabled(flag, cluster, region, f"user-{rng.randrange(sampling.users)}")
        for _ in range(asked)
    )
    return on / asked
