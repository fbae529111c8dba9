"""``ringmaster policy check``: what the authorization policy allows, its exit codes and JSON.

Runs in-process on the ``policy`` command group, from a folder without ``.env`` and with no
``RINGMASTER_*`` policy settings unless a test sets them; the import rule (no Temporal) is held in
``test_client_imports.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from policies import authz
from ringmaster.cli import policy
from ringmaster.exitcodes import ExitCode
from tests.support.cli import Run

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "authorization.yaml"
GITHUB = "https://token.actions.githubusercontent.com"
CI_TOKEN = ["--issuer", GITHUB, "--claim", "repository=acme/payments", "--claim", "ref=refs/heads/main"]


@pytest.fixture(autouse=True)
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder without ``.env`` and without the policy settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RINGMASTER_AUTHORIZATION_POLICY", raising=False)
    monkeypatch.delenv("RINGMASTER_IDENTITY_POLICY", raising=False)
    return tmp_path


def check(*args: str, policy_file: Path | None = EXAMPLE) -> Run:
    """``ringmaster policy check ARGS [--policy FILE]``."""
    extra = ["--policy", str(policy_file)] if policy_file is not None else []
    result = CliRunner().invoke(policy.app, ["check", *args, *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


class TestAnswers:
    @pytest.mark.parametrize(
        ("args", "code", "said"),
        [
            (
                ["--as", "alice@example.com", "submit", "payments:v42"],
                ExitCode.OK,
                "allowed: rule 'payments-team-releases-payments' (rules[1]) allows alice@example.com "
                "(groups payments) to submit payments",
            ),
            (
                ["--as", "alice@example.com", "approve", "payments:v42", "--ring", "broad"],
                ExitCode.NOT_ALLOWED,
                "refused: no rule allows alice@example.com (groups payments) to approve payments ring broad",
            ),
            (
                ["--as", "Bob@Example.com", "approve", "release:payments:v42", "--ring", "broad"],
                ExitCode.OK,
                "allowed: rule 'only-sre-approve-broad' (rules[3])",
            ),
            (
                ["--as", "erin@example.com", "abort", "api:v2"],
                ExitCode.OK,
                "allowed: rule 'on-call-may-stop-anything' (rules[5])",
            ),
            (["--as", "erin@example.com", "submit", "api:v2"], ExitCode.NOT_ALLOWED, "refused: no rule"),
            (
                ["--as", "github:carol", "approve", "payments:v42", "--ring", "beta", *CI_TOKEN],
                ExitCode.NOT_ALLOWED,
                "refused: rule 'ci-never-approves' (rules[0]) refuses github:carol "
                "(groups payments, ci-jobs)",
            ),
            (
                ["--as", "alice@example.com", "submit", "payments:v42", "--supersede"],
                ExitCode.NOT_ALLOWED,
                "refused: no rule allows alice@example.com (groups payments) to abort payments",
            ),
        ],
        ids=["allowed", "refused", "workflow-id", "on-call", "default-deny", "token-groups", "supersede"],
    )
    def test_prints_the_decision_and_its_rule(self, args: list[str], code: ExitCode, said: str) -> None:
        """Allowed exits 0 and refused 5, each line naming the rule that decided (or no rule)."""
        run = check(*args)
        assert run.code == code, run.stderr
        assert said in run.stdout
        assert f"policy {EXAMPLE}" in run.stdout

    def test_json_holds_every_decision_with_its_inputs(self) -> None:
        """--output json: allowed, the files read, and each decision as the worker records it."""
        run = check("--as", "alice@example.com", "submit", "payments:v42", "--supersede", "-o", "json")
        assert run.code == ExitCode.NOT_ALLOWED
        document = run.json()
        assert (document["allowed"], document["policy"], document["identityPolicy"]) == (
            False,
            str(EXAMPLE),
            None,
        )
        decisions = [authz.Decision.model_validate(d) for d in document["decisions"]]
        assert [(d.allowed, d.rule, d.inputs.action) for d in decisions] == [
            (True, "payments-team-releases-payments", "submit"),
            (False, "", "abort"),
        ]

    def test_the_identity_policys_aliases_apply(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A name the identity policy makes an alias of alice is judged as alice, as on the worker."""
        identity = folder / "identity.yaml"
        identity.write_text(
            "allowedSigners: s\naliases: {alice@example.com: [github:alice-gh]}\n", encoding="utf-8"
        )
        monkeypatch.setenv("RINGMASTER_IDENTITY_POLICY", str(identity))
        run = check("--as", "github:Alice-GH", "submit", "payments:v42", "-o", "json")
        assert run.code == ExitCode.OK
        assert run.json()["identityPolicy"] == str(identity)
        assert run.json()["decisions"][0]["inputs"]["principal"] == "alice@example.com"

    def test_the_setting_names_the_policy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without --policy, RINGMASTER_AUTHORIZATION_POLICY is the policy judged."""
        monkeypatch.setenv("RINGMASTER_AUTHORIZATION_POLICY", str(EXAMPLE))
        run = check("--as", "alice@example.com", "abort", "payments:v42", policy_file=None)
        assert run.code == ExitCode.NOT_ALLOWED
        assert f"policy {EXAMPLE}" in run.stdout

    def test_without_a_policy_everything_is_allowed_as_on_the_worker(self) -> None:
        """No --policy and no setting: a worker with these settings allows everything, and says so."""
        run = check("--as", "anyone", "abort", "payments:v42", "-o", "json", policy_file=None)
        assert run.code == ExitCode.OK
        assert run.json() == {"policy": None, "identityPolicy": None, "allowed": True, "decisions": []}


class TestInvalidInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--as", "a", "approve", "payments:v42"], "approve names a ring: add --ring"),
            (["--as", "a", "hold", "payments:v42", "--ring", "beta"], "--ring: only approvals name a ring"),
            (["--as", "a", "hold", "payments:v42", "--cluster", "c"], "--cluster: hold names no cluster"),
            (["--as", "a", "abort", "payments:v42", "--supersede"], "--supersede is a submission's"),
            (["--as", "a", "submit", "payments:v42", "--claim", "a=b"], "--claim needs --issuer"),
            (["--as", "a", "submit", "payments:v42", "--issuer", "i", "--claim", "ab"], "write NAME=VALUE"),
            (["--as", "a", "submit", "payments"], "write service:version"),
            (["--as", "a", "submit", "release:payments"], "write service:version"),
            (["--as", " ", "submit", "payments:v42"], "--as names nobody"),
        ],
    )
    def test_options_that_do_not_fit_the_action_exit_2(self, args: list[str], message: str) -> None:
        """What the worker would never be asked is refused as invalid input, naming the option."""
        run = check(*args)
        assert run.code == ExitCode.INVALID
        assert run.stderr.startswith("error: ")
        assert message in run.stderr

    def test_an_unknown_action_exits_2(self) -> None:
        """The action is one of the policy's permissions."""
        assert check("--as", "a", "deploy", "payments:v42").code == ExitCode.INVALID

    @pytest.mark.parametrize("output", ["text", "json"])
    def test_an_invalid_policy_exits_2_naming_file_line_and_field(self, folder: Path, output: str) -> None:
        """A policy with mistakes is reported as the worker would refuse it."""
        broken = folder / "authorization.yaml"
        broken.write_text("rules:\n  - {groups: [sre], actions: [hold]}\n", encoding="utf-8")
        run = check("--as", "a", "hold", "payments:v42", "-o", output, policy_file=broken)
        assert run.code == ExitCode.INVALID
        if output == "text":
            assert f"error: {broken}:2:15: rules[0].groups[0]: unknown group 'sre'" in run.stderr
        else:
            (problem,) = run.json()["problems"]
            assert (problem["path"], problem["line"], problem["column"]) == ("rules[0].groups[0]", 2, 15)

    def test_an_invalid_identity_policy_exits_2(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The identity policy whose aliases apply is read like the worker reads it: invalid is exit 2."""
        identity = folder / "identity.yaml"
        identity.write_text("allowedSigners: s\nmaxAge: forever\n", encoding="utf-8")
        monkeypatch.setenv("RINGMASTER_IDENTITY_POLICY", str(identity))
        run = check("--as", "a", "hold", "payments:v42")
        assert run.code == ExitCode.INVALID
        assert "maxAge" in run.stderr

    def test_freeze_is_judged_fleet_wide_whatever_release_is_named(self) -> None:
        """On-call may stop the line and only SREs lift it, as the worker judges them: with no service."""
        run = check("--as", "erin@example.com", "freeze", "payments:v42")
        assert (run.code, run.stdout.splitlines()[0]) == (
            ExitCode.OK,
            "allowed: rule 'on-call-may-stop-anything' (rules[5]) allows erin@example.com (groups on-call) "
            "to freeze an unknown service",
        )
        assert check("--as", "erin@example.com", "unfreeze", "payments:v42").code == ExitCode.NOT_ALLOWED
        assert check("--as", "dave@example.com", "unfreeze", "x:y").code == ExitCode.OK

    def test_the_cli_offers_every_permission(self) -> None:
        """The action argument and the policy's permissions are the same list."""
        assert tuple(a.value for a in policy.ActionArg) == authz.PERMISSIONS
