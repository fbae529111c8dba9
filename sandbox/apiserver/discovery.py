"""Discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``.

The emulator serves the legacy (unaggregated) discovery documents; clients that ask for aggregated
discovery (``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``) fall back to
them because the answer's content type is plain ``application/json``, as client-go does with
older servers. Resource lists name ``status`` (and ``scale``) subresources and the verbs,
short names and categories kubectl uses to resolve ``deploy``, ``svc`` or ``all``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox.apiserver import resources as r

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_CLUSTER_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def version(kubernetes_version: str) -> dict[str, Any]:
    """The ``/version`` document."""
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "gitVersion": kubernetes_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """The ``/api`` document (the core group's versions)."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in r.group_versions() if g == name]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_groups() -> dict[str, Any]:
    """The ``/apis`` document."""
    names = list(dict.fromkeys(g for g, _ in r.group_versions() if g))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(n) for n in names]}


def api_group(name: str) -> dict[str, Any] | None:
    """The ``/apis/<group>`` document, or None for an unknown group."""
    if not any(g == name for g, _ in r.group_versions()):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def resource_list(group: str, version_: str) -> dict[str, Any] | None:
    """The ``/api/v1`` or ``/apis/<group>/<version>`` document, or None when not served."""
    served = r.in_group_version(group, version_)
    if not served:
        return None
    listed: list[dict[str, Any]] = []
    for rt in served:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": _VERBS if rt.namespaced else _CLUSTER_VERBS,
            "storageVersionHash": hashlib.sha256(rt.qualified.encode()).hexdigest()[:11],
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        listed.append(entry)
        for sub in rt.subresources:
            child: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                child.update(group="autoscaling", version="v1", kind="Scale")
            listed.append(child)
    group_version = f"{group}/{version_}" if group else version_
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": listed}
