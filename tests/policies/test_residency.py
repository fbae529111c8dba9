"""Residency rules: each a pure function whose decision record is fit to serve as audit evidence."""

from __future__ import annotations

import json
import re

import pytest

from policies import residency, schedule
from policies.fleet import Fleet
from policies.plan import DataResidency, ReleasePlan
from tests.policies.helpers import make_fleet, make_plan, ring

FLEET = make_fleet(
    [("eu-west-1", "EU", None), ("eu-central-1", "EU", None), ("us-east-1", "US", None)],
    [
        ("euw1", "eu-west-1", {}),
        ("euc1-reg", "eu-central-1", {"regulated": "true"}),
        ("use1", "us-east-1", {}),
        ("use1-reg", "us-east-1", {"regulated": "true"}),
    ],
    [("*.eu.example.com", "EU"), ("*.us.example.com", "US"), ("10.1.0.0/16", "EU")],
)


def _scheduled(*rings: list[str]) -> schedule.Schedule:
    plan = make_plan(
        rings=[ring(f"r{i}", names) for i, names in enumerate(rings)],
        windows=[],
        dataResidency={"dataClass": "none"},
    )
    return schedule.build(plan, FLEET, "1.0.0")


SCHEDULE = _scheduled(["euw1", "use1"], ["euc1-reg", "use1-reg"])
EUW1 = SCHEDULE.cluster("euw1")
PERSONAL = DataResidency(
    data_class="personal",
    data_endpoints={"EU": ["orders.db.eu.example.com", "10.1.2.3"], "US": ["orders.db.us.example.com"]},
)


class TestJurisdictionScope:
    @pytest.mark.parametrize(
        ("cluster", "allowed", "verdict"),
        [
            ("euw1", None, "allow"),
            ("euw1", ["EU"], "allow"),
            ("use1", ["EU"], "deny"),
            ("use1", ["EU", "US"], "allow"),
        ],
    )
    def test_only_allowed_jurisdictions_are_targeted(
        self, cluster: str, allowed: list[str] | None, verdict: str
    ) -> None:
        """A cluster outside allowedJurisdictions (when set) is denied; without the list all are allowed."""
        decision = residency.jurisdiction_scope(SCHEDULE.cluster(cluster), allowed)
        assert decision.verdict == verdict
        assert decision.rule == "jurisdiction-scope"


class TestResidencyDataEndpoints:
    @pytest.mark.parametrize(
        ("endpoints", "env_hosts", "uninspected", "verdict", "reason"),
        [
            ({"EU": ["orders.db.eu.example.com"]}, None, [], "allow", "all 1 data endpoint(s) are in EU"),
            ({"EU": ["orders.db.eu.example.com", "10.1.9.9"]}, None, [], "allow", "are in EU"),
            ({"EU": ["orders.db.us.example.com"]}, None, [], "deny", "orders.db.us.example.com is in US"),
            ({"EU": ["db.example.org"]}, None, [], "deny", "db.example.org is in no known jurisdiction"),
            ({"US": ["orders.db.us.example.com"]}, None, [], "deny", "dataEndpoints declares nothing for EU"),
            ({"EU": [], "US": ["orders.db.us.example.com"]}, None, [], "allow", "holds no data in EU"),
            ({}, ["cache.eu.example.com"], [], "deny", "write EU: [] if the service holds no data in EU"),
            (
                {"EU": []},
                ["cache.eu.example.com", "redis", "postgres.db.svc.cluster.local"],
                [],
                "allow",
                "are in EU",
            ),
            ({}, ["api.us.example.com"], [], "deny", "api.us.example.com is in US"),
            ({}, ["https://user:pw@unknown.example.net/x"], [], "deny", "unknown.example.net is in no known"),
            (
                {},
                ["cache.eu.example.com"],
                ["env DB_URL from secret db"],
                "deny",
                "could not inspect env DB_URL",
            ),
            ({"EU": []}, [], [], "allow", "holds no data in EU and none found in env"),
            ({"EU": []}, ["postgres://878636280:5432/orders"], [], "deny", "52.94.236.248 is in no known"),
        ],
    )
    def test_personal_data_stays_in_jurisdiction(
        self,
        endpoints: dict[str, list[str]],
        env_hosts: list[str] | None,
        uninspected: list[str],
        verdict: str,
        reason: str,
    ) -> None:
        """Declared endpoints and env hosts must map to the cluster's jurisdiction; unknown fails closed."""
        data = DataResidency(data_class="personal", data_endpoints=endpoints)
        decision = residency.data_endpoints(EUW1, data, FLEET, env_hosts=env_hosts, uninspected=uninspected)
        assert (decision.verdict, decision.rule) == (verdict, "data-endpoints")
        assert reason in decision.reason
        unknown = "no known" in decision.reason or "could not inspect" in decision.reason
        assert decision.reason.endswith("(unknown fails closed)") == unknown, "said only of unknown hosts"

    @pytest.mark.parametrize("data_class", ["pseudonymous", "none"])
    def test_other_data_classes_are_not_restricted(self, data_class: str) -> None:
        """Only dataClass personal restricts endpoints; others are allowed and say why."""
        data = DataResidency(data_class=data_class, data_endpoints={"EU": ["db.example.org"]})  # type: ignore[arg-type]
        decision = residency.data_endpoints(EUW1, data, FLEET, env_hosts=["x.example.org"])
        assert decision.verdict == "allow"
        assert data_class in decision.reason

    def test_inputs_hold_hosts_never_credentials(self) -> None:
        """A URL with user:password in live evidence is recorded as its host only."""
        decision = residency.data_endpoints(
            EUW1,
            PERSONAL,
            FLEET,
            env_hosts=["postgres://app:hunter2@orders.db.eu.example.com:5432/db?sslmode=x"],
        )
        evidence = json.dumps(decision.model_dump(mode="json"))
        assert "hunter2" not in evidence
        assert "5432" not in evidence
        assert decision.inputs["envHosts"] == ["orders.db.eu.example.com"]


class TestTelemetryLocality:
    @pytest.mark.parametrize(
        ("prometheus", "verdict", "reason"),
        [
            ("http://prometheus.{j}.example.com:9090", "allow", "is in EU"),
            ("http://prometheus.us.example.com:9090", "deny", "is in US, not EU"),
            ("http://prometheus.example.org", "deny", "no known jurisdiction"),
            ("http://prometheus.monitoring.svc:9090", "allow", "is in EU"),
            ("https://reader:s3cret@10.1.0.5:9090/prom", "allow", "10.1.0.5 is in EU"),
            ("http://878636280:9090", "deny", "52.94.236.248 is in no known jurisdiction"),
            ("http://0x0a010005:9090", "allow", "10.1.0.5 is in EU"),
        ],
    )
    def test_prometheus_lives_in_the_clusters_jurisdiction(
        self, prometheus: str, verdict: str, reason: str
    ) -> None:
        """The Prometheus judging a cluster must be in its jurisdiction; in-cluster names are local."""
        fleet = make_fleet(
            [("eu-west-1", "EU", None), ("us-east-1", "US", None)],
            [("euw1", "eu-west-1", {})],
            [("*.eu.example.com", "EU"), ("*.us.example.com", "US"), ("10.1.0.0/16", "EU")],
            prometheus=prometheus,
        )
        cluster = schedule.build(make_plan(rings=[ring("r", ["euw1"])], windows=[]), fleet, "1").cluster(
            "euw1"
        )
        decision = residency.telemetry_locality(cluster, fleet)
        assert decision.verdict == verdict
        assert reason in decision.reason
        assert "s3cret" not in json.dumps(decision.model_dump(mode="json"))


class TestClusterLocation:
    @pytest.mark.parametrize(
        ("nodes", "verdict", "reason"),
        [
            (["eu-west-1", "eu-west-1"], "allow", "all 2 node(s) are in eu-west-1"),
            ([], "deny", "fails closed"),
            (["eu-west-1", "us-east-1"], "deny", "us-east-1, not eu-west-1"),
            (["eu-west-2"], "deny", "eu-west-2"),
        ],
    )
    def test_node_regions_match_declared_region(self, nodes: list[str], verdict: str, reason: str) -> None:
        """Every node must report the declared region; no evidence at all is a denial."""
        decision = residency.cluster_location(EUW1, nodes)
        assert decision.verdict == verdict
        assert reason in decision.reason


class TestRegulatedAfterValidation:
    @pytest.mark.parametrize(
        ("rings", "cluster", "promoted", "verdict", "reason"),
        [
            ([["euw1", "use1"], ["euc1-reg"]], "euw1", None, "allow", "not labelled regulated"),
            ([["euw1", "use1"], ["euc1-reg"]], "euc1-reg", None, "allow", "validated first in euw1"),
            ([["euc1-reg"], ["euw1"]], "euc1-reg", None, "deny", "no non-regulated EU cluster comes before"),
            ([["euw1", "use1"], ["use1-reg"]], "use1-reg", None, "allow", "use1"),
            ([["euw1"], ["use1-reg"]], "use1-reg", None, "deny", "no non-regulated US cluster"),
            ([["euw1", "euc1-reg"]], "euc1-reg", None, "allow", "validated first in euw1"),
            ([["euw1"], ["euc1-reg"]], "euc1-reg", ["euw1"], "allow", "promoted in euw1"),
            ([["euw1"], ["euc1-reg"]], "euc1-reg", [], "deny", "not yet promoted"),
            ([["euw1", "use1"], ["euc1-reg"]], "euc1-reg", ["use1"], "deny", "not yet promoted"),
        ],
        ids=[
            "ordinary-cluster",
            "earlier-eu-cluster",
            "regulated-first",
            "earlier-us-cluster",
            "only-other-jurisdiction-earlier",
            "regulated-wave-after-ordinary-in-ring",
            "live-promoted",
            "live-nothing-promoted",
            "live-promoted-elsewhere-only",
        ],
    )
    def test_regulated_clusters_follow_validation(
        self, rings: list[list[str]], cluster: str, promoted: list[str] | None, verdict: str, reason: str
    ) -> None:
        """A regulated cluster needs an earlier ordinary cluster of its jurisdiction (promoted, when live)."""
        built = _scheduled(*rings)
        decision = residency.regulated_after_validation(
            built.cluster(cluster), residency.validators(built.cluster(cluster), built), promoted
        )
        assert decision.verdict == verdict
        assert reason in decision.reason


class TestDecisionsAsEvidence:
    def test_policy_digest_is_stable_sha256(self) -> None:
        """The digest is a sha256 of the rule set, the same on every call."""
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", residency.policy_digest())
        assert residency.policy_digest() == residency.policy_digest()

    def test_static_decisions_cover_every_cluster(
        self, plan: ReleasePlan, fleet: Fleet, example_schedule: schedule.Schedule
    ) -> None:
        """Static decisions list the four static rules for each cluster, in schedule order, all allowed."""
        decisions = residency.static_decisions(plan, fleet, example_schedule)
        assert list(decisions) == [c.name for c in example_schedule.all_clusters()]
        for cluster, found in decisions.items():
            assert [d.rule for d in found] == list(residency.STATIC_RULES)
            assert all(d.cluster == cluster and d.policy_digest == residency.policy_digest() for d in found)
        assert residency.denials(decisions) == []

    def test_live_decisions_judge_all_five_rules(
        self, plan: ReleasePlan, fleet: Fleet, example_schedule: schedule.Schedule
    ) -> None:
        """Live decisions add cluster-location and use the evidence; a foreign env host is denied."""
        evidence = residency.LiveEvidence(
            node_regions=["eu-central-1"], env_hosts=["orders.db.us.example.com"], uninspected=[]
        )
        found = residency.live_decisions(plan, fleet, example_schedule, "euc1-prod", evidence, ["euw1-prod"])
        assert [d.rule for d in found] == list(residency.RULES)
        verdicts = {d.rule: d.verdict for d in found}
        assert verdicts == {
            "jurisdiction-scope": "allow",
            "data-endpoints": "deny",
            "telemetry-locality": "allow",
            "cluster-location": "allow",
            "regulated-after-validation": "allow",
        }

    def test_live_evidence_keeps_hosts_only(self) -> None:
        """LiveEvidence reduces URLs to hosts and replaces garbage with a marker that fails closed."""
        evidence = residency.LiveEvidence(env_hosts=["https://u:p@db.eu.example.com:5432/x", "::::"])
        assert evidence.env_hosts == ["db.eu.example.com", "<unparseable host>"]

    def test_decisions_round_trip_through_json(
        self, plan: ReleasePlan, fleet: Fleet, example_schedule: schedule.Schedule
    ) -> None:
        """Decision records survive model_dump(mode='json') and model_validate unchanged."""
        for found in residency.static_decisions(plan, fleet, example_schedule).values():
            for decision in found:
                assert residency.Decision.model_validate(decision.model_dump(mode="json")) == decision
