"""Stale flags: which flag servers the fleet names, when a flag is fully on for the fleet, and since when."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policies import flag_audit, loading
from policies.durations import parse_duration
from policies.flag_audit import AuditedServer, EnvironmentScope, Feature, FeatureEnvironment
from policies.flags import FlagServer, UnleashStrategy
from tests.policies.helpers import dump
from tests.support import fleets

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SCOPE = EnvironmentScope(name="eu-west-1", context_field="cluster", clusters=("euw1-internal", "euw1-prod"))
SERVER = FlagServer(url="https://unleash.eu.example.com/api", environment="eu-west-1")


def _cluster_strategy(rollout: int, *clusters: str, **extra: Any) -> UnleashStrategy:
    constraint = {"contextName": "cluster", "operator": "IN", "values": list(clusters)}
    constraint |= extra.pop("constraint", {})
    return UnleashStrategy.model_validate(
        {
            "name": "flexibleRollout",
            "title": f"ringmaster:{clusters[0]}" if clusters else None,
            "parameters": {"rollout": str(rollout), "stickiness": "userId", "groupId": "f"},
            "constraints": [constraint, *extra.pop("more", [])],
            **extra,
        }
    )


def _everyone(name: str = "default", **extra: Any) -> UnleashStrategy:
    parameters = {"rollout": "100", "stickiness": "default", "groupId": "f"} if name != "default" else {}
    return UnleashStrategy.model_validate({"name": name, "parameters": parameters, **extra})


def _env(
    strategies: list[UnleashStrategy], *, enabled: bool = True, name: str = "eu-west-1"
) -> FeatureEnvironment:
    return FeatureEnvironment(name=name, enabled=enabled, strategies=strategies)


class TestFullyOn:
    @pytest.mark.parametrize(
        ("strategies", "enabled", "expected"),
        [
            ([_everyone()], True, True),
            ([_everyone()], False, False),
            ([_everyone("flexibleRollout")], True, True),
            ([_everyone("flexibleRollout", parameters={"rollout": 99})], True, False),
            ([_everyone(segments=[3])], True, False),
            ([_everyone(disabled=True)], True, True),  # no enabled strategy left: Unleash serves everyone
            ([], True, True),
            ([_everyone("userWithId", parameters={"userIds": "a"})], True, False),
            ([_cluster_strategy(100, "euw1-internal"), _cluster_strategy(100, "euw1-prod")], True, True),
            ([_cluster_strategy(100, "euw1-internal", "euw1-prod")], True, True),
            ([_cluster_strategy(100, "euw1-internal")], True, False),
            ([_cluster_strategy(100, "euw1-internal"), _cluster_strategy(50, "euw1-prod")], True, False),
            ([_cluster_strategy(50, "euw1-internal", "euw1-prod")], True, False),
            (
                [_cluster_strategy(100, "euw1-internal"), _cluster_strategy(100, "euw1-prod", disabled=True)],
                True,
                False,
            ),
            ([_cluster_strategy(100, "euw1-internal", "euw1-prod", segments=[1])], True, False),
            (
                [
                    _cluster_strategy(
                        100,
                        "euw1-internal",
                        "euw1-prod",
                        more=[{"contextName": "userId", "operator": "IN", "values": ["a"]}],
                    )
                ],
                True,
                False,
            ),
            (
                [_cluster_strategy(100, "euw1-internal", "euw1-prod", constraint={"inverted": True})],
                True,
                False,
            ),
            ([_cluster_strategy(100, "other", constraint={"operator": "NOT_IN"})], True, True),
            ([_cluster_strategy(100, "euw1-prod", constraint={"operator": "NOT_IN"})], True, False),
            ([_cluster_strategy(100, "euw1-internal"), _everyone()], True, True),
        ],
    )
    def test_fully_on(self, strategies: list[UnleashStrategy], enabled: bool, expected: bool) -> None:
        """On for everyone: enabled and served to all (an unconstrained full strategy, no strategy at all,
        or cluster strategies at 100 % covering every fleet cluster of the environment); nothing less."""
        assert flag_audit.fully_on(_env(strategies, enabled=enabled), SCOPE) is expected

    def test_a_cluster_constraint_never_covers_an_environment_without_fleet_clusters(self) -> None:
        """An environment with no fleet cluster in it is fully on only by a strategy for everyone."""
        empty = SCOPE.model_copy(update={"clusters": ()})
        assert not flag_audit.fully_on(_env([_cluster_strategy(100, "euw1-prod")]), empty)
        assert flag_audit.fully_on(_env([_everyone()]), empty)

    def test_a_missing_environment_is_not_fully_on(self) -> None:
        """A flag Unleash shows without the environment is not on there."""
        assert not flag_audit.fully_on(None, SCOPE)

    def test_another_context_field_is_honoured(self) -> None:
        """A region naming another context field has its cluster constraints read on that field."""
        scope = SCOPE.model_copy(update={"context_field": "k8s"})
        mine = _cluster_strategy(100, "euw1-internal", "euw1-prod")
        theirs = _cluster_strategy(100, "euw1-internal", "euw1-prod", constraint={"contextName": "k8s"})
        assert not flag_audit.fully_on(_env([mine]), scope)
        assert flag_audit.fully_on(_env([theirs]), scope)


def _audited(*names: str) -> AuditedServer:
    scopes = tuple(SCOPE.model_copy(update={"name": n}) for n in names)
    return AuditedServer(server=SERVER, environments=scopes)


def _feature(*environments: FeatureEnvironment, archived: bool = False) -> Feature:
    return Feature(name="checkout", project="default", archived=archived, environments=list(environments))


class TestJudge:
    AUDITED = _audited("eu-west-1", "eu-central-1")
    ON = (_env([_everyone()]), _env([_everyone()], name="eu-central-1"))

    @pytest.mark.parametrize(
        ("changed", "older_than", "since"),
        [
            ({"eu-west-1": NOW - timedelta(days=40), "eu-central-1": NOW - timedelta(days=31)}, "30d", 31),
            ({"eu-west-1": NOW - timedelta(days=40), "eu-central-1": NOW - timedelta(days=29)}, "30d", None),
            ({"eu-west-1": NOW - timedelta(days=40), "eu-central-1": NOW - timedelta(days=29)}, "0s", 29),
            ({"eu-west-1": NOW, "eu-central-1": NOW}, "0s", 0),
            ({"eu-west-1": NOW - timedelta(days=30), "eu-central-1": NOW - timedelta(days=30)}, "30d", 30),
        ],
    )
    def test_since_is_the_latest_change_in_any_environment(
        self, changed: dict[str, datetime], older_than: str, since: int | None
    ) -> None:
        """A flag is as old as its newest change in any environment; listed when at least that old."""

        row = flag_audit.judge(_feature(*self.ON), self.AUDITED, changed, NOW, parse_duration(older_than))
        if since is None:
            assert row is None
        else:
            assert row is not None
            assert row.since == NOW - timedelta(days=since)
            assert row.age_seconds == timedelta(days=since).total_seconds()
            assert (row.flag, row.server, row.environments) == (
                "checkout",
                "unleash.eu.example.com",
                ("eu-west-1", "eu-central-1"),
            )

    def test_an_unknown_age_is_listed_as_unknown(self) -> None:
        """With no recorded change in some environment, the flag is listed whatever the threshold."""
        changed = {"eu-west-1": NOW, "eu-central-1": None}
        row = flag_audit.judge(_feature(*self.ON), self.AUDITED, changed, NOW, timedelta(days=365))
        assert row is not None
        assert (row.since, row.age_seconds) == (None, None)

    @pytest.mark.parametrize(
        "feature",
        [
            _feature(ON[0]),  # absent from one environment
            _feature(ON[0], _env([_everyone()], name="eu-central-1", enabled=False)),
            _feature(ON[0], _env([_cluster_strategy(100, "euw1-prod")], name="eu-central-1")),
            _feature(*ON, archived=True),
        ],
    )
    def test_a_flag_not_fully_on_everywhere_is_never_stale(self, feature: Feature) -> None:
        """Fully on in one environment of two, or archived, is not listed however old."""
        changed = {"eu-west-1": NOW - timedelta(days=400), "eu-central-1": NOW - timedelta(days=400)}
        assert flag_audit.judge(feature, self.AUDITED, changed, NOW, timedelta(0)) is None


class TestServers:
    def test_servers_are_deduplicated_by_url_and_project_with_their_environments(self) -> None:
        """The example fleet names two servers, each with two environments and their regions' clusters."""
        fleet = loading.load_fleet(fleets.EXAMPLE_FLEET)
        found = flag_audit.audited_servers(fleet)
        assert [(s.server.host, [(e.name, e.clusters) for e in s.environments]) for s in found] == [
            (
                "unleash.eu.example.com",
                [("eu-west-1", ("euw1-internal", "euw1-prod")), ("eu-central-1", ("euc1-beta", "euc1-prod"))],
            ),
            (
                "unleash.us.example.com",
                [("us-east-1", ("use1-beta", "use1-prod")), ("us-west-2", ("usw2-prod",))],
            ),
        ]

    def test_regions_sharing_an_environment_pool_their_clusters(self) -> None:
        """Two regions naming one environment of one server: it serves the clusters of both."""
        data = copy.deepcopy(fleets.FLEET_DATA)
        for region in data["regions"]:
            if region.get("flags"):
                region["flags"]["environment"] = "production"
            if region["name"].startswith("us-"):
                region["flags"]["project"] = "shop"
        found = flag_audit.audited_servers(loading.parse_fleet(dump(data), "fleet.yaml"))
        assert [(s.server.host, s.server.project, len(s.environments)) for s in found] == [
            ("unleash.eu.example.com", "default", 1),
            ("unleash.us.example.com", "shop", 1),
        ]
        assert set(found[0].environments[0].clusters) == {
            "euw1-internal",
            "euw1-prod",
            "euc1-beta",
            "euc1-prod",
        }

    def test_candidates_are_the_flags_enabled_in_every_environment(self) -> None:
        """Only flags enabled in every environment the fleet names (and not archived) are read in full."""
        audited = _audited("a", "b")
        overview = [
            {
                "name": "both",
                "environments": [{"name": "a", "enabled": True}, {"name": "b", "enabled": True}],
            },
            {
                "name": "one",
                "environments": [{"name": "a", "enabled": True}, {"name": "b", "enabled": False}],
            },
            {
                "name": "gone",
                "archived": True,
                "environments": [{"name": "a", "enabled": True}, {"name": "b", "enabled": True}],
            },
            {"name": "extra", "environments": [{"name": n, "enabled": True} for n in ("a", "b", "c")]},
        ]
        assert flag_audit.candidates(overview, audited) == ["both", "extra"]
