"""Manifests tests create in a cluster: Deployments, Services, autoscalers and HTTPRoutes, as dictionaries.

Each builder gives the smallest object the API accepts, shaped the way a user's manifests are; a test
passes what it varies (labels, containers, replicas, routes) and gets the rest filled in.
"""

from __future__ import annotations

from typing import Any

ROUTES_GROUP = "gateway.networking.k8s.io"


def container(name: str, image: str, **fields: Any) -> dict[str, Any]:
    """A container (``ports``, ``env``... as extra fields)."""
    return {"name": name, "image": image, **fields}


def deployment(
    name: str,
    containers: list[dict[str, Any]],
    *,
    replicas: int | None = None,
    labels: dict[str, str] | None = None,
    selector: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Deployment whose pods carry ``labels`` (default ``app: <name>``), selected by ``selector``
    (default: the ``app`` label alone); other ``spec`` fields as keywords."""
    labels = {"app": name} if labels is None else labels
    selector = {"app": labels["app"]} if selector is None else selector
    body: dict[str, Any] = {"selector": {"matchLabels": selector}}
    if replicas is not None:
        body = {"replicas": replicas, **body}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            **body,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
            **spec,
        },
    }


def service(
    name: str, selector: dict[str, str], ports: list[dict[str, Any]], *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Service selecting ``selector`` on ``ports``."""
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"selector": selector, "ports": ports},
    }


def autoscaler(
    target: str, *, min_replicas: int, max_replicas: int, metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    """A HorizontalPodAutoscaler named like the Deployment it scales."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": metrics,
        },
    }


def route_rule(backends: list[dict[str, Any]], *, prefix: str | None = None) -> dict[str, Any]:
    """One HTTPRoute rule sending requests (under ``prefix``, if given) to ``backends``."""
    rule: dict[str, Any] = {}
    if prefix is not None:
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": prefix}}]
    rule["backendRefs"] = backends
    return rule


def http_route(name: str, parent: dict[str, str], *rules: dict[str, Any]) -> dict[str, Any]:
    """A Gateway API HTTPRoute attached to ``parent`` (a gateway reference)."""
    return {
        "apiVersion": f"{ROUTES_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [parent], "rules": list(rules)},
    }
