"""Small builders for policy tests: compact fleets, plans from the example, and YAML text."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml

from policies import loading
from policies.fleet import Fleet
from policies.plan import ReleasePlan
from tests.support import fleets


def make_fleet(
    regions: list[tuple[str, str, str | None]],
    clusters: list[tuple[str, str, dict[str, str]]],
    hosts: list[tuple[str, str]] | None = None,
    *,
    timezone: str = "UTC",
    prometheus: str = "http://prometheus.{j}.example.com:9090",
) -> Fleet:
    """A fleet of (region, jurisdiction, pair), (cluster, region, labels) and (match, jurisdiction) rows."""
    data = {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "Fleet",
        "regions": [
            {
                "name": name,
                "jurisdiction": jurisdiction,
                "timezone": timezone,
                "pair": pair,
                "prometheus": prometheus.format(j=jurisdiction.lower()),
            }
            for name, jurisdiction, pair in regions
        ],
        "clusters": [
            {"name": name, "region": region, "kubeContext": name, "labels": labels}
            for name, region, labels in clusters
        ],
        "hosts": [{"match": match, "jurisdiction": jurisdiction} for match, jurisdiction in hosts]
        if hosts is not None
        else [
            {"match": f"*.{j.lower()}.example.com", "jurisdiction": j}
            for j in sorted({r[1] for r in regions})
        ],
    }
    return loading.parse_fleet(yaml.safe_dump(data), "fleet.yaml")


def plan_data(**changes: Any) -> dict[str, Any]:
    """The example plan as a dictionary, with top-level keys replaced (None deletes)."""
    data = copy.deepcopy(fleets.PLAN_DATA)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def make_plan(**changes: Any) -> ReleasePlan:
    """The example plan with top-level keys replaced, validated through the loader."""
    return loading.parse_plan(yaml.safe_dump(plan_data(**changes)), "plan.yaml")


def ring(
    name: str, clusters: list[str], *, max_parallel: int = 1, strategy: str = "rolling"
) -> dict[str, Any]:
    """A ring dictionary over an explicit cluster list."""
    return {"name": name, "clusters": clusters, "maxParallel": max_parallel, "strategy": {strategy: {}}}


def problems(text: str, *, kind: str = "plan") -> list[tuple[str, str]]:
    """The ``(path, message)`` problems the loader reports for ``text``; fails the test if it loads."""
    parse = loading.parse_plan if kind == "plan" else loading.parse_fleet
    try:
        parse(text, f"{kind}.yaml")
    except loading.ConfigError as error:
        return [(p.path, p.message) for p in error.problems]
    raise AssertionError(f"the {kind} loaded, but problems were expected")


def set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting a dotted path (``rings.0.maxParallel``) in a document dictionary."""

    def apply(data: dict[str, Any]) -> None:
        target, last = _walk(data, path)
        target[last] = value

    return apply


def drop_path(path: str) -> Callable[[dict[str, Any]], None]:
    """A mutation deleting a dotted path from a document dictionary."""

    def apply(data: dict[str, Any]) -> None:
        target, last = _walk(data, path)
        del target[last]

    return apply


def _walk(data: dict[str, Any], path: str) -> tuple[Any, Any]:
    *parents, last = (int(part) if part.isdigit() else part for part in path.split("."))
    target: Any = data
    for part in parents:
        target = target[part]
    return target, last


def dump(data: Any) -> str:
    """YAML text for ``data``."""
    return yaml.safe_dump(data, sort_keys=False)
