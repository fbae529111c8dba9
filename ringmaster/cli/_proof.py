"""What proves who sends a submission or a control: an SSH signature, or a CI provider's OIDC token.

The CLI states exactly one action on one release (:class:`policies.identity.Statement`) and proves it
with the first of these that is available:

1. ``--sign-with KEY`` or ``$RINGMASTER_SIGNING_KEY``: ``ssh-keygen -Y sign -n ringmaster`` with that
   key (a person's key, as git signs commits; an agent-held key works through its ``.pub`` file);
2. GitHub Actions' OIDC token (``permissions: id-token: write``) minted for the audience
   ``ringmaster:<statement digest>``, so it authorises this request and no other;
3. ``$RINGMASTER_TOKEN_COMMAND``: any command printing an OIDC token for the audience given as
   ``{audience}`` (``gcloud auth print-identity-token --audiences={audience}``, the sandbox's
   ``python -m sandbox token --as ci --audience {audience}``).

Without any, the request goes unsigned: a worker that verifies identity refuses it, naming what to
do. Neither the key nor a token is printed or logged.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from policies.identity import NAMESPACE, Action, Proof, Statement

SignOpt = Annotated[
    Path | None,
    typer.Option(
        "--sign-with",
        help="SSH private key to sign the request with (ssh-keygen -Y sign); default "
        "$RINGMASTER_SIGNING_KEY, else the CI's OIDC token when the job can mint one.",
        show_default=False,
    ),
]

TIMEOUT = 30.0
"""Seconds a signature or a token may take (a hardware key waits for a touch)."""


class ProofError(Exception):
    """The request cannot be proved as asked (exit 2): a missing key, a failed token request."""


def statement(
    action: Action,
    workflow_id: str,
    *,
    run_id: str = "",
    image: str = "",
    plan_digest: str = "",
    ring: str = "",
    cluster: str = "",
    reason: str = "",
) -> Statement:
    """A fresh statement of one request: now, with a nonce of its own."""
    return Statement(
        action=action,
        workflow_id=workflow_id,
        run_id=run_id,
        image=image,
        plan_digest=plan_digest,
        ring=ring,
        cluster=cluster,
        reason=reason,
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )


def prove(said: Statement, sign_with: Path | None) -> Proof | None:
    """``said`` with its proof, or None when nothing here can prove it (see the module docstring)."""
    key = sign_with or _env_path("RINGMASTER_SIGNING_KEY")
    if key is not None:
        return Proof(statement=said, ssh_signature=ssh_sign(said.canonical(), key))
    token = github_token(said.audience()) or command_token(said.audience())
    if token:
        return Proof(statement=said, id_token=token)
    return None


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def ssh_sign(data: bytes, key: Path) -> str:
    """The armored SSH signature of ``data`` under namespace ``ringmaster``."""
    if not key.exists():
        raise ProofError(f"--sign-with {key}: no such key file")
    program = shutil.which("ssh-keygen")
    if program is None:
        raise ProofError("--sign-with needs ssh-keygen (OpenSSH 8.2 or newer) on PATH")
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [program, "-q", "-Y", "sign", "-n", NAMESPACE, "-f", str(key)],
            input=data,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProofError(f"--sign-with {key}: ssh-keygen did not sign within {TIMEOUT:.0f} s") from None
    signature = done.stdout.decode(errors="replace")
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in signature:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise ProofError(f"--sign-with {key}: ssh-keygen could not sign: {said[-1] if said else 'no output'}")
    return signature


def github_token(audience: str) -> str:
    """A GitHub Actions OIDC token for ``audience``, or "" outside a job allowed to mint one."""
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if not url or not bearer:
        return ""
    sep = "&" if "?" in url else "?"
    request = urllib.request.Request(  # noqa: S310 - the runner's own https endpoint
        f"{url}{sep}audience={urllib.parse.quote(audience, safe='')}",
        headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310
            value = json.loads(answer.read()).get("value", "")
    except (OSError, ValueError) as err:
        raise ProofError(f"GitHub Actions would not mint an OIDC token: {err}") from None
    if not isinstance(value, str) or not value:
        raise ProofError("GitHub Actions answered the OIDC token request without a token")
    return value


def command_token(audience: str) -> str:
    """The token ``$RINGMASTER_TOKEN_COMMAND`` prints for ``audience``, or "" when it is not set."""
    template = os.environ.get("RINGMASTER_TOKEN_COMMAND", "").strip()
    if not template:
        return ""
    argv = [part.replace("{audience}", audience) for part in shlex.split(template)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ProofError(f"RINGMASTER_TOKEN_COMMAND failed: {type(err).__name__}: {err}") from None
    token = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0 or not token:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise ProofError(
            f"RINGMASTER_TOKEN_COMMAND exited {done.returncode}: {said[-1] if said else 'no token printed'}"
        )
    return token


def proved(said: Statement, sign_with: Path | None) -> Proof | None:
    """The proof of ``said``, or exit 2 naming why it cannot be made (release commands only)."""
    from ringmaster.cli._client import Stop  # noqa: PLC0415 - see _client
    from ringmaster.exitcodes import ExitCode  # noqa: PLC0415

    try:
        return prove(said, sign_with)
    except ProofError as err:
        raise Stop(ExitCode.INVALID, str(err)) from None
