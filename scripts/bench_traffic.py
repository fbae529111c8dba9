"""Print what the traffic simulator costs for S services in each of C clusters: a figure, not a test.

    .venv/bin/python scripts/bench_traffic.py                      # S = 10, 50, 200 x C = 7, 50
    .venv/bin/python scripts/bench_traffic.py --services 1000 --clusters 50 --rate 1000
    .venv/bin/python scripts/bench_traffic.py --flags all          # every Service evaluates a flag

For each S x C, a simulator (:mod:`sandbox.traffic`) runs in this process over a fake admin client
that serves the seeded workload of every cluster (:func:`sandbox.seed.services`, rolled out), so
only the simulator is measured, not the emulator. It prints the CPU seconds (``time.process_time``)
the simulator spends per simulated second at the default tick of 0.2 s, the CPU of one scrape round
(every cluster's exposition built once, as Prometheus does every scrape interval), and the size of
those expositions. Above 1.0 CPU s per simulated s the simulator cannot keep up on one core.

``--flags`` says which requests evaluate a feature flag with the real Unleash SDK
(:mod:`sandbox.trafficflags`), its flags bootstrapped from a dict rather than fetched (no server:
only evaluation is measured), each at a 50% rollout in every cluster: ``none`` (no SDK at all),
``default`` (the sandbox's default: ``api`` evaluates ``checkout-v2`` and ``checkout-v3-bad``), or
``all`` (every Service evaluates one flag). The SDK calls per tick are capped by ``flagEvaluations``
(``--evaluations``, default 20) per cluster and flag.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from UnleashClient.cache import FileCache  # noqa: E402
from UnleashClient.clients.unleash_client import UnleashClient  # noqa: E402
from UnleashClient.utils import InstanceAllowType  # noqa: E402

from sandbox import fleets, seed, traffic, trafficflags  # noqa: E402
from sandbox.settings import FeatureUse, SandboxSettings, ServiceSettings, TrafficSettings  # noqa: E402

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


def offline_flags(names: list[str], flags: list[str], cache: Path) -> trafficflags.UnleashFlags:
    """The SDK with ``flags`` bootstrapped at 50% in every one of the ``names`` clusters, never fetching."""
    features = [
        {
            "name": flag,
            "enabled": True,
            "type": "release",
            "project": "default",
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "50", "stickiness": "userId", "groupId": flag},
                    "constraints": [{"contextName": "cluster", "operator": "IN", "values": names}],
                }
            ],
        }
        for flag in flags
    ]
    bootstrapped = FileCache("bench-traffic", directory=str(cache))
    bootstrapped.bootstrap_from_dict({"version": 2, "features": features})
    sdk = UnleashClient(
        url="http://127.0.0.1:9/api",  # never called: no registration, metrics or fetch
        app_name="bench-traffic",
        cache=bootstrapped,
        disable_metrics=True,
        disable_registration=True,
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
    )
    return trafficflags.UnleashFlags({n: trafficflags.Client(sdk, "cluster") for n in names})


def measure(services: int, clusters: int, args: argparse.Namespace, cache: Path) -> str:
    """One row: S, C, streams, CPU per simulated second, CPU and size of a scrape round."""
    admin = FakeAdmin(clusters, services)
    tuned = TrafficSettings(
        requests_per_second=args.rate, tick_seconds=TICK, flag_evaluations=args.evaluations
    )
    if args.flags == "all":
        tuned = tuned.model_copy(update={"features": [FeatureUse(flag="feature")]})
    evaluator = None
    if args.flags != "none":
        flags = sorted({f.flag for f in tuned.features})
        evaluator = offline_flags(admin.names, flags, cache / f"{services}x{clusters}")
    simulator = traffic.Simulator(admin, tuned, rng=random.Random(1), flags=evaluator)  # type: ignore[arg-type]  # noqa: S311
    seconds = args.seconds
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
    parser.add_argument("--flags", choices=("none", "default", "all"), default="default")
    parser.add_argument(
        "--evaluations", type=int, default=20, help="flagEvaluations: SDK calls per cluster and flag a tick"
    )
    args = parser.parse_args()
    print(  # noqa: T201
        f"rate {args.rate:g} requests/s per Service, tick {TICK} s, {args.seconds:g} simulated s each,"
        f" flags {args.flags}, {args.evaluations} SDK evaluations per cluster and flag a tick"
    )
    print(  # noqa: T201
        f"{'services':>8} {'clusters':>8} {'streams':>8} {'cpu s/sim s':>12} {'refresh s':>10}"
        f" {'scrape s':>10} {'expo MiB':>10} {'B/stream':>10}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-traffic-") as cache:
        for services in args.services or [10, 50, 200]:
            for clusters in args.clusters or [7, 50]:
                print(measure(services, clusters, args, Path(cache)), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
