"""A real S3-compatible HTTP server for tests: moto's, on a free port of this machine.

:func:`running_s3` starts it with dummy credentials in the environment (and no AWS profile or config
file of the person running the tests), so boto3's default chain finds those and nothing else. Each
test takes a fresh bucket (:meth:`S3Server.new_bucket`): the server lives for a module or a session.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
"""boto3's default chain, pinned: moto accepts any key, and no real credential is ever read."""


@dataclass(frozen=True)
class S3Server:
    """moto's S3 at ``endpoint`` (``http://127.0.0.1:port``)."""

    endpoint: str

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client of this server (``config``: botocore ``Config`` options)."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, config=Config(**config) if config else None
        )

    def new_bucket(self) -> str:
        """A fresh, empty bucket's name."""
        name = f"archive-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name


def running_s3() -> Iterator[S3Server]:
    """moto's server with dummy credentials in the environment, until the generator is closed."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in DUMMY_CREDENTIALS.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield S3Server(f"http://{host}:{port}")
        finally:
            server.stop()
