"""The Prometheus client connects to exactly the host the telemetry rule judged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from urllib3.util import parse_url

from activities import prometheus
from activities.models import AnalyzeInput, ClusterTarget, ReleaseRef
from policies import hosts, loading
from policies.plan import Analysis, Metric, ThresholdRange
from tests.policies.helpers import make_fleet
from tests.support import hostgen


class TestConnectsToTheJudgedHost:
    @pytest.mark.parametrize(
        ("written", "connected"),
        [
            ("http://878636280:9090", "http://52.94.236.248:9090"),
            ("http://0x345eecf8:9090/prom/", "http://52.94.236.248:9090/prom"),
            ("https://Prometheus.EU.example.com.:9443", "https://prometheus.eu.example.com:9443"),
            ("http://[::ffff:10.1.0.5]:9090", "http://10.1.0.5:9090"),
            (
                "http://reader:s3cret@prometheus.eu.example.com",
                "http://reader:s3cret@prometheus.eu.example.com",
            ),
        ],
    )
    def test_the_client_is_given_the_parsed_url(self, written: str, connected: str) -> None:
        """The URL handed to the HTTP client is rebuilt from the parsed object, in canonical form."""
        fleet = make_fleet([("eu-west-1", "EU", None)], [("euw1", "eu-west-1", {})], prometheus=written)
        region = fleet.region("eu-west-1")
        client: Any = prometheus.connect(region.prometheus_url, timeout=1)
        assert client.url == connected
        assert hosts.host_of(client.url) == region.prometheus_host

    @settings(max_examples=100, deadline=timedelta(seconds=2))
    @given(hostgen.urls())
    def test_any_accepted_url_connects_to_its_judged_host(self, written: str) -> None:
        """For every generated URL the fleet accepts, the real client's host is the one judged."""
        try:
            fleet = make_fleet([("eu-west-1", "EU", None)], [("euw1", "eu-west-1", {})], prometheus=written)
        except loading.ConfigError:
            return  # refused at load: nothing to connect to
        region = fleet.region("eu-west-1")
        client: Any = prometheus.connect(region.prometheus_url, timeout=1)
        prepared = requests.Request("GET", client.url + "/api/v1/query").prepare()
        assert prepared.url is not None
        assert hosts.host_of(parse_url(prepared.url).host or "") == region.prometheus_host

    async def test_metrics_source_connects_through_the_parsed_url(self) -> None:
        """PrometheusMetrics hands its connector the region's parsed URL, never the written text."""
        fleet = make_fleet(
            [("eu-west-1", "EU", None)], [("euw1", "eu-west-1", {})], prometheus="http://878636280:9090"
        )
        seen: list[hosts.Url] = []

        def connector(url: hosts.Url) -> prometheus.PromQL:
            seen.append(url)
            raise ConnectionError("no server in this test")

        source = prometheus.PrometheusMetrics(fleet, connector=connector, threads=1)
        inp = AnalyzeInput(
            release=ReleaseRef(service="api", version="v2", image="r/api:v2"),
            cluster=ClusterTarget(name="euw1", region="eu-west-1", jurisdiction="EU"),
            analysis=Analysis(metrics=[Metric(name="ok", query="up", threshold_range=ThresholdRange(min=1))]),
            stage="canary",
        )
        try:
            measured = await source.measure(inp, datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
        finally:
            source.close()
        assert [url.host.name for url in seen] == ["52.94.236.248"]
        assert measured[0].error is not None and "52.94.236.248" in measured[0].error
