"""The traffic simulator's aggregate draws: right on average, bounded in cost, the same exposition.

The draws are statistical, so every test here uses a fixed seed: a tolerance is checked against one
known sequence of draws and cannot flake. The simulator runs in-process over an in-process emulator
whose clusters are seeded as ``sandbox up`` seeds them.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import _sampling, _series, seed, traffic
from sandbox.apiserver.config import ClusterSpec, EmulatorConfig
from sandbox.apiserver.harness import EmulatorServer
from sandbox.settings import FeatureUse, SandboxSettings, ServiceSettings, TrafficSettings, VersionProfile
from tests.sandbox.conftest import FAST

SMALL, LARGE = "one", "many"
"""A cluster running the demo's one service, and one running 1000 (each in its own emulator)."""


class CountingRandom(random.Random):
    """A seeded generator that counts its uniform draws (every other draw is made of them)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws = 0

    def random(self) -> float:
        """One uniform draw, counted."""
        self.draws += 1
        return super().random()


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """An emulator serving a cluster of the demo's one service, rolled out."""
    clusters = [ClusterSpec(name=SMALL, objects=seed.workload("EU"))]
    # Seeding 3000 objects takes seconds, many more on a loaded machine: wait for it, not for 15 s.
    server = EmulatorServer(EmulatorConfig(clusters=clusters, controller=FAST)).start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def crowded() -> Iterator[EmulatorServer]:
    """An emulator serving a cluster of 1000 services, rolled out."""
    many = SandboxSettings(services=ServiceSettings(count=1000))
    clusters = [ClusterSpec(name=LARGE, objects=seed.services("EU", many))]
    # Seeding 3000 objects takes seconds, many more on a loaded machine: wait for it, not for 15 s.
    server = EmulatorServer(EmulatorConfig(clusters=clusters, controller=FAST)).start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


def simulator(
    server: EmulatorServer, *, rate: float = 1000.0, rng: random.Random | None = None, **behaviour: Any
) -> traffic.Simulator:
    """A simulator over the emulator, read once, with v1 behaving as ``behaviour`` says."""
    profiles = [VersionProfile(match="v1", **behaviour)] if behaviour else []
    tuned = TrafficSettings(requests_per_second=rate, profiles=profiles)
    found = traffic.Simulator(server.admin, tuned, rng=rng or random.Random(7))  # noqa: S311 - a test
    found.refresh()
    return found


def api(found: traffic.Simulator) -> _series.Series:
    """The counters of the one-service cluster's api."""
    return found.series[SMALL][("api", "api", "v1", "stable", "", "false")]


class TestBinomial:
    @pytest.mark.parametrize(
        ("n", "p"),
        [(10, 0.1), (200, 0.001), (50, 0.9), (1000, 0.02), (1000, 0.5), (100_000, 0.2), (7, 0.5)],
    )
    def test_mean_and_variance_are_binomial(self, n: int, p: float) -> None:
        """Exact (small mean) and approximated (large mean) draws have mean n*p and variance n*p*(1-p)."""
        rng = random.Random(11)  # noqa: S311 - a test
        draws = [_sampling.binomial(n, p, rng) for _ in range(4000)]
        mean = sum(draws) / len(draws)
        variance = sum((d - mean) ** 2 for d in draws) / (len(draws) - 1)
        expected = n * p * (1 - p)
        assert abs(mean - n * p) < 5 * math.sqrt(expected / len(draws))
        assert abs(variance - expected) < 0.1 * expected
        assert all(0 <= d <= n for d in draws)

    def test_the_exact_branch_has_the_binomial_distribution(self) -> None:
        """Below the approximation's threshold, P(k) matches the binomial formula for every k."""
        rng = random.Random(3)  # noqa: S311 - a test
        n, p, runs = 10, 0.3, 20_000
        seen = [0] * (n + 1)
        for _ in range(runs):
            seen[_sampling.binomial(n, p, rng)] += 1
        for k in range(n + 1):
            exact = math.comb(n, k) * p**k * (1 - p) ** (n - k)
            assert abs(seen[k] / runs - exact) < 0.01, k

    @pytest.mark.parametrize(("n", "p", "expected"), [(0, 0.5, 0), (5, 0.0, 0), (5, 1.0, 5), (-1, 0.5, 0)])
    def test_degenerate_cases_draw_nothing(self, n: int, p: float, expected: int) -> None:
        """No trials, or a certain outcome, gives the obvious count without touching the generator."""
        rng = CountingRandom(1)
        assert _sampling.binomial(n, p, rng) == expected
        assert rng.draws == 0


class TestMultinomial:
    @pytest.mark.parametrize("n", [3, 10, 500, 100_000])
    def test_counts_sum_to_n_with_the_right_means(self, n: int) -> None:
        """Trial by trial (few) or by sequential binomials (many), every trial is placed, each category
        getting n*p on average and a category of probability 0 none."""
        rng = CountingRandom(5)
        categories = _sampling.Categories((0.1, 0.0, 0.25, 0.6, 0.05))
        totals = [0] * len(categories.probabilities)
        for _ in range(2000):
            counts = categories.draw(n, rng)
            assert sum(counts) == n
            totals = [t + c for t, c in zip(totals, counts, strict=True)]
        assert rng.draws <= 2000 * 2 * len(categories.probabilities)
        assert totals[1] == 0
        for total, p in zip(totals, categories.probabilities, strict=True):
            assert abs(total / (2000 * n) - p) < 0.01

    def test_log_normal_buckets_follow_its_distribution_function(self) -> None:
        """Half the durations of a 50 ms median fall at or under 50 ms; with no spread, all in one bucket."""
        spread = _sampling.lognormal_buckets(0.05, 0.6, _series.BUCKETS)
        assert len(spread) == len(_series.BUCKETS) + 1
        assert math.isclose(sum(spread), 1.0)
        assert math.isclose(sum(spread[: _series.BUCKETS.index(0.05) + 1]), 0.5)
        exact = _sampling.lognormal_buckets(0.06, 0.0, _series.BUCKETS)
        assert exact[_series.BUCKETS.index(0.075)] == 1.0


class TestAggregateTraffic:
    def test_error_share_matches_the_error_rate(self, emulator: EmulatorServer) -> None:
        """Over 200,000 requests the share of 500s is the profile's error rate within half a point."""
        found = simulator(emulator, error_rate=0.05)
        for _ in range(1000):
            found.tick(0.2)
        series = api(found)
        assert series.count == 200_000
        assert sum(series.codes.values()) == series.count
        assert abs(series.codes["500"] / series.count - 0.05) < 0.005

    def test_durations_and_checkouts_have_the_right_means(self, emulator: EmulatorServer) -> None:
        """Bucket shares follow the log-normal, the mean duration its mean, checkouts share and conversion."""
        found = simulator(emulator, error_rate=0.1, latency_factor=2.0)
        for _ in range(500):
            found.tick(0.2)
        series = api(found)
        median, sigma = 0.1, 0.6
        below = 0
        for bound, n in zip(_series.BUCKETS, series.buckets, strict=True):
            below += n
            share = 0.5 * (1 + math.erf(math.log(bound / median) / (sigma * math.sqrt(2))))
            assert abs(below / series.count - share) < 0.005, bound
        mean = median * math.exp(sigma**2 / 2)
        assert abs(series.duration_sum / series.count - mean) < 0.01 * mean
        assert abs(series.started / series.count - 0.2) < 0.005
        assert abs(series.completed / series.started - 0.6 * 0.9) < 0.01

    def test_a_seed_makes_runs_reproducible(self, emulator: EmulatorServer) -> None:
        """Two simulators of the same seed over the same clusters expose exactly the same metrics."""
        runs = []
        for _ in range(2):
            found = simulator(emulator, rng=random.Random(42), error_rate=0.3)  # noqa: S311 - a test
            for _ in range(20):
                found.tick(0.2)
            runs.append(found.exposition(SMALL))
        assert runs[0] == runs[1]

    def test_a_ticks_draws_do_not_grow_with_the_rate(self, emulator: EmulatorServer) -> None:
        """No request is played one by one: a stream's tick takes at most MAX_DRAWS (40) uniform draws,
        at 5000 requests per second (1000 requests a tick) as at 10."""
        assert not hasattr(_series.Series, "serve")
        for rate in (10.0, 500.0, 5000.0):
            rng = CountingRandom(9)
            found = simulator(emulator, rate=rate, rng=rng, error_rate=0.3)
            for _ in range(50):
                found.tick(0.2)
            assert api(found).count == round(rate * 0.2 * 50)
            assert rng.draws / 50 <= _series.MAX_DRAWS, rate


EXPOSED = re.compile(r"^([a-z_]+)\{([^}]*)\} (\S+)$")


class TestManyStreams:
    def test_a_thousand_services_are_read_ticked_and_exposed(self, crowded: EmulatorServer) -> None:
        """A cluster of 1000 services gives 1000 streams, each exposed with the same metrics and labels
        (feature and feature_on too, empty and false where no flag is evaluated)."""
        found = simulator(crowded)
        assert len(found.streams[LARGE]) == 1000
        found.tick(0.2)
        names: dict[str, set[str]] = {}
        series: dict[str, set[str]] = {}
        for line in found.exposition(LARGE).splitlines():
            match = EXPOSED.match(line)
            if match is None:
                assert line.startswith("# "), line
                continue
            labels = dict(pair.split("=", 1) for pair in match.group(2).split(","))
            names.setdefault(match.group(1), set()).update(labels)
            series.setdefault(match.group(1), set()).add(labels["service"])
        base = {"cluster", "namespace", "service", "version", "track", "feature", "feature_on"}
        assert names == {
            "http_requests_total": base | {"code"},
            "http_request_duration_seconds_bucket": base | {"le"},
            "http_request_duration_seconds_sum": base,
            "http_request_duration_seconds_count": base,
            "checkouts_started_total": base,
            "checkouts_completed_total": base,
        }
        assert {len(s) for s in series.values()} == {1000}

    def test_reading_streams_looks_at_each_deployment_a_bounded_number_of_times(self) -> None:
        """Finding the streams of 1000 Services reads each Deployment a few times, not once per Service."""
        reads = 0

        class Counted(dict[str, Any]):
            def __getitem__(self, key: str) -> Any:
                nonlocal reads
                reads += key == "metadata"
                return super().__getitem__(key)

        objects = seed.services("EU", SandboxSettings(services=ServiceSettings(count=1000)))
        for o in objects:
            if o["kind"] == "Deployment":
                o["status"] = {"readyReplicas": 10}
        deployments = [Counted(o) for o in objects if o["kind"] == "Deployment"]
        services = [o for o in objects if o["kind"] == "Service"]
        found = traffic.streams(deployments, services, [])
        assert len(found) == 1000
        assert reads <= 3 * len(deployments)


class HalfOn:
    """A stand-in for the SDK: a flag is on for users with an even number, everywhere; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def serves(self, cluster: str) -> bool:
        """Every cluster has a flag server."""
        return bool(cluster)

    def enabled(self, flag: str, cluster: str, region: str, user: str) -> bool:
        """On for even user numbers."""
        self.calls += 1
        return bool(flag and cluster and region) and int(user.removeprefix("user-")) % 2 == 0


class TestFlagSampling:
    def test_a_ticks_sdk_calls_are_one_sample_per_cluster_and_flag(self, crowded: EmulatorServer) -> None:
        """With 1000 Services evaluating one flag, a tick asks the SDK ``flagEvaluations`` times, not
        once per stream or request, and about half the requests carry the flag on (the stand-in's users)."""
        evaluator = HalfOn()
        tuned = TrafficSettings(
            requests_per_second=1000, features=[FeatureUse(flag="search")], flag_evaluations=40
        )
        found = traffic.Simulator(crowded.admin, tuned, rng=random.Random(3), flags=evaluator)  # noqa: S311
        found.refresh()
        found.tick(0.2)
        assert evaluator.calls == 40
        on = sum(s.count for k, s in found.series[LARGE].items() if k[5] == "true")
        assert 0.3 < on / sum(s.count for s in found.series[LARGE].values()) < 0.7

    def test_a_service_splits_its_requests_among_its_flags_and_a_bad_flag_fails_where_on(
        self, emulator: EmulatorServer
    ) -> None:
        """api evaluating two flags serves each about half its requests, each split about half on (the
        stand-in's users); the ``-bad`` flag's on-requests fail about 8%, its off-requests as the version."""
        features = [
            FeatureUse(flag="search", services=["api"]),
            FeatureUse(flag="search-bad", services=["api"]),
        ]
        tuned = TrafficSettings(requests_per_second=5000, features=features)
        found = traffic.Simulator(emulator.admin, tuned, rng=random.Random(5), flags=HalfOn())  # noqa: S311
        found.refresh()
        for _ in range(100):
            found.tick(0.2)
        series = {(k[4], k[5]): s for k, s in found.series[SMALL].items()}
        assert set(series) == {(f, on) for f in ("search", "search-bad") for on in ("true", "false")}
        total = {f: series[f, "true"].count + series[f, "false"].count for f in ("search", "search-bad")}
        assert 0.45 < total["search"] / sum(total.values()) < 0.55
        bad_on, bad_off = series["search-bad", "true"], series["search-bad", "false"]
        assert 0.3 < bad_on.count / total["search-bad"] < 0.7
        assert 0.07 < bad_on.codes["500"] / bad_on.count < 0.09
        assert bad_off.codes["500"] / bad_off.count < 0.005
        assert bad_on.duration_sum / bad_on.count > 2.5 * bad_off.duration_sum / bad_off.count
