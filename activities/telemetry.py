"""ringmaster's own metrics of side effects: Kubernetes calls, Prometheus queries, flag changes, reachability.

Every instrument is made on one :class:`~temporalio.common.MetricMeter`, the worker's Temporal runtime's
(:func:`install`, called once by ``ringmaster worker``), so ringmaster's metrics are served by the
SDK's own Prometheus exporter, on the same endpoint as the SDK's worker metrics. Until then, and in a
process that never installs one (the CLI, most tests), the meter is the SDK's no-op meter.

Why a process-wide meter instead of one passed to each client: the calls it counts happen deep in
blocking code on worker threads (the cluster pool, the Prometheus pool), outside any activity
context, and a meter is process configuration like the log setup, not a collaborator to swap.

Labels are bounded sets only: fleet names (clusters, regions, flag server hosts), fixed vocabularies
(verbs, error classes, results). Never a release, a version, a workload or a URL: each distinct label
set is a time series kept by every Prometheus scraping the worker.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from temporalio.common import MetricCounter, MetricGauge, MetricHistogramTimedelta, MetricMeter

KUBERNETES_REQUESTS = "ringmaster_kubernetes_requests"
PROMETHEUS_QUERY_LATENCY = "ringmaster_prometheus_query_latency"
FLAG_CHANGES = "ringmaster_flag_changes"
DEPENDENCY_UP = "ringmaster_dependency_up"
DEPENDENCY_CHECK_LATENCY = "ringmaster_dependency_check_latency"


class Instruments:
    """The instruments of one meter (made once: each ``create_*`` on the SDK's meter registers anew)."""

    def __init__(self, meter: MetricMeter) -> None:
        self.meter = meter
        self.kubernetes_requests: MetricCounter = meter.create_counter(
            KUBERNETES_REQUESTS,
            "Kubernetes API requests by cluster, verb and error class (none: answered 2xx)",
        )
        self.prometheus_query_latency: MetricHistogramTimedelta = meter.create_histogram_timedelta(
            PROMETHEUS_QUERY_LATENCY,
            "Time to measure one metric on a region's Prometheus (all its queries), by region and result",
            unit="duration",
        )
        self.flag_changes: MetricCounter = meter.create_counter(
            FLAG_CHANGES,
            "Feature flag writes on the fleet's Unleash servers, by server, operation and result",
        )
        self.dependency_up: MetricGauge = meter.create_gauge(
            DEPENDENCY_UP, "1 when the dependency answered its last reachability probe, else 0"
        )
        self.dependency_check_latency: MetricHistogramTimedelta = meter.create_histogram_timedelta(
            DEPENDENCY_CHECK_LATENCY, "Time of one reachability probe, by dependency kind", unit="duration"
        )


_lock = threading.Lock()
_current = Instruments(MetricMeter.noop)


def install(meter: MetricMeter) -> Instruments:
    """Record ringmaster's metrics on ``meter`` from now on (the worker's runtime's meter)."""
    global _current  # noqa: PLW0603 - the process's one meter, set once at start (see the module doc)
    with _lock:
        _current = Instruments(meter)
        return _current


def instruments() -> Instruments:
    """The instruments in use (no-op until :func:`install`)."""
    return _current


def kubernetes_request(cluster: str, verb: str, error: str) -> None:
    """Count one Kubernetes API request (``error`` from :func:`activities.kubernetes.errors.error_class`)."""
    _current.kubernetes_requests.add(1, {"cluster": cluster, "verb": verb.upper(), "error": error})


def prometheus_query(region: str, result: str, took: timedelta) -> None:
    """Record one metric's measurement on ``region``'s Prometheus (``result``: ok, nodata or error)."""
    _current.prometheus_query_latency.record(took, {"region": region, "result": result})


def flag_change(server: str, operation: str, result: str) -> None:
    """Count one flag write (``operation`` set-rollout or restore; ``result`` what it did, or failed)."""
    _current.flag_changes.add(1, {"server": server, "operation": operation, "result": result})


def dependency(kind: str, name: str, *, up: bool, took: timedelta) -> None:
    """Record one reachability probe of a dependency (``kind`` cluster, prometheus or flags)."""
    _current.dependency_up.set(1 if up else 0, {"kind": kind, "name": name})
    _current.dependency_check_latency.record(took, {"kind": kind})
