"""OpenAPI v3 documents, as much of them as kubectl reads.

``/openapi/v3`` lists one document per group/version; each names its paths with a
``serverRelativeURL`` rooted at ``/openapi/v3`` so clients keep the ``/clusters/<name>`` prefix of
their kubeconfig ``server`` (client-go treats such URLs as relative to its own prefix).

kubectl reads two things from them. Before ``apply``, ``create`` or ``patch`` it checks that the
PATCH operation of the kind (found by a *single-object* ``x-kubernetes-group-version-kind``)
declares a ``fieldValidation`` parameter; it then leaves validation to the server instead of
validating on the client. For client-side ``apply`` it checks whether that operation accepts
strategic merge patch (custom resources such as HTTPRoute do not, so kubectl sends a JSON merge
patch). The component schemas carry no kind extension, so kubectl computes strategic merge
patches from its built-in types, exactly as it would with a real cluster's built-in kinds.
``/openapi/v2`` is not served (404); kubectl does not need it when v3 is present.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sandbox.apiserver import resources as r
from sandbox.apiserver.registry import PATCH_TYPES, STRATEGIC_PATCH


def _param(name: str, where: str = "query", *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "schema": {"type": "string", "uniqueItems": True},
    }


def _gvk(rt: r.ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schema_name(rt: r.ResourceType) -> str:
    return f"sandbox.{rt.group or 'core'}.{rt.version}.{rt.kind}"


def _body(types: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {t: {"schema": schema} for t in types}, "required": True}


def _operation(rt: r.ResourceType, action: str, verb: str, *, subresource: str = "") -> dict[str, Any]:
    kind = rt.kind + ("Status" if subresource == "status" else "Scale" if subresource == "scale" else "")
    scope = "Namespaced" if rt.namespaced else ""
    group = "".join(part.capitalize() for part in (rt.group or "core").split(".")) + rt.version.capitalize()
    op: dict[str, Any] = {
        "operationId": f"{action}{group}{scope}{kind}",
        "tags": [rt.group or "core"],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": _ref(_schema_name(rt))}}}
        },
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": (
            {"group": "autoscaling", "version": "v1", "kind": "Scale"} if subresource == "scale" else _gvk(rt)
        ),
    }
    writes = {
        "post": ["dryRun", "fieldManager", "fieldValidation"],
        "put": ["dryRun", "fieldManager", "fieldValidation"],
    }
    writes["patch"] = [*writes["put"], "force"]
    names = writes.get(
        action, ["gracePeriodSeconds", "propagationPolicy", "dryRun"] if action == "delete" else []
    )
    if verb == "list":
        names = [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "timeoutSeconds",
            "watch",
        ]
    if names:
        op["parameters"] = [_param(n) for n in names]
    if action == "patch":
        accepted = [t for t in PATCH_TYPES if t != STRATEGIC_PATCH or rt.strategic_merge]
        op["requestBody"] = _body(accepted, _ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch"))
    elif action in ("post", "put"):
        op["requestBody"] = _body(["*/*"], _ref(_schema_name(rt)))
    return op


def _paths(rt: r.ResourceType) -> dict[str, Any]:
    collection = rt.prefix + ("/namespaces/{namespace}" if rt.namespaced else "") + f"/{rt.plural}"
    common = [_param("pretty")] + ([_param("namespace", "path", required=True)] if rt.namespaced else [])
    named = [_param("name", "path", required=True), *common]
    paths: dict[str, Any] = {
        collection: {
            "get": _operation(rt, "list", "list"),
            "post": _operation(rt, "create", "post"),
            "delete": _operation(rt, "deletecollection", "deletecollection"),
            "parameters": common,
        },
        f"{collection}/{{name}}": {
            "get": _operation(rt, "read", "get"),
            "put": _operation(rt, "replace", "put"),
            "patch": _operation(rt, "patch", "patch"),
            "delete": _operation(rt, "delete", "delete"),
            "parameters": named,
        },
    }
    for sub in rt.subresources:
        paths[f"{collection}/{{name}}/{sub}"] = {
            "get": _operation(rt, "read", "get", subresource=sub),
            "put": _operation(rt, "replace", "put", subresource=sub),
            "patch": _operation(rt, "patch", "patch", subresource=sub),
            "parameters": named,
        }
    return paths


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def group_version_document(group: str, version: str, kubernetes_version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group/version, or None when it is not served."""
    served = r.in_group_version(group, version)
    if not served:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch": {"type": "object", "description": "A patch document."},
    }
    for rt in served:
        paths.update(_paths(rt))
        schemas[_schema_name(rt)] = {
            "type": "object",
            "description": f"{rt.kind} ({rt.api_version}), served by the ringmaster sandbox.",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": kubernetes_version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def root_document(kubernetes_version: str) -> dict[str, Any]:
    """The ``/openapi/v3`` index: one entry per served group/version."""
    entries: dict[str, Any] = {}
    for group, version in r.group_versions():
        document = group_version_document(group, version, kubernetes_version) or {}
        path = _gv_path(group, version)
        entries[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_digest(document)}"}
    return {"paths": entries}
