"""Server-side printing: ``Table`` and ``PartialObjectMetadata`` answers for clients that ask for them.

``kubectl get`` asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns
the server defines, so the emulator defines the columns kube-apiserver prints for each kind
(``NAME READY UP-TO-DATE AVAILABLE AGE`` for Deployments, with ``-o wide`` extras at priority 1).
Metadata-only clients ask for ``as=PartialObjectMetadata(List)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sandbox.apiserver import resources as r
from sandbox.apiserver.selectors import selector_string

Cell = Callable[[dict[str, Any]], Any]


def human_duration(seconds: float) -> str:
    """kubectl's ``HumanDuration``: ``45s``, ``3m20s``, ``5h10m``, ``3d4h``..."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years = hours // (24 * 365)
    return f"{years}y{(hours // 24) % 365}d" if years < 8 else f"{years}y"


def _age(obj: dict[str, Any]) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return human_duration((dt.datetime.now(dt.UTC) - created).total_seconds())


def _get(obj: dict[str, Any], *path: str, default: Any = None) -> Any:
    node: Any = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return default if node is None else node


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_get(obj, "spec", "template", "spec", "containers", default=[]))


def _ports(obj: dict[str, Any]) -> str:
    ports = _get(obj, "spec", "ports", default=[])
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _node_status(obj: dict[str, Any]) -> str:
    ready = [c for c in _get(obj, "status", "conditions", default=[]) if c.get("type") == "Ready"]
    status = "Ready" if ready and ready[0].get("status") == "True" else "NotReady"
    return status + (",SchedulingDisabled" if _get(obj, "spec", "unschedulable") else "")


def _hpa_targets(obj: dict[str, Any]) -> str:
    parts = []
    for metric in _get(obj, "spec", "metrics", default=[]):
        source = (
            metric.get(str(metric.get("type", "")).lower().replace("containerresource", "containerResource"))
            or {}
        )
        target = source.get("target") or {}
        if "averageUtilization" in target:
            wanted = f"{target['averageUtilization']}%"
        else:
            wanted = str(target.get("averageValue") or target.get("value") or "<unknown>")
        name = source.get("name") or (source.get("metric") or {}).get("name", "")
        parts.append(f"{name}: <unknown>/{wanted}" if name else f"<unknown>/{wanted}")
    return ", ".join(parts) or "<none>"


_NAME: tuple[str, str, int, Cell] = ("Name", "name", 0, lambda o: o["metadata"]["name"])
_AGE: tuple[str, str, int, Cell] = ("Age", "", 0, _age)

COLUMNS: dict[r.ResourceType, list[tuple[str, str, int, Cell]]] = {
    r.NAMESPACE: [_NAME, ("Status", "", 0, lambda o: _get(o, "status", "phase", default="")), _AGE],
    r.NODE: [
        _NAME,
        ("Status", "", 0, _node_status),
        ("Roles", "", 0, lambda o: "<none>"),
        _AGE,
        ("Version", "", 0, lambda o: _get(o, "status", "nodeInfo", "kubeletVersion", default="")),
        (
            "Region",
            "",
            1,
            lambda o: _get(o, "metadata", "labels", "topology.kubernetes.io/region", default=""),
        ),
    ],
    r.SERVICE: [
        _NAME,
        ("Type", "", 0, lambda o: _get(o, "spec", "type", default="ClusterIP")),
        ("Cluster-IP", "", 0, lambda o: _get(o, "spec", "clusterIP", default="<none>")),
        ("External-IP", "", 0, lambda o: "<none>"),
        ("Port(s)", "", 0, _ports),
        _AGE,
        (
            "Selector",
            "",
            1,
            lambda o: ",".join(f"{k}={v}" for k, v in _get(o, "spec", "selector", default={}).items()),
        ),
    ],
    r.CONFIG_MAP: [
        _NAME,
        ("Data", "", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        _AGE,
    ],
    r.SECRET: [
        _NAME,
        ("Type", "", 0, lambda o: o.get("type") or "Opaque"),
        ("Data", "", 0, lambda o: len(o.get("data") or {})),
        _AGE,
    ],
    r.DEPLOYMENT: [
        _NAME,
        (
            "Ready",
            "",
            0,
            lambda o: (
                f"{_get(o, 'status', 'readyReplicas', default=0)}/{_get(o, 'spec', 'replicas', default=0)}"
            ),
        ),
        ("Up-to-date", "", 0, lambda o: _get(o, "status", "updatedReplicas", default=0)),
        ("Available", "", 0, lambda o: _get(o, "status", "availableReplicas", default=0)),
        _AGE,
        ("Containers", "", 1, lambda o: ",".join(str(c.get("name")) for c in _containers(o))),
        ("Images", "", 1, lambda o: ",".join(str(c.get("image")) for c in _containers(o))),
        ("Selector", "", 1, lambda o: selector_string(_get(o, "spec", "selector"))),
    ],
    r.HPA: [
        _NAME,
        (
            "Reference",
            "",
            0,
            lambda o: (
                f"{_get(o, 'spec', 'scaleTargetRef', 'kind')}/{_get(o, 'spec', 'scaleTargetRef', 'name')}"
            ),
        ),
        ("Targets", "", 0, _hpa_targets),
        ("MinPods", "", 0, lambda o: _get(o, "spec", "minReplicas", default=1)),
        ("MaxPods", "", 0, lambda o: _get(o, "spec", "maxReplicas", default=0)),
        ("Replicas", "", 0, lambda o: _get(o, "status", "currentReplicas", default=0)),
        _AGE,
    ],
    r.HTTP_ROUTE: [
        _NAME,
        ("Hostnames", "", 0, lambda o: ",".join(_get(o, "spec", "hostnames", default=[]))),
        _AGE,
    ],
}


def wants(accept: str, what: str) -> bool:
    """Whether an ``Accept`` header asks for ``as=<what>`` (``Table``, ``PartialObjectMetadata``...)."""
    return any(f"as={what}" in part.replace(" ", "") for part in accept.split(","))


def partial(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as ``PartialObjectMetadata``."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def partial_list(items: list[dict[str, Any]], resource_version: int) -> dict[str, Any]:
    """A list as ``PartialObjectMetadataList``."""
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "items": [partial(o) for o in items],
    }


def table(
    rt: r.ResourceType,
    items: list[dict[str, Any]],
    resource_version: str,
    *,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """Objects as a ``Table`` with the kind's columns; ``include_object`` is None, Metadata or Object."""
    columns = COLUMNS.get(rt, [_NAME, _AGE])
    rows = []
    for obj in items:
        row: dict[str, Any] = {"cells": [cell(obj) for _, _, _, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": name, "type": "string", "format": fmt, "description": name, "priority": priority}
            for name, fmt, priority, _ in columns
        ],
        "rows": rows,
    }
