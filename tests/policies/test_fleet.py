"""The fleet model: what a valid fleet file is, and the lookups every other module relies on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from policies import loading
from policies.fleet import Fleet
from tests.policies.helpers import dump, problems, set_path

Mutation = Callable[[dict[str, Any]], None]


class TestFleetValidation:
    def test_example_fleet_loads(self, fleet: Fleet) -> None:
        """The committed example fleet is valid as written."""
        assert [r.name for r in fleet.regions] == ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2"]
        assert fleet.cluster("euc1-prod").regulated

    @pytest.mark.parametrize(
        ("mutation", "path", "message"),
        [
            (set_path("regions.1.name", "eu-west-1"), "regions[1].name", "already at regions[0]"),
            (set_path("clusters.2.name", "euw1-internal"), "clusters[2].name", "already at clusters[0]"),
            (
                set_path("clusters.2.kubeContext", "euc1-beta"),
                "clusters[2].kubeContext",
                "already at clusters[1]",
            ),
            (set_path("clusters.0.region", "eu-west-9"), "clusters[0].region", "unknown region 'eu-west-9'"),
            (set_path("regions.0.pair", "mars-1"), "regions[0].pair", "unknown region 'mars-1'"),
            (set_path("regions.0.pair", "eu-west-1"), "regions[0].pair", "cannot be paired with itself"),
            (set_path("regions.0.pair", "us-east-1"), "regions[0].pair", "pairs must agree"),
            (set_path("regions.0.timezone", "Europe/Atlantis"), "regions[0].timezone", "IANA"),
            (set_path("regions.0.timezone", "America"), "regions[0].timezone", "IANA"),
            (set_path("regions.0.timezone", "localtime"), "regions[0].timezone", "IANA"),
            (set_path("regions.0.timezone", "/etc/localtime"), "regions[0].timezone", "IANA"),
            (set_path("regions.0.timezone", "../../etc/passwd"), "regions[0].timezone", "IANA"),
            (set_path("regions.0.timezone", "Europe/" + "D" * 5000), "regions[0].timezone", "IANA"),
            (set_path("regions.0.timezone", "Factory"), "regions[0].timezone", "IANA"),
            (
                set_path("regions.0.prometheus", "http://prometheus.eu.example.com:65536"),
                "regions[0].prometheus",
                "from 1 to 65535",
            ),
            (
                set_path("regions.0.prometheus", "http://prometheus.eu.example.com:0"),
                "regions[0].prometheus",
                "from 1 to 65535",
            ),
            (set_path("regions.0.prometheus", "prometheus.eu.example.com"), "regions[0].prometheus", "http"),
            (set_path("regions.0.jurisdiction", ""), "regions[0].jurisdiction", "at least 1"),
            (
                set_path("clusters.0.labels", {"regulated": True}),
                "clusters[0].labels.regulated",
                "must be text",
            ),
            (set_path("clusters.0.name", "EUW1_internal"), "clusters[0].name", "lowercase"),
            *(
                (set_path("clusters.0.labels.regulated", value), "clusters[0].labels.regulated", '"true" or')
                for value in ("True", "yes", "1", "")
            ),
            (set_path("hosts.1.jurisdiction", "CH"), "hosts[1].jurisdiction", "no region is in"),
            (
                set_path(
                    "regions.0.prometheus", "http://prometheus.us.example.com\\@prometheus.eu.example.com"
                ),
                "regions[0].prometheus",
                "backslash",
            ),
            (set_path("hosts.1.match", "*"), "hosts[1].match", "not an exact host"),
            (
                set_path("hosts.1.match", "x" * 300 + ".example.com"),
                "hosts[1].match",
                "'" + "x" * 39 + "'… is not an exact host",
            ),
            (
                set_path("hosts.1", {"match": "*.eu.example.com", "jurisdiction": "US"}),
                "hosts[1].match",
                "overlaps hosts[0] '*.eu.example.com' (EU)",
            ),
            (set_path("kind", "ReleasePlan"), "kind", "'Fleet'"),
            (set_path("apiVersion", "ringmaster.dev/v2"), "apiVersion", "ringmaster.dev/v1"),
            (
                set_path("clusters.0.kubecontext", "x"),
                "clusters[0].kubecontext",
                "did you mean 'kubeContext'",
            ),
            (set_path("regions", []), "regions", "at least 1"),
        ],
    )
    def test_problems_name_the_path(
        self, fleet_data: dict[str, Any], mutation: Mutation, path: str, message: str
    ) -> None:
        """Each kind of mistake is reported at its own path with a message saying what is allowed."""
        mutation(fleet_data)
        found = problems(dump(fleet_data), kind="fleet")
        assert any(p == path and message in m for p, m in found), found

    @pytest.mark.parametrize("zone", ["Europe/Dublin", "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+5"])
    def test_iana_zones_load(self, fleet_data: dict[str, Any], zone: str) -> None:
        """Any IANA zone name of the tz database is a region's time zone, however deep its name."""
        fleet_data["regions"][0]["timezone"] = zone
        assert loading.parse_fleet(dump(fleet_data), "fleet.yaml").regions[0].zone.key == zone

    def test_norway_stays_a_jurisdiction(self, fleet_data: dict[str, Any]) -> None:
        """An unquoted ``NO`` (Norway) is read as text, not as YAML 1.1's false."""
        text = dump(fleet_data).replace("jurisdiction: EU", "jurisdiction: NO")
        assert loading.parse_fleet(text, "fleet.yaml").regions[0].jurisdiction == "NO"

    def test_direct_validation_rejects_inconsistent_fleets(self, fleet_data: dict[str, Any]) -> None:
        """Validating a Fleet outside the loader still refuses dangling references."""
        fleet_data["clusters"][0]["region"] = "nowhere-1"
        with pytest.raises(ValidationError, match="unknown region 'nowhere-1'"):
            Fleet.model_validate(fleet_data)

    def test_messages_never_echo_rejected_urls(self, fleet_data: dict[str, Any]) -> None:
        """A rejected Prometheus URL holding a password is not repeated in the error."""
        fleet_data["regions"][0]["prometheus"] = "ftp://admin:hunter2@prometheus.eu.example.com"
        with pytest.raises(loading.ConfigError) as caught:
            loading.parse_fleet(dump(fleet_data), "fleet.yaml")
        assert "hunter2" not in str(caught.value)


class TestFleetLookups:
    def test_cluster_region_and_region_of(self, fleet: Fleet) -> None:
        """Lookups by name return the declared entries."""
        assert fleet.cluster("use1-prod").kube_context == "use1-prod"
        assert fleet.region("us-west-2").timezone == "America/Los_Angeles"
        assert fleet.region_of("euc1-prod").jurisdiction == "EU"

    @pytest.mark.parametrize("lookup", ["cluster", "region", "region_of"])
    def test_unknown_names_raise_key_error(self, fleet: Fleet, lookup: str) -> None:
        """An unknown name raises KeyError naming it."""
        with pytest.raises(KeyError, match="nope"):
            getattr(fleet, lookup)("nope")

    @pytest.mark.parametrize(
        ("a", "b", "expected"),
        [
            ("eu-west-1", "eu-central-1", True),
            ("eu-central-1", "eu-west-1", True),
            ("us-east-1", "us-west-2", True),
            ("eu-west-1", "us-east-1", False),
            ("eu-west-1", "eu-west-1", False),
        ],
    )
    def test_pairs_are_symmetric(self, fleet: Fleet, a: str, b: str, expected: bool) -> None:
        """Two regions are paired when either names the other."""
        assert fleet.paired(a, b) is expected

    def test_selector_keeps_fleet_order(self, fleet: Fleet) -> None:
        """A selector returns every cluster with all its labels, in fleet order."""
        assert [c.name for c in fleet.select({"audience": "public"})] == [
            "euw1-prod",
            "euc1-prod",
            "use1-prod",
            "usw2-prod",
        ]
        assert [c.name for c in fleet.select({"audience": "public", "regulated": "true"})] == ["euc1-prod"]

    def test_prometheus_host_drops_credentials(self, fleet_data: dict[str, Any]) -> None:
        """The region's Prometheus host is the host alone, never user:password or port."""
        fleet_data["regions"][0]["prometheus"] = "https://reader:s3cret@prom.eu.example.com:9443/prom"
        fleet = loading.parse_fleet(dump(fleet_data), "fleet.yaml")
        assert fleet.region("eu-west-1").prometheus_host == "prom.eu.example.com"
