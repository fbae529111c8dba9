"""Watch streams: newline-delimited ``{"type", "object"}`` events over a chunked HTTP response.

Semantics follow kube-apiserver's watch cache:

- no ``resourceVersion`` (or ``"0"``): synthetic ``ADDED`` events for the current state, then
  changes; a ``resourceVersion``: every change after it, or one ``ERROR`` event carrying a 410
  ``Expired`` Status when that version is older than the retained history;
- ``sendInitialEvents=true`` (the watch-list protocol client-go informers use since 1.35): the
  current state as ``ADDED`` events, then a ``BOOKMARK`` annotated
  ``k8s.io/initial-events-end: "true"``, then changes;
- label and field selectors filter events, and an object that starts or stops matching arrives as
  ``ADDED`` or ``DELETED``;
- ``allowWatchBookmarks`` adds periodic ``BOOKMARK`` events and one before a timeout;
- the stream ends after ``timeoutSeconds`` (30 minutes when not given).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.apiserver import tables
from sandbox.apiserver.errors import ApiError, bad_request
from sandbox.apiserver.resources import ResourceType
from sandbox.apiserver.store import Event, Store

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
DEFAULT_TIMEOUT_SECONDS = 1800
BOOKMARK_SECONDS = 10.0
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class WatchRequest:
    """What a client asked to watch."""

    resource: ResourceType
    namespace: str | None
    matches: Callable[[Mapping[str, Any]], bool]
    resource_version: str
    send_initial_events: bool
    bookmarks: bool
    timeout_seconds: float
    table: str | None = None
    """``includeObject`` policy when the client asked for Table events, else None."""


def convert(event: Event, matches: Callable[[Mapping[str, Any]], bool]) -> tuple[str, dict[str, Any]] | None:
    """The event a selector-filtered watcher sees for a change (None: nothing)."""
    now_ok = matches(event.object)
    if event.type in ("ADDED", "DELETED"):
        return (event.type, event.object) if now_ok else None
    before_ok = event.previous is not None and matches(event.previous)
    if now_ok:
        return ("MODIFIED" if before_ok else "ADDED", event.object)
    if before_ok and event.previous is not None:
        gone = {**event.previous, "metadata": {**event.previous["metadata"]}}
        gone["metadata"]["resourceVersion"] = str(event.resource_version)
        return ("DELETED", gone)
    return None


def _bookmark(rt: ResourceType, version: int, *, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(version)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


class _Stream:
    def __init__(self, response: web.StreamResponse, watch: WatchRequest) -> None:
        self.response = response
        self.watch = watch
        self.last_bookmark = time.monotonic()

    async def send(self, kind: str, obj: dict[str, Any]) -> None:
        if self.watch.table is not None and kind in ("ADDED", "MODIFIED", "DELETED"):
            version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            obj = tables.table(self.watch.resource, [obj], version, include_object=self.watch.table)
        await self.response.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())

    async def bookmark(self, version: int, *, initial_end: bool = False) -> None:
        self.last_bookmark = time.monotonic()
        await self.send("BOOKMARK", _bookmark(self.watch.resource, version, initial_end=initial_end))


async def serve(
    request: web.Request, store: Store, watch: WatchRequest, closing: asyncio.Event
) -> web.StreamResponse:
    """Stream a watch until its timeout, the client leaving, or the server shutting down."""
    subscription = store.subscribe(watch.resource, watch.namespace)
    try:
        backlog: list[tuple[str, dict[str, Any]]] = []
        expired: ApiError | None = None
        if watch.send_initial_events or watch.resource_version in ("", "0"):
            items = store.items(watch.resource, watch.namespace)
            backlog = [("ADDED", o) for o in items if watch.matches(o)]
        else:
            try:
                since = int(watch.resource_version)
            except ValueError:
                raise bad_request(f"invalid resource version: {watch.resource_version!r}") from None
            try:
                events = store.history_since(watch.resource, since, watch.namespace)
            except ApiError as exc:
                expired = exc
                events = []
            backlog = [c for c in (convert(e, watch.matches) for e in events) if c is not None]
        start = store.resource_version
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        stream = _Stream(response, watch)
        try:
            if expired is not None:
                await stream.send("ERROR", expired.status())
                return response
            for kind, obj in backlog:
                await stream.send(kind, obj)
            if watch.send_initial_events:
                await stream.bookmark(start, initial_end=True)
            await _follow(request, stream, subscription, start, closing)
        except ConnectionResetError:
            pass  # the client went away; nothing is left to tell it
        return response
    finally:
        subscription.close()


async def _follow(
    request: web.Request, stream: _Stream, subscription: Any, start: int, closing: asyncio.Event
) -> None:
    watch = stream.watch
    deadline = time.monotonic() + watch.timeout_seconds
    latest = start
    while not closing.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if watch.bookmarks:
                await stream.bookmark(latest)
            return
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        try:
            event: Event = await asyncio.wait_for(
                subscription.queue.get(), timeout=min(remaining, _POLL_SECONDS)
            )
        except TimeoutError:
            if watch.bookmarks and time.monotonic() - stream.last_bookmark >= BOOKMARK_SECONDS:
                await stream.bookmark(subscription.store.resource_version)
            continue
        if event.resource_version <= start:
            continue
        latest = event.resource_version
        converted = convert(event, watch.matches)
        if converted is not None:
            await stream.send(*converted)
