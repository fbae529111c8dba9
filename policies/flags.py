"""Feature flags on Unleash: the fleet's flag servers, and exactly what ringmaster writes to them.

A region names its Unleash in the fleet (:class:`FlagServer`: the API URL its SDKs use, the project
and the environment serving every cluster of the region). One environment serves several clusters
(``euw1-internal`` and ``euw1-prod`` share eu-west-1), so ringmaster never moves a flag for a whole
environment: each cluster gets one ``flexibleRollout`` strategy of its own, constrained to requests
whose Unleash context names that cluster (``cluster IN [euw1-internal]``), sticky by user, and titled
``ringmaster:<cluster>`` so people see who owns it. :func:`rollout_strategy` builds that strategy,
:func:`ownership_problem` says whether what Unleash holds is still what ringmaster wrote (another
person's edit is an ownership conflict, as with Kubernetes objects), and :func:`may_reach` says
whether some other strategy could switch the flag on in a cluster (then a step could not be the
only thing deciding who sees the feature, and ringmaster refuses to start). No I/O here: the
activities read and write Unleash (with the admin token from the worker's settings, never from a
plan or fleet) and hand what they read to these functions.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from policies import hosts
from policies._model import Model

STRATEGY_NAME = "flexibleRollout"
"""The Unleash strategy type every step writes: a percentage of users, by stickiness, in one group."""
TITLE_PREFIX = "ringmaster:"
"""A strategy ringmaster owns is titled ``ringmaster:<cluster>``; people see the owner in Unleash's UI."""
CLUSTER_FIELD = "cluster"
"""The Unleash context field carrying the fleet's cluster name, unless a region names another."""
Stickiness = Literal["userId", "sessionId", "default"]
"""Unleash's stickiness for a flexible rollout: what keeps one user on one side as the share grows.
``random`` is not offered: a user would flip between flag-on and flag-off from request to request."""

_UNLEASH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_HTTP = ("http", "https")


def _unleash_name(value: str) -> str:
    if not _UNLEASH_NAME.fullmatch(value):
        raise PydanticCustomError(
            "unleash_name",
            "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(a name Unleash takes in its URLs, and safe inside a PromQL label)",
        )
    return value


UnleashName = Annotated[str, AfterValidator(_unleash_name)]
"""A flag, project, environment or context field name: ``checkout-v2``, ``default``, ``euw1``."""


class FlagServer(Model):
    """A region's Unleash: where the flags of its clusters are moved, and which project and environment."""

    url: str
    """The Unleash API URL its SDKs are given, ending in ``/api`` (``https://unleash.eu.example.com/api``);
    the Admin API is below it (``<url>/admin/...``). No credentials: the admin token is the worker's."""
    project: UnleashName = "default"
    environment: UnleashName
    """The Unleash environment serving every cluster of the region."""
    context_field: UnleashName = CLUSTER_FIELD
    """The context field whose value is the fleet's cluster name; each step's constraint is on it."""

    @field_validator("url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        try:
            url = hosts.parse_url(value, schemes=_HTTP)
        except ValueError as exc:
            raise PydanticCustomError("url", "{reason}", {"reason": str(exc)}) from None
        if url.username is not None or url.password is not None:
            raise PydanticCustomError(
                "url", "must not carry credentials: the admin token is in the worker's settings"
            )
        if "?" in url.path or "#" in value:
            raise PydanticCustomError("url", "must have no query or fragment: write scheme://host[:port]/api")
        if not url.path.rstrip("/").endswith("/api"):
            raise PydanticCustomError(
                "url", "write the URL Unleash's SDKs use, ending in /api (https://unleash.example.com/api)"
            )
        return value

    @cached_property
    def api_url(self) -> hosts.Url:
        """The URL as parsed once: the telemetry rule judges its host, clients connect to it."""
        return hosts.parse_url(self.url, schemes=_HTTP)

    @cached_property
    def host(self) -> str:
        """The flag server's host alone, safe for evidence and logs."""
        return self.api_url.host.name

    def admin_path(self, flag: str) -> str:
        """The Admin API path of ``flag``'s strategies in this server's project and environment."""
        return (
            f"{self.api_url.path.rstrip('/')}/admin/projects/{self.project}/features/{flag}"
            f"/environments/{self.environment}/strategies"
        )


class Constraint(Model):
    """An Unleash strategy constraint, as the Admin API spells it (fields Unleash adds are ignored)."""

    model_config = ConfigDict(extra="ignore")

    context_name: str
    operator: str
    values: list[str] = Field(default_factory=list)
    inverted: bool = False
    case_insensitive: bool = False


class UnleashStrategy(Model):
    """A strategy of a flag in one environment: what ringmaster writes, or what it read back."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    """Unleash's id for it (absent before it is created)."""
    name: str
    title: str | None = None
    disabled: bool | None = False
    parameters: dict[str, str] = Field(default_factory=dict)
    constraints: list[Constraint] = Field(default_factory=list)
    segments: list[int] = Field(default_factory=list)

    @field_validator("parameters", mode="before")
    @classmethod
    def _text_values(cls, value: object) -> object:
        # Unleash stores parameters as text but older servers answer rollout as a number.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


def owner_title(cluster: str) -> str:
    """The title marking a strategy as ringmaster's own for ``cluster``."""
    return TITLE_PREFIX + cluster


def rollout_strategy(
    server: FlagServer, flag: str, cluster: str, rollout: int, stickiness: Stickiness = "userId"
) -> UnleashStrategy:
    """The strategy a step writes: ``rollout`` percent of ``cluster``'s users (and of no other cluster's).

    ``groupId`` is the flag's name, as Unleash defaults it, so the users who had the feature at 5%
    keep it at 50%: a growing rollout only ever adds users.
    """
    if not 0 <= rollout <= 100:
        raise ValueError(f"a rollout is 0-100 percent, not {rollout}")
    return UnleashStrategy(
        name=STRATEGY_NAME,
        title=owner_title(cluster),
        disabled=False,
        parameters={"rollout": str(rollout), "stickiness": stickiness, "groupId": flag},
        constraints=[Constraint(context_name=server.context_field, operator="IN", values=[cluster])],
    )


def request_body(strategy: UnleashStrategy) -> dict[str, object]:
    """The JSON body of the Admin API's create (POST) or update (PUT) of ``strategy``."""
    return strategy.model_dump(mode="json", exclude={"id"})


def ownership_problem(found: UnleashStrategy | None, written: UnleashStrategy) -> str | None:
    """Why ``found`` (read back by the id ringmaster recorded) is no longer what it ``written``, or None.

    Everything ringmaster set counts (type, title, parameters, constraints, enabled, no segments):
    a person who changed any of it owns the flag now, and the release stops rather than overwrite it.
    """
    if found is None:
        return "ringmaster's strategy was deleted by someone else"
    differences = [
        what
        for what, same in (
            ("its type", found.name == written.name),
            ("its title", found.title == written.title),
            ("its parameters", found.parameters == written.parameters),
            ("its constraints", _constraints(found) == _constraints(written)),
            ("whether it is disabled", bool(found.disabled) == bool(written.disabled)),
            ("its segments", found.segments == written.segments),
        )
        if not same
    ]
    if not differences:
        return None
    return f"someone else changed {', '.join(differences)} of ringmaster's strategy {written.title}"


def _constraints(strategy: UnleashStrategy) -> list[tuple[str, str, tuple[str, ...], bool, bool]]:
    return [
        (c.context_name, c.operator, tuple(c.values), c.inverted, c.case_insensitive)
        for c in strategy.constraints
    ]


def may_reach(strategy: UnleashStrategy, cluster: str, context_field: str = CLUSTER_FIELD) -> bool:
    """Whether ``strategy`` could switch the flag on for a request from ``cluster``.

    Only a disabled strategy, or one whose constraint on ``context_field`` rules the cluster out
    (``IN`` a list without it, ``NOT_IN`` a list with it, case-sensitive), cannot; anything else
    (no such constraint, segments, other operators) may, and is treated as reaching the cluster.
    """
    if strategy.disabled:
        return False
    for constraint in strategy.constraints:
        if constraint.context_name != context_field or constraint.case_insensitive:
            continue
        listed = cluster in constraint.values
        operator = constraint.operator
        if constraint.inverted:
            operator = {"IN": "NOT_IN", "NOT_IN": "IN"}.get(operator, operator)
        if (operator == "IN" and not listed) or (operator == "NOT_IN" and listed):
            return False
    return True


def is_owned(strategy: UnleashStrategy, cluster: str) -> bool:
    """Whether ``strategy`` is titled as ringmaster's own for ``cluster``."""
    return strategy.title == owner_title(cluster)


class FlagSnapshot(Model):
    """A cluster's flag state before a release run first changed it, enough to put it back exactly."""

    cluster: str
    flag: str
    project: str
    environment: str
    environment_enabled: bool
    """Whether the flag was on in the environment (Unleash's environment toggle)."""
    strategy: UnleashStrategy | None = None
    """ringmaster's own strategy for the cluster as it was (an earlier release's), or None: there was none."""
