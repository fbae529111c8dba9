"""What users of a flag get: the official Unleash Python SDK against a sandbox Unleash, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from UnleashClient.clients.unleash_client import UnleashClient

from sandbox import unleash


@contextmanager
def sdk(server: unleash.Server, cache: Path) -> Iterator[UnleashClient]:
    """An initialized SDK client of ``server`` (client token, refreshing every second), destroyed after."""
    client = UnleashClient(
        url=f"{server.url}/api",
        app_name="ringmaster-tests",
        refresh_interval=1,
        disable_metrics=True,
        custom_headers={"Authorization": server.client_token},
        cache_directory=str(cache),
    )
    client.initialize_client()
    try:
        yield client
    finally:
        client.destroy()
