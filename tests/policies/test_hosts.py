"""Host matching: where a host lives according to the fleet's hosts table and the cluster it runs in."""

from __future__ import annotations

import pytest

from policies import hosts
from tests.policies.helpers import make_fleet

RULES = [
    ("*.eu.example.com", "EU"),
    ("*.us.example.com", "US"),
    ("special.eu.example.com", "CH"),
    ("*.db.eu.example.com", "DE"),
    ("10.0.0.0/8", "EU"),
    ("10.20.0.0/16", "US"),
    ("192.0.2.7", "UK"),
    ("2001:db8::/32", "EU"),
]
FLEET = make_fleet(
    [("eu-west-1", "EU", None), ("us-east-1", "US", None)],
    [("euw1", "eu-west-1", {}), ("use1", "us-east-1", {})],
    RULES,
)


class TestHostMatching:
    @pytest.mark.parametrize(
        ("host", "expected"),
        [
            ("api.eu.example.com", "EU"),
            ("orders.kafka.eu.example.com", "EU"),
            ("a.b.c.d.us.example.com", "US"),
            ("eu.example.com", None),
            ("xeu.example.com", None),
            ("api.eu.example.com.evil.test", None),
            ("special.eu.example.com", "CH"),
            ("orders.db.eu.example.com", "DE"),
            ("API.EU.Example.COM.", "EU"),
            ("10.1.2.3", "EU"),
            ("10.20.3.4", "US"),
            ("11.0.0.1", None),
            ("192.0.2.7", "UK"),
            ("2001:db8::1", "EU"),
            ("[2001:db8::1]", "EU"),
            ("unknown.example.org", None),
        ],
    )
    def test_most_specific_rule_wins(self, host: str, expected: str | None) -> None:
        """Exact beats wildcard, longer suffix beats shorter, narrower CIDR beats wider; misses are None."""
        assert FLEET.jurisdiction_of_host(host) == expected

    @pytest.mark.parametrize(
        ("address", "expected"),
        [
            ("postgres://user:hunter2@orders.db.eu.example.com:5432/orders", "DE"),
            ("https://api.us.example.com/v1?token=x", "US"),
            ("api.us.example.com:443", "US"),
            ("10.20.0.1:5432", "US"),
        ],
    )
    def test_urls_and_ports_resolve_by_their_host(self, address: str, expected: str) -> None:
        """A URL or host:port is judged by its host alone."""
        assert FLEET.jurisdiction_of_host(address) == expected

    @pytest.mark.parametrize(
        ("host", "cluster", "expected"),
        [
            ("redis", "euw1", "EU"),
            ("redis", "use1", "US"),
            ("orders.payments.svc", "use1", "US"),
            ("orders.payments.svc.cluster.local", "euw1", "EU"),
            ("localhost", "use1", "US"),
            ("127.0.0.1", "euw1", "EU"),
            ("::1", "use1", "US"),
            ("redis", None, None),
            ("orders.payments.svc", None, None),
            ("api.eu.example.com", "use1", "EU"),
        ],
    )
    def test_in_cluster_names_belong_to_the_cluster(
        self, host: str, cluster: str | None, expected: str | None
    ) -> None:
        """Single-label, *.svc, *.svc.cluster.local and loopback names resolve to their cluster's place."""
        assert FLEET.jurisdiction_of_host(host, cluster=cluster) == expected

    @pytest.mark.parametrize("host", ["", "not a host", "http://", "a..b"])
    def test_unparseable_hosts_are_unknown(self, host: str) -> None:
        """Garbage never matches anything, so callers fail closed."""
        assert FLEET.jurisdiction_of_host(host, cluster="euw1") is None


class TestHostPatterns:
    @pytest.mark.parametrize(
        "pattern", ["*", "*.", "http://x.example.com", "a b", "10.0.0.0/33", "*x.example.com", ""]
    )
    def test_rejects_what_is_not_a_pattern(self, pattern: str) -> None:
        """Only exact hosts, *.suffix, IPs and CIDRs are patterns."""
        with pytest.raises(ValueError, match="'"):
            hosts.HostPattern.parse(pattern)

    @pytest.mark.parametrize(
        ("text", "host"),
        [
            ("http://user:secret@prometheus.eu.example.com:9090/api", "prometheus.eu.example.com"),
            ("Orders.DB.example.com.", "orders.db.example.com"),
            ("[::1]:80", "::1"),
        ],
    )
    def test_host_of_keeps_only_the_host(self, text: str, host: str) -> None:
        """host_of drops scheme, credentials, port, path and query, and normalises case."""
        assert hosts.host_of(text) == host
