"""Who may do what: the worker's authorization policy, and the judge of one request against it.

Identity (:mod:`policies.identity`) says who asked; this module says whether they may. The policy
(:class:`AuthorizationPolicy`, ``RINGMASTER_AUTHORIZATION_POLICY``, a YAML file reviewed like code)
names groups of principals and an ordered list of rules, each allowing (or refusing) some principals
or groups some actions on some services (globs) and rings (globs). :func:`judge` finds the first rule
that matches a request and returns a :class:`Decision`: allowed or refused, the rule that decided
(its name and index) and the inputs it was judged on. A request no rule matches is refused: default
deny, so an approval of a ring that requires one needs a rule allowing exactly that.

A principal is compared as the worker verified it: case-folded and aliases replaced by the person
they name (:func:`policies.identity.normalise`, with the identity policy's aliases); the names and
patterns written here are normalised the same way. A principal is in a group when the group lists it
(a name or a pattern), or, for a principal an OIDC token vouched for, when the token's issuer and
claims match one of the group's ``tokens`` entries (the CI job of ``acme/payments`` on ``main``).

Actions that name no ring (``submit``, and ``hold``, ``resume``, ``abort`` and ``rollback``, which act
on a whole release) are judged with the ring empty, which only a rule whose rings match any ring
(``*``, the default) covers; :meth:`AuthorizationPolicy.problems` refuses a rule that restricts rings
for such an action, since it could never apply. ``freeze`` and ``unfreeze`` act on the whole fleet's
freeze registry, whatever their scope, so they are judged with the service empty too: only a rule
whose services match any service (``*``, the default) allows them. Pure: the worker loads the file
(``policies.loading.load_authorization_policy``) and judges inside ``verify_identity``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping
from typing import Literal

from pydantic import Field

from policies import _errors, identity
from policies._model import Document, Model, Name

Permission = Literal["submit", "approve", "hold", "resume", "abort", "rollback", "freeze", "unfreeze"]
"""What a rule may allow: every :data:`policies.identity.Action` (``rollback`` is undoing a release
that already ended: ``ringmaster rollback`` and ``ringmaster retry``; ``freeze`` and ``unfreeze``
stop and restart the line)."""
PERMISSIONS: tuple[Permission, ...] = (
    "submit",
    "approve",
    "hold",
    "resume",
    "abort",
    "rollback",
    "freeze",
    "unfreeze",
)
RING_ACTIONS: frozenset[Permission] = frozenset({"approve"})
"""The actions whose requests name a ring (an approval of one ring, or of one cluster in it)."""
DEFAULT_DENY = "authorization refuses what no rule allows"


class TokenMembership(Model):
    """OIDC tokens whose principal belongs to a group: from ``issuer``, every listed claim matching."""

    issuer: str = Field(min_length=1)
    """The token's ``iss``, exactly as the identity policy's issuer names it."""
    claims: dict[str, str] = Field(min_length=1)
    """Claim name to pattern (``fnmatch``), e.g. ``repository: acme/payments``. At least one: a group
    of every token of an issuer would be every job of every repository it serves."""


class Group(Model):
    """Named principals, and the OIDC tokens whose principal counts as one of them."""

    members: list[str] = Field(default_factory=list)
    """Principals as the worker verifies them (``alice@example.com``, ``github:alice``), or patterns
    of them (``*@sre.example.com``; ``*`` and ``?`` are the only wildcards)."""
    tokens: list[TokenMembership] = Field(default_factory=list)


class Rule(Model):
    """Who (principals or groups) may (or may not) do which actions to which services and rings."""

    name: Name | None = None
    """How decisions and refusals name this rule (else by its index, ``rules[3]``)."""
    effect: Literal["allow", "deny"] = "allow"
    """``deny`` refuses what it matches, whatever a later rule says (the first matching rule decides)."""
    principals: list[str] = Field(default_factory=list)
    """Principals or patterns; ``*`` is every verified principal."""
    groups: list[str] = Field(default_factory=list)
    """Names of groups of this file."""
    actions: list[Permission] = Field(min_length=1)
    services: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Service-name patterns (``fnmatch``): ``payments``, ``payments-*``."""
    rings: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    """Ring-name patterns; only approvals name a ring (see the module docstring)."""

    def label(self, index: int) -> str:
        """``rule 'name' (rules[3])``, or ``rules[3]`` for a rule without a name."""
        return f"rule {self.name!r} (rules[{index}])" if self.name else f"rules[{index}]"


class AuthorizationPolicy(Document):
    """The worker's authorization policy (``RINGMASTER_AUTHORIZATION_POLICY``, a YAML file).

    Example (``deploy/examples/authorization.yaml`` is a fuller one)::

        groups:
          sre: {members: [bob@example.com]}
          payments:
            members: [alice@example.com]
            tokens:
              - issuer: https://token.actions.githubusercontent.com
                claims: {repository: acme/payments, ref: refs/heads/main}
        rules:
          - name: payments-release
            groups: [payments]
            services: [payments]
            actions: [submit, hold, resume]
          - {name: sre-approve-broad, groups: [sre], rings: [broad], actions: [approve]}
    """

    groups: dict[Name, Group] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)
    """In order: the first rule matching a request decides; none refuses it."""

    def problems(self) -> list[tuple[str, str]]:
        """Rules naming nobody or an unknown group, names used twice, rings a rule could never match."""
        found: list[tuple[str, str]] = []
        known = list(self.groups)
        suggest = _errors.Suggestions()
        named: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if not rule.principals and not rule.groups:
                found.append(
                    (f"rules[{i}]", "names nobody: list principals or groups (principals: ['*'] is everyone)")
                )
            found += [
                (f"rules[{i}].groups[{j}]", f"unknown group {_errors.quote(group)}{suggest(group, known)}")
                for j, group in enumerate(rule.groups)
                if group not in self.groups
            ]
            if rule.name is not None:
                if rule.name in named:
                    found.append((f"rules[{i}].name", f"{rule.name!r} is already rules[{named[rule.name]}]"))
                named.setdefault(rule.name, i)
            ringless = [a for a in rule.actions if a not in RING_ACTIONS]
            if ringless and not _any_ring(rule.rings):
                found.append(
                    (
                        f"rules[{i}].rings",
                        f"rings {rule.rings} never match {', '.join(ringless)}: only approvals name a "
                        "ring (the other actions act on a whole release); give "
                        f"{', '.join(ringless)} a rule without rings (rings: ['*'])",
                    )
                )
        return found


class Token(Model):
    """What an OIDC token said of the principal it vouched for: its issuer and its text claims."""

    issuer: str
    claims: dict[str, str] = Field(default_factory=dict)


class Request(Model):
    """One action a verified principal asks for, as the policy judges it."""

    principal: str
    """As verified; :func:`judge` normalises it again (harmless when it already is)."""
    action: Permission
    service: str
    ring: str = ""
    """The ring an approval names; empty for actions on a whole release."""
    cluster: str = ""
    token: Token | None = None
    """The token that vouched for the principal, when one did (for groups' ``tokens``)."""


class Inputs(Model):
    """What a decision was judged on: the request, with the principal's groups resolved."""

    principal: str
    groups: list[str] = Field(default_factory=list)
    action: Permission
    service: str
    ring: str = ""
    cluster: str = ""
    issuer: str = ""
    """The OIDC issuer that vouched for the principal, when one did."""


class Decision(Model):
    """Allowed or refused, by which rule (``index`` None: no rule matched), on which inputs."""

    allowed: bool
    rule: str = ""
    """The deciding rule's name; empty when it has none or no rule matched."""
    index: int | None = None
    """The deciding rule's position in ``rules``; None when no rule matched (default deny)."""
    reason: str
    """One sentence for people: which rule allowed or refused whom to do what."""
    inputs: Inputs

    def label(self) -> str:
        """The deciding rule as people read it: ``rule 'name' (rules[3])``, ``rules[3]`` or ``no rule``."""
        if self.index is None:
            return "no rule"
        return f"rule {self.rule!r} (rules[{self.index}])" if self.rule else f"rules[{self.index}]"


def groups_of(
    policy: AuthorizationPolicy,
    principal: str,
    token: Token | None = None,
    aliases: Mapping[str, Collection[str]] | None = None,
) -> list[str]:
    """The groups of ``policy`` the (normalised) ``principal`` is in, by name or by ``token``."""
    aliases = aliases or {}
    if not principal:
        return []
    return [
        name
        for name, group in policy.groups.items()
        if any(_names(principal, member, aliases) for member in group.members)
        or (token is not None and any(_vouches(token, entry) for entry in group.tokens))
    ]


def judge(
    policy: AuthorizationPolicy, request: Request, aliases: Mapping[str, Collection[str]] | None = None
) -> Decision:
    """The first rule of ``policy`` matching ``request`` decides; none matching refuses it."""
    aliases = aliases or {}
    principal = identity.normalise(request.principal, aliases) if request.principal else ""
    inputs = Inputs(
        principal=principal,
        groups=groups_of(policy, principal, request.token, aliases),
        action=request.action,
        service=request.service,
        ring=request.ring,
        cluster=request.cluster,
        issuer=request.token.issuer if request.token else "",
    )
    for index, rule in enumerate(policy.rules):
        if _matches(rule, inputs, aliases):
            allowed = rule.effect == "allow"
            verb = "allows" if allowed else "refuses"
            return Decision(
                allowed=allowed,
                rule=rule.name or "",
                index=index,
                reason=f"{rule.label(index)} {verb} {_who(inputs)} to {_what(inputs)}",
                inputs=inputs,
            )
    reason = f"no rule allows {_who(inputs)} to {_what(inputs)}: {DEFAULT_DENY}"
    return Decision(allowed=False, reason=reason, inputs=inputs)


def decisions(
    policy: AuthorizationPolicy,
    request: Request,
    *,
    supersede: bool = False,
    aliases: Mapping[str, Collection[str]] | None = None,
) -> list[Decision]:
    """Every decision ``request`` needs, stopping at the first refusal.

    A submission with ``supersede`` aborts the service's running release (with its rollback), so it
    needs ``abort`` on the service as well as ``submit``.
    """
    first = judge(policy, request, aliases)
    if not first.allowed or not (supersede and request.action == "submit"):
        return [first]
    return [first, judge(policy, request.model_copy(update={"action": "abort"}), aliases)]


def refusal(found: list[Decision]) -> str:
    """Why a request is refused (for ``VerifyResult.problem``); empty when every decision allows it."""
    for decision in found:
        if not decision.allowed:
            superseding = " (a submission with --supersede aborts the running release)"
            tail = superseding if decision is not found[0] else ""
            return f"not authorized: {decision.reason}{tail}"
    return ""


def allowance(found: list[Decision]) -> str:
    """Which rules allowed a request, for the record (``Verified.detail``):
    ``authorized by rule 'x' (rules[1])``."""
    said = [f"{d.inputs.action} by {d.label()}" if i else d.label() for i, d in enumerate(found)]
    return "authorized by " + "; ".join(said) if said else ""


def _matches(rule: Rule, inputs: Inputs, aliases: Mapping[str, Collection[str]]) -> bool:
    return (
        inputs.action in rule.actions
        and any(fnmatch.fnmatchcase(inputs.service, s) for s in rule.services)
        and any(fnmatch.fnmatchcase(inputs.ring, r) for r in rule.rings)
        and bool(inputs.principal)
        and (
            any(_names(inputs.principal, p, aliases) for p in rule.principals)
            or any(g in inputs.groups for g in rule.groups)
        )
    )


def _names(principal: str, written: str, aliases: Mapping[str, Collection[str]]) -> bool:
    """Whether ``written`` (a name or a pattern of the file) names the normalised ``principal``.

    Only ``*`` and ``?`` are wildcards: a GitHub app's actor ``dependabot[bot]`` is a name, and
    ``[bot]`` must not become a pattern matching one letter.
    """
    return fnmatch.fnmatchcase(principal, identity.normalise(written, aliases).replace("[", "[[]"))


def _vouches(token: Token, entry: TokenMembership) -> bool:
    return token.issuer == entry.issuer and all(
        name in token.claims and fnmatch.fnmatchcase(token.claims[name], pattern)
        for name, pattern in entry.claims.items()
    )


def _any_ring(patterns: list[str]) -> bool:
    """Whether ``patterns`` match a request that names no ring (only ``*``-like ones do)."""
    return any(fnmatch.fnmatchcase("", p) for p in patterns)


def _who(inputs: Inputs) -> str:
    groups = f"groups {', '.join(inputs.groups)}" if inputs.groups else "in no group"
    return f"{inputs.principal or 'an unknown principal'} ({groups})"


def _what(inputs: Inputs) -> str:
    what = f"{inputs.action} {inputs.service or 'an unknown service'}"
    if inputs.ring:
        what += f" ring {inputs.ring}"
    if inputs.cluster:
        what += f" cluster {inputs.cluster}"
    return what
