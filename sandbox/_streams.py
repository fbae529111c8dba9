"""Which versions serve each entry point of a cluster, in what shares: the traffic simulator's routing.

:func:`streams` reads one cluster's Deployments, Services and HTTPRoutes (as the emulator's admin
endpoint returns them) into :class:`Stream` s, following the rules of :mod:`sandbox.traffic`'s
docstring: a route shares its rate among its rules and backend weights, a Service among the
Deployments its selector matches by ready replicas; a pod's version and track come from its labels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VERSION = "ringmaster.dev/version"
ROLE = "ringmaster.dev/role"
TRACKS = ("canary", "preview")


@dataclass(frozen=True)
class Stream:
    """A share of one entry point's traffic served by one version behind one Service."""

    namespace: str
    service: str
    version: str
    track: str
    share: float
    """Fraction of ``requestsPerSecond`` (of one entry point) this stream receives."""


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _backends(namespace: str, service: Mapping[str, Any], deployments: list[dict[str, Any]]) -> list[Stream]:
    """The versions behind one Service, weighted by ready replicas (shares sum to 1, or no stream)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    ready: dict[tuple[str, str], int] = defaultdict(int)
    for d in deployments:
        if d["metadata"].get("namespace") != namespace:
            continue
        labels = ((d.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        count = int((d.get("status") or {}).get("readyReplicas") or 0)
        if count > 0 and _matches(selector, labels):
            track = labels.get(ROLE) if labels.get(ROLE) in TRACKS else "stable"
            ready[(labels.get(VERSION, "unknown"), str(track))] += count
    total = sum(ready.values())
    name = service["metadata"]["name"]
    return [Stream(namespace, name, v, t, n / total) for (v, t), n in sorted(ready.items())] if total else []


def _route_refs(route: Mapping[str, Any]) -> list[list[tuple[str, float]]]:
    """Per rule, the Services a route sends to (in its namespace) with their weights."""
    namespace = route["metadata"].get("namespace")
    rules = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = []
        for ref in rule.get("backendRefs") or []:
            if ref.get("kind", "Service") != "Service" or ref.get("namespace", namespace) != namespace:
                continue
            refs.append((str(ref["name"]), float(ref.get("weight", 1))))
        rules.append(refs)
    return rules


def streams(
    deployments: list[dict[str, Any]], services: list[dict[str, Any]], routes: list[dict[str, Any]]
) -> list[Stream]:
    """Every stream of one cluster: per entry point (a route, or a Service no route names), its versions."""
    by_name = {(s["metadata"].get("namespace"), s["metadata"]["name"]): s for s in services}
    in_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in deployments:  # each Service looks only at its namespace's: no services x deployments
        in_namespace[str(d["metadata"].get("namespace"))].append(d)
    routed = {
        (r["metadata"].get("namespace"), name) for r in routes for rule in _route_refs(r) for name, _ in rule
    }
    out: list[Stream] = []
    for key, service in sorted(by_name.items()):
        if key not in routed:
            out += _backends(str(key[0]), service, in_namespace.get(str(key[0]), []))
    for route in routes:
        namespace = str(route["metadata"].get("namespace"))
        rules = [r for r in _route_refs(route) if r]
        for rule in rules:
            total = sum(w for _, w in rule)
            for name, weight in rule:
                target = by_name.get((namespace, name))
                if target is None or total <= 0 or weight <= 0:
                    continue
                for s in _backends(namespace, target, in_namespace.get(namespace, [])):
                    share = s.share * weight / total / len(rules)
                    out.append(Stream(s.namespace, s.service, s.version, s.track, share))
    return out
