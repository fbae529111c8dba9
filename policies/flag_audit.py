"""Stale feature flags: which flags are fully on for the whole fleet, and for how long (no I/O).

``ringmaster flags stale`` asks this module three things about what :mod:`activities.flag_audit`
read from each flag server of the fleet:

- :func:`audited_servers`: the flag servers to read, from the fleet's regions (one per URL and
  project), each with the environments the regions name on it and the fleet's clusters in each;
- :func:`fully_on`: whether a flag is on for everyone in one environment. The environment is enabled
  and either no enabled strategy remains (Unleash then serves the flag to everyone), or an enabled
  strategy with no segments turns it on for everyone: ``default``, or ``flexibleRollout`` at 100 %,
  with no constraints; or the enabled ``flexibleRollout`` strategies at 100 % constrained only on
  the cluster context field (ringmaster's ``ringmaster:<cluster>`` strategies, ``cluster IN [c]``)
  together cover every cluster the fleet has in the environment. A flag at 100 % in some clusters
  only, at 50 %, or behind any other constraint or segment, is not fully on;
- :func:`judge`: whether a flag fully on in every environment of its server has been so for longer
  than ``--older-than``. "Since" is the latest change Unleash recorded to the flag's strategies or
  toggle in any of those environments (its event log: :data:`CHANGES`): the flag has been as it is
  now, fully on everywhere, at least since then. Any later change, even one that kept it fully on,
  starts the clock again, so a flag is never called older than it is. With no such event in some
  environment (a history Unleash no longer holds) the age is unknown, and the flag is listed all the
  same, marked so: it has not changed for as long as the server remembers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import ConfigDict, Field

from policies._model import Model
from policies.flags import FlagServer, UnleashStrategy
from policies.fleet import Fleet

CHANGES = (
    "feature-strategy-add",
    "feature-strategy-update",
    "feature-strategy-remove",
    "feature-environment-enabled",
    "feature-environment-disabled",
)
"""The Unleash event types that change who gets a flag in one environment."""
EVERYONE = ("default", "flexibleRollout")
"""Strategy types that, with no constraints and (``flexibleRollout``) at 100 %, serve everyone."""


class EnvironmentScope(Model):
    """One Unleash environment of a flag server, as the fleet uses it."""

    name: str
    context_field: str
    """The context field carrying the cluster name there (the regions' ``flags.contextField``)."""
    clusters: tuple[str, ...]
    """The fleet's clusters served by this environment (of every region naming it)."""


class AuditedServer(Model):
    """A flag server and project of the fleet, with the environments its regions name on it."""

    server: FlagServer
    """The first region's ``flags:`` naming it: where requests go (its environment is one of many)."""
    environments: tuple[EnvironmentScope, ...]


def audited_servers(fleet: Fleet) -> list[AuditedServer]:
    """The fleet's flag servers, one per URL and project, in the fleet's order of regions."""
    found: dict[tuple[str, str], tuple[FlagServer, dict[str, EnvironmentScope]]] = {}
    for region in fleet.regions:
        server = region.flags
        if server is None:
            continue
        key = (server.url.rstrip("/"), server.project)
        _, scopes = found.setdefault(key, (server, {}))
        clusters = tuple(c.name for c in fleet.clusters if c.region == region.name)
        known = scopes.get(server.environment)
        scopes[server.environment] = EnvironmentScope(
            name=server.environment,
            context_field=server.context_field if known is None else known.context_field,
            clusters=(known.clusters if known else ()) + clusters,
        )
    return [AuditedServer(server=first, environments=tuple(s.values())) for first, s in found.values()]


class FeatureEnvironment(Model):
    """A flag in one environment, as the Admin API answers ``GET .../features/<flag>``."""

    model_config = ConfigDict(extra="ignore")

    name: str
    enabled: bool = False
    strategies: list[UnleashStrategy] = Field(default_factory=list)


class Feature(Model):
    """A flag with its environments, as the Admin API answers ``GET .../features/<flag>``."""

    model_config = ConfigDict(extra="ignore")

    name: str
    project: str = "default"
    archived: bool = False
    environments: list[FeatureEnvironment] = Field(default_factory=list)

    def environment(self, name: str) -> FeatureEnvironment | None:
        """The flag in environment ``name``, or None when Unleash shows it no such environment."""
        return next((e for e in self.environments if e.name == name), None)


def _full_rollout(strategy: UnleashStrategy) -> bool:
    if strategy.name == "default":
        return True
    return strategy.name == "flexibleRollout" and strategy.parameters.get("rollout", "").strip() == "100"


def covered(strategy: UnleashStrategy, scope: EnvironmentScope) -> frozenset[str] | None:
    """Whom ``strategy`` serves the flag to for certain: None for everyone, else the clusters of
    ``scope`` it serves entirely (empty when it serves nobody entirely)."""
    if strategy.disabled or strategy.segments or strategy.name not in EVERYONE or not _full_rollout(strategy):
        return frozenset()
    if not strategy.constraints:
        return None
    clusters = frozenset(scope.clusters)
    for constraint in strategy.constraints:
        operator = constraint.operator
        if constraint.inverted:
            operator = {"IN": "NOT_IN", "NOT_IN": "IN"}.get(operator, operator)
        if constraint.context_name != scope.context_field or operator not in ("IN", "NOT_IN"):
            return frozenset()  # some other condition: not everyone, whatever the cluster
        listed = clusters.intersection(constraint.values)
        clusters = listed if operator == "IN" else clusters - listed
    return clusters


def fully_on(environment: FeatureEnvironment | None, scope: EnvironmentScope) -> bool:
    """Whether the flag is on for everyone the fleet serves from ``scope`` (see the module docstring)."""
    if environment is None or not environment.enabled:
        return False
    enabled = [s for s in environment.strategies if not s.disabled]
    if not enabled:
        return True  # Unleash serves an enabled flag with no strategy to everyone
    reached: set[str] = set()
    for strategy in enabled:
        found = covered(strategy, scope)
        if found is None:
            return True
        reached |= found
    return bool(scope.clusters) and reached >= set(scope.clusters)


def fully_on_everywhere(feature: Feature, audited: AuditedServer) -> bool:
    """Whether ``feature`` is fully on in every environment the fleet names on ``audited``."""
    return not feature.archived and all(
        fully_on(feature.environment(s.name), s) for s in audited.environments
    )


class StaleFlag(Model):
    """A flag fully on in every environment of its server for longer than asked: one row of the list."""

    flag: str
    project: str
    server: str
    """The flag server's host (with ``:port`` when the URL names one)."""
    environments: tuple[str, ...]
    since: datetime | None
    """When it was last changed in any of them (it is fully on everywhere since); None: unknown."""
    age_seconds: float | None


def judge(
    feature: Feature,
    audited: AuditedServer,
    changed: Mapping[str, datetime | None],
    now: datetime,
    older_than: timedelta,
) -> StaleFlag | None:
    """The row for ``feature`` when it is fully on in every environment of ``audited`` and unchanged
    there for at least ``older_than`` (``changed``: each environment's latest change, None when
    Unleash records none), else None."""
    scopes = audited.environments
    if not fully_on_everywhere(feature, audited):
        return None
    times = [changed.get(s.name) for s in scopes]
    since = None if any(t is None for t in times) else max(t for t in times if t is not None)
    if since is not None and now - since < older_than:
        return None
    url = audited.server.api_url
    return StaleFlag(
        flag=feature.name,
        project=audited.server.project,
        server=audited.server.host if url.port is None else f"{audited.server.host}:{url.port}",
        environments=tuple(s.name for s in scopes),
        since=since,
        age_seconds=None if since is None else max(0.0, (now - since).total_seconds()),
    )


def candidates(overview: Sequence[Mapping[str, object]], audited: AuditedServer) -> list[str]:
    """The flags of a project overview (``GET .../projects/<p>/features``) enabled in every environment
    of ``audited``: the only ones worth reading in full."""
    wanted = {s.name for s in audited.environments}
    names: list[str] = []
    for item in overview:
        environments = item.get("environments")
        name = item.get("name")
        if not isinstance(name, str) or not isinstance(environments, list) or item.get("archived"):
            continue
        on = {e.get("name") for e in environments if isinstance(e, dict) and e.get("enabled")}
        if wanted <= on:
            names.append(name)
    return names
