"""Feature flags: the steps a plan writes, the flag servers a fleet names, the rules across the two,
and exactly what a step writes to Unleash."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from policies import flags, gates, loading, residency, schedule
from policies.fleet import Fleet, Region
from policies.plan import ReleasePlan
from policies.strategy import Strategy
from ringmaster.converter import data_converter
from tests.policies.helpers import drop_path, dump, set_path
from tests.support import fleets

Mutation = Callable[[dict[str, Any]], None]
FLAG = "rings.2.strategy.featureFlag"
STEPS = f"{FLAG}.steps"


@pytest.fixture
def flag_data() -> dict[str, Any]:
    """A fresh copy of the example flag plan as the dictionary YAML gives."""
    return copy.deepcopy(fleets.FLAG_PLAN_DATA)


def _problems(data: dict[str, Any], *, kind: str = "plan") -> list[tuple[str, str]]:
    parse = loading.parse_plan if kind == "plan" else loading.parse_fleet
    try:
        parse(dump(data), f"{kind}.yaml")
    except loading.ConfigError as error:
        return [(p.path, p.message) for p in error.problems]
    raise AssertionError(f"the {kind} loaded, but problems were expected")


def _flag_plan() -> ReleasePlan:
    return loading.load_plan(fleets.EXAMPLE_FLAG_PLAN)


def _fleet(region_flags: dict[str, dict[str, str] | None]) -> Fleet:
    """The example fleet with ``flags`` of the named regions replaced (None removes them)."""
    data = copy.deepcopy(fleets.FLEET_DATA)
    for region in data["regions"]:
        if region["name"] in region_flags:
            server = region_flags[region["name"]]
            if server is None:
                region.pop("flags", None)
            else:
                region["flags"] = server
    return loading.parse_fleet(dump(data), "fleet.yaml")


class TestFlagSteps:
    def test_example_flag_plan_loads(self) -> None:
        """The committed flag plan is valid: a flag after a canary, and a flag alone (code rolled out)."""
        plan = _flag_plan()
        internal, beta, _ = plan.rings
        assert internal.strategy.kind == "canary"
        assert internal.strategy.feature_flag is not None
        assert internal.strategy.feature_flag.rollouts == [50, 100]
        assert beta.strategy.kind == "rolling"
        assert beta.strategy.rolling is None
        assert plan.feature_flag == "checkout-v2"

    @pytest.mark.parametrize(
        ("mutation", "path", "message"),
        [
            (
                set_path(f"{STEPS}.0.setRollout", 0),
                "rings[2].strategy.featureFlag.steps[0].setRollout",
                "greater than or equal to 1",
            ),
            (
                set_path(f"{STEPS}.0.setRollout", 101),
                "rings[2].strategy.featureFlag.steps[0].setRollout",
                "less than or equal to 100",
            ),
            (
                set_path(f"{STEPS}.0.setRollout", True),
                "rings[2].strategy.featureFlag.steps[0].setRollout",
                "whole number",
            ),
            (
                set_path(f"{STEPS}.0.setRollout", "5%"),
                "rings[2].strategy.featureFlag.steps[0].setRollout",
                "whole number",
            ),
            (
                set_path(f"{STEPS}.1", {"setRollout": 5, "pause": {}}),
                "rings[2].strategy.featureFlag.steps[1]",
                "exactly one of setRollout, pause",
            ),
            (
                set_path(f"{STEPS}.1", {"setWeight": 5}),
                "rings[2].strategy.featureFlag.steps[1].setWeight",
                "unknown field 'setWeight'; allowed: setRollout, pause",
            ),
            (
                set_path(STEPS, [{"pause": {"duration": "5m"}}]),
                "rings[2].strategy.featureFlag",
                "at least one setRollout step",
            ),
            (
                set_path(f"{STEPS}.4.setRollout", 10),
                "rings[2].strategy.featureFlag",
                "steps[4].setRollout 10 is below the 25 before it",
            ),
            (set_path(f"{FLAG}.flag", "checkout v2"), "rings[2].strategy.featureFlag.flag", "1-100 letters"),
            (set_path(f"{FLAG}.flag", "x" * 101), "rings[2].strategy.featureFlag.flag", "1-100 letters"),
            (
                set_path(f"{FLAG}.stickiness", "random"),
                "rings[2].strategy.featureFlag.stickiness",
                "'userId', 'sessionId' or 'default'",
            ),
            (drop_path(f"{FLAG}.flag"), "rings[2].strategy.featureFlag.flag", "required"),
            (
                set_path(f"{FLAG}.flags", "checkout-v2"),
                "rings[2].strategy.featureFlag.flags",
                "did you mean 'flag'",
            ),
            (
                set_path("rings.0.strategy.rolling", {}),
                "rings[0].strategy",
                "exactly one of canary, blueGreen, rolling; got canary and rolling",
            ),
            (
                set_path("rings.2.strategy", {}),
                "rings[2].strategy",
                "one of canary, blueGreen, rolling, or featureFlag",
            ),
        ],
    )
    def test_problems_name_the_path(
        self, flag_data: dict[str, Any], mutation: Mutation, path: str, message: str
    ) -> None:
        """Every problem of a flag step names its path and what is allowed."""
        mutation(flag_data)
        found = _problems(flag_data)
        assert any(p == path and message in m for p, m in found), found

    def test_a_flag_beside_any_code_strategy_is_allowed(self, flag_data: dict[str, Any]) -> None:
        """featureFlag may follow blueGreen or rolling as it follows canary."""
        for code in ({"blueGreen": {}}, {"rolling": {}}):
            flag_data["rings"][1]["strategy"] |= code
            plan = loading.parse_plan(dump(flag_data), "plan.yaml")
            assert plan.rings[1].strategy.kind == next(iter(code))
            del flag_data["rings"][1]["strategy"][next(iter(code))]

    def test_rollouts_end_fully_on(self) -> None:
        """After the last step the flag is on for every user of the cluster, as a canary is promoted."""
        plan = _flag_plan()
        assert [r.strategy.feature_flag.rollouts for r in plan.rings if r.strategy.feature_flag] == [
            [50, 100],
            [10, 50, 100],
            [5, 25, 50, 100],
        ]

    def test_pauses_of_code_and_flag_add_up(self) -> None:
        """Timed pauses and approvals count the flag's steps with the code's, as does the least time."""
        plan = _flag_plan()
        internal, beta, broad = plan.rings
        assert internal.strategy.timed_pauses == timedelta(minutes=25)
        assert beta.strategy.approval_pauses == 1
        assert broad.strategy.approval_pauses == 0
        built = schedule.build(plan, fleets.example_fleet(), "v2")
        # 55m internal; beta 2 waves x 10m + 1h; broad 3 waves x 30m + 2h
        assert built.minimum_duration == timedelta(hours=5, minutes=45)

    def test_describe_says_the_code_lands_with_the_flag_off(self) -> None:
        """The plan's one-line summary names the code strategy, then the flag and its percentages."""
        internal, beta, _ = _flag_plan().rings
        assert internal.strategy.describe() == (
            "canary 20% (5m paused) with the flag off, then flag checkout-v2 50→100% (20m paused)"
        )
        assert beta.strategy.describe() == (
            "rolling with the flag off, then flag checkout-v2 10→50→100% (10m paused, 1 approval pause(s))"
        )


class TestFlagPlanRules:
    def test_a_release_moves_one_flag(self, flag_data: dict[str, Any]) -> None:
        """Two rings moving different flags is an error at the later one's flag."""
        flag_data["rings"][1]["strategy"]["featureFlag"]["flag"] = "search-v3"
        assert (
            "rings[1].strategy.featureFlag.flag",
            "ring 'beta' moves flag 'search-v3' but rings[0] moves "
            "'checkout-v2': a release moves one feature flag",
        ) in _problems(flag_data)

    def test_flag_steps_need_a_metric_telling_flag_on_from_off(self, flag_data: dict[str, Any]) -> None:
        """With metrics but none using {{featureOn}}, each flag ring is an error: its gate is blind."""
        flag_data["analysis"]["metrics"] = flag_data["analysis"]["metrics"][:1]
        found = _problems(flag_data)
        assert [p for p, _ in found] == [f"rings[{i}].strategy.featureFlag" for i in range(3)]
        assert 'feature_on="{{featureOn}}"' in found[0][1]

    def test_flag_metrics_alone_are_an_error(self, flag_data: dict[str, Any]) -> None:
        """With only flag metrics nothing could judge the code before the flag moves, nor a bake."""
        flag_data["analysis"]["metrics"] = flag_data["analysis"]["metrics"][1:2]
        found = _problems(flag_data)
        assert [p for p, _ in found] == ["analysis.metrics"]
        assert "add a metric of the whole version" in found[0][1]

    def test_flag_steps_without_any_metric_are_allowed(self, flag_data: dict[str, Any]) -> None:
        """No analysis at all is allowed, as for a canary."""
        flag_data["analysis"]["metrics"] = []
        assert loading.parse_plan(dump(flag_data), "plan.yaml").feature_flag == "checkout-v2"

    def test_a_flag_metric_in_a_plan_without_flags_is_an_error(self, plan_data: dict[str, Any]) -> None:
        """A metric using {{featureOn}} would never be judged when no ring moves a flag."""
        flag_metric = copy.deepcopy(fleets.FLAG_PLAN_DATA["analysis"]["metrics"][1])
        plan_data["analysis"]["metrics"].append(flag_metric)
        assert _problems(plan_data) == [
            (
                "analysis.metrics[3].query",
                "uses {{featureOn}} but no ring moves a feature flag (strategy.featureFlag): "
                "it would never be judged",
            )
        ]

    def test_feature_without_feature_on_is_an_error(self, flag_data: dict[str, Any]) -> None:
        """A query naming {{feature}} but not {{featureOn}} would compare a value with itself."""
        query = flag_data["analysis"]["metrics"][1]["query"]
        flag_data["analysis"]["metrics"][1]["query"] = query.replace(',feature_on="{{featureOn}}"', "")
        found = _problems(flag_data)
        assert found[0][0] == "analysis.metrics[1].query"
        assert "must also select {{featureOn}}" in found[0][1]

    def test_unknown_placeholders_list_the_flag_ones(self, flag_data: dict[str, Any]) -> None:
        """A misspelt placeholder is refused with the allowed ones, the flag's among them."""
        flag_data["analysis"]["metrics"][1]["query"] = 'x{feature_on="{{featureon}}"}'
        (found,) = _problems(flag_data)
        assert "unknown placeholder {{featureon}}" in found[1]
        assert "{{feature}}, {{featureOn}}" in found[1]


class TestFleetFlagServers:
    def test_example_regions_name_their_unleash(self, fleet: Fleet) -> None:
        """Each example region names its Unleash; project and context field take Unleash's defaults."""
        server = fleet.region("eu-west-1").flags
        assert server is not None
        assert (server.host, server.project, server.environment, server.context_field) == (
            "unleash.eu.example.com",
            "default",
            "eu-west-1",
            "cluster",
        )

    def test_a_fleet_without_flag_servers_loads(self, fleet_data: dict[str, Any]) -> None:
        """Flags are optional: a fleet written before them loads unchanged."""
        for region in fleet_data["regions"]:
            region.pop("flags", None)
        loaded = loading.parse_fleet(dump(fleet_data), "fleet.yaml")
        assert all(r.flags is None for r in loaded.regions)

    @pytest.mark.parametrize(
        ("flags_field", "path", "message"),
        [
            (
                {"url": "https://admin:tok3n@unleash.eu.example.com/api", "environment": "e"},
                "url",
                "must not carry credentials",
            ),
            (
                {"url": "https://unleash.eu.example.com/api?token=tok3n", "environment": "e"},
                "url",
                "no query",
            ),
            ({"url": "https://unleash.eu.example.com", "environment": "e"}, "url", "ending in /api"),
            ({"url": "ftp://unleash.eu.example.com/api", "environment": "e"}, "url", "http:// or https://"),
            ({"url": "https://unleash.eu.example.com:0/api", "environment": "e"}, "url", "1 to 65535"),
            ({"url": "https://unleash.eu.example.com/api"}, "environment", "required"),
            (
                {"url": "https://unleash.eu.example.com/api", "environment": "prod eu"},
                "environment",
                "1-100 letters",
            ),
            (
                {"url": "https://unleash.eu.example.com/api", "environment": "e", "project": "a/b"},
                "project",
                "1-100 letters",
            ),
            (
                {"url": "https://unleash.eu.example.com/api", "environment": "e", "token": "t"},
                "token",
                "allowed: url, project, environment, contextField",
            ),
        ],
    )
    def test_problems_name_the_path(
        self, fleet_data: dict[str, Any], flags_field: dict[str, str], path: str, message: str
    ) -> None:
        """A flag server's problems name their path and what is allowed, and never echo a credential."""
        fleet_data["regions"][0]["flags"] = flags_field
        found = _problems(fleet_data, kind="fleet")
        assert any(p == f"regions[0].flags.{path}" and message in m for p, m in found), found
        assert not any("tok3n" in m for _, m in found)

    def test_admin_path_is_below_the_api_url(self, fleet: Fleet) -> None:
        """The Admin API path of a flag's strategies sits under the URL the SDKs use."""
        server = fleet.region("eu-west-1").flags
        assert server is not None
        assert server.admin_path("checkout-v2") == (
            "/api/admin/projects/default/features/checkout-v2/environments/eu-west-1/strategies"
        )


class TestFlagsAgainstFleet:
    def test_a_flag_in_a_region_without_flag_server_is_an_error(self) -> None:
        """A ring moving a flag into a region with no flag server is refused, naming region and cluster."""
        fleet = _fleet({"us-east-1": None, "us-west-2": None})
        with pytest.raises(loading.ConfigError) as caught:
            loading.check_plan_against_fleet(_flag_plan(), fleet, "flag-plan.yaml")
        found = [(p.path, p.message) for p in caught.value.problems]
        assert [p for p, _ in found] == ["rings[1].strategy.featureFlag", "rings[2].strategy.featureFlag"]
        assert "'us-east-1' (use1-beta)" in found[0][1]
        assert "'us-east-1' (use1-prod); 'us-west-2' (usw2-prod)" in found[1][1]
        assert "add regions[].flags {url, project, environment}" in found[0][1]

    def test_plans_without_flags_need_no_flag_server(self, plan: ReleasePlan) -> None:
        """The example plan moves no flag and fits a fleet without any flag server."""
        no_flags = _fleet({region["name"]: None for region in fleets.FLEET_DATA["regions"]})
        loading.check_plan_against_fleet(plan, no_flags, "plan.yaml")


def _on_cluster(operator: str, *values: str, **extra: bool) -> dict[str, Any]:
    """A constraint on the ``cluster`` context field, as Unleash answers it."""
    return {"contextName": "cluster", "operator": operator, "values": list(values), **extra}


def _decision(fleet: Fleet, cluster: str, *, flags_moved: bool = True) -> residency.Decision:
    plan = _flag_plan()
    target = schedule.build(plan, fleets.example_fleet(), "v2").cluster(cluster)
    return residency.telemetry_locality(target, fleet, flags=flags_moved)


class TestTelemetryLocalityCoversFlagServers:
    @pytest.mark.parametrize(
        ("url", "verdict", "reason"),
        [
            (
                "https://unleash.eu.example.com/api",
                "allow",
                "Prometheus prometheus.eu.example.com is in EU; flag server unleash.eu.example.com is in EU",
            ),
            (
                "https://unleash.us.example.com/api",
                "deny",
                "flag server unleash.us.example.com is in US, not EU",
            ),
            (
                "https://unleash.example.org/api",
                "deny",
                "flag server unleash.example.org is in no known jurisdiction, not EU",
            ),
            ("http://unleash.flags.svc:4242/api", "allow", "flag server unleash.flags.svc is in EU"),
        ],
    )
    def test_the_flag_server_lives_in_the_clusters_jurisdiction(
        self, url: str, verdict: str, reason: str
    ) -> None:
        """A cluster whose ring moves a flag is denied unless its flag server is in its jurisdiction."""
        fleet = _fleet({"eu-west-1": {"url": url, "environment": "eu-west-1"}})
        decision = _decision(fleet, "euw1-internal")
        assert decision.verdict == verdict
        assert reason in decision.reason
        assert decision.inputs["flagServerHost"] == flags.FlagServer(url=url, environment="e").host

    def test_no_flag_server_fails_closed(self) -> None:
        """A flag moved in a region without a flag server (the worker's fleet changed) is denied."""
        decision = _decision(_fleet({"eu-west-1": None}), "euw1-internal")
        assert decision.verdict == "deny"
        assert "names no flag server (fails closed)" in decision.reason

    def test_a_ring_without_flags_is_judged_as_before(self) -> None:
        """For a ring moving no flag the decision is exactly the Prometheus one, whatever the flag server."""
        fleet = _fleet({"eu-west-1": {"url": "https://unleash.us.example.com/api", "environment": "e"}})
        decision = _decision(fleet, "euw1-internal", flags_moved=False)
        assert decision.verdict == "allow"
        assert decision.reason == "Prometheus prometheus.eu.example.com is in EU"
        assert set(decision.inputs) == {"prometheusHost", "prometheusJurisdiction", "jurisdiction"}

    def test_static_and_live_decisions_judge_the_flag_server_of_flag_rings(self) -> None:
        """Both the judgement before running and the one before each cluster cover the flag server."""
        fleet = _fleet({"us-east-1": {"url": "https://unleash.eu.example.com/api", "environment": "e"}})
        plan = _flag_plan()
        built = schedule.build(plan, fleet, "v2")
        static = residency.static_decisions(plan, fleet, built)
        denied = {d.cluster for d in residency.denials(static)}
        assert denied == {"use1-beta", "use1-prod"}
        evidence = residency.LiveEvidence(node_regions=["us-east-1"])
        live = residency.live_decisions(plan, fleet, built, "use1-prod", evidence, promoted=[])
        assert [d.rule for d in live if not d.allowed] == [residency.TELEMETRY_LOCALITY]


class TestUnleashContract:
    def test_a_step_writes_exactly_this_strategy(self, fleet: Fleet) -> None:
        """The body a step sends: flexibleRollout, owned by title, sticky by user, one cluster, one group."""
        server = fleet.region("eu-west-1").flags
        assert server is not None
        written = flags.rollout_strategy(server, "checkout-v2", "euw1-internal", 5)
        assert flags.request_body(written) == {
            "name": "flexibleRollout",
            "title": "ringmaster:euw1-internal",
            "disabled": False,
            "parameters": {"rollout": "5", "stickiness": "userId", "groupId": "checkout-v2"},
            "constraints": [
                {
                    "contextName": "cluster",
                    "operator": "IN",
                    "values": ["euw1-internal"],
                    "inverted": False,
                    "caseInsensitive": False,
                }
            ],
            "segments": [],
        }

    def test_the_constraint_uses_the_regions_context_field(self) -> None:
        """A region naming another context field gets its constraint on that field."""
        server = flags.FlagServer(
            url="https://u.eu.example.com/api", environment="e", context_field="k8sCluster"
        )
        written = flags.rollout_strategy(server, "f", "euw1-prod", 50, "sessionId")
        assert written.constraints[0].context_name == "k8sCluster"
        assert written.parameters["stickiness"] == "sessionId"

    @given(
        st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
        st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
        st.integers(0, 100),
    )
    def test_a_clusters_step_never_reaches_another_cluster(self, mine: str, other: str, rollout: int) -> None:
        """Whatever the rollout, the strategy written for one cluster reaches that cluster and no other."""
        server = flags.FlagServer(url="https://u.eu.example.com/api", environment="e")
        written = flags.rollout_strategy(server, "checkout-v2", mine, rollout)
        assert flags.may_reach(written, mine)
        assert flags.may_reach(written, other) is (other == mine)

    @pytest.mark.parametrize(
        ("constraints", "disabled", "reaches"),
        [
            ([], False, True),
            ([], True, False),
            ([_on_cluster("IN", "euw1-internal")], False, False),
            ([_on_cluster("IN", "euw1-prod")], False, True),
            ([_on_cluster("NOT_IN", "euw1-prod")], False, False),
            ([_on_cluster("IN", "euw1-prod", inverted=True)], False, False),
            ([_on_cluster("IN", "euw1-internal", caseInsensitive=True)], False, True),
            ([_on_cluster("STR_STARTS_WITH", "x")], False, True),
            ([{"contextName": "region", "operator": "IN", "values": ["eu-west-1"]}], False, True),
        ],
    )
    def test_which_other_strategies_may_reach_a_cluster(
        self, constraints: list[dict[str, Any]], disabled: bool, reaches: bool
    ) -> None:
        """Only a disabled strategy or a cluster constraint that rules euw1-prod out cannot reach it."""
        found = {"name": "flexibleRollout", "disabled": disabled, "constraints": constraints}
        assert flags.may_reach(flags.UnleashStrategy.model_validate(found), "euw1-prod") is reaches

    def test_read_back_unchanged_is_still_ours(self, fleet: Fleet) -> None:
        """Unleash's answer (an id, a numeric rollout, fields it adds) is still what was written."""
        server = fleet.region("eu-west-1").flags
        assert server is not None
        written = flags.rollout_strategy(server, "checkout-v2", "euw1-internal", 25)
        answer = json.loads(json.dumps(flags.request_body(written)))
        answer |= {"id": "6b5157cb", "sortOrder": 0, "featureName": "checkout-v2", "variants": []}
        answer["parameters"]["rollout"] = 25
        answer["constraints"][0]["value"] = ""
        found = flags.UnleashStrategy.model_validate(answer)
        assert flags.ownership_problem(found, written) is None
        assert flags.is_owned(found, "euw1-internal")
        assert not flags.is_owned(found, "euw1-prod")

    @pytest.mark.parametrize(
        ("edit", "named"),
        [
            (lambda s: s["parameters"].update(rollout="40"), "its parameters"),
            (lambda s: s["parameters"].update(stickiness="random"), "its parameters"),
            (lambda s: s["constraints"][0]["values"].append("euw1-prod"), "its constraints"),
            (lambda s: s.update(constraints=[]), "its constraints"),
            (lambda s: s.update(disabled=True), "whether it is disabled"),
            (lambda s: s.update(title="mine now"), "its title"),
            (lambda s: s.update(segments=[3]), "its segments"),
        ],
    )
    def test_another_persons_edit_is_an_ownership_conflict(self, fleet: Fleet, edit: Any, named: str) -> None:
        """Any change to what ringmaster wrote is reported, naming what changed."""
        server = fleet.region("eu-west-1").flags
        assert server is not None
        written = flags.rollout_strategy(server, "checkout-v2", "euw1-internal", 25)
        answer = flags.request_body(written)
        edit(answer)
        problem = flags.ownership_problem(flags.UnleashStrategy.model_validate(answer), written)
        assert problem is not None
        assert named in problem

    def test_a_deleted_strategy_is_an_ownership_conflict(self, fleet: Fleet) -> None:
        """A strategy gone from Unleash was removed by someone else."""
        server = fleet.region("eu-west-1").flags
        assert server is not None
        written = flags.rollout_strategy(server, "checkout-v2", "euw1-internal", 25)
        assert flags.ownership_problem(None, written) == "ringmaster's strategy was deleted by someone else"

    def test_a_rollout_outside_0_to_100_is_refused(self, fleet: Fleet) -> None:
        """The contract never builds a strategy Unleash would refuse or misread."""
        server = fleet.region("eu-west-1").flags
        assert server is not None
        with pytest.raises(ValueError, match="0-100"):
            flags.rollout_strategy(server, "checkout-v2", "euw1-internal", 101)


class TestFlagQueries:
    QUERY = (
        'sum(rate(x{version="{{version}}",feature="{{feature}}",feature_on="{{featureOn}}"}[{{interval}}]))'
    )

    def _render(self, **flag: Any) -> str:
        return gates.render_query(
            self.QUERY,
            service="s",
            namespace="n",
            cluster="c",
            region="r",
            version="v2",
            interval=timedelta(minutes=1),
            **flag,
        )

    def test_judged_and_baseline_sides_differ_only_in_feature_on(self) -> None:
        """The judged side selects flag-on traffic, its baseline the same version's flag-off traffic."""
        on = self._render(feature="checkout-v2", feature_on=True)
        off = self._render(feature="checkout-v2", feature_on=False)
        assert on == 'sum(rate(x{version="v2",feature="checkout-v2",feature_on="true"}[1m]))'
        assert off == on.replace('feature_on="true"', 'feature_on="false"')

    def test_a_flag_metric_outside_a_flag_stage_cannot_be_filled(self) -> None:
        """Without the flag's values a flag query is refused (a measurement error), never run unfiltered."""
        with pytest.raises(ValueError, match="no value for placeholder feature, featureOn"):
            self._render()


class TestOldPayloads:
    def test_strategies_and_regions_recorded_before_flags_still_decode(self, fleet: Fleet) -> None:
        """JSON of a strategy and a region without the new fields (as histories hold them) loads."""
        old_strategy = {
            "canary": {"steps": [{"setWeight": 20, "pause": None}], "trafficRouting": None},
            "blueGreen": None,
            "rolling": None,
        }
        converter = data_converter.payload_converter
        strategy = converter.from_payload(converter.to_payload(old_strategy), Strategy)
        assert strategy.feature_flag is None
        assert strategy.kind == "canary"
        region = fleet.regions[0].model_dump(mode="json")
        del region["flags"]
        assert Region.model_validate(region).flags is None

    def test_a_flag_plan_survives_temporals_converter(self) -> None:
        """The flag plan and its schedule go through a payload unchanged (they travel in histories)."""
        plan = _flag_plan()
        converter = data_converter.payload_converter
        assert converter.from_payload(converter.to_payload(plan), ReleasePlan) == plan
        built = schedule.build(plan, fleets.example_fleet(), "v2")
        assert converter.from_payload(converter.to_payload(built), schedule.Schedule) == built
        assert (
            yaml.safe_load(dump(plan.model_dump(mode="json")))["rings"][0]["strategy"]["featureFlag"]["flag"]
            == "checkout-v2"
        )
