"""From a fleet to the sandbox's clusters: their emulator config, seed workload, kubeconfig and fleet file.

Every fleet cluster becomes an emulated cluster of the same name, in its region, starting with the
workload a release acts on: namespace ``api``; Deployment ``api`` (label and pod-template label
``ringmaster.dev/version: v1``, container ``api``, image ``registry.eu.example.com/api:v1``, 10
replicas, ``DATABASE_URL`` on the orders database of the cluster's jurisdiction:
``orders.db.eu.example.com`` in EU clusters, ``orders.db.us.example.com`` in US ones); and Service
``api`` selecting ``app: api``. The fleet file written for the sandbox is the given one with each
cluster's ``kubeContext`` pointing at the sandbox kubeconfig context of the same name, and each
region's ``prometheus`` at its jurisdiction's sandbox Prometheus when the sandbox runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from policies import hosts
from policies.fleet import Fleet
from sandbox.apiserver.config import ClusterSpec, EmulatorConfig
from sandbox.settings import SandboxSettings

NAMESPACE = "api"
IMAGE = "registry.eu.example.com/api:v1"
VERSION_LABEL = "ringmaster.dev/version"


def database_host(jurisdiction: str) -> str:
    """The orders database of a jurisdiction (``orders.db.eu.example.com`` for EU)."""
    return f"orders.db.{jurisdiction.lower()}.example.com"


def workload(jurisdiction: str, namespace: str = NAMESPACE, *, route: bool = False) -> list[dict[str, Any]]:
    """The seed objects of one cluster in ``jurisdiction`` (in ``namespace``; with ``route``, also an
    HTTPRoute ``api`` sending every request to Service ``api``, for canaries by route)."""
    labels = {"app": "api", VERSION_LABEL: "v1"}
    container = {
        "name": "api",
        "image": IMAGE,
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "DATABASE_URL", "value": f"postgres://{database_host(jurisdiction)}:5432/orders"}],
    }
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 10,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "namespace": namespace, "labels": {"app": "api"}},
            "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
    ]
    if route:
        objects.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "api", "namespace": namespace},
                "spec": {
                    "parentRefs": [{"name": "public"}],
                    "rules": [{"backendRefs": [{"name": "api", "port": 80, "weight": 100}]}],
                },
            }
        )
    return objects


def unknown_overrides(fleet: Fleet, settings: SandboxSettings) -> list[str]:
    """Clusters the settings configure that the fleet does not have."""
    known = {c.name for c in fleet.clusters}
    return [name for name in settings.clusters if name not in known]


def emulator_config(fleet: Fleet, settings: SandboxSettings) -> EmulatorConfig:
    """The emulator configuration serving every cluster of ``fleet``."""
    clusters = []
    for cluster in fleet.clusters:
        override = settings.clusters.get(cluster.name)
        spec = ClusterSpec(
            name=cluster.name,
            region=cluster.region,
            node_region=override.node_region if override else None,
            nodes=override.nodes if override and override.nodes is not None else 3,
            objects=workload(fleet.region_of(cluster.name).jurisdiction),
        )
        clusters.append(spec)
    return EmulatorConfig(clusters=clusters, controller=settings.controller)


def sandbox_fleet(fleet_text: str, prometheus: Mapping[str, str] | None = None) -> str:
    """The fleet file text with every cluster's ``kubeContext`` set to the sandbox context (its name).

    With ``prometheus`` (jurisdiction -> URL), every region of a listed jurisdiction is judged by that
    Prometheus, and the ``hosts`` table places each of those hosts in its jurisdiction (so the
    telemetry-locality rule allows them).
    """
    document = yaml.safe_load(fleet_text)
    for cluster in document.get("clusters") or []:
        cluster["kubeContext"] = cluster["name"]
    for region in document.get("regions") or []:
        url = (prometheus or {}).get(region.get("jurisdiction"))
        if url:
            region["prometheus"] = url
    rules = document.setdefault("hosts", []) if prometheus else []
    placed = {str(r.get("match")) for r in rules}
    for jurisdiction, url in (prometheus or {}).items():
        host = hosts.host_of(url)
        if host not in placed:
            rules.append({"match": host, "jurisdiction": jurisdiction})
            placed.add(host)
    header = (
        "# Written by `python -m sandbox up`: the fleet, pointing at the sandbox's kubeconfig contexts"
        + (" and Prometheus servers" if prometheus else "")
        + ".\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)
