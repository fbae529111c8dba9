"""HTTP handlers of one cluster's API: decode the request, call the registry, encode the answer.

Request bodies are JSON or YAML, or protobuf for the kinds kubectl's typed clients create
(``kubectl create namespace`` sends protobuf and client-go does not retry it as JSON after a 415,
so :mod:`.protobuf` decodes it); CBOR and other protobuf kinds are answered 415.
Answers are JSON, or a ``Table`` / ``PartialObjectMetadata`` when the ``Accept`` header asks for
one. Lists honour ``limit`` and ``continue``. ``dryRun=All`` runs a write without storing it. When
a write names no ``fieldManager`` the manager is the User-Agent's product name, as on a real
server (``kubectl``, ``OpenAPI-Generator``).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from sandbox.apiserver import discovery, fieldcheck, openapi, protobuf, scale, tables, watch
from sandbox.apiserver import errors as e
from sandbox.apiserver import resources as r
from sandbox.apiserver.faults import RequestRecord
from sandbox.apiserver.registry import APPLY_PATCH, JSON_PATCH, PATCH_TYPES, Registry
from sandbox.apiserver.requestinfo import RequestInfo
from sandbox.apiserver.selectors import object_matcher, parse_fields, parse_labels

if TYPE_CHECKING:
    from sandbox.apiserver.emulator import Cluster, Emulator

_BODY_TYPES = ["application/json", "application/yaml"]
RECORD: web.RequestKey[RequestRecord] = web.RequestKey("record", RequestRecord)
"""Where the cluster's request log entry of a request is kept while it is served."""


def respond(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, warnings: list[str] | None = None
) -> web.Response:
    """A JSON answer, with ``Warning`` headers as the API server sends them (``299 - "..."``)."""
    response = web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json", headers=headers
    )
    for warning in warnings or []:
        response.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return response


def _field_validation(request: web.Request, rt: r.ResourceType, body: Any) -> list[str]:
    """Drop unknown fields of a body and warn (``Warn``, the default), or refuse them (``Strict``)."""
    directive = request.query.get("fieldValidation", "Warn")
    if directive not in ("Ignore", "Warn", "Strict"):
        raise e.bad_request(f'fieldValidation must be Ignore, Warn or Strict, not "{directive}"')
    unknown = fieldcheck.unknown_fields(rt, body, prune=directive != "Strict")
    if unknown and directive == "Strict":
        raise e.bad_request(
            "strict decoding error: " + ", ".join(f'unknown field "{name}"' for name in unknown)
        )
    return [f'unknown field "{name}"' for name in unknown] if directive == "Warn" else []


def error_response(error: e.ApiError) -> web.Response:
    """An ``ApiError`` as the API server answers it."""
    return respond(error.status(), error.code, error.headers or None)


def _media(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _decode(raw: bytes, media: str) -> Any:
    if not raw.strip():
        raise e.bad_request("the request body is empty")
    try:
        return json.loads(raw)
    except ValueError:
        if "yaml" not in media:
            raise e.bad_request("the request body is not valid JSON") from None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise e.bad_request(f"the request body is not valid YAML: {exc}") from None


async def _body(request: web.Request, accepted: list[str]) -> Any:
    media = _media(request)
    if media == protobuf.MEDIA_TYPE:
        return protobuf.decode(await request.read())
    if media not in ("", "*/*", *accepted):
        raise e.unsupported_media_type(media, accepted)
    return _decode(await request.read(), media)


def field_manager(request: web.Request) -> str:
    """The manager a write is attributed to: ``fieldManager``, else the User-Agent's product name."""
    given = request.query.get("fieldManager")
    if given is not None:
        if len(given) > 128:
            raise e.ApiError(422, "fieldManager: Too long: must have at most 128 bytes")
        return given
    return request.headers.get("User-Agent", "unknown").split("/")[0][:128] or "unknown"


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise e.bad_request(f"Invalid dry run value: {values}; supported: All")
    return bool(values)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("true", "1")


def _list_body(
    rt: r.ResourceType, items: list[dict[str, Any]], version: int, request: web.Request
) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(version)}
    token = request.query.get("continue")
    if token:
        try:
            start = tuple(json.loads(base64.urlsafe_b64decode(token.encode())).get("after", []))
        except ValueError:
            raise e.bad_request("continue key is not valid") from None
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
    limit = int(request.query.get("limit") or 0)
    if 0 < limit < len(items):
        last = items[limit - 1]["metadata"]
        after = [last.get("namespace", ""), last["name"]]
        meta["continue"] = base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items}


def _represent(rt: r.ResourceType, request: web.Request, obj: dict[str, Any]) -> dict[str, Any]:
    accept = request.headers.get("Accept", "")
    if tables.wants(accept, "Table"):
        version = str(obj["metadata"].get("resourceVersion", ""))
        return tables.table(rt, [obj], version, include_object=request.query.get("includeObject", "Metadata"))
    if tables.wants(accept, "PartialObjectMetadata"):
        return tables.partial(obj)
    return obj


async def serve_meta(request: web.Request, info: RequestInfo, emulator: Emulator) -> web.Response:
    """Discovery, OpenAPI, version and health answers."""
    version = emulator.config.kubernetes_version
    found: dict[str, Any] | None = None
    if info.area == "version":
        found = discovery.version(version)
    elif info.area == "health":
        return web.Response(text="ok", content_type="text/plain")
    elif info.area == "discovery" and info.parts[0] == "api":
        host = request.host or "127.0.0.1"
        found = (
            discovery.api_versions(host) if not info.version else discovery.resource_list("", info.version)
        )
    elif info.area == "discovery":
        if not info.group:
            found = discovery.api_groups()
        elif not info.version:
            found = discovery.api_group(info.group)
        else:
            found = discovery.resource_list(info.group, info.version)
    elif info.area == "openapi" and info.parts[:2] == ("openapi", "v3"):
        rest = info.parts[2:]
        if not rest:
            found = openapi.root_document(version)
        elif rest[0] == "api" and len(rest) == 2:
            found = openapi.group_version_document("", rest[1], version)
        elif rest[0] == "apis" and len(rest) == 3:
            found = openapi.group_version_document(rest[1], rest[2], version)
    if found is None:
        raise e.ApiError(404, "the server could not find the requested resource")
    return respond(found)


async def serve_resource(request: web.Request, info: RequestInfo, cluster: Cluster) -> web.StreamResponse:
    """Every verb on every served resource of one cluster."""
    rt = info.resource_type
    if rt is None or (info.namespace is not None and not rt.namespaced):
        raise e.ApiError(404, "the server could not find the requested resource")
    if info.subresource and info.subresource not in rt.subresources:
        raise e.ApiError(404, "the server could not find the requested resource")
    if rt.namespaced and info.namespace is None and info.verb not in ("list", "watch"):
        raise e.method_not_supported(rt, info.verb)
    registry = cluster.registry
    if info.verb in ("watch", "list"):
        return await _serve_collection(request, info, rt, cluster)
    if info.subresource == "scale" and info.name:
        return await _serve_scale(request, info, rt, registry, info.name)
    if info.verb == "get" and info.name:
        return respond(_represent(rt, request, registry.get(rt, info.namespace, info.name)))
    if info.verb == "create" and not info.name:
        body = await _body(request, _BODY_TYPES)
        warnings = _field_validation(request, rt, body)
        created = registry.create(
            rt, info.namespace, body, manager=field_manager(request), dry_run=_dry_run(request)
        )
        return respond(created, 201, warnings=warnings)
    if info.verb == "update" and info.name:
        body = await _body(request, _BODY_TYPES)
        warnings = _field_validation(request, rt, body)
        updated = registry.update(
            rt,
            info.namespace,
            info.name,
            body,
            manager=field_manager(request),
            subresource=info.subresource,
            dry_run=_dry_run(request),
        )
        return respond(updated, warnings=warnings)
    if info.verb == "patch" and info.name:
        return await _serve_patch(request, info, rt, registry, info.name)
    if info.verb == "delete" and info.name and not info.subresource:
        return await _serve_delete(request, info, rt, registry, info.name)
    if info.verb == "deletecollection":
        gone = registry.delete_collection(
            rt,
            info.namespace,
            labels=request.query.get("labelSelector", ""),
            fields=request.query.get("fieldSelector", ""),
            dry_run=_dry_run(request),
        )
        return respond(_list_body(rt, gone, registry.store.resource_version, request))
    raise e.method_not_supported(rt, info.verb)


async def _serve_collection(
    request: web.Request, info: RequestInfo, rt: r.ResourceType, cluster: Cluster
) -> web.StreamResponse:
    fields = request.query.get("fieldSelector", "")
    if info.name:
        fields = ",".join(f for f in (fields, f"metadata.name={info.name}") if f)
    labels = request.query.get("labelSelector", "")
    if info.verb == "list":
        items, version = cluster.registry.list(rt, info.namespace, labels=labels, fields=fields)
        accept = request.headers.get("Accept", "")
        if tables.wants(accept, "Table"):
            body = tables.table(
                rt, items, str(version), include_object=request.query.get("includeObject", "Metadata")
            )
            return respond(body)
        if tables.wants(accept, "PartialObjectMetadata"):
            return respond(tables.partial_list(items, version))
        return respond(_list_body(rt, items, version, request))
    timeout = request.query.get("timeoutSeconds")
    table = (
        request.query.get("includeObject", "Metadata")
        if tables.wants(request.headers.get("Accept", ""), "Table")
        else None
    )
    spec = watch.WatchRequest(
        resource=rt,
        namespace=info.namespace,
        matches=object_matcher(parse_labels(labels), parse_fields(fields, rt)),
        resource_version=request.query.get("resourceVersion", ""),
        send_initial_events=_flag(request, "sendInitialEvents"),
        bookmarks=_flag(request, "allowWatchBookmarks"),
        timeout_seconds=float(timeout) if timeout else watch.DEFAULT_TIMEOUT_SECONDS,
        table=table,
    )
    record = request.get(RECORD)
    if record is not None:
        record.status = 200
    return await watch.serve(request, cluster.store, spec, cluster.closing)


async def _serve_patch(
    request: web.Request, info: RequestInfo, rt: r.ResourceType, registry: Registry, name: str
) -> web.Response:
    media = _media(request)
    if media not in PATCH_TYPES:
        accepted = [
            t for t in PATCH_TYPES if t != "application/strategic-merge-patch+json" or rt.strategic_merge
        ]
        raise e.unsupported_media_type(media, accepted)
    body = _decode(await request.read(), media)
    warnings = [] if media == JSON_PATCH else _field_validation(request, rt, body)
    manager = request.query.get("fieldManager", "") if media == APPLY_PATCH else field_manager(request)
    patched, created = registry.patch(
        rt,
        info.namespace,
        name,
        media,
        body,
        manager=manager,
        force=_flag(request, "force"),
        subresource=info.subresource,
        dry_run=_dry_run(request),
    )
    return respond(patched, 201 if created else 200, warnings=warnings)


async def _serve_delete(
    request: web.Request, info: RequestInfo, rt: r.ResourceType, registry: Registry, name: str
) -> web.Response:
    raw = await request.read()
    options = _decode(raw, "application/json") if raw.strip() else {}
    if not isinstance(options, dict):
        raise e.bad_request("the body of a DELETE must be DeleteOptions")
    dry_run = _dry_run(request) or options.get("dryRun") == ["All"]
    last, gone = registry.delete(
        rt, info.namespace, name, preconditions=options.get("preconditions"), dry_run=dry_run
    )
    if not gone:
        return respond(last)
    details: dict[str, Any] = {"name": name, "kind": rt.plural, "uid": last["metadata"].get("uid")}
    if rt.group:
        details["group"] = rt.group
    return respond(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
    )


async def _serve_scale(
    request: web.Request, info: RequestInfo, rt: r.ResourceType, registry: Registry, name: str
) -> web.Response:
    if info.verb == "get":
        return respond(scale.get(registry, rt, info.namespace, name))
    if info.verb == "update":
        body = await _body(request, _BODY_TYPES)
        return respond(
            scale.update(
                registry,
                rt,
                info.namespace,
                name,
                body,
                manager=field_manager(request),
                dry_run=_dry_run(request),
            )
        )
    if info.verb == "patch":
        body = _decode(await request.read(), _media(request))
        return respond(
            scale.patch(
                registry,
                rt,
                info.namespace,
                name,
                patch_type=_media(request),
                body=body,
                manager=field_manager(request),
                dry_run=_dry_run(request),
            )
        )
    raise e.method_not_supported(rt, info.verb)
