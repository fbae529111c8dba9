"""The worker's identity policy file: loaded with path-named errors, signers found beside it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from policies import identity, loading

ISSUER = """\
issuers:
  - issuer: https://token.actions.githubusercontent.com
    jwksUrl: {url}
    principalClaim: actor
    principalPrefix: "github:"
    rules: [{{services: [shop], claims: {{repository: acme/shop}}}}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "identity.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class TestLoadIdentityPolicy:
    def test_a_full_policy_loads_with_signers_beside_it(self, tmp_path: Path) -> None:
        """Every field loads from its YAML name; a relative allowedSigners is read beside the file."""
        text = "mode: verified\nallowedSigners: keys/allowed_signers\nmaxAge: 5m\nclockSkew: 30s\n"
        text += "aliases: {alice@example.com: [github:alice-gh]}\n"
        text += ISSUER.format(url="https://token.actions.githubusercontent.com/.well-known/jwks")
        policy = loading.load_identity_policy(write(tmp_path, text))
        assert policy.allowed_signers == tmp_path / "keys" / "allowed_signers"
        assert policy.max_age == timedelta(minutes=5)
        assert policy.clock_skew == timedelta(seconds=30)
        assert policy.issuers[0].principal_prefix == "github:"
        assert identity.normalise("GitHub:Alice-GH", policy.aliases) == "alice@example.com"

    def test_an_absolute_allowed_signers_is_kept(self, tmp_path: Path) -> None:
        """An absolute allowedSigners path is used as written."""
        policy = loading.load_identity_policy(write(tmp_path, "allowedSigners: /etc/ringmaster/signers\n"))
        assert policy.allowed_signers == Path("/etc/ringmaster/signers")

    @pytest.mark.parametrize(
        ("text", "where", "message"),
        [
            ("mode: verified\n", ":1:1: mode:", "needs allowedSigners"),
            ("mode: sometimes\nallowedSigners: s\n", "mode:", "'verified' or 'trusted'"),
            ("allowedSigners: s\nmaxAge: soon\n", "maxAge:", "not a duration"),
            ("allowedSigners: s\nsigners: s\n", "signers:", "unknown field 'signers'"),
            (ISSUER.format(url="http://keys.example.com/jwks"), "issuers[0].jwksUrl:", "https only"),
            (ISSUER.format(url="ftp://127.0.0.1/jwks"), "issuers[0].jwksUrl:", "https only"),
            (
                "allowedSigners: s\n"
                + ISSUER.format(url="x").replace("algorithms", "a")
                + "    algorithms: [HS256]\n",
                "issuers[0].algorithms:",
                "asymmetric algorithms only",
            ),
            ("allowedSigners: s\naliases: {a: [b], c: [B]}\n", "aliases:", "alias of both"),
        ],
    )
    def test_problems_name_the_file_and_field(
        self, tmp_path: Path, text: str, where: str, message: str
    ) -> None:
        """Each mistake is reported with the file, the field's YAML path and what is allowed."""
        path = write(tmp_path, text)
        with pytest.raises(loading.ConfigError) as raised:
            loading.load_identity_policy(path)
        said = str(raised.value)
        assert str(path) in said
        assert where in said
        assert message in said

    def test_a_missing_file_is_named(self, tmp_path: Path) -> None:
        """A policy file that cannot be read is a ConfigError naming it."""
        with pytest.raises(loading.ConfigError, match="cannot read the file"):
            loading.load_identity_policy(tmp_path / "nowhere.yaml")

    def test_trusted_mode_needs_no_signers(self, tmp_path: Path) -> None:
        """A trusted policy is valid with neither signers nor issuers."""
        assert loading.load_identity_policy(write(tmp_path, "mode: trusted\n")).mode == "trusted"


class TestJwksUrl:
    @pytest.mark.parametrize(
        ("url", "allowed"),
        [
            ("https://token.actions.githubusercontent.com/.well-known/jwks", True),
            ("http://127.0.0.1:8080/jwks", True),
            ("http://localhost/jwks", True),
            ("http://127.0.0.1.example.com/jwks", False),
            ("http://10.0.0.1/jwks", False),
            ("https:///jwks", False),
            ("file:///etc/passwd", False),
        ],
    )
    def test_keys_come_over_tls_or_from_this_machine(self, url: str, allowed: bool) -> None:
        """https anywhere, plain http only to loopback names."""
        assert (identity.jwks_url_problem(url) == "") is allowed


class TestExample:
    def test_the_example_loads_beside_the_authorization_example(self) -> None:
        """deploy/examples/identity.yaml verifies, and trusts the issuer whose tokens the example
        authorization policy gives groups to."""
        examples = Path(__file__).resolve().parents[2] / "deploy" / "examples"
        policy = loading.load_identity_policy(examples / "identity.yaml")
        assert policy.mode == "verified"
        assert policy.allowed_signers == examples / "allowed_signers"
        authorization = loading.load_authorization_policy(examples / "authorization.yaml")
        token_issuers = {t.issuer for g in authorization.groups.values() for t in g.tokens}
        assert token_issuers <= {i.issuer for i in policy.issuers}
