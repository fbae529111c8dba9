"""The worker's identity settings: what it runs with, and the settings it refuses to start with (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.identity import IdentityMisconfigured
from policies import loading
from ringmaster import worker
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings

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
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RINGMASTER_", "TEMPORAL_"))},
            "RINGMASTER_IDENTITY_POLICY": str(policy),
            "RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE": str(key_file),
        }
        done = subprocess.run(
            [sys.executable, "-m", "ringmaster.cli", "worker"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert done.returncode == ExitCode.INVALID, done.stderr
        assert message in done.stderr
        assert done.stderr.startswith("error: ")
