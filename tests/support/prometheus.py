"""The metric-gate tests' sandbox: emulated clusters, simulated traffic and both real Prometheus servers.

One is started per session (the ``metrics_sandbox`` fixture of ``tests/conftest.py``) with
``ringmaster sandbox up``'s own code, so readiness means samples are queryable, on a three-cluster
fleet (two EU clusters, one US). The scenarios the analysis tests judge (a good, a bad and a cheaper
canary beside ``v1``, and a namespace about to be rolled) are deployed at once, so their series grow
while other tests run. Used by the ``analyze`` activity tests with ``PrometheusMetrics``
(``tests/activities``) and the releases judged by Prometheus (``tests/e2e``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from activities.models import AnalyzeInput, ClusterTarget, ReleaseRef
from policies import loading
from policies.fleet import Fleet
from policies.plan import Analysis
from sandbox import prometheus as sandbox_prometheus
from sandbox import stack
from sandbox.processes import Processes
from tests.support import fleets, manifests
from tests.support.cluster import Cluster
from tests.support.waiting import assert_eventually, eventually

SETTINGS = """\
controller: {tickSeconds: 0.05, podReadySeconds: 0.2, progressDeadlineScale: 0.1}
traffic:
  requestsPerSecond: 100
  profiles:
    - {match: "*-bad", errorRate: 0.08, latencyFactor: 3}
    - {match: "*-cheap", checkoutConversion: 0.2}
    - {match: "*-flawless", errorRate: 0}
    - {match: "*-sure", errorRate: 0, checkoutConversion: 1}
prometheus: {scrapeIntervalSeconds: 1}
unleash: {enabled: false}
startupTimeoutSeconds: 60
"""

SELECT = 'cluster="{{cluster}}",namespace="{{namespace}}",version="{{version}}"'
SUCCESS_RATE = {
    "name": "success-rate",
    "query": f'100 * sum(rate(http_requests_total{{{SELECT},code!~"5.."}}[5s]))'
    f" / sum(rate(http_requests_total{{{SELECT}}}[5s]))",
    "thresholdRange": {"min": 99},
}
P99 = {
    "name": "latency-p99",
    "query": "1000 * histogram_quantile(0.99, sum by (le) "
    f"(rate(http_request_duration_seconds_bucket{{{SELECT}}}[5s])))",
    "thresholdRange": {"max": 500},
}
CONVERSION_QUERY = (
    f"sum(rate(checkouts_completed_total{{{SELECT}}}[5s]))"
    f" / sum(rate(checkouts_started_total{{{SELECT}}}[5s]))"
)
CONVERSION = {
    "name": "checkout-conversion",
    "query": CONVERSION_QUERY,
    "baseline": {"maxDegradation": "50%", "direction": "lowerIsWorse"},
}
METRICS = [SUCCESS_RATE, P99, CONVERSION]


def analysis(metrics: list[dict[str, Any]] | None = None, **fields: Any) -> Analysis:
    """Checks every second, two in a row decide, two errors in a row are inconclusive."""
    base = {"interval": "1s", "threshold": 2, "consecutiveErrorLimit": 2, "minDataPoints": 3}
    return Analysis.model_validate({**base, **fields, "metrics": METRICS if metrics is None else metrics})


@dataclass
class MetricsSandbox:
    """The session's sandbox: emulated clusters, the traffic simulator and both Prometheus servers."""

    directory: Path
    fleet: Fleet
    kubeconfig: Path
    prometheus: dict[str, str]
    traffic: str
    apiserver: str = ""
    """The emulator's URL, for its admin client (faults)."""

    def kube(self, cluster: str) -> Cluster:
        """A handle on one emulated cluster."""
        return Cluster.from_kubeconfig(self.kubeconfig, cluster)

    def target(self, cluster: str) -> ClusterTarget:
        """The activity's view of a cluster."""
        region = self.fleet.region_of(cluster)
        return ClusterTarget(name=cluster, region=region.name, jurisdiction=region.jurisdiction)

    def url(self, cluster: str) -> str:
        """The Prometheus that judges ``cluster``."""
        return self.fleet.region_of(cluster).prometheus

    def stop_prometheus(self, jurisdiction: str) -> Any:
        """Stop one jurisdiction's Prometheus (data kept); returns what starts it again."""
        return sandbox_prometheus.stop_server(Processes(self.directory), jurisdiction)

    def start_prometheus(self, record: Any) -> None:
        """Start a stopped Prometheus again, and wait until it has fresh samples."""
        sandbox_prometheus.start_server(Processes(self.directory), record)


def analyze_input(
    sandbox: MetricsSandbox,
    cluster: str,
    namespace: str,
    version: str,
    checks: Analysis,
    *,
    stage: str = "canary",
    stable: str = "v1",
    mode: str = "until-enough",
    touched_at: datetime | None = None,
) -> AnalyzeInput:
    """One stretch of analysis for ``version`` in ``namespace`` of ``cluster``."""
    return AnalyzeInput.model_validate(
        {
            "release": ReleaseRef(
                service="api", version=version, image=f"registry.eu.example.com/api:{version}"
            ),
            "cluster": sandbox.target(cluster),
            "analysis": checks,
            "stage": stage,
            "mode": mode,
            "namespace": namespace,
            "stable_version": stable,
            "touched_at": touched_at,
        }
    )


# --- workloads ------------------------------------------------------------------------------------


def _deployment(name: str, version: str, replicas: int, role: str | None) -> dict[str, Any]:
    labels = {"app": "api", "ringmaster.dev/version": version}
    if role is not None:
        labels["ringmaster.dev/role"] = role
    selector = {"app": "api", **({"ringmaster.dev/role": role} if role else {})}
    container = manifests.container("api", f"registry.eu.example.com/api:{version}")
    return manifests.deployment(name, [container], replicas=replicas, labels=labels, selector=selector)


def deploy_app(
    sandbox: MetricsSandbox, cluster: str, namespace: str, *, stable: str = "v1", canary: str | None = None
) -> None:
    """A namespace with Deployment and Service ``api`` on ``stable`` (and ``api-canary`` at half the pods)."""
    kube = sandbox.kube(cluster)
    core, apps = kube.core, kube.apps
    core.create_namespace(body={"metadata": {"name": namespace}})
    apps.create_namespaced_deployment(namespace, _deployment("api", stable, 5, None))
    if canary is not None:
        apps.create_namespaced_deployment(namespace, _deployment("api-canary", canary, 5, "canary"))
    core.create_namespaced_service(
        namespace, manifests.service("api", {"app": "api"}, [{"port": 80, "targetPort": 8080}])
    )


def switch_version(sandbox: MetricsSandbox, cluster: str, namespace: str, version: str) -> None:
    """Roll Deployment ``api`` to ``version`` (what a rolling update does to the pods' label)."""
    apps = sandbox.kube(cluster).apps
    template = _deployment("api", version, 5, None)["spec"]["template"]
    apps.patch_namespaced_deployment("api", namespace, {"spec": {"template": template}})


# --- waiting on Prometheus ------------------------------------------------------------------------


def query(url: str, promql: str) -> float | None:
    """The single value of an instant query now (None: no data or Prometheus down)."""
    found = sandbox_prometheus.query(url, promql)
    if not found:
        return None
    value = found[0].get("value")
    return float(value[1]) if isinstance(value, list) else None


async def wait_for(url: str, promql: str, at_least: float, *, timeout: float = 30.0) -> float:
    """Poll until ``promql`` is at least ``at_least`` on the Prometheus at ``url``."""

    async def probe() -> float | None:
        return query(url, promql)

    value = await assert_eventually(
        probe,
        lambda v: v is not None and v >= at_least,
        timeout=timeout,
        every=0.25,
        what=f"{promql} >= {at_least}",
    )
    assert value is not None
    return value


async def wait_gone(url: str, promql: str, *, timeout: float = 30.0) -> None:
    """Poll until ``promql`` has no finite value (no data, or a ratio of zero rates) at ``url``."""

    async def probe() -> float | None:
        return query(url, promql)

    await assert_eventually(
        probe,
        lambda v: v is None or not math.isfinite(v),
        timeout=timeout,
        every=0.25,
        what=f"{promql} without a value",
    )


def conversion(cluster: str, namespace: str, version: str) -> str:
    """``CONVERSION_QUERY`` for one version of one namespace."""
    return (
        CONVERSION_QUERY.replace("{{cluster}}", cluster)
        .replace("{{namespace}}", namespace)
        .replace("{{version}}", version)
    )


def served(cluster: str, namespace: str, version: str, window: str = "5s") -> str:
    """Requests per second ``version`` served over ``window``: full only once it served that long."""
    return (
        f'sum(rate(http_requests_total{{cluster="{cluster}",namespace="{namespace}",'
        f'version="{version}"}}[{window}]))'
    )


def now() -> datetime:
    """The current instant."""
    return datetime.now(UTC)


# --- the session's sandbox ------------------------------------------------------------------------

SCENARIOS = {"good": "v2", "bad": "v2-bad", "cheap": "v2-cheap", "pretouch": None, "gap": None}
"""Namespaces of cluster ``euw1-prod``: ``v1`` beside a canary of the given version (or alone)."""
STABLE = {"gap": "v1-sure"}
"""Namespaces whose stable version is not ``v1``: ``v1-sure`` converts every checkout, so each of
its conversion values is exactly 1, however few requests a rate window holds (as when it drains)."""
SCENARIO_CLUSTER = "euw1-prod"


@contextmanager
def running(directory: Path) -> Iterator[MetricsSandbox]:
    """The sandbox started in ``directory``, with the scenario namespaces deployed; stopped afterwards."""
    (directory / "fleet-in.yaml").write_text(fleets.METRICS_FLEET, encoding="utf-8")
    (directory / "sandbox.yaml").write_text(SETTINGS, encoding="utf-8")
    try:
        started = stack.up(directory, directory / "fleet-in.yaml")
        fleet = loading.load_fleet(started.fleet)
        sandbox = MetricsSandbox(
            directory, fleet, started.kubeconfig, started.prometheus, started.traffic, started.url
        )
        for namespace, canary in SCENARIOS.items():
            deploy_app(
                sandbox, SCENARIO_CLUSTER, namespace, stable=STABLE.get(namespace, "v1"), canary=canary
            )
        for cluster in fleet.clusters:
            # The stack is up once samples are queryable; a gate's 5 s rate needs a whole window of
            # them. A release started sooner would find its pre-touch baseline still empty.
            url, promql = sandbox.url(cluster.name), served(cluster.name, "api", "v1")
            eventually(lambda: query(url, promql), timeout=60, every=0.25, what=promql)  # noqa: B023
        yield sandbox
    finally:
        stack.down(directory)
