"""The worker's identity settings: what it runs with, and the settings it refuses to start with (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from activities.identity import IdentityMisconfigured
from policies import loading
from ringmaster import worker
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings
from tests.support import worker_process

ROOT = Path(__file__).resolve().parents[2]


def files(tmp_path: Path, *, signers: bool = True, key: bytes = b"k" * 32) -> tuple[Path, Path]:
    """A verified policy beside its signers file (unless ``signers`` is False), and a key file."""
    policy = tmp_path / "identity.yaml"
    policy.write_text("mode: verified\nallowedSigners: allowed_signers\n", encoding="utf-8")
    if signers:
        (tmp_path / "allowed_signers").write_text("", encoding="ascii")
    key_file = tmp_path / "attestation.key"
    key_file.write_bytes(key)
    return policy, key_file


class TestIdentityActivities:
    def test_without_a_policy_the_worker_takes_the_clients_word(self) -> None:
        """No policy file: trusted mode, with a random key of the process."""
        acts = worker.identity_activities(Settings(identity_policy=None, identity_attestation_key_file=None))
        assert acts.policy.mode == "trusted"

    def test_a_policy_and_its_key_make_a_verifying_worker(self, tmp_path: Path) -> None:
        """A valid policy and key file: verified mode, signers found beside the policy."""
        policy, key = files(tmp_path)
        acts = worker.identity_activities(Settings(identity_policy=policy, identity_attestation_key_file=key))
        assert acts.policy.mode == "verified"
        assert acts.policy.allowed_signers == tmp_path / "allowed_signers"

    @pytest.mark.parametrize(
        ("signers", "key", "drop_key", "message"),
        [
            (True, b"k" * 32, True, "RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE is required"),
            (True, b"short", False, "holds 5 bytes"),
            (False, b"k" * 32, False, "allowedSigners: cannot read"),
        ],
    )
    def test_settings_that_cannot_work_are_refused_by_name(
        self, tmp_path: Path, signers: bool, key: bytes, drop_key: bool, message: str
    ) -> None:
        """A missing or short key, or signers that cannot be read, raise naming the setting or file."""
        policy, key_file = files(tmp_path, signers=signers, key=key)
        settings = Settings(
            identity_policy=policy, identity_attestation_key_file=None if drop_key else key_file
        )
        with pytest.raises(IdentityMisconfigured, match=message):
            worker.identity_activities(settings)

    def test_a_missing_key_file_is_named(self, tmp_path: Path) -> None:
        """A key file that does not exist is named with its setting."""
        policy, _ = files(tmp_path)
        settings = Settings(identity_policy=policy, identity_attestation_key_file=tmp_path / "nope")
        with pytest.raises(IdentityMisconfigured, match=r"ATTESTATION_KEY_FILE .*nope.*cannot read"):
            worker.identity_activities(settings)

    def test_an_invalid_policy_is_a_config_error(self, tmp_path: Path) -> None:
        """A policy file with mistakes is refused like a fleet file, naming file and field."""
        policy, key = files(tmp_path)
        policy.write_text("mode: verified\nmaxAge: forever\n", encoding="utf-8")
        with pytest.raises(loading.ConfigError, match=r"identity.yaml:2:\d+: maxAge"):
            worker.identity_activities(Settings(identity_policy=policy, identity_attestation_key_file=key))


class TestWorkerCommand:
    @pytest.mark.parametrize(
        ("key", "message"),
        [(b"short", "holds 5 bytes"), (b"k" * 32, "allowedSigners: cannot read")],
    )
    def test_refuses_to_start_with_exit_2(self, tmp_path: Path, key: bytes, message: str) -> None:
        """``ringmaster worker`` with identity settings that cannot work exits 2 naming the problem."""
        policy, key_file = files(tmp_path, signers=key == b"short", key=key)
        done = worker_process.refused(
            {
                "RINGMASTER_IDENTITY_POLICY": str(policy),
                "RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE": str(key_file),
            }
        )
        assert done.returncode == ExitCode.INVALID, done.stderr
        assert message in done.stderr
        assert done.stderr.startswith("error: ")


EXAMPLE_AUTHORIZATION = ROOT / "deploy" / "examples" / "authorization.yaml"


class _Stop(Exception):
    """Raised by the client below where the worker would first talk to Temporal."""


class _Unreachable:
    """A client that stops :func:`ringmaster.worker.run` right after its start-up warnings."""

    namespace = "default"

    class operator_service:  # noqa: N801 - mirrors the client's attribute
        @staticmethod
        async def list_search_attributes(_: object) -> None:
            raise _Stop


class TestAuthorization:
    def test_the_setting_loads_the_policy_into_the_identity_activities(self, tmp_path: Path) -> None:
        """RINGMASTER_AUTHORIZATION_POLICY is judged by verify_identity, verified or trusted."""
        policy, key = files(tmp_path)
        verified = worker.identity_activities(
            Settings(
                identity_policy=policy,
                identity_attestation_key_file=key,
                authorization_policy=EXAMPLE_AUTHORIZATION,
            )
        )
        assert verified.authorization == loading.load_authorization_policy(EXAMPLE_AUTHORIZATION)
        trusted = worker.identity_activities(
            Settings(identity_policy=None, authorization_policy=EXAMPLE_AUTHORIZATION)
        )
        assert trusted.policy.mode == "trusted" and trusted.authorization is not None
        assert worker.identity_activities(Settings(identity_policy=None)).authorization is None

    def test_an_invalid_policy_is_a_config_error_naming_file_line_and_field(self, tmp_path: Path) -> None:
        """A policy file with mistakes is refused like the identity policy, naming file, line and field."""
        broken = tmp_path / "authorization.yaml"
        broken.write_text("rules:\n  - {groups: [sre], actions: [hold]}\n", encoding="utf-8")
        with pytest.raises(loading.ConfigError, match=r"authorization.yaml:2:15: rules\[0\].groups\[0\]"):
            worker.identity_activities(Settings(identity_policy=None, authorization_policy=broken))

    def test_the_worker_command_refuses_an_invalid_policy_with_exit_2(self, tmp_path: Path) -> None:
        """``ringmaster worker`` with a broken authorization policy exits 2 naming the file and field."""
        broken = tmp_path / "authorization.yaml"
        broken.write_text("rules:\n  - {principals: ['*'], actions: [deploy]}\n", encoding="utf-8")
        done = worker_process.refused({"RINGMASTER_AUTHORIZATION_POLICY": str(broken)})
        assert done.returncode == ExitCode.INVALID, done.stderr
        assert done.stderr.startswith(f"error: {broken}:2:")
        assert "rules[0].actions[0]" in done.stderr

    @pytest.mark.parametrize(
        ("authorization", "trusted", "expected"),
        [
            (None, False, ["authorization not configured"]),
            (
                EXAMPLE_AUTHORIZATION,
                True,
                ["identity not verified", "authorization judges the client's word"],
            ),
            (EXAMPLE_AUTHORIZATION, False, []),
        ],
    )
    async def test_the_worker_warns_at_start_when_nothing_or_only_a_claim_is_judged(
        self, tmp_path: Path, authorization: Path | None, trusted: bool, expected: list[str]
    ) -> None:
        """No policy: everyone may do everything, said once at start; a policy over trusted identity
        judges the client's word, said too; a policy over verified identity says nothing."""
        policy, key = files(tmp_path)
        settings = Settings(
            identity_policy=None if trusted else policy,
            identity_attestation_key_file=key,
            authorization_policy=authorization,
        )
        identity = worker.identity_activities(settings)
        with capture_logs() as events, pytest.raises(_Stop):
            await worker.run(_Unreachable(), settings, None, None, None, identity=identity)  # type: ignore[arg-type]
        warnings = [e["event"] for e in events if e["log_level"] == "warning"]
        assert [w for w in warnings if any(w.startswith(x) for x in expected)] == warnings
        assert len(warnings) == len(expected)
