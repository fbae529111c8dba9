"""Data-residency (GDPR) rules: pure functions returning decision records fit for audit evidence.

Each rule takes exactly the facts it judges and returns a :class:`Decision`: the rule id, allow or
deny, a reason a person can read, the inputs it used (hosts only, never URLs, values or anything
that could carry a credential) and the digest of the rule set that decided. Unknown facts fail
closed: an unknown host, no node evidence, an env var that could not be inspected.

What can be known before running (scope, declared endpoints, telemetry, regulated ordering) is judged
by :func:`static_decisions`; :func:`live_decisions` judges every rule again before a cluster starts,
with evidence gathered from the cluster (by activities; this module does no I/O).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from pydantic import Field, field_validator

from policies import hosts
from policies._model import Model
from policies.fleet import Fleet
from policies.plan import DataResidency, ReleasePlan
from policies.schedule import Schedule, ScheduledCluster

RULESET_VERSION = "2026.3"
"""Bump when any rule's logic changes; it is part of every decision's ``policy_digest``."""

JURISDICTION_SCOPE = "jurisdiction-scope"
DATA_ENDPOINTS = "data-endpoints"
TELEMETRY_LOCALITY = "telemetry-locality"
CLUSTER_LOCATION = "cluster-location"
REGULATED_AFTER_VALIDATION = "regulated-after-validation"
RULES = (JURISDICTION_SCOPE, DATA_ENDPOINTS, TELEMETRY_LOCALITY, CLUSTER_LOCATION, REGULATED_AFTER_VALIDATION)
STATIC_RULES = (JURISDICTION_SCOPE, DATA_ENDPOINTS, TELEMETRY_LOCALITY, REGULATED_AFTER_VALIDATION)
_UNPARSEABLE = "<unparseable host>"


class Decision(Model):
    """One rule's verdict on one cluster, with the evidence it rests on."""

    rule: str
    cluster: str
    verdict: Literal["allow", "deny"]
    reason: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    policy_digest: str

    @property
    def allowed(self) -> bool:
        """Whether the verdict is ``allow``."""
        return self.verdict == "allow"


class LiveEvidence(Model):
    """What an activity found in a cluster just before the release enters it."""

    node_regions: list[str] = Field(default_factory=list)
    """The ``topology.kubernetes.io/region`` label of each node."""
    env_hosts: list[str] = Field(default_factory=list)
    """Hosts found in the live workload's container env; URLs given here are reduced to their host."""
    uninspected: list[str] = Field(default_factory=list)
    """Names (never values) of env sources that could not be inspected, e.g. ``env DB_URL from secret``."""
    image: str = ""
    """The workload's image as found (recorded as evidence; no rule judges it yet)."""
    replicas: int | None = None
    """The workload's replica count as found."""
    version: str = ""
    """The workload's version: its ``ringmaster.dev/version`` label, else the image tag."""

    @field_validator("env_hosts", mode="before")
    @classmethod
    def _hosts_only(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        return [_host_or_marker(item) if isinstance(item, str) else item for item in value]


def _host_or_marker(text: str) -> str:
    try:
        return hosts.host_of(text)
    except ValueError:
        return _UNPARSEABLE


@cache
def policy_digest() -> str:
    """``sha256:…`` of the rule set: its version, rule ids and the fixed facts that parameterise it."""
    facts = {
        "ruleset": RULESET_VERSION,
        "rules": RULES,
        "inCluster": hosts.IN_CLUSTER_RULE,
        "hosts": hosts.HOST_RULE,
        "personalDataClasses": ["personal"],
        "telemetry": ["Prometheus", "flag server of a ring that moves a feature flag"],
        "failClosed": [
            "unknown host",
            "no node evidence",
            "uninspected env",
            "personal data into a jurisdiction without declared dataEndpoints",
            "a flag moved in a region without a flag server",
        ],
    }
    blob = json.dumps(facts, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _decide(rule: str, cluster: ScheduledCluster, ok: bool, reason: str, **inputs: Any) -> Decision:
    return Decision(
        rule=rule,
        cluster=cluster.name,
        verdict="allow" if ok else "deny",
        reason=reason,
        inputs=inputs,
        policy_digest=policy_digest(),
    )


def jurisdiction_scope(cluster: ScheduledCluster, allowed: Sequence[str] | None) -> Decision:
    """No cluster outside ``allowed`` jurisdictions (when set) is ever targeted."""
    if allowed is None:
        reason = "no allowedJurisdictions set: every jurisdiction may be targeted"
        return _decide(
            JURISDICTION_SCOPE, cluster, True, reason, jurisdiction=cluster.jurisdiction, allowed=None
        )
    ok = cluster.jurisdiction in allowed
    verb = "is" if ok else "is not"
    reason = f"{cluster.jurisdiction} {verb} in allowedJurisdictions [{', '.join(allowed)}]"
    return _decide(
        JURISDICTION_SCOPE, cluster, ok, reason, jurisdiction=cluster.jurisdiction, allowed=list(allowed)
    )


def data_endpoints(
    cluster: ScheduledCluster,
    residency: DataResidency,
    fleet: Fleet,
    *,
    env_hosts: Sequence[str] | None = None,
    uninspected: Sequence[str] = (),
) -> Decision:
    """For personal data, every declared endpoint of the cluster's jurisdiction and every env host
    (when given) maps to that jurisdiction through the fleet's hosts table; unknown hosts fail closed.

    A jurisdiction missing from ``dataEndpoints`` is denied too: only an explicit empty list says
    the service holds no data there.
    """
    here = cluster.jurisdiction
    if residency.data_class != "personal":
        reason = f"dataClass {residency.data_class}: data endpoints are not restricted"
        return _decide(DATA_ENDPOINTS, cluster, True, reason, dataClass=residency.data_class)
    undeclared = here not in residency.data_endpoints
    declared = list(residency.data_endpoints.get(here, []))
    live = [_host_or_marker(h) for h in env_hosts] if env_hosts is not None else []
    resolved = {h: fleet.jurisdiction_of_host(h, cluster=cluster.name) for h in [*declared, *live]}
    inputs: dict[str, Any] = {"dataClass": "personal", "jurisdiction": here, "declared": declared}
    if env_hosts is not None:
        inputs |= {"envHosts": live, "uninspected": list(uninspected)}
    inputs["resolved"] = resolved
    outside = [
        f"{host} is in {where}" if where else f"{host} is in no known jurisdiction"
        for host, where in resolved.items()
        if where != here
    ]
    if uninspected:
        outside.append(f"could not inspect {', '.join(uninspected)}")
    if undeclared:
        inputs["undeclared"] = True
        outside.insert(
            0,
            f"dataEndpoints declares nothing for {here} (list its data hosts there, "
            f"or write {here}: [] if the service holds no data in {here})",
        )
    if outside:
        unknown = any(where is None for where in resolved.values()) or bool(uninspected)
        reason = f"personal data must stay in {here}: " + "; ".join(outside)
        reason += " (unknown fails closed)" if unknown else ""
        return _decide(DATA_ENDPOINTS, cluster, False, reason, **inputs)
    if not resolved:
        found = "" if env_hosts is None else " and none found in env"
        reason = f"dataEndpoints declares that the service holds no data in {here}{found}"
    else:
        reason = f"all {len(resolved)} data endpoint(s) are in {here}"
    return _decide(DATA_ENDPOINTS, cluster, True, reason, **inputs)


def telemetry_locality(cluster: ScheduledCluster, fleet: Fleet, *, flags: bool = False) -> Decision:
    """The Prometheus that judges the cluster lives in the cluster's jurisdiction; with ``flags`` (the
    cluster's ring moves a feature flag) so does the region's flag server, which evaluates the flag for
    the cluster's users and receives their usage data. A region without one fails closed.
    """
    region = fleet.region(cluster.region)
    here = cluster.jurisdiction
    host = region.prometheus_host
    where = fleet.jurisdiction_of_host(host, cluster=cluster.name)
    inputs: dict[str, Any] = {"prometheusHost": host, "prometheusJurisdiction": where, "jurisdiction": here}
    if where == here:
        found = [f"Prometheus {host} is in {where}"]
        wrong = []
    else:
        found = []
        wrong = [f"Prometheus {host} is in {where or 'no known jurisdiction'}, not {here}"]
    if flags:
        server = region.flags
        if server is None:
            inputs |= {"flagServerHost": None, "flagServerJurisdiction": None}
            wrong.append(f"region {cluster.region} names no flag server (fails closed)")
        else:
            flag_where = fleet.jurisdiction_of_host(server.host, cluster=cluster.name)
            inputs |= {"flagServerHost": server.host, "flagServerJurisdiction": flag_where}
            if flag_where == here:
                found.append(f"flag server {server.host} is in {flag_where}")
            else:
                where_text = flag_where or "no known jurisdiction"
                wrong.append(f"flag server {server.host} is in {where_text}, not {here}")
    reason = "; ".join(wrong or found)
    return _decide(TELEMETRY_LOCALITY, cluster, not wrong, reason, **inputs)


def _moves_flag(plan: ReleasePlan, ring: str) -> bool:
    return any(r.name == ring and r.strategy.feature_flag is not None for r in plan.rings)


def cluster_location(cluster: ScheduledCluster, node_regions: Sequence[str]) -> Decision:
    """Every node's region label matches the cluster's declared region; no evidence fails closed."""
    seen = sorted(set(node_regions))
    inputs = {"declaredRegion": cluster.region, "nodeRegions": seen, "nodes": len(node_regions)}
    if not node_regions:
        return _decide(
            CLUSTER_LOCATION, cluster, False, "no node region labels found (fails closed)", **inputs
        )
    stray = [r for r in seen if r != cluster.region]
    if stray:
        reason = f"nodes report region(s) {', '.join(stray)}, not {cluster.region}"
        return _decide(CLUSTER_LOCATION, cluster, False, reason, **inputs)
    reason = f"all {len(node_regions)} node(s) are in {cluster.region}"
    return _decide(CLUSTER_LOCATION, cluster, True, reason, **inputs)


def validators(cluster: ScheduledCluster, schedule: Schedule) -> list[str]:
    """The clusters that may validate a regulated ``cluster``: the non-regulated ones of its
    jurisdiction that the schedule visits before it (none for a cluster not regulated)."""
    if not cluster.regulated:
        return []
    return [
        c.name
        for c in schedule.earlier(cluster.name)
        if not c.regulated and c.jurisdiction == cluster.jurisdiction
    ]


def regulated_after_validation(
    cluster: ScheduledCluster, candidates: Sequence[str], promoted: Sequence[str] | None = None
) -> Decision:
    """A regulated cluster is entered only after promotion in one of its ``candidates`` (its
    :func:`validators`); with ``promoted`` None (static) only the schedule's order is checked.
    """
    if not cluster.regulated:
        return _decide(REGULATED_AFTER_VALIDATION, cluster, True, "not labelled regulated", regulated=False)
    candidates = list(candidates)
    inputs: dict[str, Any] = {"regulated": True, "jurisdiction": cluster.jurisdiction, "earlier": candidates}
    if not candidates:
        reason = f"no non-regulated {cluster.jurisdiction} cluster comes before it in the schedule"
        return _decide(REGULATED_AFTER_VALIDATION, cluster, False, reason, **inputs)
    if promoted is None:
        reason = f"validated first in {', '.join(candidates)} ({cluster.jurisdiction})"
        return _decide(REGULATED_AFTER_VALIDATION, cluster, True, reason, **inputs)
    validated = [name for name in candidates if name in promoted]
    inputs["promoted"] = validated
    if not validated:
        reason = f"not yet promoted in any earlier {cluster.jurisdiction} cluster ({', '.join(candidates)})"
        return _decide(REGULATED_AFTER_VALIDATION, cluster, False, reason, **inputs)
    reason = f"promoted in {', '.join(validated)} ({cluster.jurisdiction}) first"
    return _decide(REGULATED_AFTER_VALIDATION, cluster, True, reason, **inputs)


def static_decisions(plan: ReleasePlan, fleet: Fleet, schedule: Schedule) -> dict[str, list[Decision]]:
    """Every rule that can be judged before running, per cluster name, in schedule order."""
    residency = plan.data_residency
    flag_rings = {r.name for r in plan.rings if r.strategy.feature_flag is not None}
    return {
        c.name: [
            jurisdiction_scope(c, residency.allowed_jurisdictions),
            data_endpoints(c, residency, fleet),
            telemetry_locality(c, fleet, flags=c.ring in flag_rings),
            regulated_after_validation(c, validators(c, schedule)),
        ]
        for c in schedule.all_clusters()
    }


def live_decisions(  # noqa: PLR0917 (positional order is the API workflows call)
    plan: ReleasePlan,
    fleet: Fleet,
    schedule: Schedule | ScheduledCluster,
    cluster: str,
    evidence: LiveEvidence,
    promoted: list[str],
    candidates: Sequence[str] = (),
) -> list[Decision]:
    """Every rule, judged with live evidence, just before the release enters ``cluster``.

    ``schedule`` is the release's schedule, or the cluster as scheduled with its ``candidates``
    (its :func:`validators`).
    """
    if isinstance(schedule, Schedule):
        target = schedule.cluster(cluster)
        candidates = validators(target, schedule)
    else:
        target = schedule
    residency = plan.data_residency
    return [
        jurisdiction_scope(target, residency.allowed_jurisdictions),
        data_endpoints(
            target, residency, fleet, env_hosts=evidence.env_hosts, uninspected=evidence.uninspected
        ),
        telemetry_locality(target, fleet, flags=_moves_flag(plan, target.ring)),
        cluster_location(target, evidence.node_regions),
        regulated_after_validation(target, candidates, promoted),
    ]


def denials(decisions: dict[str, list[Decision]]) -> list[Decision]:
    """The deny decisions among ``decisions``, in order."""
    return [d for found in decisions.values() for d in found if d.verdict == "deny"]
