"""One sandbox for the session's metric-gate tests: emulator, traffic simulator and both real Prometheus.

It is started with ``ringmaster sandbox up``'s own code (so readiness means samples are queryable),
on a three-cluster fleet (two EU clusters, one US). The scenarios the analysis tests judge (a good,
a bad and a cheaper canary beside ``v1``, and a namespace about to be rolled) are deployed at once,
so their series grow while other tests run. Skipped where the ``prometheus`` binary is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from policies import loading
from sandbox import prometheus as sandbox_prometheus
from sandbox import stack
from tests.metrics.support import SETTINGS, MetricsSandbox, deploy_app
from tests.support import fleets

SCENARIOS = {"good": "v2", "bad": "v2-bad", "cheap": "v2-cheap", "pretouch": None}
"""Namespaces of cluster ``euw1-prod``: ``v1`` beside a canary of the given version (or alone)."""
SCENARIO_CLUSTER = "euw1-prod"


@pytest.fixture(scope="session")
def metrics_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsSandbox]:
    """The running sandbox, with the scenario namespaces deployed."""
    try:
        sandbox_prometheus.binary()
    except sandbox_prometheus.PrometheusError as exc:
        pytest.skip(str(exc))
    directory = tmp_path_factory.mktemp("metrics-sandbox")
    (directory / "fleet-in.yaml").write_text(fleets.METRICS_FLEET, encoding="utf-8")
    (directory / "sandbox.yaml").write_text(SETTINGS, encoding="utf-8")
    try:
        started = stack.up(directory, directory / "fleet-in.yaml")
        fleet = loading.load_fleet(started.fleet)
        sandbox = MetricsSandbox(directory, fleet, started.kubeconfig, started.prometheus, started.traffic)
        for namespace, canary in SCENARIOS.items():
            deploy_app(sandbox, SCENARIO_CLUSTER, namespace, canary=canary)
        yield sandbox
    finally:
        stack.down(directory)
