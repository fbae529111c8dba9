"""One ``ringmaster sandbox up`` per test session: the emulated fleet the end-to-end tests release into."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import stack
from tests.support import fleets

FAST = """\
controller:
  tickSeconds: 0.05
  podReadySeconds: 0.1
  progressDeadlineScale: 0.05
prometheus:
  enabled: false   # judged by the fake metrics source here; test_prometheus_release.py uses Prometheus
unleash:
  enabled: false   # no release here reads a feature flag
"""


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Sandbox]:
    """The example fleet emulated, with rollouts that take a fraction of a second."""
    directory = tmp_path_factory.mktemp("sandbox")
    (directory / "sandbox.yaml").write_text(FAST)
    started = stack.up(directory, fleets.EXAMPLE_FLEET)
    yield started
    stack.down(directory)
