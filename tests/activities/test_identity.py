"""verify_identity and attest_identity: real ssh-keygen signatures, a real issuer's tokens, real seals.

Every refusal is a result with a problem a person can act on, never an exception; the worker's own
trouble (no signers file, no ssh-keygen, an issuer's keys out of reach) is raised, non-retryable or
retryable. No credential ever reaches a problem or a log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import errors
from activities.identity import UNSIGNED, IdentityActivities
from activities.jwks import HttpJwks
from activities.models import AttestInput, VerifyInput, VerifyResult
from policies.authz import AuthorizationPolicy
from policies.identity import Attestation, Expected, IdentityPolicy, Proof, Statement
from sandbox import identity as sandbox_identity
from sandbox.processes import free_port
from tests.support.identity import NOW, Issuer, People, expected, running_issuer, sign, statement

KEY = b"k" * 32
ALIASES = {"alice@example.com": ["alice", "github:alice"]}
LISTED = 'namespaces="ringmaster"'


@pytest.fixture
def people(tmp_path: Path) -> People:
    """alice and bob's keys in a fresh folder."""
    return People(tmp_path)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    """A real OIDC issuer publishing its key set over HTTP."""
    yield from running_issuer(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    """Another issuer, which no policy here trusts."""
    yield from running_issuer(tmp_path_factory.mktemp("stranger"))


def policy(
    signers: Path | None = None, issuer: Issuer | None = None, *, mode: str = "verified", **rule: Any
) -> IdentityPolicy:
    """A policy trusting ``signers`` and ``issuer`` (``rule`` its one claim rule; default: anything)."""
    issuers = []
    if issuer is not None:
        issuers.append(
            {
                "issuer": issuer.url,
                "jwksUrl": issuer.jwks_url,
                "principalClaim": "actor",
                "principalPrefix": "github:",
                "rules": [rule or {}],
            }
        )
    return IdentityPolicy.model_validate(
        {"mode": mode, "allowedSigners": signers, "issuers": issuers, "aliases": ALIASES}
    )


def activities(identity: IdentityPolicy, **options: Any) -> IdentityActivities:
    return IdentityActivities(identity, KEY, HttpJwks(), **options)


async def verify(acts: IdentityActivities, inp: VerifyInput) -> VerifyResult:
    result: VerifyResult = await ActivityEnvironment().run(acts.verify, inp)
    return result


def ssh_proof(people: People, said: Statement, name: str = "alice", namespace: str = "ringmaster") -> Proof:
    return Proof(statement=said, ssh_signature=sign(people.key(name), said.canonical(), namespace))


def fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def now() -> datetime:
    return datetime.now(UTC)


class TestSshProofs:
    async def test_a_listed_key_proves_its_principal_normalised(self, people: People) -> None:
        """A signature by a listed key yields its principal, case-folded, with the key's fingerprint."""
        signers = people.signers(("Alice@Example.COM", "alice", LISTED))
        said = statement()
        result = await verify(
            activities(policy(signers)), VerifyInput(expected=expected(said), proof=ssh_proof(people, said))
        )
        assert result.problem == ""
        assert result.verified is not None
        assert result.verified.principal == "alice@example.com"
        assert result.verified.method == "ssh"
        assert result.verified.detail == fingerprint(people.key("alice").with_suffix(".pub"))
        assert result.verified.nonce == said.nonce
        assert result.mode == "verified"

    async def test_a_key_not_listed_is_refused(self, people: People) -> None:
        """bob's signature proves nothing when only alice's key is listed."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement()
        result = await verify(
            activities(policy(signers)),
            VerifyInput(expected=expected(said), proof=ssh_proof(people, said, "bob")),
        )
        assert result.verified is None
        assert "not in the worker's allowed signers" in result.problem

    async def test_a_signature_of_another_namespace_is_refused(self, people: People) -> None:
        """A signature made for git (-n git) cannot be replayed as a ringmaster request."""
        signers = people.signers(("alice@example.com", "alice", ""))
        said = statement()
        proof = ssh_proof(people, said, namespace="git")
        result = await verify(activities(policy(signers)), VerifyInput(expected=expected(said), proof=proof))
        assert result.verified is None
        assert result.problem

    async def test_a_statement_changed_after_signing_is_refused(self, people: People) -> None:
        """Changing the reason after signing breaks the signature, even if the workflow expects it."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        signed = statement()
        changed = signed.model_copy(update={"reason": "something else"})
        proof = Proof(statement=changed, ssh_signature=ssh_proof(people, signed).ssh_signature)
        result = await verify(
            activities(policy(signers)), VerifyInput(expected=expected(changed), proof=proof)
        )
        assert result.verified is None
        assert "does not verify" in result.problem

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"action": "abort"}, "action"),
            ({"workflow_id": "release:shop:v3"}, "workflow_id"),
            ({"run_id": "run-2"}, "run_id"),
            ({"ring": "broad"}, "ring"),
        ],
    )
    async def test_a_proof_for_another_request_is_refused(
        self, people: People, change: dict[str, str], field: str
    ) -> None:
        """A valid signature over another action, release or run authorises nothing here."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement()
        result = await verify(
            activities(policy(signers)),
            VerifyInput(expected=expected(said, **change), proof=ssh_proof(people, said)),
        )
        assert result.verified is None
        assert f"the proof is for {field}" in result.problem

    async def test_a_replayed_nonce_is_refused(self, people: People) -> None:
        """A statement whose nonce the release already accepted is a replay."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement()
        inp = VerifyInput(expected=expected(said, used_nonces=[said.nonce]), proof=ssh_proof(people, said))
        result = await verify(activities(policy(signers)), inp)
        assert "replayed" in result.problem

    @pytest.mark.parametrize(
        ("issued", "message"),
        [(NOW - timedelta(hours=1), "older than"), (NOW + timedelta(minutes=10), "in the future")],
    )
    async def test_a_statement_out_of_its_time_is_refused(
        self, people: People, issued: datetime, message: str
    ) -> None:
        """A statement older than maxAge, or further ahead than clockSkew, is refused."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement(issued_at=issued)
        result = await verify(
            activities(policy(signers)), VerifyInput(expected=expected(said), proof=ssh_proof(people, said))
        )
        assert message in result.problem

    async def test_a_signer_past_valid_before_is_refused(self, people: People) -> None:
        """A key listed until 2020 no longer signs for anyone: ssh-keygen judges at the statement's time."""
        signers = people.signers(("alice@example.com", "alice", LISTED + ',valid-before="20200101"'))
        said = statement()
        result = await verify(
            activities(policy(signers)), VerifyInput(expected=expected(said), proof=ssh_proof(people, said))
        )
        assert result.verified is None
        assert "expired" in result.problem

    async def test_signatures_are_refused_without_a_signers_file(
        self, people: People, issuer: Issuer
    ) -> None:
        """A policy of issuers only refuses SSH signatures (the person's choice of proof, not a fault)."""
        said = statement()
        result = await verify(
            activities(policy(None, issuer)),
            VerifyInput(expected=expected(said), proof=ssh_proof(people, said)),
        )
        assert "accepts no SSH signatures" in result.problem


class TestOidcProofs:
    async def test_a_trusted_issuers_token_proves_its_actor(self, issuer: Issuer) -> None:
        """A trusted issuer's token for this statement yields prefix + actor, normalised by aliases."""
        said = statement()
        token = issuer.token("Alice", said.audience())
        proof = Proof(statement=said, id_token=token)
        result = await verify(
            activities(policy(None, issuer)), VerifyInput(expected=expected(said), proof=proof)
        )
        assert result.problem == ""
        assert result.verified is not None
        assert result.verified.principal == "alice@example.com"
        assert result.verified.method == "oidc"
        assert result.verified.detail == f"{issuer.url} Alice"
        assert result.verified.token_id == jwt.decode(token, options={"verify_signature": False})["jti"]

    async def test_a_token_for_another_statement_is_refused(self, issuer: Issuer) -> None:
        """The audience binds the token to one statement's digest."""
        said = statement()
        proof = Proof(statement=said, id_token=issuer.token("alice", statement().audience()))
        result = await verify(
            activities(policy(None, issuer)), VerifyInput(expected=expected(said), proof=proof)
        )
        assert "audience" in result.problem

    async def test_an_expired_token_is_refused(self, issuer: Issuer) -> None:
        """A token past its exp (beyond the clock skew) is refused."""
        said = statement()
        token = issuer.token("alice", said.audience(), now=now() - timedelta(hours=1))
        result = await verify(
            activities(policy(None, issuer)),
            VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=token)),
        )
        assert "expired" in result.problem

    async def test_a_token_of_an_untrusted_issuer_is_refused(self, issuer: Issuer, stranger: Issuer) -> None:
        """Only issuers named in the policy count, whatever a token says of itself."""
        said = statement()
        token = stranger.token("alice", said.audience())
        result = await verify(
            activities(policy(None, issuer)),
            VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=token)),
        )
        assert f"trusts no issuer {stranger.url!r}" in result.problem

    async def test_a_token_claiming_a_trusted_issuer_signed_by_another_key_is_refused(
        self, issuer: Issuer, stranger: Issuer
    ) -> None:
        """A token naming the trusted issuer but signed with another key names no key it publishes."""
        said = statement()
        forged = sandbox_token(stranger.key, issuer.url, said.audience())
        result = await verify(
            activities(policy(None, issuer)),
            VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=forged)),
        )
        assert result.verified is None
        assert "publishes no key" in result.problem

    async def test_an_unsigned_token_is_refused(self, issuer: Issuer) -> None:
        """alg none is never accepted."""
        said = statement()
        claims = claims_for(issuer, said.audience())
        unsigned = jwt.encode(claims, None, algorithm="none")
        result = await verify(
            activities(policy(None, issuer)),
            VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=unsigned)),
        )
        assert "signed with 'none'" in result.problem

    async def test_an_hmac_forged_with_the_public_key_is_refused(self, issuer: Issuer) -> None:
        """HS256 keyed with the issuer's public key (the classic confusion) is refused."""
        said = statement()
        public = sandbox_identity.read_private_key(issuer.key).public_key()
        public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = sandbox_identity.public_jwk(sandbox_identity.read_private_key(issuer.key))["kid"]
        forged = hs256(claims_for(issuer, said.audience()), public_pem, kid)
        result = await verify(
            activities(policy(None, issuer)),
            VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=forged)),
        )
        assert result.verified is None
        assert "signed with 'HS256'" in result.problem

    async def test_a_token_is_accepted_once(self, issuer: Issuer) -> None:
        """A token whose jti the release already accepted is refused."""
        said = statement()
        token = issuer.token("alice", said.audience())
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        inp = VerifyInput(
            expected=expected(said, used_token_ids=[jti]), proof=Proof(statement=said, id_token=token)
        )
        result = await verify(activities(policy(None, issuer)), inp)
        assert "already used" in result.problem

    async def test_claims_outside_every_rule_are_refused(self, issuer: Issuer) -> None:
        """A token from another repository matches no rule of its issuer."""
        said = statement()
        token = issuer.token("alice", said.audience(), extra={"repository": "acme/other"})
        acts = activities(policy(None, issuer, claims={"repository": "acme/shop"}))
        result = await verify(
            acts, VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=token))
        )
        assert "no rule of issuer" in result.problem
        token = issuer.token("alice", said.audience(), extra={"repository": "acme/shop"})
        result = await verify(
            acts, VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=token))
        )
        assert result.verified is not None

    async def test_an_unreachable_key_set_retries(self, issuer: Issuer) -> None:
        """When the issuer's keys cannot be fetched the attempt fails retryably: nobody is refused."""
        down = Issuer(f"http://127.0.0.1:{free_port()}", issuer.key)
        said = statement()
        token = down.token("alice", said.audience())
        with pytest.raises(ApplicationError) as raised:
            await verify(
                activities(policy(None, down)),
                VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=token)),
            )
        assert raised.value.type == errors.IDENTITY_UNAVAILABLE
        assert not raised.value.non_retryable
        assert token not in raised.value.message


class TestAttestations:
    def order(self, **fields: Any) -> Attestation:
        values: dict[str, Any] = {
            "principal": "alice@example.com",
            "method": "ssh",
            "detail": "SHA256:abc",
            "action": "hold",
            "workflow_id": "cluster:shop:v2:euw1-prod",
            "ring": "beta",
            "cluster": "euw1-prod",
            "reason": "pager",
            "issued_at": NOW - timedelta(seconds=5),
            "nonce": "0" * 32,
        }
        return Attestation.model_validate({**values, **fields})

    def expecting(self, order: Attestation, **fields: Any) -> Expected:
        values = order.model_dump(
            include={"action", "workflow_id", "ring", "cluster", "reason"}, by_alias=False
        )
        return Expected.model_validate({**values, "entered_at": NOW, **fields})

    async def seal(self, acts: IdentityActivities, order: Attestation) -> Attestation:
        sealed: Attestation = await ActivityEnvironment().run(acts.attest, AttestInput(attestation=order))
        return sealed

    async def test_a_sealed_order_is_attested(self) -> None:
        """An order the worker sealed verifies, as attested, naming how the person was verified."""
        acts = activities(policy(mode="trusted"))
        sealed = await self.seal(acts, self.order())
        assert sealed.mac == hmac.new(KEY, self.order().message(), hashlib.sha256).hexdigest()
        result = await verify(acts, VerifyInput(expected=self.expecting(sealed), attestation=sealed))
        assert result.verified is not None
        assert result.verified.principal == "alice@example.com"
        assert result.verified.method == "attested"
        assert "ssh" in result.verified.detail
        assert result.verified.nonce == "0" * 32

    async def forgeries(self, acts: IdentityActivities) -> tuple[Attestation, list[Attestation]]:
        sealed = await self.seal(acts, self.order())
        flipped = sealed.model_copy(update={"mac": ("1" if sealed.mac[0] == "0" else "0") + sealed.mac[1:]})
        other = await self.seal(IdentityActivities(policy(mode="trusted"), b"o" * 32), self.order())
        return sealed, [flipped, other, sealed.model_copy(update={"principal": "mallory"})]

    async def test_a_tampered_seal_is_refused(self, tmp_path: Path) -> None:
        """A MAC that is not the worker's (one digit changed, or another key's) proves nothing."""
        acts = activities(policy(tmp_path / "allowed_signers"))
        sealed, forged = await self.forgeries(acts)
        for order in forged:
            result = await verify(acts, VerifyInput(expected=self.expecting(sealed), attestation=order))
            assert result.verified is None
            assert "seal does not verify" in result.problem

    async def test_a_trusted_worker_takes_a_seal_it_cannot_check_on_its_word(self) -> None:
        """Under trusted (a key per process), another worker's order is the client's word: method trusted."""
        acts = activities(policy(mode="trusted"))
        sealed, forged = await self.forgeries(acts)
        for order in forged:
            result = await verify(acts, VerifyInput(expected=self.expecting(sealed), attestation=order))
            assert result.verified is not None
            assert result.verified.method == "trusted"
            assert result.verified.principal == order.principal

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"workflow_id": "cluster:shop:v2:usw2-prod"}, "for workflow_id"),
            ({"action": "abort"}, "for action"),
            ({"used_nonces": ["0" * 32]}, "replayed"),
            ({"entered_at": NOW + timedelta(hours=1)}, "older than"),
        ],
    )
    async def test_an_order_for_another_workflow_or_time_is_refused(
        self, change: dict[str, Any], message: str
    ) -> None:
        """A sealed order authorises its one workflow, action and nonce, while it is fresh."""
        acts = activities(policy(mode="trusted"))
        sealed = await self.seal(acts, self.order())
        result = await verify(
            acts, VerifyInput(expected=self.expecting(sealed, **change), attestation=sealed)
        )
        assert result.verified is None
        assert message in result.problem


class TestModes:
    async def test_verified_mode_refuses_a_request_without_proof(self, people: People) -> None:
        """Under verified, the client's word is not enough."""
        acts = activities(policy(people.signers(("alice@example.com", "alice", LISTED))))
        result = await verify(acts, VerifyInput(expected=expected(statement()), claimed_by="alice"))
        assert result.verified is None
        assert result.problem == UNSIGNED

    @pytest.mark.parametrize(("claimed", "principal"), [("Alice", "alice@example.com"), ("", "")])
    async def test_trusted_mode_takes_the_clients_word(self, claimed: str, principal: str) -> None:
        """Under trusted, the claimed name (normalised) is the principal; empty is the workflow's call."""
        result = await verify(
            activities(policy(mode="trusted")),
            VerifyInput(expected=expected(statement()), claimed_by=claimed),
        )
        assert result.mode == "trusted"
        assert result.verified is not None
        assert (result.verified.principal, result.verified.method) == (principal, "trusted")

    async def test_trusted_mode_still_refuses_a_bad_proof(self, people: People) -> None:
        """A proof that is sent is checked, whatever the mode: bob's unlisted key is refused."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement()
        inp = VerifyInput(expected=expected(said), proof=ssh_proof(people, said, "bob"), claimed_by="alice")
        result = await verify(activities(policy(signers, mode="trusted")), inp)
        assert result.mode == "trusted"
        assert result.verified is None
        assert result.problem


def authorization(**groups: Any) -> AuthorizationPolicy:
    """alice submits and approves beta of shop; sre approves broad; nothing else (default deny)."""
    return AuthorizationPolicy.model_validate(
        {
            "groups": {"sre": {"members": ["bob@example.com"]}, **groups},
            "rules": [
                {"name": "alice-ships-shop", "principals": ["alice@example.com"], "services": ["shop"],
                 "actions": ["submit", "hold"]},
                {"name": "early-rings", "principals": ["alice@example.com"], "rings": ["beta"],
                 "actions": ["approve"]},
                {"name": "sre-broad", "groups": ["sre"], "rings": ["broad"], "actions": ["approve"]},
                {"name": "ci-approves", "groups": ["ci"] if groups else ["sre"], "actions": ["approve"]},
            ],
        }
    )  # fmt: skip


class TestAuthorization:
    """With an authorization policy, verify_identity also judges what the verified principal asks."""

    async def test_an_allowed_request_names_its_rule_in_the_detail(self, people: People) -> None:
        """alice may approve beta: verified, with the rule after the key's fingerprint, and on record."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement(ring="beta")
        acts = activities(policy(signers), authorization=authorization())
        result = await verify(acts, VerifyInput(expected=expected(said), proof=ssh_proof(people, said)))
        assert result.problem == ""
        assert result.verified is not None
        assert result.verified.detail == (
            f"{fingerprint(people.key('alice').with_suffix('.pub'))}; "
            "authorized by rule 'early-rings' (rules[1])"
        )
        (decision,) = result.authorization
        assert (decision.allowed, decision.rule, decision.index) == (True, "early-rings", 1)
        assert (decision.inputs.principal, decision.inputs.service, decision.inputs.ring) == (
            "alice@example.com",
            "shop",
            "beta",
        )

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            (
                {"ring": "broad"},
                "not authorized: no rule allows alice@example.com (in no group) to approve shop ring broad",
            ),
            ({"action": "abort", "ring": ""}, "no rule allows alice@example.com (in no group) to abort shop"),
            ({"workflow_id": "release:api:v2", "action": "submit", "ring": ""}, "to submit api"),
        ],
    )
    async def test_a_refused_request_is_a_problem_naming_why(
        self, people: People, fields: dict[str, str], message: str
    ) -> None:
        """A verified principal no rule allows is refused as a problem, with the decision on record."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement(**fields)
        acts = activities(policy(signers), authorization=authorization())
        result = await verify(acts, VerifyInput(expected=expected(said), proof=ssh_proof(people, said)))
        assert result.verified is None
        assert message in result.problem
        assert [d.allowed for d in result.authorization] == [False]

    async def test_a_superseding_submission_needs_abort_too(self, people: People) -> None:
        """alice may submit shop, not abort it: her --supersede is refused, naming the abort."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        acts = activities(policy(signers), authorization=authorization())
        said = statement(action="submit", ring="", reason="supersede", run_id="")
        result = await verify(acts, VerifyInput(expected=expected(said), proof=ssh_proof(people, said)))
        assert "to abort shop" in result.problem and "--supersede" in result.problem
        assert [d.inputs.action for d in result.authorization] == ["submit", "abort"]
        said = statement(action="submit", ring="", reason="rerun", run_id="")
        result = await verify(acts, VerifyInput(expected=expected(said), proof=ssh_proof(people, said)))
        assert result.verified is not None

    async def test_a_tokens_claims_put_its_principal_in_a_group(self, issuer: Issuer) -> None:
        """A token of the shop repository is in group ci, so it may approve; another repository's is not."""
        ci = {"ci": {"tokens": [{"issuer": issuer.url, "claims": {"repository": "acme/shop"}}]}}
        acts = activities(policy(None, issuer), authorization=authorization(**ci))
        for repository, allowed in (("acme/shop", True), ("acme/other", False)):
            said = statement(ring="internal")
            token = issuer.token("carol", said.audience(), extra={"repository": repository})
            result = await verify(
                acts, VerifyInput(expected=expected(said), proof=Proof(statement=said, id_token=token))
            )
            assert (result.verified is not None) is allowed, result.problem
            (decision,) = result.authorization
            assert decision.inputs.principal == "github:carol"
            assert decision.inputs.issuer == issuer.url
            assert decision.inputs.groups == (["ci"] if allowed else [])

    async def test_an_attested_order_is_not_judged_again(self) -> None:
        """A release's sealed order to its cluster was judged when it reached the release: not again."""
        acts = activities(policy(mode="trusted"), authorization=authorization())
        order = TestAttestations().order(principal="eve@example.com", action="hold")
        sealed = await TestAttestations().seal(acts, order)
        result = await verify(
            acts, VerifyInput(expected=TestAttestations().expecting(sealed), attestation=sealed)
        )
        assert result.verified is not None and result.verified.principal == "eve@example.com"
        assert result.authorization == []
        assert "authorized" not in result.verified.detail

    async def test_under_trusted_identity_the_claimed_name_is_judged(self) -> None:
        """Without verified identity the client's word is what the policy judges (the worker warns)."""
        acts = activities(policy(mode="trusted"), authorization=authorization())
        said = statement(ring="broad")
        for claimed, allowed in (("Bob@Example.com", True), ("alice", False), ("", False)):
            result = await verify(acts, VerifyInput(expected=expected(said), claimed_by=claimed))
            assert (result.verified is not None) is allowed, result.problem

    async def test_without_a_policy_nothing_is_judged(self, people: People) -> None:
        """No authorization policy: everyone verified may do everything, as before."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement(ring="broad", action="abort")
        result = await verify(
            activities(policy(signers)), VerifyInput(expected=expected(said), proof=ssh_proof(people, said))
        )
        assert result.verified is not None
        assert result.authorization == []
        assert "authorized" not in result.verified.detail


class TestMisconfiguration:
    async def test_a_missing_signers_file_fails_without_retry(self, people: People) -> None:
        """An allowedSigners that does not exist is the worker's fault: non-retryable, naming the file."""
        said = statement()
        missing = people.directory / "nowhere"
        with pytest.raises(ApplicationError) as raised:
            await verify(
                activities(policy(missing)),
                VerifyInput(expected=expected(said), proof=ssh_proof(people, said)),
            )
        assert raised.value.type == errors.IDENTITY_MISCONFIGURED
        assert raised.value.non_retryable
        assert str(missing) in raised.value.message

    async def test_a_missing_ssh_keygen_fails_without_retry(self, people: People) -> None:
        """Without ssh-keygen nothing can be verified: non-retryable."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        said = statement()
        acts = activities(policy(signers), ssh_keygen=str(people.directory / "no-ssh-keygen"))
        with pytest.raises(ApplicationError) as raised:
            await verify(acts, VerifyInput(expected=expected(said), proof=ssh_proof(people, said)))
        assert raised.value.type == errors.IDENTITY_MISCONFIGURED
        assert raised.value.non_retryable


class TestNoCredentialLeaks:
    async def test_no_token_or_signature_in_problems_or_logs(
        self, people: People, issuer: Issuer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Refusals of every kind name what failed, never the token or the signature itself."""
        signers = people.signers(("alice@example.com", "alice", LISTED))
        acts = activities(policy(signers, issuer, claims={"repository": "acme/shop"}))
        said = statement()
        proofs = [
            ssh_proof(people, said, "bob"),
            ssh_proof(people, said, namespace="git"),
            Proof(
                statement=said.model_copy(update={"reason": "x"}),
                ssh_signature=ssh_proof(people, said).ssh_signature,
            ),
            Proof(
                statement=said,
                id_token=issuer.token("alice", said.audience(), now=now() - timedelta(hours=1)),
            ),
            Proof(statement=said, id_token=issuer.token("alice", "ringmaster:other")),
            Proof(statement=said, id_token=issuer.token("alice", said.audience())),  # no rule matches
            Proof(statement=said, id_token="not.a-token.at-all-but-secret"),
        ]
        secrets: list[str] = []
        for proof in proofs:
            secrets += [proof.id_token, *proof.id_token.split(".")] if proof.id_token else []
            secrets += [line for line in proof.ssh_signature.splitlines() if "-----" not in line]
        problems = []
        caplog.set_level(logging.DEBUG)
        with capture_logs() as events:
            for proof in proofs:
                result = await verify(acts, VerifyInput(expected=expected(proof.statement), proof=proof))
                assert result.verified is None
                problems.append(result.problem)
        assert all(problems)
        said_anywhere = "\n".join(problems) + repr(events) + caplog.text
        assert events
        leaked = [s for s in secrets if len(s) >= 8 and s in said_anywhere]
        assert leaked == []


def claims_for(issuer: Issuer, audience: str) -> dict[str, Any]:
    issued = int(now().timestamp())
    return {
        "iss": issuer.url,
        "sub": "alice",
        "actor": "alice",
        "aud": audience,
        "iat": issued,
        "exp": issued + 300,
    }


def sandbox_token(key: Path, claimed_issuer: str, audience: str) -> str:
    """A token that says it comes from ``claimed_issuer`` but is signed with ``key``."""
    return Issuer(claimed_issuer, key).token("alice", audience)


def hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """A JWT signed HS256 with ``secret``, built by hand (PyJWT refuses to key HMAC with a PEM)."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(mac)}"
