"""Building blocks of the metric-gate tests: the session sandbox's fleet, workloads, queries and waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

from activities.models import AnalyzeInput, ClusterTarget, ReleaseRef
from policies.fleet import Fleet
from policies.plan import Analysis
from sandbox import prometheus as sandbox_prometheus
from sandbox.processes import Processes
from tests.support.waiting import assert_eventually

SETTINGS = """\
controller: {tickSeconds: 0.05, podReadySeconds: 0.2, progressDeadlineScale: 0.1}
traffic:
  requestsPerSecond: 100
  profiles:
    - {match: "*-bad", errorRate: 0.08, latencyFactor: 3}
    - {match: "*-cheap", checkoutConversion: 0.2}
prometheus: {scrapeIntervalSeconds: 1}
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

    def kube(self, cluster: str) -> client.ApiClient:
        """An official client of one emulated cluster."""
        return config.new_client_from_config(
            config_file=str(self.kubeconfig), context=cluster, persist_config=False
        )

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
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "api", "image": f"registry.eu.example.com/api:{version}"}]},
            },
        },
    }


def deploy_app(
    sandbox: MetricsSandbox, cluster: str, namespace: str, *, stable: str = "v1", canary: str | None = None
) -> None:
    """A namespace with Deployment and Service ``api`` on ``stable`` (and ``api-canary`` at half the pods)."""
    api = sandbox.kube(cluster)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(body={"metadata": {"name": namespace}})
    apps.create_namespaced_deployment(namespace, _deployment("api", stable, 5, None))
    if canary is not None:
        apps.create_namespaced_deployment(namespace, _deployment("api-canary", canary, 5, "canary"))
    core.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api"},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )


def switch_version(sandbox: MetricsSandbox, cluster: str, namespace: str, version: str) -> None:
    """Roll Deployment ``api`` to ``version`` (what a rolling update does to the pods' label)."""
    apps = client.AppsV1Api(sandbox.kube(cluster))
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


def served(cluster: str, namespace: str, version: str, window: str = "5s") -> str:
    """Requests per second ``version`` served over ``window``: full only once it served that long."""
    return (
        f'sum(rate(http_requests_total{{cluster="{cluster}",namespace="{namespace}",'
        f'version="{version}"}}[{window}]))'
    )


def now() -> datetime:
    """The current instant."""
    return datetime.now(UTC)
