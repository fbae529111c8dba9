"""What a request below ``/clusters/<name>`` is about: kube-apiserver's ``RequestInfo``.

Turns a method and path into the Kubernetes verb (``get``, ``list``, ``watch``, ``create``,
``update``, ``patch``, ``delete``, ``deletecollection``), the resource, namespace, name and
subresource, or marks it as discovery, OpenAPI, version or health. Faults and the request log
match on this; the handlers dispatch on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.apiserver import resources as r

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class RequestInfo:
    """The parts of one API request."""

    area: str
    """``resource``, ``discovery``, ``openapi``, ``version``, ``health`` or ``unknown``."""
    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    parts: tuple[str, ...] = ()

    @property
    def resource_type(self) -> r.ResourceType | None:
        """The served resource the request is for, if any."""
        return r.by_plural(self.group, self.version, self.resource) if self.resource else None


def _verb(method: str, *, named: bool, watch: bool) -> str:
    if method == "GET":
        if watch:
            return "watch"
        return "get" if named else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return _VERBS.get(method, method.lower())


def parse(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """Classify a request to ``path`` (the part after the cluster prefix)."""
    parts = tuple(p for p in path.split("/") if p)
    method = method.upper()
    read = method.lower() if method != "GET" else "get"
    if not parts:
        return RequestInfo("unknown", read)
    if parts in (("version",), ("healthz",), ("readyz",), ("livez",)):
        return RequestInfo("version" if parts[0] == "version" else "health", read, parts=parts)
    if parts[0] == "openapi":
        return RequestInfo("openapi", read, parts=parts)
    if parts[0] == "api" and len(parts) <= 2:
        return RequestInfo("discovery", read, version=parts[1] if len(parts) > 1 else "", parts=parts)
    if parts[0] == "apis" and len(parts) <= 3:
        group = parts[1] if len(parts) > 1 else ""
        return RequestInfo(
            "discovery", read, group=group, version=parts[2] if len(parts) > 2 else "", parts=parts
        )
    if parts[0] == "api":
        group, version, rest = "", parts[1], list(parts[2:])
    elif parts[0] == "apis":
        group, version, rest = parts[1], parts[2], list(parts[3:])
    else:
        return RequestInfo("unknown", read, parts=parts)
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        scoped = r.by_plural(group, version, rest[2])
        if scoped is not None and scoped.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return RequestInfo("unknown", read, parts=parts)
    name = rest[1] if len(rest) > 1 else None
    watch = query.get("watch", "").lower() in ("true", "1")
    return RequestInfo(
        "resource",
        _verb(method, named=name is not None, watch=watch),
        group=group,
        version=version,
        resource=rest[0],
        namespace=namespace,
        name=name,
        subresource=rest[2] if len(rest) > 2 else None,
        parts=parts,
    )
