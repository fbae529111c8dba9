"""The worker's Temporal runtime, with the SDK's Prometheus exporter when ``metrics_port`` is set.

One runtime per ``ringmaster worker`` process, made here before the client connects: the SDK's worker
metrics (``temporal_*``: slots, schedule-to-start and poll latencies) and ringmaster's own
(``ringmaster_*``, recorded through the same runtime's meter: :mod:`activities.telemetry` for side
effects, :mod:`workflows._metrics` through ``workflow.metric_meter()``) are then served by the one
exporter on ``/metrics``. The other commands connect without one (the SDK's default runtime: no
exporter, no port taken).

Metric names are the SDK's defaults (no ``_total`` suffix, durations in milliseconds) so Temporal's
published dashboards for the SDK work unchanged; ringmaster's own durations follow the same units.
"""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities import telemetry as side_effects
from ringmaster.settings import Settings


class TelemetryUnavailable(Exception):
    """The metrics endpoint cannot be served (address in use, invalid address); the message says which."""


def bind_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def runtime(settings: Settings) -> Runtime | None:
    """The worker's runtime serving ``/metrics`` on ``listen_host:metrics_port`` (None: no metrics
    port, the SDK's default runtime), with ringmaster's side-effect metrics installed on its meter.

    Raises TelemetryUnavailable naming the setting when the exporter cannot listen.
    """
    if settings.metrics_port is None:
        return None
    address = bind_address(settings.listen_host, settings.metrics_port)
    try:
        made = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:
        raise TelemetryUnavailable(
            f"RINGMASTER_METRICS_PORT / RINGMASTER_LISTEN_HOST: cannot serve metrics on {address}: {err}"
        ) from None
    side_effects.install(made.metric_meter)
    return made
