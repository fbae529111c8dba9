"""People with real SSH keys, a real OIDC issuer, and the statements they prove, for identity tests.

Keys are made by ``ssh-keygen`` and signatures by ``ssh-keygen -Y sign``, as a person's shell
would; the issuer is the sandbox's (:mod:`sandbox.oidc`) serving its key set over HTTP on a thread,
and tokens are the sandbox's (:func:`sandbox.identity.token`).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from policies.identity import Action, Expected, IdentityPolicy, Proof, Statement
from ringmaster.cli import _proof
from sandbox import identity as sandbox_identity
from sandbox import oidc

WORKFLOW = "release:shop:v2"
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def statement(**fields: Any) -> Statement:
    """An approval of ``release:shop:v2`` issued a minute before :data:`NOW`, with a fresh nonce."""
    values: dict[str, Any] = {
        "action": "approve",
        "workflow_id": WORKFLOW,
        "run_id": "run-1",
        "ring": "beta",
        "reason": "looks good",
        "issued_at": NOW - timedelta(minutes=1),
        "nonce": secrets.token_hex(16),
    }
    return Statement.model_validate({**values, **fields})


def expected(said: Statement, **fields: Any) -> Expected:
    """What a workflow handling ``said``'s request at :data:`NOW` expects (``fields`` change it)."""
    values = said.model_dump(
        include={"action", "workflow_id", "run_id", "image", "plan_digest"}, by_alias=False
    )
    values |= said.model_dump(include={"ring", "cluster", "reason"}, by_alias=False)
    return Expected.model_validate({**values, "entered_at": NOW, **fields})


def sign(key: Path, data: bytes, namespace: str = "ringmaster") -> str:
    """``ssh-keygen -Y sign`` of ``data`` with ``key``: the armored signature."""
    done = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-q", "-f", str(key), "-n", namespace],
        input=data,
        capture_output=True,
        check=True,
        timeout=30,
    )
    return done.stdout.decode()


@dataclass
class People:
    """alice and bob's keys, and an allowed-signers file listing alice (and bob when asked)."""

    directory: Path

    def key(self, name: str) -> Path:
        """``name``'s private key, made on first use."""
        return sandbox_identity.make_ssh_key(self.directory / name, f"{name}@example.com")

    def signers(self, *lines: tuple[str, str, str]) -> Path:
        """An allowed-signers file of ``(principal, key name, options)`` lines."""
        path = self.directory / "allowed_signers"
        text = [
            sandbox_identity.signer_line(principal, self.key(name).with_suffix(".pub"), options)
            for principal, name, options in lines
        ]
        path.write_text("\n".join(text) + "\n", encoding="ascii")
        return path


@dataclass
class Issuer:
    """A running OIDC issuer: its URL, key set URL and private key."""

    url: str
    key: Path

    @property
    def jwks_url(self) -> str:
        """Where it publishes its keys."""
        return f"{self.url}/jwks"

    def token(self, person: str, audience: str, **fields: Any) -> str:
        """An RS256 token of this issuer for ``person`` (``now``, ``lifetime``, ``extra`` pass on)."""
        return sandbox_identity.token(self.key, self.url, person, audience, **fields)


def running_issuer(directory: Path) -> Iterator[Issuer]:
    """The sandbox's issuer serving a fresh key from ``directory`` until the generator is closed."""
    key = sandbox_identity.make_rsa_key(directory / "issuer-key.pem")
    server, url = oidc.serve(key)
    try:
        yield Issuer(url, key)
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Signer:
    """One person's SSH key, proving statements exactly as ``ringmaster --sign-with`` does."""

    principal: str
    key: Path

    def prove(self, said: Statement) -> Proof:
        """``said`` signed with this key under namespace ``ringmaster``."""
        return Proof(statement=said, ssh_signature=_proof.ssh_sign(said.canonical(), self.key))

    def sign(self, action: Action, workflow_id: str, **fields: str) -> Proof:
        """A fresh statement of one request (now, a new nonce), signed."""
        return self.prove(_proof.statement(action, workflow_id, **fields))


@dataclass(frozen=True)
class Office:
    """alice and bob, whose keys the worker lists, and mallory, whose real key it lists nowhere."""

    allowed_signers: Path
    alice: Signer
    bob: Signer
    mallory: Signer

    def policy(self) -> IdentityPolicy:
        """A verifying policy trusting alice's and bob's keys."""
        return IdentityPolicy(mode="verified", allowed_signers=self.allowed_signers)


def make_office(directory: Path) -> Office:
    """Keys for alice, bob and mallory in ``directory``; an allowed-signers file of alice and bob."""
    people = People(directory)
    signers = people.signers(
        ("alice@example.com", "alice", 'namespaces="ringmaster"'),
        ("bob@example.com", "bob", 'namespaces="ringmaster"'),
    )
    return Office(
        signers,
        *(Signer(f"{name}@example.com", people.key(name)) for name in ("alice", "bob", "mallory")),
    )
