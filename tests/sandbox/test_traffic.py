"""Tests of the traffic simulator's per-cluster behaviour and its runtime profile controls.

One simulator process for the module (``python -m sandbox.traffic``, started as ``sandbox up``
starts it) over an in-process emulator serving two clusters, each running ``v7`` behind Service
``api`` in ``default``. Every test sets the profiles it needs first.
"""

from __future__ import annotations

import json
import re
import textwrap
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from sandbox import prometheus as sandbox_prometheus
from sandbox import settings as sandbox_settings
from sandbox.apiserver.config import ClusterSpec, EmulatorConfig
from sandbox.apiserver.harness import EmulatorServer
from sandbox.processes import Processes
from sandbox.settings import TrafficSettings, VersionProfile
from sandbox.trafficclient import TrafficClient, TrafficError
from tests.sandbox.conftest import FAST
from tests.sandbox.support import http
from tests.support import manifests
from tests.support.waiting import eventually

GOOD, BAD = "euw1-a", "usw2-a"
DEFAULTS = [{"match": "*-bad", "errorRate": 0.08, "latencyFactor": 3.0}]
SERIES = re.compile(r'^http_requests_total\{cluster="([^"]+)",.*,code="(\d+)"\} (\d+)$')


def _workload() -> list[dict[str, Any]]:
    labels = {"app": "api", "ringmaster.dev/version": "v7"}
    container = manifests.container("api", "registry.example.com/api:v7")
    return [
        manifests.deployment("api", [container], replicas=2, labels=labels),
        manifests.service("api", {"app": "api"}, [{"port": 80, "targetPort": 8080}]),
    ]


@pytest.fixture(scope="module")
def traffic_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The simulator's base URL: 2000 requests per second into each cluster's Service."""
    clusters = [ClusterSpec(name=name, objects=_workload()) for name in (GOOD, BAD)]
    tuned = TrafficSettings(requests_per_second=2000, tick_seconds=0.05, refresh_seconds=0.2)
    directory = tmp_path_factory.mktemp("traffic")
    processes = Processes(directory)
    with EmulatorServer(EmulatorConfig(clusters=clusters, controller=FAST)) as emulator:
        spec = sandbox_prometheus.traffic_spec(directory, emulator.url, tuned, timeout=30)
        try:
            yield str(processes.start(spec).info["url"])
        finally:
            processes.stop_all()


@pytest.fixture
def traffic(traffic_url: str) -> TrafficClient:
    """A client of the simulator, its profiles back to the defaults."""
    client = TrafficClient(traffic_url)
    client.set_profiles(DEFAULTS)
    return client


def codes(url: str, cluster: str) -> dict[str, int]:
    """Requests served in ``cluster`` so far, by status code, from its exposition."""
    with urllib.request.urlopen(f"{url}/clusters/{cluster}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    found: dict[str, int] = defaultdict(int)
    for line in text.splitlines():
        match = SERIES.match(line)
        if match is not None and match.group(1) == cluster:
            found[match.group(2)] += int(match.group(3))
    return found


def failure_ratios(url: str, at_least: int) -> dict[str, float]:
    """Share of 500s per cluster among the next ``at_least`` (or more) requests of each."""
    before = {c: codes(url, c) for c in (GOOD, BAD)}

    def since() -> dict[str, tuple[int, int]]:
        now = {c: codes(url, c) for c in (GOOD, BAD)}
        return {
            c: (now[c]["500"] - before[c]["500"], sum(now[c].values()) - sum(before[c].values())) for c in now
        }

    counted = eventually(since, lambda d: all(n >= at_least for _, n in d.values()), what="requests served")
    return {c: failed / total for c, (failed, total) in counted.items()}


class TestProfileMatching:
    @pytest.mark.parametrize(
        ("version", "cluster", "error_rate"),
        [
            ("v7", "usw2-prod", 0.2),
            ("v7", "euw1-prod", 0.001),
            ("v7-bad", "euw1-prod", 0.08),
            ("v8", "usw2-prod", 0.001),
        ],
    )
    def test_first_profile_matching_version_and_cluster_wins(
        self, version: str, cluster: str, error_rate: float
    ) -> None:
        """A profile limited to some clusters applies only there; one without clusters applies everywhere."""
        tuned = TrafficSettings(
            profiles=[
                VersionProfile(match="v7", clusters=["usw2-*"], error_rate=0.2),
                VersionProfile(match="*-bad", error_rate=0.08),
            ]
        )
        assert tuned.behaviour(version, cluster).error_rate == error_rate

    def test_the_documented_example_is_valid(self) -> None:
        """The settings module's example parses, and its v7 profile is bad in usw2 only."""
        doc = sandbox_settings.__doc__ or ""
        example = textwrap.dedent(doc.split("Example::\n\n", 1)[1].split("\n\n", 1)[0])
        tuned = sandbox_settings.SandboxSettings.model_validate(yaml.safe_load(example)).traffic
        assert tuned.behaviour("v7", "usw2-prod").error_rate == 0.2
        assert tuned.behaviour("v7", "use1-prod").error_rate == tuned.default.error_rate


class TestVersionPerCluster:
    def test_a_version_bad_in_one_cluster_fails_only_there(self, traffic: TrafficClient) -> None:
        """A profile making v7 bad in usw2 clusters fails half its requests there, almost none elsewhere."""
        traffic.add_profiles([{"match": "v7", "clusters": ["usw2-*"], "errorRate": 0.5}])
        ratios = failure_ratios(traffic.base_url, at_least=1000)
        assert ratios[BAD] > 0.4
        assert ratios[GOOD] < 0.02

    def test_a_profile_without_clusters_applies_everywhere(self, traffic: TrafficClient) -> None:
        """A version made bad without naming clusters fails in every cluster."""
        traffic.add_profiles([{"match": "v7", "errorRate": 0.5}])
        ratios = failure_ratios(traffic.base_url, at_least=1000)
        assert min(ratios.values()) > 0.4


class TestProfileControls:
    def test_post_puts_profiles_before_the_existing_ones(self, traffic: TrafficClient) -> None:
        """POST prepends, so the new profile wins and the defaults stay; GET shows the same list."""
        rule = {"match": "v7", "clusters": ["usw2-*"], "errorRate": 0.5}
        assert traffic.add_profiles([rule]) == [rule, *DEFAULTS]
        assert traffic.profiles() == [rule, *DEFAULTS]

    def test_put_replaces_every_profile(self, traffic: TrafficClient) -> None:
        """PUT leaves exactly the given profiles, in camelCase as the settings file writes them."""
        only = [{"match": "v*", "latencyMedianSeconds": 0.2, "checkoutConversion": 0.1}]
        assert traffic.set_profiles(only) == only
        assert traffic.profiles() == only

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"profiles": [{"match": "v7", "errorRate": 2}]}, "profiles.0.errorRate"),
            ({"profiles": [{"match": "v7", "errorrate": 0.5}]}, "profiles.0.errorrate"),
            ({"profiles": [{"errorRate": 0.5}]}, "profiles.0.match"),
            ({"rules": []}, "profiles"),
        ],
    )
    def test_a_bad_body_answers_400_naming_the_field_and_changes_nothing(
        self, traffic: TrafficClient, body: dict[str, Any], field: str
    ) -> None:
        """PUT and POST of an invalid list answer 400 with a message naming the field; the profiles stay."""
        for method in ("PUT", "POST"):
            status, _, answer = http(method, f"{traffic.base_url}/profiles", body)
            assert status == 400
            assert f"{field}:" in answer["message"]
        assert traffic.profiles() == DEFAULTS

    def test_a_body_that_is_not_json_answers_400(self, traffic: TrafficClient) -> None:
        """A body that is not JSON is refused the same way, and the profiles stay."""
        request = urllib.request.Request(f"{traffic.base_url}/profiles", data=b"{", method="PUT")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
        assert refused.value.code == 400
        assert "not valid JSON" in json.loads(refused.value.read())["message"]
        assert traffic.profiles() == DEFAULTS

    def test_the_client_raises_traffic_error_with_the_answer(self, traffic: TrafficClient) -> None:
        """A refused change reaches the client as TrafficError with the status and the message."""
        with pytest.raises(TrafficError) as refused:
            traffic.add_profiles([{"match": "v7", "clusters": "usw2-*"}])
        assert refused.value.status == 400
        assert "profiles.0.clusters:" in refused.value.body["message"]
