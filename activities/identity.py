"""Who asked, verified: the worker checks a request's proof before a workflow acts on it.

A workflow cannot know who called it, so it hands the request's proof to :meth:`IdentityActivities.verify`
with what it expects the proof to say (``policies.identity.Expected``). The verdict is data: a
:class:`~activities.models.VerifyResult` with the verified principal, or the problem a refused person
reads. It is never raised, so the workflow records it like any other decision. What is raised is the
worker's own trouble: :class:`IdentityMisconfigured` (non-retryable: no allowed-signers file, no
``ssh-keygen``) and :class:`IdentityUnavailable` (retryable: an issuer's keys cannot be fetched now).

Three ways in, tried in this order:

- an **attestation**: the worker's own HMAC-sealed order to a cluster workflow
  (:meth:`IdentityActivities.attest` seals it; every worker shares the key);
- a **proof**: a statement signed with an SSH key listed in the policy's allowed-signers file
  (``ssh-keygen -Y find-principals`` then ``-Y verify``, namespace ``ringmaster``, at the
  statement's time so ``valid-after``/``valid-before`` apply), or vouched for by an OIDC ID token
  from a trusted issuer whose audience is the statement's digest (PyJWT, keys from :mod:`activities.jwks`);
- neither: the client's word (``claimed_by``) under ``mode: trusted``, a refusal under ``verified``.

Then, when the worker has an authorization policy (``policies.authz``), the principal a proof or the
client's word names is judged on the request (its action, the service of its workflow id, its ring
and cluster, and the claims of the token that vouched for it): a refusal is a problem naming the rule
that refused (or that none allows it), an allowance names its rule in ``Verified.detail``, and every
decision is in ``VerifyResult.authorization``. An attestation is not judged again: it is an order a
workflow gives on behalf of a person whose own request was judged when it reached the release (or
the lane), and a cluster's ring is not the rule's business then. Without a policy, nothing is judged.

Credentials stay here: no signature or token is logged, and every problem text is scrubbed of both
before it leaves (:func:`_scrub`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.jwks import Jwks, JwksUnavailable
from activities.models import AttestInput, VerifyInput, VerifyResult
from policies import authz, identity
from policies.authz import AuthorizationPolicy
from policies.identity import Attestation, Expected, IdentityPolicy, Issuer, Proof, Statement, Verified

SSH_KEYGEN_TIMEOUT_SECONDS = 10.0
"""One ``ssh-keygen`` call; it answers in milliseconds, so this only bounds a wedged one."""
UNSIGNED = "this worker verifies identity: sign the request (--sign-with or a CI OIDC token)"

log = structlog.get_logger("ringmaster.identity")


class IdentityMisconfigured(Exception):
    """The worker's identity settings cannot work (a missing allowed-signers file, no ``ssh-keygen``,
    a short attestation key): nothing a retry fixes; the message names the file or setting."""

    def to_application_error(self) -> ApplicationError:
        """The non-retryable Temporal error the workflow sees."""
        return ApplicationError(str(self), type=errors.IDENTITY_MISCONFIGURED, non_retryable=True)


class IdentityUnavailable(Exception):
    """Something verification needs cannot be reached now (an issuer's keys): the attempt retries."""

    def to_application_error(self) -> ApplicationError:
        """The retryable Temporal error the workflow sees."""
        return ApplicationError(str(self), type=errors.IDENTITY_UNAVAILABLE)


def seal(attestation: Attestation, key: bytes) -> str:
    """The MAC of ``attestation``: hex HMAC-SHA256 of its :meth:`~Attestation.message` under ``key``."""
    return hmac.new(key, attestation.message(), hashlib.sha256).hexdigest()


class _Refused(Exception):
    """A proof that does not hold, and why (becomes ``VerifyResult.problem``)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class IdentityActivities:
    """``verify_identity`` and ``attest_identity``, under one identity policy and one attestation key,
    and an authorization policy when the worker has one (None: every principal may do everything)."""

    def __init__(
        self,
        policy: IdentityPolicy,
        attestation_key: bytes,
        jwks: Jwks | None = None,
        *,
        ssh_keygen: str = "ssh-keygen",
        authorization: AuthorizationPolicy | None = None,
    ) -> None:
        self.policy = policy
        self.authorization = authorization
        self._key = attestation_key
        self._jwks = jwks
        self._ssh_keygen = ssh_keygen

    @activity.defn(name="attest_identity")
    async def attest(self, inp: AttestInput) -> Attestation:
        """``inp.attestation`` sealed with the worker's attestation key."""
        return inp.attestation.model_copy(update={"mac": seal(inp.attestation, self._key)})

    @activity.defn(name="verify_identity")
    async def verify(self, inp: VerifyInput) -> VerifyResult:
        """Who made this request, verified; or why it is refused (see the module docstring)."""
        expected = inp.expected
        bound = log.bind(release=expected.workflow_id, action=expected.action)
        token: authz.Token | None = None
        try:
            if inp.attestation is not None:
                verified = self._attested(inp.attestation, expected)
            elif inp.proof is not None:
                verified, token = await self._proven(inp.proof, expected)
            elif self.policy.mode == "trusted":
                verified = Verified(
                    principal=identity.normalise(inp.claimed_by, self.policy.aliases),
                    method="trusted",
                    detail="the client's word (identity mode: trusted)",
                )
            else:
                raise _Refused(UNSIGNED)
        except _Refused as refused:
            problem = _scrub(refused.problem, inp.proof)
            bound.info("identity refused", problem=problem)
            return VerifyResult(problem=problem, mode=self.policy.mode)
        except (IdentityMisconfigured, IdentityUnavailable) as err:
            message = _scrub(str(err), inp.proof)
            bound.warning("identity not verified", error=message, type=type(err).__name__)
            raise type(err)(message).to_application_error() from None
        bound.info("identity verified", principal=verified.principal, method=verified.method)
        if self.authorization is None or inp.attestation is not None:
            return VerifyResult(verified=verified, mode=self.policy.mode)
        decisions = self._authorized(self.authorization, verified, expected, token)
        if problem := authz.refusal(decisions):
            bound.info("authorization refused", principal=verified.principal, problem=problem)
            return VerifyResult(problem=problem, mode=self.policy.mode, authorization=decisions)
        allowed = authz.allowance(decisions)
        bound.info("authorization allowed", principal=verified.principal, rule=allowed)
        detail = f"{verified.detail}; {allowed}" if verified.detail else allowed
        return VerifyResult(
            verified=verified.model_copy(update={"detail": detail}),
            mode=self.policy.mode,
            authorization=decisions,
        )

    def _authorized(
        self,
        policy: AuthorizationPolicy,
        verified: Verified,
        expected: Expected,
        token: authz.Token | None,
    ) -> list[authz.Decision]:
        """``policy``'s decisions on the request ``expected`` describes, made by ``verified``."""
        request = authz.Request(
            principal=verified.principal,
            action=expected.action,
            service=identity.service_of(expected.workflow_id),
            ring=expected.ring,
            cluster=expected.cluster,
            token=token,
        )
        # A submission states --supersede in its reason: it aborts the running release too.
        supersede = expected.action == "submit" and "supersede" in expected.reason.split(",")
        return authz.decisions(policy, request, supersede=supersede, aliases=self.policy.aliases)

    # --- attestations ---------------------------------------------------------------------------

    def _attested(self, attestation: Attestation, expected: Expected) -> Verified:
        for name in ("workflow_id", "action", "ring", "cluster", "reason"):
            said, wanted = getattr(attestation, name), getattr(expected, name)
            if said != wanted:
                raise _Refused(f"the attestation is for {name} {said!r}, this order is for {wanted!r}")
        self._check_time(attestation.issued_at, attestation.nonce, expected, "attestation")
        if not hmac.compare_digest(seal(attestation, self._key).encode(), attestation.mac.encode()):
            if self.policy.mode == "trusted":
                # Trusted workers seal with a key of their own process unless one is configured: an
                # order sealed by another (or an earlier) worker is taken on its word, like the rest.
                return Verified(
                    principal=identity.normalise(attestation.principal, self.policy.aliases),
                    method="trusted",
                    detail="an order whose seal this worker cannot check (identity mode: trusted)",
                    nonce=attestation.nonce,
                )
            raise _Refused("the attestation's seal does not verify: it was not made by a ringmaster worker")
        return Verified(
            principal=identity.normalise(attestation.principal, self.policy.aliases),
            method="attested",
            detail=f"attested by a worker; verified by {attestation.method}"
            + (f" ({attestation.detail})" if attestation.detail else ""),
            nonce=attestation.nonce,
        )

    def _check_time(self, issued_at: datetime, nonce: str, expected: Expected, what: str) -> None:
        if nonce in expected.used_nonces:
            raise _Refused(f"nonce {nonce} was already used: a replayed {what}")
        if issued_at > expected.entered_at + self.policy.clock_skew:
            raise _Refused(f"the {what} is dated {issued_at.isoformat()}, in the future")
        if issued_at < expected.entered_at - self.policy.max_age:
            raise _Refused(f"the {what} is dated {issued_at.isoformat()}, older than {self.policy.max_age}")

    # --- proofs -----------------------------------------------------------------------------------

    async def _proven(self, proof: Proof, expected: Expected) -> tuple[Verified, authz.Token | None]:
        statement = proof.statement
        problem = identity.statement_problem(
            statement, expected, max_age=self.policy.max_age, clock_skew=self.policy.clock_skew
        )
        if problem:
            raise _Refused(problem)
        if proof.id_token:
            return await self._oidc(proof.id_token, statement, expected)
        if proof.ssh_signature:
            return await self._ssh(proof.ssh_signature, statement), None
        raise _Refused("the proof carries neither an SSH signature nor an ID token")

    async def _ssh(self, signature: str, statement: Statement) -> Verified:
        signers = self.policy.allowed_signers
        if signers is None:
            raise _Refused("this worker accepts no SSH signatures (its policy has no allowedSigners)")
        if not signers.is_file():
            raise IdentityMisconfigured(f"allowedSigners: {signers} is not a readable file")
        at = "-Overify-time=" + statement.issued_at.strftime("%Y%m%d%H%M%SZ")
        try:
            scratch_dir = tempfile.TemporaryDirectory(prefix="ringmaster-ssh-")
        except OSError as exc:
            raise IdentityMisconfigured(
                f"no writable temporary folder ({tempfile.gettempdir()}): {exc.strerror or exc}"
            ) from None
        with scratch_dir as scratch:
            sig = Path(scratch) / "request.sig"
            sig.write_text(signature.strip() + "\n", encoding="ascii", errors="replace")
            code, out, err = await self._keygen(
                ["-Y", "find-principals", "-s", str(sig), "-f", str(signers), at], b""
            )
            candidates = [name for line in out.splitlines() for name in line.split(",") if name.strip()]
            if code != 0 or not candidates:
                raise _Refused(
                    "the signature's key is not in the worker's allowed signers at the statement's time"
                    + _why(err)
                )
            verified: dict[str, str] = {}
            last_error = ""
            for name in candidates:
                if any(c in name for c in "*?!"):
                    continue  # a pattern names no one person
                verify = ["-Y", "verify", "-f", str(signers), "-I", name.strip(), "-n", identity.NAMESPACE]
                code, out, err = await self._keygen([*verify, "-s", str(sig), at], statement.canonical())
                if code == 0:
                    principal = identity.normalise(name, self.policy.aliases)
                    verified.setdefault(principal, _fingerprint(out + err))
                else:
                    last_error = err
        if not verified:
            raise _Refused(f"the SSH signature does not verify for this statement{_why(last_error)}")
        if len(verified) > 1:
            raise _Refused(
                f"the key is listed for several people ({', '.join(sorted(verified))}) in allowed signers"
            )
        ((principal, fingerprint),) = verified.items()
        return Verified(principal=principal, method="ssh", detail=fingerprint, nonce=statement.nonce)

    async def _keygen(self, args: Sequence[str], stdin: bytes) -> tuple[int, str, str]:
        """Run ``ssh-keygen`` (off the event loop, bounded in time): exit code, stdout, stderr."""
        try:
            child = await asyncio.create_subprocess_exec(
                self._ssh_keygen,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise IdentityMisconfigured(f"cannot run {self._ssh_keygen}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(child.communicate(stdin), SSH_KEYGEN_TIMEOUT_SECONDS)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise IdentityUnavailable(
                f"{self._ssh_keygen} did not answer within {SSH_KEYGEN_TIMEOUT_SECONDS:g}s"
            ) from None
        assert child.returncode is not None
        return child.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def _oidc(
        self, token: str, statement: Statement, expected: Expected
    ) -> tuple[Verified, authz.Token]:
        """The token's principal, and its issuer and text claims (for the authorization policy's groups)."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _Refused("the ID token is not a well-formed JWT") from None
        said = str(unverified.get("iss", ""))[:200]
        issuer = next((i for i in self.policy.issuers if i.issuer == said), None)
        if issuer is None:
            raise _Refused(f"this worker trusts no issuer {said!r}")
        alg = str(header.get("alg", ""))[:20]
        if alg not in issuer.algorithms:
            raise _Refused(f"the ID token is signed with {alg!r}; issuer {said} may use {issuer.algorithms}")
        kid = str(header.get("kid", ""))[:200]
        claims = await self._decode(token, issuer, kid, statement)
        jti = str(claims.get("jti", ""))
        if jti and jti in expected.used_token_ids:
            raise _Refused(f"ID token {jti} was already used on this release: a token authorises one request")
        problem = identity.claims_problem(
            issuer, claims, statement.action, identity.service_of(statement.workflow_id)
        )
        if problem:
            raise _Refused(problem)
        name = claims.get(issuer.principal_claim)
        if not isinstance(name, str) or not name:
            raise _Refused(f"the ID token has no {issuer.principal_claim!r} claim naming who acts")
        verified = Verified(
            principal=identity.normalise(issuer.principal_prefix + name, self.policy.aliases),
            method="oidc",
            detail=f"{issuer.issuer} {claims.get('sub', '')}",
            nonce=statement.nonce,
            token_id=jti,
        )
        text = {key: value for key, value in claims.items() if isinstance(value, str)}
        return verified, authz.Token(issuer=issuer.issuer, claims=text)

    async def _decode(self, token: str, issuer: Issuer, kid: str, statement: Statement) -> dict[str, Any]:
        if self._jwks is None:
            raise IdentityMisconfigured("this worker has no way to fetch issuers' keys (no JWKS client)")
        try:
            jwk = await self._jwks.key(issuer.jwks_url, kid)
        except JwksUnavailable as err:
            raise IdentityUnavailable(f"issuer {issuer.issuer}'s keys: {err}") from None
        except ValueError as err:
            raise IdentityMisconfigured(f"issuer {issuer.issuer}: jwksUrl: {err}") from None
        if jwk is None:
            raise _Refused(f"issuer {issuer.issuer} publishes no key {kid!r}")
        try:
            key = jwt.PyJWK(dict(jwk)).key
        except jwt.PyJWTError:
            raise _Refused(f"issuer {issuer.issuer}'s key {kid!r} cannot be used") from None
        audience = statement.audience()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=issuer.algorithms,
                audience=audience,
                issuer=issuer.issuer,
                leeway=self.policy.clock_skew,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _Refused("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise _Refused(
                f"the ID token's audience is not {audience}: it was issued for another statement"
            ) from None
        except jwt.ImmatureSignatureError:
            raise _Refused("the ID token is not valid yet (iat or nbf in the future)") from None
        except jwt.MissingRequiredClaimError as err:
            raise _Refused(f"the ID token has no {err.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise _Refused(f"the ID token's signature does not verify with {issuer.issuer}'s keys") from None
        except jwt.PyJWTError as err:
            raise _Refused(f"the ID token is refused: {type(err).__name__}") from None
        return claims


_FINGERPRINT = re.compile(r"key (SHA256:[A-Za-z0-9+/=]+)")


def _fingerprint(said: str) -> str:
    match = _FINGERPRINT.search(said)
    return match[1] if match else ""


def _why(stderr: str) -> str:
    """ssh-keygen's own reason (an expired key), when it gave one."""
    reasons = [line.strip() for line in stderr.splitlines() if "expired" in line or "not yet valid" in line]
    return f" ({reasons[-1][:300]})" if reasons else ""


def _scrub(text: str, proof: Proof | None) -> str:
    """``text`` without any piece of the proof's credential (a signature line, a token or its parts)."""
    if proof is None:
        return text
    pieces = [proof.id_token, *proof.id_token.split(".")]
    pieces += [line.strip() for line in proof.ssh_signature.splitlines() if "-----" not in line]
    for piece in sorted((p for p in pieces if len(p) >= 8), key=len, reverse=True):
        text = text.replace(piece, "[redacted]")
    return text
