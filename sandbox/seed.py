"""From a fleet to the sandbox's clusters: their emulator config, seed workload, kubeconfig and fleet file.

Every fleet cluster becomes an emulated cluster of the same name, in its region, starting with the
workload a release acts on, one service by default (``services: {count: S}`` in the settings seeds
``api`` and ``svc-001`` ... ``svc-<S-1>`` alike, each in a namespace of its name, optionally with an
HPA and an HTTPRoute): namespace ``api``; Deployment ``api`` (label and pod-template label
``ringmaster.dev/version: v1``, container ``api``, image ``registry.eu.example.com/api:v1``, 10
replicas, ``DATABASE_URL`` on the orders database of the cluster's jurisdiction:
``orders.db.eu.example.com`` in EU clusters, ``orders.db.us.example.com`` in US ones); and Service
``api`` selecting ``app: api``. The fleet file written for the sandbox is the given one with each
cluster's ``kubeContext`` pointing at the sandbox kubeconfig context of the same name, and each
region's ``prometheus`` at its jurisdiction's sandbox Prometheus when the sandbox runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from policies import hosts
from policies.fleet import Fleet
from sandbox.apiserver.config import ClusterSpec, EmulatorConfig
from sandbox.settings import SandboxSettings

NAMESPACE = "api"
SERVICE = "api"
IMAGE = "registry.eu.example.com/api:v1"
VERSION_LABEL = "ringmaster.dev/version"
HPA_MIN, HPA_MAX, HPA_CPU = 2, 20, 70
"""A seeded autoscaler's bounds and its target CPU utilisation in percent."""


def service_names(count: int) -> list[str]:
    """The services a sandbox with ``services: {count}`` runs: ``api``, then ``svc-001`` ... ``svc-<count-1>``
    (each in a namespace of its name, its Deployment, Service and container named like it)."""
    return [SERVICE] + [f"svc-{i:03d}" for i in range(1, count)]


def database_host(jurisdiction: str) -> str:
    """The orders database of a jurisdiction (``orders.db.eu.example.com`` for EU)."""
    return f"orders.db.{jurisdiction.lower()}.example.com"


def workload(
    jurisdiction: str,
    namespace: str = NAMESPACE,
    *,
    service: str = SERVICE,
    route: bool = False,
    hpa: bool = False,
) -> list[dict[str, Any]]:
    """The seed objects of one service of a cluster in ``jurisdiction``, in ``namespace``.

    Namespace, Deployment and Service ``service`` (container ``service``, image
    ``registry.eu.example.com/<service>:v1``); with ``route``, also an HTTPRoute ``service`` sending
    every request to the Service (for canaries by route); with ``hpa``, an autoscaling/v2
    HorizontalPodAutoscaler ``service`` of the Deployment.
    """
    labels = {"app": service, VERSION_LABEL: "v1"}
    container = {
        "name": service,
        "image": f"registry.eu.example.com/{service}:v1",
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "DATABASE_URL", "value": f"postgres://{database_host(jurisdiction)}:5432/orders"}],
    }
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": service, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 10,
                "selector": {"matchLabels": {"app": service}},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": service, "namespace": namespace, "labels": {"app": service}},
            "spec": {
                "selector": {"app": service},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        },
    ]
    if route:
        objects.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {
                    "parentRefs": [{"name": "public"}],
                    "rules": [{"backendRefs": [{"name": service, "port": 80, "weight": 100}]}],
                },
            }
        )
    if hpa:
        objects.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": service, "namespace": namespace},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
                    "minReplicas": HPA_MIN,
                    "maxReplicas": HPA_MAX,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": HPA_CPU},
                            },
                        }
                    ],
                },
            }
        )
    return objects


def services(jurisdiction: str, settings: SandboxSettings) -> list[dict[str, Any]]:
    """The seed objects of every service of one cluster in ``jurisdiction``, as ``settings.services`` says."""
    wanted = settings.services
    objects: list[dict[str, Any]] = []
    for name in service_names(wanted.count):
        objects += workload(jurisdiction, name, service=name, route=wanted.route, hpa=wanted.hpa)
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
            objects=services(fleet.region_of(cluster.name).jurisdiction, settings),
        )
        clusters.append(spec)
    return EmulatorConfig(clusters=clusters, controller=settings.controller)


@dataclass(frozen=True)
class FlagServerPlace:
    """Where a jurisdiction's sandbox Unleash serves flags: its base URL, project and environment."""

    url: str
    project: str
    environment: str


def sandbox_fleet(
    fleet_text: str,
    prometheus: Mapping[str, str] | None = None,
    servers: Mapping[str, Sequence[str]] | None = None,
    flags: Mapping[str, FlagServerPlace] | None = None,
) -> str:
    """The fleet file text with every cluster's ``kubeContext`` set to the sandbox context (its name).

    With ``prometheus`` (jurisdiction -> URL), every region of a listed jurisdiction is judged by that
    Prometheus, and the ``hosts`` table places each of those hosts in its jurisdiction (so the
    telemetry-locality rule allows them); the hosts of ``servers`` (jurisdiction -> URLs of the
    sandbox's other servers there, its Unleash) are placed likewise. With ``flags`` (jurisdiction ->
    the sandbox's Unleash there), every region of a listed jurisdiction that names a flag server names
    that one instead (its Admin and client APIs under ``/api``), with its project and environment: the
    sandbox has one Unleash environment per jurisdiction, which every region there shares (each step's
    ``cluster IN [...]`` constraint keeps clusters apart).
    """
    document = yaml.safe_load(fleet_text)
    for cluster in document.get("clusters") or []:
        cluster["kubeContext"] = cluster["name"]
    for region in document.get("regions") or []:
        url = (prometheus or {}).get(region.get("jurisdiction"))
        if url:
            region["prometheus"] = url
        flag_server = (flags or {}).get(region.get("jurisdiction"))
        if flag_server and isinstance(region.get("flags"), dict):
            region["flags"].update(
                url=f"{flag_server.url.rstrip('/')}/api",
                project=flag_server.project,
                environment=flag_server.environment,
            )
    placing = [(j, url) for j, url in (prometheus or {}).items()]
    placing += [(j, url) for j, urls in (servers or {}).items() for url in urls]
    rules = document.setdefault("hosts", []) if placing else []
    placed = {str(r.get("match")) for r in rules}
    for jurisdiction, url in placing:
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
