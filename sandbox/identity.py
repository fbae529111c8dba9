"""The sandbox's people, keys and OIDC issuer: everything a verified worker needs, made locally.

``python -m sandbox up`` (with Temporal) keeps ``DIR/identity/``::

    alice, alice.pub, bob, bob.pub   SSH keys (ed25519, no passphrase) of two people
    allowed_signers                  both keys, for the namespace "ringmaster" (git's format)
    issuer-key.pem                   the sandbox issuer's RSA signing key
    identity.yaml                    the worker's policy: the signers file and the issuer (any token
                                     of it may do anything), alice and bob each under two names
    attestation.key                  32 random bytes (mode 0600) the worker seals its orders with

Keys are made once and kept across ``down``/``up``, so a shell's ``RINGMASTER_SIGNING_KEY`` stays
good; ``identity.yaml`` is written at every ``up`` (the issuer's port may change). The issuer
(:mod:`sandbox.oidc`) runs as the sandbox process ``oidc``; ``python -m sandbox token --as alice
--audience ringmaster:<digest>`` prints a token it vouches for, as a CI job would be handed one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.processes import Processes, ProcessRecord, ProcessSpec, read_port

OIDC = "oidc"
FOLDER = "identity"
PEOPLE = {"alice": "alice@example.com", "bob": "bob@example.com"}
"""Each sandbox person's key name and the principal their key is listed under."""
TOKEN_LIFETIME = timedelta(minutes=5)
ALGORITHM = "RS256"


@dataclass(frozen=True)
class Files:
    """``DIR/identity/`` of a running sandbox, and where its issuer is."""

    directory: Path
    issuer: str

    @property
    def policy(self) -> Path:
        """``identity.yaml``: the worker's ``RINGMASTER_IDENTITY_POLICY``."""
        return self.directory / "identity.yaml"

    @property
    def attestation_key(self) -> Path:
        """``attestation.key``: the worker's ``RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE``."""
        return self.directory / "attestation.key"

    @property
    def allowed_signers(self) -> Path:
        """``allowed_signers``: every person's public key."""
        return self.directory / "allowed_signers"

    @property
    def issuer_key(self) -> Path:
        """``issuer-key.pem``: the issuer's private key."""
        return self.directory / "issuer-key.pem"

    def key(self, person: str) -> Path:
        """The private SSH key of ``person`` (``alice``, ``bob``)."""
        return self.directory / person

    def env(self) -> dict[str, str]:
        """The worker's identity settings, and alice's key to sign requests with (for ``DIR/env``)."""
        return {
            "RINGMASTER_IDENTITY_POLICY": str(self.policy.resolve()),
            "RINGMASTER_IDENTITY_ATTESTATION_KEY_FILE": str(self.attestation_key.resolve()),
            "RINGMASTER_SIGNING_KEY": str(self.key("alice").resolve()),
        }


def make_ssh_key(path: Path, comment: str) -> Path:
    """An ed25519 key pair without passphrase at ``path`` and ``path.pub`` (kept when present)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return path


def signer_line(principal: str, public_key: Path, options: str = 'namespaces="ringmaster"') -> str:
    """One allowed-signers line: ``principal options keytype key``."""
    kind, key = public_key.read_text(encoding="ascii").split()[:2]
    return f"{principal} {options} {kind} {key}"


def make_rsa_key(path: Path) -> Path:
    """An RSA-2048 private key in PEM at ``path`` (kept when present), readable by its owner only."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(path, pem)
    return path


def read_private_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA private key in PEM at ``path``."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The public half of ``key`` as a JWK, its ``kid`` the RFC 7638 thumbprint."""
    numbers = key.public_key().public_numbers()
    jwk = {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}
    thumbprint = hashlib.sha256(json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()).digest()
    kid = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def token(
    key_file: Path,
    issuer: str,
    person: str,
    audience: str,
    *,
    now: datetime | None = None,
    lifetime: timedelta = TOKEN_LIFETIME,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """An RS256 ID token of ``issuer`` for ``person`` (``sub`` and ``actor``) with ``audience``."""
    key = read_private_key(key_file)
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": person,
        "actor": person,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
        **(extra or {}),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": public_jwk(key)["kid"]})


def policy_document(issuer: str, mode: Literal["verified", "trusted"]) -> dict[str, Any]:
    """The sandbox worker's identity policy: its signers, its issuer (any token may do anything)."""
    return {
        "mode": mode,
        "allowedSigners": "allowed_signers",
        "issuers": [
            {
                "issuer": issuer,
                "jwksUrl": f"{issuer}/jwks",
                "principalClaim": "actor",
                "algorithms": [ALGORITHM],
                "rules": [{"services": ["*"]}],
            }
        ],
        "aliases": {email: [name] for name, email in PEOPLE.items()},
    }


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)


def prepare(directory: Path, issuer: str, mode: Literal["verified", "trusted"] = "verified") -> Files:
    """``DIR/identity/`` for an issuer at ``issuer`` (see the module docstring); keys are kept."""
    files = Files(directory / FOLDER, issuer)
    files.directory.mkdir(parents=True, exist_ok=True)
    lines = [
        signer_line(email, make_ssh_key(files.key(name), email).with_suffix(".pub"))
        for name, email in PEOPLE.items()
    ]
    files.allowed_signers.write_text("\n".join(lines) + "\n", encoding="ascii")
    make_rsa_key(files.issuer_key)
    if not files.attestation_key.exists():
        _write_private(files.attestation_key, secrets.token_bytes(32))
    document = yaml.safe_dump(policy_document(issuer, mode), sort_keys=False)
    files.policy.write_text("# Written by `python -m sandbox up`; rewritten at every up.\n" + document)
    return files


def issuer_of(directory: Path) -> str:
    """The issuer URL ``DIR/identity/identity.yaml`` trusts (the sandbox's own)."""
    policy = yaml.safe_load((directory / FOLDER / "identity.yaml").read_text(encoding="utf-8"))
    return str(policy["issuers"][0]["issuer"])


def oidc_spec(directory: Path, timeout: float) -> ProcessSpec:
    """The issuer process: it binds a free port and writes it to ``DIR/oidc.port``."""
    key = make_rsa_key(directory / FOLDER / "issuer-key.pem")
    port_file = directory / f"{OIDC}.port"
    port_file.unlink(missing_ok=True)

    def ready(_: ProcessRecord) -> dict[str, object] | None:
        port = read_port(port_file)
        return None if port is None else {"url": f"http://127.0.0.1:{port}"}

    argv = [sys.executable, "-m", "sandbox.oidc", "--key", str(key), "--port-file", str(port_file)]
    return ProcessSpec(OIDC, argv, ready=ready, startup_timeout=timeout)


def ensure(processes: Processes, mode: Literal["verified", "trusted"], timeout: float) -> tuple[Files, bool]:
    """The issuer running and ``DIR/identity/`` written for it; whether the issuer was (re)started."""
    running = processes.running().get(OIDC)
    started = running is None
    if running is None:
        processes.stop(OIDC)
        running = processes.start(oidc_spec(processes.directory, timeout))
    return prepare(processes.directory, str(running.info["url"]), mode), started
