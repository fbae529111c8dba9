"""Who asked: the statement a person proves, the rules it is judged by, and four eyes.

Temporal never tells a workflow who called it (a client's ``identity`` is the client's own word), so
every submission and control carries a proof: a :class:`Statement` naming exactly one action on one
release, signed with an SSH key (``ssh-keygen -Y sign -n ringmaster``, as git signs commits) or
vouched for by a CI provider's OIDC ID token whose audience is ``ringmaster:`` and the statement's
digest. The worker checks it (``activities.identity``) before a workflow acts on it; only the
verified principal enters decisions and records.

This module is pure. It builds and digests statements, judges a statement against what the workflow
expects (:func:`statement_problem`), judges a token's claims against the configured rules
(:func:`claims_problem`), and compares principals after normalisation (:func:`normalise`,
:func:`four_eyes_problem`). Verifying signatures is I/O and lives in ``activities.identity``; the
worker's policy file (:class:`IdentityPolicy`) is what users write.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import unicodedata
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from policies._model import Document, Model
from policies.durations import Duration

Action = Literal["submit", "approve", "hold", "resume", "abort", "rollback", "freeze", "unfreeze"]
ACTIONS: tuple[Action, ...] = (
    "submit",
    "approve",
    "hold",
    "resume",
    "abort",
    "rollback",
    "freeze",
    "unfreeze",
)
"""``rollback`` undoes an ended release (``ringmaster rollback`` and ``retry``); its statement names
the release's workflow id and run, and the cluster when one is named. ``freeze`` and ``unfreeze``
stop and restart the line (``ringmaster freeze``)."""
NAMESPACE = "ringmaster"
"""The SSH signature namespace (``ssh-keygen -Y sign -n``): a git commit signature (namespace
``git``) or a file signature can never be replayed as a ringmaster request."""
AUDIENCE_PREFIX = "ringmaster:"
Method = Literal["ssh", "oidc", "attested", "trusted"]

Nonce = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time with its zone, such as 2026-12-06T10:00:00Z")
    return value.astimezone(UTC)


class Statement(Model):
    """What a person proves: one action on one release, with its arguments, at a time, once."""

    action: Action
    workflow_id: str = Field(min_length=1, max_length=400)
    """The release's workflow id (``release:<service>:<version>``)."""
    run_id: str = Field(default="", max_length=100)
    """The release's run; empty for a submission, whose run does not exist yet."""
    image: str = Field(default="", max_length=1000)
    """Submissions: the image reference as submitted (a ``@sha256:`` digest pins it)."""
    plan_digest: str = Field(default="", max_length=80)
    """Submissions: ``sha256:`` of the plan text, as submitted."""
    ring: str = Field(default="", max_length=200)
    cluster: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=2000)
    issued_at: Annotated[datetime, AfterValidator(_aware)]
    nonce: Nonce
    """32 hex digits, fresh for each request; a release accepts each nonce once."""

    def canonical(self) -> bytes:
        """The bytes that are signed: the statement's JSON with sorted keys and no spaces."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """sha256 of :meth:`canonical`, in hex."""
        return hashlib.sha256(self.canonical()).hexdigest()

    def audience(self) -> str:
        """The audience an OIDC token for this statement must carry: ``ringmaster:<digest>``."""
        return AUDIENCE_PREFIX + self.digest()


def plan_digest(plan_text: str) -> str:
    """``sha256:<hex>`` of a plan as submitted."""
    return "sha256:" + hashlib.sha256(plan_text.encode()).hexdigest()


class Proof(Model):
    """A statement and what vouches for it: an SSH signature, or an OIDC ID token."""

    statement: Statement
    ssh_signature: str = Field(default="", max_length=10_000, repr=False)
    """The armored signature (``-----BEGIN SSH SIGNATURE-----``) of ``statement.canonical()``."""
    id_token: str = Field(default="", max_length=20_000, repr=False)
    """A JWT whose ``aud`` is ``statement.audience()``. A credential: it travels only as the
    argument of the one request it authorises and is never logged, recorded or forwarded."""

    @property
    def method(self) -> Method:
        """How this proof vouches: ``ssh`` or ``oidc``."""
        return "oidc" if self.id_token else "ssh"


class Attestation(Model):
    """The worker's word, to a cluster workflow, that a person's proof was verified for this order.

    A release forwards a control to its cluster workflows, and a lane's supersede or a reset's abort
    is caused by a person; the order names that person's verified principal and is sealed with an
    HMAC under the worker's attestation key, which only workers hold. Anyone with access to the
    namespace can signal a cluster workflow; nobody without the key can forge this, and it names one
    workflow, one action and one nonce, so it cannot be replayed elsewhere. An OIDC token is never
    forwarded: the attestation stands for it.
    """

    principal: str
    method: Method
    """How the person was verified in the first place."""
    detail: str = ""
    action: Action
    workflow_id: str
    """The cluster workflow the order is for."""
    ring: str = ""
    cluster: str = ""
    reason: str = ""
    issued_at: Annotated[datetime, AfterValidator(_aware)]
    nonce: Nonce
    mac: str = Field(default="", repr=False)
    """HMAC-SHA256 of :meth:`message` under the attestation key, in hex."""

    def message(self) -> bytes:
        """The bytes the MAC covers: every field but the MAC, as canonical JSON."""
        fields = self.model_dump(mode="json", exclude={"mac"})
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


class Expected(Model):
    """What the workflow about to act expects the statement to say."""

    action: Action
    workflow_id: str
    run_id: str = ""
    image: str = ""
    plan_digest: str = ""
    ring: str = ""
    cluster: str = ""
    reason: str = ""
    entered_at: Annotated[datetime, AfterValidator(_aware)]
    """When the request entered the workflow's history (the workflow's time as it handles it)."""
    used_nonces: list[str] = Field(default_factory=list)
    """Nonces this release has already accepted."""
    used_token_ids: list[str] = Field(default_factory=list)
    """OIDC token ids (``jti``) this release has already accepted: a token authorises one request."""


class Verified(Model):
    """A principal the worker verified, and how."""

    principal: str
    """Normalised (:func:`normalise`)."""
    method: Method
    detail: str = ""
    """How it was verified, for people: the key's fingerprint, or the token's issuer and subject."""
    nonce: str = ""
    token_id: str = ""
    """An OIDC token's ``jti``: a token is accepted once."""


class ClaimRule(Model):
    """Which OIDC tokens may do what: every listed claim must match its pattern."""

    services: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Service-name patterns (``fnmatch``) the rule lets the token act on."""
    actions: list[Action] = Field(default_factory=lambda: list(ACTIONS), min_length=1)
    claims: dict[str, str] = Field(default_factory=dict)
    """Claim name to pattern, e.g. ``repository: acme/shop``, ``ref: refs/heads/main``."""


class Issuer(Model):
    """An OIDC issuer the worker trusts (GitHub Actions, GitLab CI, the sandbox's)."""

    issuer: str = Field(min_length=1)
    """The ``iss`` claim, exactly (``https://token.actions.githubusercontent.com``)."""
    jwks_url: str = Field(min_length=1)
    """Where the issuer's signing keys are published."""
    principal_claim: str = "sub"
    """The claim naming the person or job (``actor`` on GitHub, ``user_login`` on GitLab)."""
    principal_prefix: str = ""
    """Put before the claim's value (``github:``), so logins of different providers never collide."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    rules: list[ClaimRule] = Field(min_length=1)
    """A token must match one rule; an issuer with no rule would let any of its tokens through."""

    @field_validator("algorithms")
    @classmethod
    def _no_none(cls, value: list[str]) -> list[str]:
        if any(a.lower() == "none" or a.upper().startswith("HS") for a in value):
            raise ValueError("asymmetric algorithms only (RS256, ES256, ...): none and HS* are refused")
        return value


class IdentityPolicy(Document):
    """The worker's identity policy (``RINGMASTER_IDENTITY_POLICY``, a YAML file).

    Loaded by ``policies.loading.load_identity_policy``, which resolves a relative
    ``allowedSigners`` against the policy file's folder. Example::

        mode: verified
        allowedSigners: allowed_signers          # beside this file
        issuers:
          - issuer: https://token.actions.githubusercontent.com
            jwksUrl: https://token.actions.githubusercontent.com/.well-known/jwks
            principalClaim: actor
            principalPrefix: "github:"
            rules:
              - {services: [shop], actions: [submit], claims: {repository: acme/shop, ref: refs/heads/main}}
        aliases:
          alice@example.com: [github:alice-gh]
        maxAge: 15m
    """

    mode: Literal["verified", "trusted"] = "verified"
    """``verified`` refuses every request without a valid proof; ``trusted`` takes the client's word
    (``--by``), for local experiments only."""
    allowed_signers: Path | None = None
    """OpenSSH allowed-signers file (git's format: principals, options such as
    ``namespaces="ringmaster"`` and ``valid-after``/``valid-before``, key)."""
    issuers: list[Issuer] = Field(default_factory=list)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    """One person's names: the principal, and every other name that is the same person
    (``alice@example.com: [github:alice-gh, alice]``)."""
    max_age: Duration = timedelta(minutes=15)
    """How old a statement may be when its request enters history."""
    clock_skew: Duration = timedelta(minutes=2)
    """How far in the future a statement's time may be (the signer's clock runs ahead)."""

    def problems(self) -> list[tuple[str, str]]:
        """A verified policy that could verify nothing, and key URLs the worker will not fetch."""
        found: list[tuple[str, str]] = []
        if self.mode == "verified" and self.allowed_signers is None and not self.issuers:
            found.append(
                (
                    "mode",
                    "verified mode needs allowedSigners (SSH signatures) or issuers (OIDC tokens): "
                    "with neither, every request would be refused",
                )
            )
        found += [
            (f"issuers[{i}].jwksUrl", problem)
            for i, issuer in enumerate(self.issuers)
            if (problem := jwks_url_problem(issuer.jwks_url))
        ]
        return found

    @field_validator("aliases")
    @classmethod
    def _one_person_per_alias(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        owner: dict[str, str] = {}
        for principal, names in value.items():
            for name in [principal, *names]:
                key = _fold(name)
                if owner.setdefault(key, principal) != principal:
                    raise ValueError(f"{name!r} is an alias of both {owner[key]!r} and {principal!r}")
        return value


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def jwks_url_problem(url: str) -> str:
    """Why the worker will not fetch signing keys from ``url``; empty when it will.

    Keys that vouch for people come over TLS: ``https`` only, except plain ``http`` to this machine
    (the sandbox's issuer), which no one else can answer for.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme == "https" and host:
        return ""
    if parts.scheme == "http" and host in _LOOPBACK:
        return ""
    return f"{url!r}: signing keys are fetched over https only (http only from 127.0.0.1 or localhost)"


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


def normalise(name: str, aliases: Mapping[str, Collection[str]]) -> str:
    """The principal ``name`` stands for: case-folded (NFKC), and an alias replaced by its principal."""
    folded = _fold(name)
    for principal, names in aliases.items():
        if folded == _fold(principal) or any(folded == _fold(n) for n in names):
            return _fold(principal)
    return folded


def four_eyes_problem(submitter: str, approver: str, aliases: Mapping[str, Collection[str]]) -> str:
    """Why ``approver`` may not approve a release ``submitter`` submitted; empty when they may."""
    if not submitter:
        return "the submitter is unknown, so four eyes cannot be checked"
    if normalise(submitter, aliases) == normalise(approver, aliases):
        return f"{approver} submitted this release (as {submitter}); another person must approve it"
    return ""


def statement_problem(
    statement: Statement, expected: Expected, *, max_age: timedelta, clock_skew: timedelta
) -> str:
    """Why ``statement`` does not authorise the request the workflow is handling; empty when it does."""
    for name in ("action", "workflow_id", "run_id", "image", "plan_digest", "ring", "cluster", "reason"):
        said, wanted = getattr(statement, name), getattr(expected, name)
        if said != wanted:
            return f"the proof is for {name} {said!r}, this request is for {wanted!r}"
    if statement.nonce in expected.used_nonces:
        return f"nonce {statement.nonce} was already used on this release: a replayed request"
    if statement.issued_at > expected.entered_at + clock_skew:
        return f"the statement is dated {statement.issued_at.isoformat()}, in the future"
    if statement.issued_at < expected.entered_at - max_age:
        return (
            f"the statement is dated {statement.issued_at.isoformat()}, older than {max_age} "
            f"when the request arrived ({expected.entered_at.isoformat()})"
        )
    return ""


def claims_problem(issuer: Issuer, claims: Mapping[str, object], action: Action, service: str) -> str:
    """Why no rule of ``issuer`` lets a token with ``claims`` do ``action`` on ``service``; "" if one does."""
    for rule in issuer.rules:
        if action not in rule.actions or not any(fnmatch.fnmatchcase(service, s) for s in rule.services):
            continue
        if all(
            isinstance(claims.get(name), str) and fnmatch.fnmatchcase(str(claims[name]), pattern)
            for name, pattern in rule.claims.items()
        ):
            return ""
    shown = {name: claims.get(name) for rule in issuer.rules for name in rule.claims}
    return f"no rule of issuer {issuer.issuer} lets a token with {shown} {action} {service}"


_RELEASE_ID = re.compile(r"^release:(?P<service>[^:]+):")


def service_of(workflow_id: str) -> str:
    """The service a release workflow id names (``release:<service>:<version>``)."""
    match = _RELEASE_ID.match(workflow_id)
    return match["service"] if match else ""
