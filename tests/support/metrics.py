"""ringmaster's side-effect metrics recorded in memory: a Temporal runtime with a metric buffer,
installed as :mod:`activities.telemetry`'s meter for the duration of a ``with`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from temporalio.common import MetricMeter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig

from activities import telemetry


@dataclass
class Recorded:
    """Every update recorded so far, as ``(name, value, labels)``."""

    buffer: MetricBuffer
    seen: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)

    def updates(self, name: str) -> list[tuple[float, dict[str, str]]]:
        """The updates of metric ``name``, in order."""
        for update in self.buffer.retrieve_updates():
            labels = {str(k): str(v) for k, v in update.attributes.items()}
            self.seen.append((update.metric.name, float(update.value), labels))
        return [(value, labels) for seen, value, labels in self.seen if seen == name]


@contextmanager
def recorded() -> Iterator[Recorded]:
    """Record ringmaster's side-effect metrics in memory; the no-op meter again afterwards."""
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer, attach_service_name=False))
    telemetry.install(runtime.metric_meter)
    try:
        yield Recorded(buffer)
    finally:
        telemetry.install(MetricMeter.noop)
