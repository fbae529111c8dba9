"""Generated fleets: N clusters over four regions, for measuring how the scheduler and the sandbox scale.

:func:`generated` writes the fleet file text (the schema of :mod:`policies.fleet`, as
``deploy/examples/fleet.yaml``): clusters ``c0000`` ... round-robin over :data:`REGIONS` (two EU, two
US), labelled ``audience: internal`` (cluster 0), ``beta`` (the next tenth, at least one) or
``public`` (the rest), so a three-ring plan selecting by audience covers them all. Each region's
``prometheus`` is its jurisdiction's example server; ``python -m sandbox up`` points them at its own.
``python -m sandbox fleet --clusters N`` prints it; ``scripts/bench_history.py`` runs releases on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

REGIONS: tuple[tuple[str, str, str], ...] = (
    ("eu-west-1", "EU", "Europe/Dublin"),
    ("eu-central-1", "EU", "Europe/Berlin"),
    ("us-east-1", "US", "America/New_York"),
    ("us-west-2", "US", "America/Los_Angeles"),
)
"""(region, jurisdiction, timezone) of the regions a generated fleet's clusters go round."""


def cluster_name(index: int) -> str:
    """The name of cluster ``index`` of a generated fleet: ``c0000``, ``c0001`` ..."""
    return f"c{index:04d}"


def audience(index: int, n: int) -> str:
    """The audience label of cluster ``index`` of ``n``: internal, then a tenth (at least 1) beta, public."""
    beta = max(1, n // 10)
    return "internal" if index == 0 else "beta" if index <= beta else "public"


def generated(n: int, *, regions: Sequence[tuple[str, str, str]] = REGIONS) -> str:
    """The YAML text of a fleet of ``n`` clusters round-robin over ``regions`` (see the module docstring)."""
    if n < 1:
        raise ValueError(f"a fleet needs at least one cluster, not {n}")
    if not regions:
        raise ValueError("a fleet needs at least one region")
    clusters = [
        {
            "name": cluster_name(i),
            "region": regions[i % len(regions)][0],
            "kubeContext": cluster_name(i),
            "labels": {"audience": audience(i, n)},
        }
        for i in range(n)
    ]
    jurisdictions = dict.fromkeys(j for _, j, _ in regions)
    doc = {
        "apiVersion": "ringmaster.dev/v1",
        "kind": "Fleet",
        "regions": [
            {
                "name": r,
                "jurisdiction": j,
                "timezone": tz,
                "prometheus": f"http://prometheus.{j.lower()}.example.com:9090",
            }
            for r, j, tz in regions
        ],
        "clusters": clusters,
        "hosts": [{"match": f"*.{j.lower()}.example.com", "jurisdiction": j} for j in jurisdictions],
    }
    return yaml.safe_dump(doc, sort_keys=False)
