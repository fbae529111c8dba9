"""Which releases a freeze holds, and what names its scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policies import authz, freeze
from policies.freeze import Freeze

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def _freeze(scope: freeze.Scope, target: str = "") -> Freeze:
    return Freeze(scope=scope, target=target, reason="INC-42", by="alice@example.com", at=AT)


class TestScope:
    @pytest.mark.parametrize(
        ("frozen", "service", "regions", "holds"),
        [
            (_freeze("all"), "api", [], True),
            (_freeze("all"), "api", ["eu-west-1"], True),
            (_freeze("service", "api"), "api", ["us-east-1"], True),
            (_freeze("service", "api"), "cart", ["eu-west-1"], False),
            (_freeze("region", "eu-west-1"), "cart", ["eu-west-1", "us-east-1"], True),
            (_freeze("region", "eu-west-1"), "cart", ["us-east-1"], False),
            (_freeze("region", "eu-west-1"), "cart", [], False),
        ],
    )
    def test_a_freeze_holds_exactly_its_scope(
        self, frozen: Freeze, service: str, regions: list[str], holds: bool
    ) -> None:
        """All holds everything; a service's freeze that service; a region's freeze whatever deploys there
        (a submission, judged before its regions are known, only by all or its service)."""
        assert freeze.applies(frozen, service, regions) is holds

    def test_in_force_lists_the_applying_freezes_in_scope_order(self) -> None:
        """The order is stable, so a release compares what it knows with what is in force by keys."""
        found = freeze.in_force(
            [_freeze("service", "api"), _freeze("region", "us-east-1"), _freeze("all")], "api", ["eu-west-1"]
        )
        assert [f.key for f in found] == ["all", "service:api"]

    def test_describe_names_scope_reason_who_and_since(self) -> None:
        """What status, the UI and a refused submission show."""
        assert _freeze("service", "api").describe() == (
            "frozen (service:api): INC-42 (by alice@example.com, since 2026-12-06 10:00:00Z)"
        )


class TestAuthorization:
    def test_freeze_is_judged_as_a_fleet_wide_action(self) -> None:
        """A rule on every service allows a freeze; a rule on one service does not (its service is empty)."""
        policy = authz.AuthorizationPolicy.model_validate(
            {
                "rules": [
                    {
                        "name": "payments-team",
                        "principals": ["bob@example.com"],
                        "services": ["payments"],
                        "actions": ["freeze"],
                    },
                    {"name": "sre", "principals": ["alice@example.com"], "actions": ["freeze", "unfreeze"]},
                ]
            }
        )
        for who, allowed in (("alice@example.com", True), ("bob@example.com", False)):
            request = authz.Request(principal=who, action="freeze", service="", ring="")
            assert authz.judge(policy, request).allowed is allowed
