"""``ringmaster policy check``: what the authorization policy allows, for the people writing it.

It judges one request exactly as ``verify_identity`` does on the worker (:func:`policies.authz.decisions`):
the principal as verified (``--as``; folded, and aliases replaced when the identity policy
``RINGMASTER_IDENTITY_POLICY`` names is readable here), the action, the service of the release, the
ring an approval names, and the groups an OIDC token's claims give (``--issuer`` and ``--claim``).
The policy is ``--policy FILE``, else ``RINGMASTER_AUTHORIZATION_POLICY``; with neither, the answer
is what a worker without a policy does: everything is allowed.

Exit codes (:mod:`ringmaster.exitcodes`): 0 allowed, 5 refused, 2 invalid input (an invalid policy
file, options that do not fit the action). Files only: it imports neither Temporal nor the worker.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from policies import authz, identity, loading
from ringmaster.cli.options import Output, OutputOpt, ReleaseArg, command_group
from ringmaster.exitcodes import ExitCode
from ringmaster.settings import Settings

SETTING = "RINGMASTER_AUTHORIZATION_POLICY"

app = command_group("policy", "The authorization policy: who may do what.")


class ActionArg(StrEnum):
    """The actions a rule can allow (``policies.authz.PERMISSIONS``)."""

    SUBMIT = "submit"
    APPROVE = "approve"
    HOLD = "hold"
    RESUME = "resume"
    ABORT = "abort"
    ROLLBACK = "rollback"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"


@app.command()
def check(
    action: Annotated[ActionArg, typer.Argument(help="What the principal asks to do.", show_default=False)],
    release: ReleaseArg,
    principal: Annotated[
        str,
        typer.Option(
            "--as",
            help="The principal as the worker verifies it: alice@example.com, github:alice.",
            show_default=False,
        ),
    ],
    ring: Annotated[str | None, typer.Option("--ring", help="The ring an approval names.")] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="The cluster an approval (with --ring) names.")
    ] = None,
    supersede: Annotated[
        bool, typer.Option("--supersede", help="A submission that aborts the running release.")
    ] = False,
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="The OIDC issuer whose token vouches for the principal.")
    ] = None,
    claims: Annotated[
        list[str] | None,
        typer.Option("--claim", help="NAME=VALUE of that token (repeatable): groups' tokens match them."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help=f"The policy file; default ${SETTING}.")
    ] = None,
    output: OutputOpt = Output.TEXT,
) -> NoReturn:
    """Say whether the authorization policy allows a principal an action on a release, and by which rule."""
    request = _request(action, release, principal, ring, cluster, supersede, issuer, claims or [], output)
    settings = _settings(output)
    path = policy or settings.authorization_policy
    aliases, identity_policy = _aliases(settings, output)
    document: dict[str, Any] = {
        "policy": str(path) if path else None,
        "identityPolicy": str(identity_policy) if identity_policy else None,
    }
    if path is None:
        said = (
            f"allowed: no authorization policy (--policy or {SETTING}): "
            "a worker without one allows every principal everything"
        )
        _finish(ExitCode.OK, {"allowed": True, **document, "decisions": []}, said, output)
    try:
        loaded = loading.load_authorization_policy(path)
    except loading.ConfigError as err:
        _config_error(err, output)
    found = authz.decisions(loaded, request, supersede=supersede, aliases=aliases)
    allowed = not authz.refusal(found)
    lines = [f"{'allowed' if d.allowed else 'refused'}: {d.reason}" for d in found]
    lines.append(f"policy {path}")
    document |= {"allowed": allowed, "decisions": [d.model_dump(mode="json") for d in found]}
    _finish(ExitCode.OK if allowed else ExitCode.NOT_ALLOWED, document, "\n".join(lines), output)


COMMANDS = (check,)
"""The commands of this module (``ringmaster policy ...``)."""


def _request(
    action: ActionArg,
    release: str,
    principal: str,
    ring: str | None,
    cluster: str | None,
    supersede: bool,
    issuer: str | None,
    claims: list[str],
    output: Output,
) -> authz.Request:
    """The request as the worker would judge it, or exit 2 when the options do not fit the action."""
    if not principal.strip():
        _fail("--as names nobody", output)
    # freeze and unfreeze act on the fleet-wide registry: the worker judges them with no service.
    service = "" if action in (ActionArg.FREEZE, ActionArg.UNFREEZE) else _service(release, output)
    if action is ActionArg.APPROVE and not ring:
        _fail("approve names a ring: add --ring", output)
    if ring and action is not ActionArg.APPROVE:
        _fail(f"--ring: only approvals name a ring ({action} acts on the whole release)", output)
    if cluster and action not in (ActionArg.APPROVE, ActionArg.ROLLBACK):
        _fail(f"--cluster: {action} names no cluster (approve --ring R --cluster C, rollback do)", output)
    if supersede and action is not ActionArg.SUBMIT:
        _fail("--supersede is a submission's", output)
    if claims and not issuer:
        _fail("--claim needs --issuer (the issuer of the token the claims are from)", output)
    said: dict[str, str] = {}
    for claim in claims:
        name, sep, value = claim.partition("=")
        if not sep or not name:
            _fail(f"--claim {claim!r}: write NAME=VALUE (repository=acme/payments)", output)
        said[name] = value
    token = authz.Token(issuer=issuer, claims=said) if issuer else None
    fields = {"principal": principal, "action": action.value, "service": service}
    return authz.Request.model_validate(
        {**fields, "ring": ring or "", "cluster": cluster or "", "token": token}
    )


def _service(release: str, output: Output) -> str:
    """The service of ``service:version`` or of a release's workflow id (``release:service:version``)."""
    if release.startswith("release:"):
        service = identity.service_of(release)
        version = release.removeprefix(f"release:{service}:")
    else:
        service, _, version = release.partition(":")
    if not service or not version:
        _fail(f"release {release!r}: write service:version (e.g. payments:v42) or a workflow id", output)
    return service


def _settings(output: Output) -> Settings:
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        variable = "RINGMASTER_" + "_".join(str(part) for part in first["loc"]).upper()
        _fail(f"invalid settings: {variable}: {first['msg']}", output)


def _aliases(settings: Settings, output: Output) -> tuple[dict[str, list[str]], Path | None]:
    """The identity policy's aliases, when the one the settings name is here (exit 2 if it is invalid)."""
    path = settings.identity_policy
    if path is None or not path.exists():
        return {}, None
    try:
        return loading.load_identity_policy(path).aliases, path
    except loading.ConfigError as err:
        _config_error(err, output)


def _config_error(err: loading.ConfigError, output: Output) -> NoReturn:
    problems = [
        {"source": err.source_of(p), "path": p.path, "line": p.line, "column": p.column, "message": p.message}
        for p in err.problems
    ]
    _finish(ExitCode.INVALID, {"error": str(err), "problems": problems}, f"error: {err}", output)


def _fail(message: str, output: Output) -> NoReturn:
    _finish(ExitCode.INVALID, {"error": message}, f"error: {message}", output)


def _finish(code: ExitCode, document: dict[str, Any], text: str, output: Output) -> NoReturn:
    if output is Output.JSON:
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(text, err=code == ExitCode.INVALID)
    raise typer.Exit(code)
