"""The sandbox's identity: keys, policy and issuer that a verified worker accepts as they are written."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.identity import IdentityActivities
from activities.jwks import HttpJwks
from activities.models import VerifyInput, VerifyResult
from policies import loading
from policies.identity import Proof
from sandbox import identity as sandbox_identity
from sandbox.processes import Processes
from tests.support.identity import expected, sign, statement

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sandbox_identity.Files]:
    """DIR/identity/ and the issuer process, as ``python -m sandbox up`` makes them."""
    processes = Processes(tmp_path_factory.mktemp("sandbox"))
    files, started = sandbox_identity.ensure(processes, "verified", timeout=30)
    assert started
    yield files
    processes.stop_all()


def token_command(person: str, audience: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """``python -m sandbox token`` as a shell runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "token",
            "--as",
            person,
            "--audience",
            audience,
            "--dir",
            str(directory),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def get_json(url: str) -> Any:
    """The JSON document at ``url`` (the sandbox's issuer, on loopback)."""
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - an http URL of this machine
        return json.load(answer)


def worker(files: sandbox_identity.Files) -> IdentityActivities:
    """The identity activities a sandbox worker runs with (its env's policy and key)."""
    policy = loading.load_identity_policy(files.policy)
    return IdentityActivities(policy, files.attestation_key.read_bytes(), HttpJwks())


async def verify(files: sandbox_identity.Files, inp: VerifyInput) -> VerifyResult:
    result: VerifyResult = await ActivityEnvironment().run(worker(files).verify, inp)
    return result


class TestFiles:
    def test_the_policy_verifies_with_the_sandbox_signers_and_issuer(
        self, sandbox: sandbox_identity.Files
    ) -> None:
        """identity.yaml loads as a verified policy naming the signers beside it and the running issuer."""
        policy = loading.load_identity_policy(sandbox.policy)
        assert policy.mode == "verified"
        assert policy.allowed_signers == sandbox.allowed_signers
        assert [i.issuer for i in policy.issuers] == [sandbox.issuer]
        signers = sandbox.allowed_signers.read_text().splitlines()
        assert [line.split()[:2] for line in signers] == [
            ["alice@example.com", 'namespaces="ringmaster"'],
            ["bob@example.com", 'namespaces="ringmaster"'],
        ]

    def test_the_attestation_key_is_private_and_kept(self, sandbox: sandbox_identity.Files) -> None:
        """32 random bytes readable by their owner only; keys survive the next up."""
        key = sandbox.attestation_key.read_bytes()
        assert len(key) == 32
        assert stat.S_IMODE(sandbox.attestation_key.stat().st_mode) == 0o600
        alice = sandbox.key("alice").read_bytes()
        again = sandbox_identity.prepare(sandbox.directory.parent, sandbox.issuer)
        assert again.attestation_key.read_bytes() == key
        assert again.key("alice").read_bytes() == alice

    def test_the_env_names_the_files(self, sandbox: sandbox_identity.Files) -> None:
        """The worker's settings and alice's signing key, as absolute paths."""
        assert sandbox.env() == {
            "RINGMASTER_IDENTITY_POLICY": str(sandbox.policy.resolve()),
            "RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE": str(sandbox.attestation_key.resolve()),
            "RINGMASTER_SIGNING_KEY": str(sandbox.key("alice").resolve()),
        }


class TestIssuer:
    def test_publishes_its_configuration_and_keys(self, sandbox: sandbox_identity.Files) -> None:
        """The discovery document names the issuer and its key set, which holds the signing key."""
        discovery = get_json(f"{sandbox.issuer}/.well-known/openid-configuration")
        assert discovery["issuer"] == sandbox.issuer
        keys = get_json(discovery["jwks_uri"])["keys"]
        assert keys == [sandbox_identity.public_jwk(sandbox_identity.read_private_key(sandbox.issuer_key))]


class TestVerifiedSandbox:
    async def test_a_request_signed_with_alices_key_is_alices(self, sandbox: sandbox_identity.Files) -> None:
        """What DIR/env signs with verifies as alice under the sandbox's own policy."""
        said = statement()
        proof = Proof(statement=said, ssh_signature=sign(sandbox.key("alice"), said.canonical()))
        result = await verify(sandbox, VerifyInput(expected=expected(said), proof=proof))
        assert result.verified is not None, result.problem
        assert result.verified.principal == "alice@example.com"

    async def test_a_token_from_the_token_command_is_bobs(self, sandbox: sandbox_identity.Files) -> None:
        """``python -m sandbox token --as bob`` prints a token the worker verifies as bob (by his alias)."""
        said = statement()
        printed = await asyncio.to_thread(token_command, "bob", said.audience(), sandbox.directory.parent)
        assert printed.returncode == 0, printed.stderr
        proof = Proof(statement=said, id_token=printed.stdout.strip())
        result = await verify(sandbox, VerifyInput(expected=expected(said), proof=proof))
        assert result.verified is not None, result.problem
        assert (result.verified.principal, result.verified.method) == ("bob@example.com", "oidc")

    async def test_an_unsigned_request_is_refused(self, sandbox: sandbox_identity.Files) -> None:
        """The sandbox worker verifies: the client's word is not enough."""
        result = await verify(sandbox, VerifyInput(expected=expected(statement()), claimed_by="alice"))
        assert result.verified is None
        assert "sign the request" in result.problem


def test_token_without_a_sandbox_exits_2(tmp_path: Path) -> None:
    """The token command in a folder with no sandbox says so and exits 2."""
    printed = token_command("bob", "x", tmp_path)
    assert printed.returncode == 2
    assert "no sandbox identity here" in printed.stderr
