"""The authorization policy: who may do what to which service and ring, judged rule by rule.

The judge is table-driven over one policy (:data:`POLICY`); loading is checked on files with
mistakes, each named with file, line and YAML path; the committed example is loaded and judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies import authz, identity, loading
from tests.policies.test_fuzz import _attempt, mutated
from tests.support import fleets

GITHUB = "https://token.actions.githubusercontent.com"
POLICY = authz.AuthorizationPolicy.model_validate(
    {
        "groups": {
            "payments": {
                "members": ["alice@example.com"],
                "tokens": [
                    {"issuer": GITHUB, "claims": {"repository": "acme/payments", "ref": "refs/heads/*"}}
                ],
            },
            "sre": {"members": ["bob@example.com", "*@sre.example.com"]},
            "contractors": {"members": ["mallory@example.com"]},
        },
        "rules": [
            {"name": "contractors-never-approve", "effect": "deny", "groups": ["contractors"],
             "actions": ["approve"]},
            {"name": "payments-release", "groups": ["payments"], "services": ["payments", "payments-*"],
             "actions": ["submit", "hold", "resume"]},
            {"name": "payments-early-rings", "groups": ["payments"], "services": ["payments*"],
             "rings": ["internal", "beta"], "actions": ["approve"]},
            {"name": "sre-broad", "groups": ["sre"], "rings": ["broad", "broad-*"], "actions": ["approve"]},
            {"groups": ["sre"], "actions": ["submit", "hold", "resume", "abort", "rollback"]},
            {"name": "mallory-holds", "principals": ["Mallory@Example.com"], "actions": ["hold"]},
            {"name": "bots", "principals": ["github:dependabot[bot]"], "services": ["docs"],
             "actions": ["submit"]},
            {"name": "anyone-resumes-docs", "principals": ["*"], "services": ["docs"], "actions": ["resume"]},
        ],
    }
)  # fmt: skip
ALIASES = {"alice@example.com": ["github:alice-gh"]}
EXAMPLE_DATA = yaml.safe_load((fleets.EXAMPLES / "authorization.yaml").read_text(encoding="utf-8"))


def request(principal: str, action: str, service: str = "payments", **fields: Any) -> authz.Request:
    return authz.Request.model_validate(
        {"principal": principal, "action": action, "service": service, **fields}
    )


def token(**claims: str) -> dict[str, Any]:
    return {"issuer": GITHUB, "claims": claims}


MAIN = token(repository="acme/payments", ref="refs/heads/main")
"""The payments repository's job on main, as GitHub's token says."""
OTHER_REPO = {"repository": "acme/other", "ref": "refs/heads/main"}


class TestJudge:
    @pytest.mark.parametrize(
        ("req", "allowed", "index"),
        [
            # each action, allowed and refused
            (request("alice@example.com", "submit"), True, 1),
            (request("carol@example.com", "submit"), False, None),
            (request("alice@example.com", "hold"), True, 1),
            (request("carol@example.com", "hold"), False, None),
            (request("alice@example.com", "resume"), True, 1),
            (request("alice@example.com", "abort"), False, None),
            (request("bob@example.com", "abort"), True, 4),
            (request("bob@example.com", "rollback"), True, 4),
            (request("alice@example.com", "rollback"), False, None),
            (request("alice@example.com", "approve", ring="beta"), True, 2),
            (request("carol@example.com", "approve", ring="beta"), False, None),
            # service globs
            (request("alice@example.com", "submit", "payments-ledger"), True, 1),
            (request("alice@example.com", "submit", "paymentsx"), False, None),
            (request("alice@example.com", "approve", "paymentsx", ring="internal"), True, 2),
            (request("alice@example.com", "submit", "api"), False, None),
            # ring globs, and the default deny of approvals no rule covers
            (request("alice@example.com", "approve", ring="broad"), False, None),
            (request("bob@example.com", "approve", ring="broad"), True, 3),
            (request("bob@example.com", "approve", ring="broad-eu", cluster="euw1-prod"), True, 3),
            (request("bob@example.com", "approve", ring="beta"), False, None),
            (request("bob@example.com", "approve", ring=""), False, None),
            # groups: by pattern, and from a token's claims
            (request("zoe@sre.example.com", "approve", ring="broad"), True, 3),
            (request("github:zoe", "submit", token=MAIN), True, 1),
            (request("github:zoe", "submit", token={**MAIN, "claims": OTHER_REPO}), False, None),
            (request("github:zoe", "submit", token=token(repository="acme/payments")), False, None),
            (request("github:zoe", "submit", token={**MAIN, "issuer": "https://other"}), False, None),
            # first match decides: a deny before an allow refuses
            (request("mallory@example.com", "approve", ring="beta"), False, 0),
            (request("mallory@example.com", "hold"), True, 5),
            # principals: names folded and aliased, a bot's name is not a pattern, * is everyone
            (request("ALICE@example.com", "submit"), True, 1),
            (request("github:alice-gh", "submit"), True, 1),
            (request("github:dependabot[bot]", "submit", "docs"), True, 6),
            (request("github:dependabotb", "submit", "docs"), False, None),
            (request("anyone@example.com", "resume", "docs"), True, 7),
            (request("", "resume", "docs"), False, None),
        ],
    )  # fmt: skip
    def test_the_first_matching_rule_decides_and_none_refuses(
        self, req: authz.Request, allowed: bool, index: int | None
    ) -> None:
        """Each request is allowed or refused by the rule expected, or refused when no rule matches."""
        decision = authz.judge(POLICY, req, ALIASES)
        assert (decision.allowed, decision.index) == (allowed, index), decision.reason
        if index is None:
            assert decision.label() == "no rule"
            assert authz.DEFAULT_DENY in decision.reason
        else:
            assert decision.rule == (POLICY.rules[index].name or "")
            assert POLICY.rules[index].label(index) in decision.reason

    def test_a_decision_records_its_inputs(self) -> None:
        """The decision names the normalised principal, its groups, the action, service, ring and issuer."""
        req = request(
            "GitHub:Alice-GH",
            "approve",
            ring="beta",
            cluster="euc1-beta",
            token=token(repository="acme/payments", ref="refs/heads/main"),
        )
        decision = authz.judge(POLICY, req, ALIASES)
        assert decision.inputs == authz.Inputs(
            principal="alice@example.com",
            groups=["payments"],
            action="approve",
            service="payments",
            ring="beta",
            cluster="euc1-beta",
            issuer=GITHUB,
        )
        assert decision.reason == (
            "rule 'payments-early-rings' (rules[2]) allows alice@example.com (groups payments) "
            "to approve payments ring beta cluster euc1-beta"
        )
        assert authz.Decision.model_validate(decision.model_dump(mode="json")) == decision

    def test_a_rule_without_a_name_is_named_by_its_index(self) -> None:
        """Refusals and allowances name an unnamed rule as rules[i]."""
        decision = authz.judge(POLICY, request("bob@example.com", "abort"))
        assert decision.label() == "rules[4]"
        assert decision.reason.startswith("rules[4] allows bob@example.com (groups sre)")

    def test_every_identity_action_is_a_permission(self) -> None:
        """Whatever a request can state, a rule can allow, and every permission is a request's action."""
        assert set(identity.ACTIONS) == set(authz.PERMISSIONS)


class TestSupersede:
    @pytest.mark.parametrize(
        ("principal", "allowed", "decided"),
        [("bob@example.com", True, 2), ("alice@example.com", False, 2), ("carol@example.com", False, 1)],
    )
    def test_a_superseding_submission_needs_abort_too(
        self, principal: str, allowed: bool, decided: int
    ) -> None:
        """--supersede aborts the running release: submit and abort must both be allowed."""
        found = authz.decisions(POLICY, request(principal, "submit"), supersede=True)
        assert len(found) == decided
        assert not authz.refusal(found) if allowed else authz.refusal(found).startswith("not authorized: ")
        if principal == "alice@example.com":
            assert "abort payments" in authz.refusal(found)
            assert "--supersede" in authz.refusal(found)

    def test_the_allowance_names_every_rule(self) -> None:
        """The record of an allowed supersede names the rule of each action."""
        found = authz.decisions(POLICY, request("bob@example.com", "submit"), supersede=True)
        assert authz.allowance(found) == "authorized by rules[4]; abort by rules[4]"
        found = authz.decisions(POLICY, request("alice@example.com", "hold"), supersede=True)
        assert authz.allowance(found) == "authorized by rule 'payments-release' (rules[1])"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "authorization.yaml"
    path.write_text(text, encoding="utf-8")
    return path


RULE = "rules:\n  - {principals: ['*'], actions: [hold]}\n"


class TestLoading:
    @pytest.mark.parametrize(
        ("text", "where", "message"),
        [
            ("rules: []\n", ":1:1: rules:", "at least 1"),
            ("groups: {}\n", ":1:1: rules:", "required"),
            (RULE + "  - {groups: [sre], actions: [deploy]}\n", ":3:31: rules[1].actions[0]:", "'rollback'"),
            (RULE + "  - {principals: [a], actions: [hold], effect: maybe}\n", "rules[1].effect:", "'deny'"),
            (RULE + "  - {principals: [a], actions: [hold], ring: [x]}\n", "rules[1].ring:", "unknown field"),
            ("groups: {SRE: {}}\n" + RULE, ":1:10: groups.SRE:", "lowercase name"),
            ("groups: {sre: {member: [a]}}\n" + RULE, "groups.sre.member:", "unknown field 'member'"),
            ("groups: {sre: {tokens: [{issuer: x, claims: {}}]}}\n" + RULE, "groups.sre.tokens[0].claims:",
             "at least 1"),
            ("groups: {sre: {}}\n" + RULE + "  - {groups: [sri], actions: [hold]}\n",
             ":4:15: rules[1].groups[0]:", "unknown group 'sri' (did you mean 'sre'?)"),
            (RULE + "  - {actions: [abort]}\n", ":3:5: rules[1]:", "names nobody"),
            (RULE.replace("{", "{name: a, ") + "  - {name: a, principals: [b], actions: [abort]}\n",
             "rules[1].name:", "'a' is already rules[0]"),
            (RULE + "  - {principals: [b], rings: [beta], actions: [approve, abort]}\n", "rules[1].rings:",
             "never match abort"),
            (RULE + "  - {principals: [b], rings: [beta], actions: [submit]}\n", "rules[1].rings:",
             "never match submit"),
        ],
    )  # fmt: skip
    def test_problems_name_the_file_line_and_field(
        self, tmp_path: Path, text: str, where: str, message: str
    ) -> None:
        """Each mistake is reported with the file, the line, the field's YAML path and what is allowed."""
        path = write(tmp_path, text)
        with pytest.raises(loading.ConfigError) as raised:
            loading.load_authorization_policy(path)
        said = str(raised.value)
        assert str(path) in said
        assert where in said, said
        assert message in said, said

    def test_a_missing_file_is_named(self, tmp_path: Path) -> None:
        """A policy file that cannot be read is a ConfigError naming it."""
        with pytest.raises(loading.ConfigError, match=r"nowhere\.yaml: cannot read the file"):
            loading.load_authorization_policy(tmp_path / "nowhere.yaml")

    def test_a_ring_restriction_on_approvals_is_valid(self, tmp_path: Path) -> None:
        """Rings restrict approvals; rings: ['*'] (or none) suits every action."""
        text = RULE + "  - {principals: [b], rings: [beta], actions: [approve]}\n"
        text += "  - {principals: [b], rings: ['*'], actions: [abort]}\n"
        policy = loading.load_authorization_policy(write(tmp_path, text))
        assert [r.rings for r in policy.rules] == [["*"], ["beta"], ["*"]]

    def test_validating_directly_refuses_an_inconsistent_policy(self) -> None:
        """Outside the loader, an unknown group still fails validation (naming the path)."""
        with pytest.raises(ValidationError, match=r"rules\[0\]\.groups\[0\]: unknown group 'sre'"):
            authz.AuthorizationPolicy.model_validate({"rules": [{"groups": ["sre"], "actions": ["hold"]}]})


class TestExample:
    EXAMPLE = fleets.EXAMPLES / "authorization.yaml"
    CI = MAIN

    def test_the_cli_page_shows_the_example(self) -> None:
        """The policy in the CLI page's authorization section is the example file, written shorter."""
        readme = (fleets.ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
        section = readme[readme.index("## Who may: the authorization policy") :]
        block = section[section.index("```yaml\n") + len("```yaml\n") :]
        shown = loading.parse(
            loading.Text("docs/cli.md", block[: block.index("```")]), authz.AuthorizationPolicy
        )
        assert shown == loading.load_authorization_policy(self.EXAMPLE)

    @pytest.mark.parametrize(
        ("req", "allowed", "rule"),
        [
            (request("alice@example.com", "submit"), True, "payments-team-releases-payments"),
            (request("alice@example.com", "submit", "api"), False, ""),
            (request("alice@example.com", "approve", ring="beta"), True, "payments-team-approves-early-rings"),  # noqa: E501
            (request("alice@example.com", "approve", ring="broad"), False, ""),
            (request("bob@example.com", "approve", ring="broad"), True, "only-sre-approve-broad"),
            (request("dave@example.com", "approve", "api", ring="broad"), True, "only-sre-approve-broad"),
            (request("erin@example.com", "abort"), True, "on-call-may-stop-anything"),
            (request("pat@oncall.example.com", "abort", "api"), True, "on-call-may-stop-anything"),
            (request("alice@example.com", "abort"), False, ""),
            (request("github:carol-gh", "submit", token=CI), True, "payments-team-releases-payments"),
            (request("github:carol-gh", "approve", ring="beta", token=CI), False, "ci-never-approves"),
        ],
    )  # fmt: skip
    def test_the_example_says_what_the_readme_says(
        self, req: authz.Request, allowed: bool, rule: str
    ) -> None:
        """The payments team releases payments, only SREs approve broad, anyone on call may abort."""
        policy = loading.load_authorization_policy(self.EXAMPLE)
        decision = authz.judge(policy, req)
        assert (decision.allowed, decision.rule) == (allowed, rule), decision.reason


class TestDamagedPolicies:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(EXAMPLE_DATA), st.sampled_from(authz.PERMISSIONS), st.sampled_from(["", "beta", "broad"]))
    def test_a_damaged_example_loads_and_judges_or_names_paths(
        self, data: dict[str, Any], action: authz.Permission, ring: str
    ) -> None:
        """A damaged example policy loads (and then judges any request without error), or every
        problem names a path inside the file."""
        text = loading.Text("a.yaml", yaml.safe_dump(data))
        loaded, error = _attempt(lambda: loading.parse(text, authz.AuthorizationPolicy))
        if error is not None:
            assert error.problems
            assert all(p.message and p.path for p in error.problems), str(error)
            return
        request = authz.Request(principal="bob@example.com", action=action, service="payments", ring=ring)
        for decision in authz.decisions(loaded, request, supersede=True):
            assert decision.reason
