"""Admin endpoints under ``/admin``, outside every cluster prefix: state, faults, request and change
logs, settings.

Tests, the sandbox and (later) the traffic simulator use these; production code never does (it
only knows kubeconfig contexts). All bodies are JSON with camelCase keys:

- ``GET /admin/clusters``: ``{"clusters": [{name, region, nodeRegion, resourceVersion, objects,
  watchers, faults}]}``; ``POST`` a ClusterSpec ``{name, region, nodeRegion?, nodes?, objects?}``
  to serve a new cluster (201);
- ``GET`` / ``DELETE /admin/clusters/<c>``: one cluster / stop serving it;
- ``GET /admin/clusters/<c>/objects?kind=Deployment[&namespace=&labelSelector=&fieldSelector=]``:
  ``{"kind", "resourceVersion", "items"}``, a cheap read that stays out of the request log;
- ``POST /admin/clusters/<c>/compact``: forget the watch history (older versions answer 410);
- ``GET`` / ``POST`` / ``DELETE /admin/clusters/<c>/faults``: list, add a FaultSpec (201
  ``{id, hits, remaining?, ...spec}``), clear; ``DELETE .../faults/<id>`` removes one;
- ``GET /admin/clusters/<c>/requests[?since=N&verb=patch&namespace=ns]``: ``{"requests": [{seq,
  time, method, verb, path, query, resource, subresource, namespace, name, fieldManager,
  contentType, userAgent, status, durationMs, fault}], "last": N}`` (``time`` when the request
  arrived, in unix seconds; ``status`` 0 while it has no answer); ``DELETE`` clears it;
- ``GET /admin/clusters/<c>/changes[?namespace=ns&since=N]``: the change log
  (:mod:`.changes`), every write that changed an object's content after change ``N``:
  ``{"changes": [{seq, time, op, kind, namespace, name, object}], "last": N, "dropped": D}``,
  ``op`` one of ``created``, ``updated``, ``deleted``, ``time`` in unix seconds, ``object`` without
  status, resourceVersion and managedFields; ``last`` is the newest change's number (ask
  ``since=last`` next), ``dropped`` how many of the oldest were forgotten (changes up to ``D`` are
  gone);
- ``GET`` / ``PATCH /admin/controller``: the controller settings (``podReadySeconds``,
  ``neverReadyImages``, ``progressDeadlineScale``, ``tickSeconds``), changed by merging keys.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from sandbox.apiserver import errors as e
from sandbox.apiserver import resources as r
from sandbox.apiserver.config import ClusterSpec, ControllerSettings
from sandbox.apiserver.emulator import Emulator
from sandbox.apiserver.faults import FaultSpec
from sandbox.apiserver.handlers import error_response, respond

EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise e.bad_request("the request body is not valid JSON") from None


def _validation(exc: ValidationError) -> e.ApiError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )
    return e.ApiError(422, problems)


@web.middleware
async def admin_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer ApiErrors (and bad bodies) of admin handlers as Status documents."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except e.ApiError as error:
        return error_response(error)
    except ValidationError as exc:
        return error_response(_validation(exc))


async def list_clusters(request: web.Request) -> web.Response:
    """Every served cluster."""
    return respond({"clusters": [c.describe() for c in _emulator(request).clusters.values()]})


async def add_cluster(request: web.Request) -> web.Response:
    """Serve a new cluster."""
    spec = ClusterSpec.model_validate(await _json(request))
    try:
        cluster = _emulator(request).add_cluster(spec)
    except ValueError as exc:
        raise e.ApiError(422, str(exc)) from None
    return respond(cluster.describe(), 201)


async def get_cluster(request: web.Request) -> web.Response:
    """One cluster."""
    return respond(_emulator(request).cluster(request.match_info["cluster"]).describe())


async def remove_cluster(request: web.Request) -> web.Response:
    """Stop serving a cluster."""
    name = request.match_info["cluster"]
    _emulator(request).cluster(name)
    _emulator(request).remove_cluster(name)
    return respond({"removed": name})


async def objects(request: web.Request) -> web.Response:
    """A cheap read of one kind's objects in a cluster."""
    cluster = _emulator(request).cluster(request.match_info["cluster"])
    kind = request.query.get("kind", "")
    rt = r.lookup(kind)
    if rt is None:
        raise e.bad_request(f"unknown kind {kind!r}; served: {', '.join(t.kind for t in r.RESOURCES)}")
    items, version = cluster.registry.list(
        rt,
        request.query.get("namespace") or None,
        labels=request.query.get("labelSelector", ""),
        fields=request.query.get("fieldSelector", ""),
    )
    return respond({"kind": rt.kind, "resourceVersion": str(version), "items": items})


async def compact(request: web.Request) -> web.Response:
    """Forget the watch history of a cluster."""
    cluster = _emulator(request).cluster(request.match_info["cluster"])
    return respond({"compactedResourceVersion": str(cluster.store.compact())})


async def list_faults(request: web.Request) -> web.Response:
    """The active faults of a cluster."""
    cluster = _emulator(request).cluster(request.match_info["cluster"])
    return respond({"faults": [f.describe() for f in cluster.faults.active()]})


async def add_fault(request: web.Request) -> web.Response:
    """Inject a fault."""
    cluster = _emulator(request).cluster(request.match_info["cluster"])
    fault = cluster.faults.add(FaultSpec.model_validate(await _json(request)))
    return respond(fault.describe(), 201)


async def clear_faults(request: web.Request) -> web.Response:
    """Remove every fault of a cluster."""
    cluster = _emulator(request).cluster(request.match_info["cluster"])
    return respond({"removed": cluster.faults.clear()})


async def remove_fault(request: web.Request) -> web.Response:
    """Remove one fault."""
    cluster = _emulator(request).cluster(request.match_info["cluster"])
    fault_id = request.match_info["fault"]
    if not cluster.faults.remove(fault_id):
        raise e.ApiError(404, f'fault "{fault_id}" not found')
    return respond({"removed": fault_id})


def _since(request: web.Request, what: str) -> int:
    try:
        return int(request.query.get("since", "0"))
    except ValueError:
        raise e.bad_request(f"since must be a {what} number") from None


async def list_requests(request: web.Request) -> web.Response:
    """The request log of a cluster, after ``since`` (of one verb, in one namespace, when given)."""
    cluster = _emulator(request).cluster(request.match_info["cluster"])
    since = _since(request, "request")
    records = cluster.requests.since(
        since, verb=request.query.get("verb"), namespace=request.query.get("namespace") or None
    )
    last = records[-1].seq if records else since
    return respond({"requests": [rec.describe() for rec in records], "last": last})


async def clear_requests(request: web.Request) -> web.Response:
    """Forget the request log of a cluster."""
    _emulator(request).cluster(request.match_info["cluster"]).requests.clear()
    return respond({"cleared": True})


async def list_changes(request: web.Request) -> web.Response:
    """The change log of a cluster, after ``since`` (of one namespace when given)."""
    changes = _emulator(request).cluster(request.match_info["cluster"]).store.changes
    found = changes.since(_since(request, "change"), namespace=request.query.get("namespace") or None)
    return respond(
        {"changes": [c.describe() for c in found], "last": changes.last, "dropped": changes.dropped}
    )


async def get_controller(request: web.Request) -> web.Response:
    """The controller settings."""
    return respond(_emulator(request).settings.model_dump(by_alias=True))


async def patch_controller(request: web.Request) -> web.Response:
    """Change some controller settings (a merge of the given keys)."""
    emulator = _emulator(request)
    body = await _json(request)
    if not isinstance(body, dict):
        raise e.bad_request("expected an object of settings")
    merged = {**emulator.settings.model_dump(by_alias=True), **body}
    emulator.update_settings(ControllerSettings.model_validate(merged))
    return respond(emulator.settings.model_dump(by_alias=True))


def routes() -> list[web.RouteDef]:
    """The admin routes."""
    base = "/admin/clusters/{cluster}"
    return [
        web.get("/admin/clusters", list_clusters),
        web.post("/admin/clusters", add_cluster),
        web.get(base, get_cluster),
        web.delete(base, remove_cluster),
        web.get(f"{base}/objects", objects),
        web.post(f"{base}/compact", compact),
        web.get(f"{base}/faults", list_faults),
        web.post(f"{base}/faults", add_fault),
        web.delete(f"{base}/faults", clear_faults),
        web.delete(f"{base}/faults/{{fault}}", remove_fault),
        web.get(f"{base}/requests", list_requests),
        web.delete(f"{base}/requests", clear_requests),
        web.get(f"{base}/changes", list_changes),
        web.get("/admin/controller", get_controller),
        web.patch("/admin/controller", patch_controller),
    ]
