"""Host matching: where a host lives according to the fleet's hosts table and the cluster it runs in."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies import hosts, loading
from tests.policies.helpers import dump, make_fleet, problems
from tests.support import fleets
from tests.support.hostgen import fullwidth

RULES = [
    ("*.eu.example.com", "EU"),
    ("*.us.example.com", "US"),
    ("special.eu.example.com", "CH"),
    ("*.db.eu.example.com", "DE"),
    ("10.0.0.0/8", "EU"),
    ("172.16.0.0/12", "US"),
    ("172.20.0.0/16", "US"),
    ("192.0.2.7", "UK"),
    ("2001:db8::/32", "EU"),
]
FLEET = make_fleet(
    [
        ("eu-west-1", "EU", None),
        ("us-east-1", "US", None),
        ("eu-central-2", "CH", None),
        ("eu-central-1", "DE", None),
        ("eu-west-2", "UK", None),
    ],
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
            ("172.20.3.4", "US"),
            ("172.16.0.1", "US"),
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
            ("172.20.0.1:5432", "US"),
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


ADDRESS = "52.94.236.248"
"""What every resolver reads in 878636280, 0x345eecf8 and their other spellings."""


class TestCanonicalHosts:
    @pytest.mark.parametrize(
        "text",
        [
            "878636280",
            "0x345eecf8",
            "0X345EECF8",
            "0x34.0x5e.0xec.0xf8",
            "064.94.236.248",
            "52.94.60664",
            "52.6221048",
            "878636280.",
            fullwidth("878636280"),
            "[::ffff:52.94.236.248]",
            "::ffff:345e:ecf8",
        ],
    )
    def test_every_ipv4_notation_is_the_address(self, text: str) -> None:
        """Whatever inet_aton reads as an address (decimal, hex, octal, short forms, mapped IPv6) is it."""
        host = hosts.parse_host(text)
        assert (host.name, str(host.address)) == (ADDRESS, ADDRESS)

    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("BÜCHER.eu.example.com.", "xn--bcher-kva.eu.example.com"),
            (fullwidth("eu.") + "example.com", "eu.example.com"),
            ("xn--bcher-kva.EU.example.com", "xn--bcher-kva.eu.example.com"),
            ("[2001:DB8::1]", "2001:db8::1"),
        ],
    )
    def test_names_are_idna_lower_case_without_trailing_dot(self, text: str, canonical: str) -> None:
        """IDN and fullwidth names become their ASCII form, as requests encodes them before connecting."""
        assert hosts.parse_host(text).name == canonical

    @pytest.mark.parametrize(
        ("text", "why"),
        [
            ("1.2.3.4.5", "ends in a number"),
            ("orders.123", "ends in a number"),
            ("08", "ends in a number"),
            ("0x100000000", "ends in a number"),
            ("1.2.3.4 x", "spaces"),
            ("fe80::1%eth0", "zone"),
            ("a..b", "not a host name"),
        ],
    )
    def test_ambiguous_hosts_are_refused_saying_why(self, text: str, why: str) -> None:
        """A host some reader takes for an address and another for a name is refused, not guessed."""
        with pytest.raises(ValueError, match=why) as raised:
            hosts.parse_host(text)
        assert text not in str(raised.value)


class TestNumericHostsAreAddresses:
    @pytest.mark.parametrize(
        "text",
        ["878636280", "0x345eecf8", "postgres://878636280:5432/orders", "http://0x345eecf8:9090/"],
    )
    def test_a_numeric_single_label_is_never_in_cluster(self, text: str) -> None:
        """878636280 is 52.94.236.248 to every resolver: not an in-cluster name, so unknown here."""
        assert FLEET.jurisdiction_of_host(text, cluster="euw1") is None

    def test_a_numeric_host_is_placed_by_its_address(self) -> None:
        """The address rows of the table place a numeric host as they place its dotted form."""
        fleet = make_fleet([("us-east-1", "US", None)], [("use1", "us-east-1", {})], [("52.94.0.0/16", "US")])
        assert fleet.jurisdiction_of_host("postgres://878636280:5432/orders") == "US"


BACKSLASH = "http://prometheus.us.example.com\\@prometheus.eu.example.com:9090"


class TestUrlsParsersAgreeOn:
    @pytest.mark.parametrize(
        "text",
        [
            BACKSLASH,
            "postgres://db.us.example.com\\@db.eu.example.com/x",
            "http://" + fullwidth("eu.") + "example.com/",
        ],
    )
    def test_a_url_parsers_read_differently_is_refused(self, text: str) -> None:
        """urllib.parse, urllib3 and WHATWG must read one host; otherwise the URL is refused, saying why."""
        with pytest.raises(ValueError, match=r"urllib\.parse, urllib3 and a WHATWG URL parser") as raised:
            hosts.host_of(text)
        assert "example.com" not in str(raised.value)

    def test_the_backslash_is_named_as_the_reason(self) -> None:
        """The message says what to change."""
        with pytest.raises(ValueError, match="backslash"):
            hosts.parse_url(BACKSLASH)

    def test_connect_form_names_the_judged_host(self) -> None:
        """The URL a client is given is rebuilt from the parsed parts: canonical host, port, path, auth."""
        url = hosts.parse_url("HTTPS://r%40x:p%2Fw@0x345eecf8.:9443/prom?a=1", schemes=("http", "https"))
        assert url.host.name == ADDRESS
        assert url.connect_form() == f"https://r%40x:p%2Fw@{ADDRESS}:9443/prom?a=1"
        assert "p/w" not in repr(url)

    @pytest.mark.parametrize(
        ("text", "why"),
        [
            ("ftp://prometheus.eu.example.com", "http:// or https://"),
            ("prometheus.eu.example.com", "not a URL: write http:// or https://"),
            ("http://prometheus.eu.example.com:99999", "port"),
            ("http://", "no host"),
            ("http:///x", "read different hosts"),
        ],
    )
    def test_connection_urls_are_strict(self, text: str, why: str) -> None:
        """A URL to connect to has an allowed scheme, a host and a real port."""
        with pytest.raises(ValueError, match=why):
            hosts.parse_url(text, schemes=("http", "https"))


class TestHostRows:
    @pytest.mark.parametrize(
        ("first", "second"),
        [
            ("*.eu.example.com", "*.EU.example.com."),
            ("api.eu.example.com", "API.eu.example.com."),
            ("10.0.0.0/8", "10.1.2.3/8"),
            ("10.0.0.0/8", "10.20.0.0/16"),
            ("10.0.0.0/8", "::ffff:10.0.0.0/104"),
            ("192.0.2.0/24", "192.0.2.7"),
            ("192.0.2.7", "0xc0000207"),
        ],
    )
    def test_overlapping_rows_of_different_jurisdictions_are_errors(self, first: str, second: str) -> None:
        """Rows meeting in canonical form (or sharing an address) may not name two jurisdictions."""
        data = _fleet_doc([(first, "EU"), (second, "US")])
        found = problems(dump(data), kind="fleet")
        assert any(p == "hosts[1].match" and "hosts[0]" in m and "EU" in m and "US" in m for p, m in found)

    @pytest.mark.parametrize(
        "rows",
        [
            [("*.eu.example.com", "EU"), ("*.EU.example.com.", "EU")],
            [("*.eu.example.com", "EU"), ("*.db.eu.example.com", "US"), ("us.eu.example.com", "US")],
            [("10.0.0.0/9", "EU"), ("10.128.0.0/9", "US")],
        ],
    )
    def test_agreeing_duplicates_and_nested_names_are_allowed(self, rows: list[tuple[str, str]]) -> None:
        """Duplicates of one jurisdiction, names nested under other names, and disjoint blocks load."""
        loading.parse_fleet(dump(_fleet_doc(rows)), "fleet.yaml")

    def test_rows_for_a_jurisdiction_no_region_has_are_errors(self) -> None:
        """A host rule for an unknown jurisdiction (a typo, a region not yet added) is refused."""
        found = problems(dump(_fleet_doc([("*.ch.example.com", "CH")])), kind="fleet")
        assert ("hosts[0].jurisdiction", "no region is in jurisdiction 'CH'; known: EU, US") in found

    def test_rows_are_stored_in_canonical_form(self) -> None:
        """The fleet keeps the canonical pattern, so JSON and evidence show what is compared."""
        fleet = loading.parse_fleet(dump(_fleet_doc([("*.EU.Example.com.", "EU")])), "fleet.yaml")
        assert fleet.hosts[0].match == "*.eu.example.com"


def _fleet_doc(rows: list[tuple[str, str]]) -> dict[str, Any]:
    data = copy.deepcopy(fleets.FLEET_DATA)
    data["hosts"] = [{"match": match, "jurisdiction": jurisdiction} for match, jurisdiction in rows]
    return data
