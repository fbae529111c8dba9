"""Print what the traffic simulator costs for S services in each of C clusters: a figure, not a test.

    .venv/bin/python scripts/bench_traffic.py                      # S = 10, 50, 200 x C = 7, 50
    .venv/bin/python scripts/bench_traffic.py --services 1000 --clusters 50 --rate 1000

For each S x C, a simulator (:mod:`sandbox.traffic`) runs in this process over a fake admin client
that serves the seeded workload of every cluster (:func:`sandbox.seed.services`, rolled out), so
only the simulator is measured, not the emulator. It prints the CPU seconds (``time.process_time``)
the simulator spends per simulated second at the default tick of 0.2 s, the CPU of one scrape round
(every cluster's exposition built once, as Prometheus does every scrape interval), and the size of
those expositions. Above 1.0 CPU s per simulated s the simulator cannot keep up on one core.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import fleets, seed, traffic  # noqa: E402
from sandbox.settings import SandboxSettings, ServiceSettings, TrafficSettings  # noqa: E402

TICK = 0.2


class FakeAdmin:
    """The two admin reads the simulator makes, answered from the seeded objects of every cluster."""

    def __init__(self, clusters: int, services: int) -> None:
        tuned = SandboxSettings(services=ServiceSettings(count=services))
        self.names = [fleets.cluster_name(i) for i in range(clusters)]
        objects = seed.services("EU", tuned)
        for o in objects:
            if o["kind"] == "Deployment":
                o["status"] = {"replicas": 10, "readyReplicas": 10}
        self.by_kind: dict[str, list[dict[str, Any]]] = {}
        for o in objects:
            self.by_kind.setdefault(o["kind"], []).append(o)

    def clusters(self) -> list[dict[str, Any]]:
        """Every cluster, never changing."""
        return [{"name": n, "resourceVersion": "1"} for n in self.names]

    def objects(self, _: str, kind: str) -> list[dict[str, Any]]:
        """One kind's objects (the same in every cluster)."""
        return self.by_kind.get(kind, [])


def measure(services: int, clusters: int, rate: float, seconds: float) -> str:
    """One row: S, C, streams, CPU per simulated second, CPU and size of a scrape round."""
    admin = FakeAdmin(clusters, services)
    tuned = TrafficSettings(requests_per_second=rate, tick_seconds=TICK)
    simulator = traffic.Simulator(admin, tuned, rng=random.Random(1))  # type: ignore[arg-type]  # noqa: S311
    started = time.process_time()
    simulator.refresh()
    refresh = time.process_time() - started
    ticks = round(seconds / TICK)
    started = time.process_time()
    for _ in range(ticks):
        simulator.tick(TICK)
    per_second = (time.process_time() - started) / (ticks * TICK)
    started = time.process_time()
    size = sum(len(simulator.exposition(name).encode()) for name in admin.names)
    scrape = time.process_time() - started
    streams = sum(len(s) for s in simulator.streams.values())
    return (
        f"{services:>8} {clusters:>8} {streams:>8} {per_second:>12.3f} {refresh:>10.3f}"
        f" {scrape:>10.3f} {size / 1024 / 1024:>10.1f} {size / streams:>10.0f}"
    )


def main() -> None:
    """Measure every S x C asked."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, action="append", help="S (default 10, 50, 200)")
    parser.add_argument("--clusters", type=int, action="append", help="C (default 7, 50)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second per Service")
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per measure")
    args = parser.parse_args()
    print(f"rate {args.rate:g} requests/s per Service, tick {TICK} s, {args.seconds:g} simulated s each")  # noqa: T201
    print(  # noqa: T201
        f"{'services':>8} {'clusters':>8} {'streams':>8} {'cpu s/sim s':>12} {'refresh s':>10}"
        f" {'scrape s':>10} {'expo MiB':>10} {'B/stream':>10}",
        flush=True,
    )
    for services in args.services or [10, 50, 200]:
        for clusters in args.clusters or [7, 50]:
            print(measure(services, clusters, args.rate, args.seconds), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
