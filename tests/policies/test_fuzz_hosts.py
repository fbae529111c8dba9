"""Generated hosts and URLs in every notation: judging never crashes, and what is judged is what is connected.

The budget is fixed (a few hundred examples in all, a deadline per example) so the suite stays fast;
the strategies live in :mod:`tests.support.hostgen`.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from policies import _hostnames, hosts, loading, residency, schedule
from policies.plan import DataResidency
from tests.policies.helpers import make_fleet, make_plan, ring
from tests.support import hostgen

FLEET = make_fleet(
    [("eu-west-1", "EU", None), ("us-east-1", "US", None)],
    [("euw1", "eu-west-1", {}), ("use1", "us-east-1", {})],
    [("*.eu.example.com", "EU"), ("*.us.example.com", "US"), ("52.94.0.0/16", "US"), ("10.0.0.0/8", "EU")],
)

T = TypeVar("T")
EUW1 = schedule.build(
    make_plan(rings=[ring("r", ["euw1"])], windows=[], dataResidency={"dataClass": "none"}), FLEET, "1"
).cluster("euw1")


def fuzz(examples: int) -> settings:
    """A fixed, small budget: ``examples`` per test and a deadline that only a pathological case misses."""
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=2),
        suppress_health_check=[HealthCheck.too_slow],
    )


def _attempt(call: Callable[[], T]) -> tuple[T | None, Exception | None]:
    """Run ``call``: its result, or the ValueError (a ConfigError included) it raised; others propagate."""
    try:
        return call(), None
    except (ValueError, loading.ConfigError) as error:
        return None, error


def _connected_host(url: str) -> str:
    """The host requests would open a connection to for ``url`` (it prepares it, then urllib3 parses it).

    Only the URL is prepared: the basic-auth header requests builds from the userinfo next cannot
    encode a user or password outside Latin-1 (a user in fullwidth digits crashed the oracle, not the parser),
    and it plays no part in where the connection goes.
    """
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    assert prepared.url is not None
    found = parse_url(prepared.url).host
    assert found is not None
    return hosts.parse_host(found).name


class TestHostNotations:
    @fuzz(150)
    @given(st.one_of(hostgen.ipv4_notations(), hostgen.mapped_ipv6()))
    def test_every_ipv4_notation_is_its_address(self, found: tuple[str, ipaddress.IPv4Address]) -> None:
        """Decimal, hex, octal, short and mapped forms all read as the one IPv4 address they are."""
        text, address = found
        host = hosts.parse_host(text)
        assert host.address == address
        assert host.name == str(address)
        assert not hosts.is_in_cluster(host.name) or address.is_loopback

    @pytest.mark.skipif(sys.platform != "linux", reason="inet_aton's grammar is glibc's")
    @fuzz(200)
    @given(
        st.one_of(
            hostgen.ipv4_notations().map(lambda f: f[0]), st.text(alphabet="0123456789abcfxX.", max_size=20)
        )
    )
    def test_the_ipv4_grammar_is_inet_atons(self, text: str) -> None:
        """The written-out grammar reads exactly what the C library's inet_aton reads."""
        try:
            expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            expected = None
        assert _hostnames.ipv4(text) == expected

    @fuzz(200)
    @given(hostgen.hosts)
    def test_parsing_a_host_never_crashes_and_is_stable(self, text: str) -> None:
        """Any text is a canonical host or a ValueError; the canonical form reads as itself."""
        host, error = _attempt(lambda: hosts.parse_host(text))
        if host is None:
            assert str(error)
            return
        assert hosts.parse_host(host.name) == host
        assert host.name == host.name.lower() and host.name.isascii() and not host.name.endswith(".")


class TestJudgedIsConnected:
    @fuzz(250)
    @given(hostgen.urls())
    def test_an_accepted_url_connects_to_the_judged_host(self, text: str) -> None:
        """Every parser reads the judged host in the URL, and the client is sent to exactly that host."""
        url, error = _attempt(lambda: hosts.parse_url(text))
        if url is None:
            assert str(error) and (len(text) < 12 or text not in str(error))
            return
        assert set(_hostnames.readings(text).values()) == {url.host.name}
        if url.scheme in ("http", "https"):
            assert _connected_host(url.connect_form()) == url.host.name

    @fuzz(150)
    @given(hostgen.urls())
    def test_a_prometheus_url_is_judged_by_the_host_it_connects_to(self, text: str) -> None:
        """A region's Prometheus loads only if its judged host is the one its client connects to."""
        fleet, error = _attempt(
            lambda: make_fleet([("eu-west-1", "EU", None)], [("euw1", "eu-west-1", {})], prometheus=text)
        )
        if fleet is None:
            assert isinstance(error, loading.ConfigError)
            assert [p.path for p in error.problems] == ["regions[0].prometheus"]
            return
        region = fleet.region("eu-west-1")
        assert _connected_host(region.prometheus_url.connect_form()) == region.prometheus_host
        assert set(_hostnames.readings(text).values()) == {region.prometheus_host}

    @fuzz(150)
    @given(st.lists(st.one_of(hostgen.hosts, hostgen.urls()), max_size=4))
    def test_judging_env_hosts_never_crashes_and_fails_closed(self, found: list[str]) -> None:
        """Whatever the env holds, the rule decides; a host it cannot read denies, never allows."""
        evidence = residency.LiveEvidence(env_hosts=found)
        data = DataResidency(data_class="personal", data_endpoints={"EU": []})
        decision = residency.data_endpoints(EUW1, data, FLEET, env_hosts=evidence.env_hosts)
        for host in evidence.env_hosts:
            where = FLEET.jurisdiction_of_host(host, cluster="euw1")
            assert decision.allowed is False or where == "EU"
