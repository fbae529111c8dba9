"""Fixtures of the sandbox tests: one emulator for the session, a fresh cluster for every test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from sandbox.apiserver.config import ClusterSpec, ControllerSettings, EmulatorConfig
from sandbox.apiserver.harness import EmulatorServer
from tests.support.cluster import Cluster

_names = itertools.count(1)

FAST = ControllerSettings(
    tick_seconds=0.02, pod_ready_seconds=0.1, progress_deadline_scale=1.0, never_ready_images=["*:crashloop"]
)


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """The emulator, in-process on a free port, with a fast controller (rollouts take under a second)."""
    with EmulatorServer(EmulatorConfig(controller=FAST, watch_history=500)) as server:
        yield server


@pytest.fixture
def cluster(emulator: EmulatorServer) -> Iterator[Cluster]:
    """A fresh emulated cluster for one test (region eu-west-1), removed afterwards."""
    name = f"t{next(_names)}"
    emulator.call(lambda emu: emu.add_cluster(ClusterSpec(name=name, region="eu-west-1")))
    handle = Cluster.emulator(name, emulator.cluster_url(name), emulator.admin)
    yield handle
    handle.close()
    emulator.call(lambda emu: emu.remove_cluster(name))
