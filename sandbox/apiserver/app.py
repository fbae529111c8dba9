"""The aiohttp application: routes every cluster's API, the admin endpoints and readiness.

``/clusters/<name>/...`` is one cluster's API server (usable as a kubeconfig ``server:``). Each of
its requests is classified (:mod:`.requestinfo`), logged, passed through the cluster's faults
(latency, an error status, a dropped connection) and then served (:mod:`.handlers`). ``/readyz``
answers once every cluster is seeded; ``/admin/...`` is :mod:`.admin`. :func:`start` runs the
application on a host and port (0 picks a free port) together with the controllers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from aiohttp import web

from sandbox.apiserver import admin, handlers, requestinfo
from sandbox.apiserver import errors as e
from sandbox.apiserver.emulator import Emulator
from sandbox.apiserver.faults import Fault


def _fault_response(fault: Fault) -> web.Response:
    spec = fault.spec
    code = spec.status or 500
    headers = {"Retry-After": str(spec.retry_after_seconds)} if spec.retry_after_seconds is not None else None
    details = (
        {"retryAfterSeconds": spec.retry_after_seconds} if spec.retry_after_seconds is not None else None
    )
    message = spec.message or f"injected fault {fault.id}: {e.reason_for(code)}"
    return handlers.error_response(e.ApiError(code, message, details=details, headers=headers))


async def cluster_api(request: web.Request) -> web.StreamResponse:
    """Serve one request of one cluster's API."""
    emulator = request.app[admin.EMULATOR]
    try:
        cluster = emulator.cluster(request.match_info["cluster"])
    except e.ApiError as error:
        return handlers.error_response(error)
    path = "/" + request.match_info["tail"]
    info = requestinfo.parse(request.method, path, request.query)
    record = cluster.requests.start(request.method, info.verb, path, request.query_string)
    record.resource, record.subresource = info.resource, info.subresource or ""
    record.namespace, record.name = info.namespace or "", info.name or ""
    record.field_manager = request.query.get("fieldManager", "")
    record.content_type = request.headers.get("Content-Type", "")
    record.accept = request.headers.get("Accept", "")
    record.user_agent = request.headers.get("User-Agent", "")
    request[handlers.RECORD] = record
    started = time.monotonic()
    try:
        fault = cluster.faults.take(info.verb, request.method, path)
        if fault is not None:
            record.fault = fault.id
            if fault.spec.latency_seconds:
                await asyncio.sleep(fault.spec.latency_seconds)
            if fault.spec.drop:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if fault.spec.status:
                response: web.StreamResponse = _fault_response(fault)
                record.status = response.status
                return response
        if info.area == "resource":
            response = await handlers.serve_resource(request, info, cluster)
        else:
            response = await handlers.serve_meta(request, info, emulator)
    except e.ApiError as error:
        response = handlers.error_response(error)
    finally:
        record.duration_ms = round((time.monotonic() - started) * 1000, 3)
    record.status = response.status
    return response


def build(emulator: Emulator) -> web.Application:
    """The application serving ``emulator``."""
    app = web.Application(middlewares=[admin.admin_errors], client_max_size=16 * 1024 * 1024)
    app[admin.EMULATOR] = emulator

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    app.add_routes(
        [
            web.get("/readyz", ready),
            web.get("/healthz", ready),
            *admin.routes(),
            web.route("*", "/clusters/{cluster}/{tail:.*}", cluster_api),
        ]
    )
    return app


@dataclass
class Running:
    """A started emulator: its runner, port and controller task (see :func:`stop`)."""

    emulator: Emulator
    runner: web.AppRunner
    port: int
    controllers: asyncio.Task[None]


async def start(emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Serve ``emulator`` on ``host:port`` (0: any free port) and start its controllers."""
    runner = web.AppRunner(build(emulator), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    controllers = asyncio.create_task(emulator.run_controllers(), name="controllers")
    return Running(emulator, runner, int(bound), controllers)


async def stop(running: Running) -> None:
    """Stop serving: end watches, the controllers and the HTTP server."""
    running.emulator.closing.set()
    with contextlib.suppress(asyncio.CancelledError):
        await running.controllers
    await running.runner.cleanup()
