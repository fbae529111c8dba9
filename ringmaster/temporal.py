"""Connecting to Temporal the way the ``temporal`` CLI does, with ringmaster's data converter."""

from __future__ import annotations

import getpass
import os
import socket

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from ringmaster.converter import data_converter
from ringmaster.settings import Settings


def client_identity() -> str:
    """``user@host pid`` of this process: recorded beside the operator's name on every control."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client from the SDK's environment configuration (TEMPORAL_ADDRESS, profiles, TLS, API key),
    on ``runtime`` (None: the SDK's default; the worker's carries its metrics exporter)."""
    config = ClientConfig.load_client_connect_config(profile=settings.temporal_profile)
    config.setdefault("target_host", "localhost:7233")
    return await Client.connect(
        **config, data_converter=data_converter, identity=client_identity(), runtime=runtime
    )
