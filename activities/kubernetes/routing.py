"""HTTPRoute ``backendRefs`` weights for a canary: exact shares, computed from the recorded rules.

Every rule of the route that sends traffic to one of the workload's active Services gets one more
backendRef, to the canary Service, so that the canary receives ``weight`` percent of that rule's
traffic and the rule's other backends keep their proportions among the rest: each existing weight
is multiplied by ``100 - weight`` and the canary's is ``weight`` times their sum, so a single
stable backend reads as percentages (``80``/``20``); only weights beyond the Gateway API's limit of
1,000,000 are divided by their greatest common divisor.
Weight 0 gives back the recorded rules unchanged. Rules that reach none of the active Services are
left alone, and the canary's backendRef never names a namespace: a route only ever references
Services in its own namespace.

Computing from the recorded rules (never from the live route) makes a repeated step write the same
rules, and a rollback restore them exactly.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from activities.kubernetes import workload

MAX_WEIGHT = 1_000_000
"""The largest backendRef weight Gateway API accepts."""


def weighted_rules(
    rules: list[dict[str, Any]], namespace: str, stable: set[str], canary: str, weight: int
) -> list[dict[str, Any]]:
    """The rules with ``weight`` percent of each stable-serving rule's traffic sent to ``canary``."""
    if weight <= 0:
        return copy.deepcopy(rules)
    out = []
    for rule in rules:
        refs = [r for r in rule.get("backendRefs") or [] if r.get("name") != canary]
        stable_refs = [r for r in refs if workload.refers_to(r, namespace, stable)]
        total = sum(int(r.get("weight", 1)) for r in refs)
        if not stable_refs or total == 0:
            out.append(copy.deepcopy(rule))
            continue
        weights = [int(r.get("weight", 1)) * (100 - min(weight, 100)) for r in refs]
        canary_weight = min(weight, 100) * total
        divisor = math.gcd(*weights, canary_weight) if max(*weights, canary_weight) > MAX_WEIGHT else 1
        new_refs = [{**r, "weight": w // divisor} for r, w in zip(refs, weights, strict=True)]
        canary_ref: dict[str, Any] = {
            "group": "",
            "kind": "Service",
            "name": canary,
            "weight": canary_weight // divisor,
        }
        if "port" in stable_refs[0]:
            canary_ref["port"] = stable_refs[0]["port"]
        out.append({**copy.deepcopy(rule), "backendRefs": [*new_refs, canary_ref]})
    return out


def without_backends(rules: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
    """The rules with no backendRef to ``names`` (Services about to be removed), the other backends
    keeping their weights, so their proportions among themselves; a rule that reached only those
    is kept as it was (it is not ringmaster's to rewrite)."""
    out = []
    for rule in rules:
        refs = rule.get("backendRefs") or []
        kept = [r for r in refs if r.get("name") not in names or r.get("kind", "Service") != "Service"]
        out.append(
            {**copy.deepcopy(rule), "backendRefs": copy.deepcopy(kept)}
            if kept and kept != refs
            else copy.deepcopy(rule)
        )
    return out


def stable_backends(rules: list[dict[str, Any]], namespace: str, stable: set[str]) -> list[str]:
    """The active Services the rules reach, in the order they first appear."""
    names = [
        str(ref["name"])
        for rule in rules
        for ref in rule.get("backendRefs") or []
        if workload.refers_to(ref, namespace, stable)
    ]
    return list(dict.fromkeys(names))
