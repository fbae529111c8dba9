"""One cluster's storage: objects by resource type, a resourceVersion counter, and the event history.

This is the emulator's etcd. Every write gets the next ``resourceVersion`` (one counter per
cluster, as etcd's revision) and appends a watch :class:`Event` to a bounded history; watchers
subscribe to new events and read the history to resume from a version. When the history is
trimmed (or :meth:`Store.compact` is called) versions before the oldest retained one answer
410 Gone, as after an etcd compaction. Writes that change an object's content are also kept in
a much longer :class:`~.changes.ChangeLog` (``store.changes``), which compaction leaves alone.

The store knows nothing of API semantics (defaults, ownership, status isolation): that is
:mod:`.registry`. It is owned by the emulator's event loop; call it from that loop only.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

from sandbox.apiserver.changes import ChangeLog
from sandbox.apiserver.errors import expired
from sandbox.apiserver.resources import ResourceType

ObjectKey = tuple[str, str]
"""(namespace, name); the namespace is ``""`` for cluster-scoped kinds."""


@dataclass(frozen=True)
class Event:
    """One change: ``ADDED``, ``MODIFIED`` or ``DELETED``, with the object before it for selectors."""

    type: str
    resource: ResourceType
    object: dict[str, Any]
    previous: dict[str, Any] | None
    resource_version: int


class Subscription:
    """A live feed of one resource type's events (optionally one namespace) for a watcher."""

    def __init__(self, store: Store, resource: ResourceType, namespace: str | None) -> None:
        self.store = store
        self.resource = resource
        self.namespace = namespace
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def wants(self, event: Event) -> bool:
        """Whether the event is for this subscription's type and namespace."""
        if event.resource is not self.resource:
            return False
        return self.namespace is None or event.object["metadata"].get("namespace") == self.namespace

    def close(self) -> None:
        """Stop receiving events."""
        self.store.unsubscribe(self)


class Store:
    """Objects, versions and history of one emulated cluster."""

    def __init__(self, *, history_limit: int = 2000, change_log_size: int = 200_000) -> None:
        self._objects: dict[ResourceType, dict[ObjectKey, dict[str, Any]]] = {}
        self._history: deque[Event] = deque()
        self._history_limit = history_limit
        self._compacted = 0
        self._subscriptions: set[Subscription] = set()
        self.resource_version = 1
        self.changes = ChangeLog(change_log_size)

    @staticmethod
    def key_of(obj: dict[str, Any]) -> ObjectKey:
        """The storage key of an object."""
        meta = obj.get("metadata") or {}
        return (meta.get("namespace") or "", meta.get("name") or "")

    def peek(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object itself (do not modify it), or None."""
        return self._objects.get(rt, {}).get((namespace or "", name))

    def read(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of the stored object, or None."""
        found = self.peek(rt, namespace, name)
        return copy.deepcopy(found) if found is not None else None

    def peek_all(self, rt: ResourceType) -> list[dict[str, Any]]:
        """Every stored object of ``rt`` itself (do not modify them), ordered by namespace and name:
        what a controller scans every tick without paying a copy per object."""
        stored = self._objects.get(rt, {})
        return [stored[k] for k in sorted(stored)]

    def items(self, rt: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        """Copies of every object of ``rt`` (in ``namespace`` when given), ordered by namespace and name."""
        stored = self._objects.get(rt, {})
        keys = sorted(k for k in stored if namespace is None or k[0] == namespace)
        return [copy.deepcopy(stored[k]) for k in keys]

    def count(self, rt: ResourceType | None = None) -> int:
        """How many objects are stored (of ``rt`` when given)."""
        if rt is not None:
            return len(self._objects.get(rt, {}))
        return sum(len(v) for v in self._objects.values())

    def put(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` under the next resourceVersion; returns a copy of what was stored."""
        key = self.key_of(obj)
        bucket = self._objects.setdefault(rt, {})
        previous = bucket.get(key)
        self.resource_version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.resource_version)
        bucket[key] = stored
        self._record(
            Event("ADDED" if previous is None else "MODIFIED", rt, stored, previous, self.resource_version)
        )
        self.changes.record(rt.kind, previous, stored)
        return copy.deepcopy(stored)

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Delete an object; returns its last state (with the deletion's resourceVersion), or None."""
        previous = self._objects.get(rt, {}).pop((namespace or "", name), None)
        if previous is None:
            return None
        self.resource_version += 1
        final = copy.deepcopy(previous)
        final["metadata"]["resourceVersion"] = str(self.resource_version)
        self._record(Event("DELETED", rt, final, previous, self.resource_version))
        self.changes.record(rt.kind, previous, None)
        return copy.deepcopy(final)

    def _record(self, event: Event) -> None:
        self._history.append(event)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().resource_version
        for subscription in list(self._subscriptions):
            if subscription.wants(event):
                subscription.queue.put_nowait(event)

    def history_since(self, rt: ResourceType, since: int, namespace: str | None = None) -> list[Event]:
        """Events of ``rt`` after version ``since``; 410 Gone when that part of history is compacted."""
        if since < self._compacted:
            raise expired(since, self._compacted + 1)
        probe = Subscription(self, rt, namespace)
        return [e for e in self._history if e.resource_version > since and probe.wants(e)]

    def compact(self) -> int:
        """Forget the whole history (as an etcd compaction would); returns the compacted version."""
        self._history.clear()
        self._compacted = self.resource_version
        return self._compacted

    def subscribe(self, rt: ResourceType, namespace: str | None) -> Subscription:
        """Start receiving events of ``rt`` (in ``namespace`` when given)."""
        subscription = Subscription(self, rt, namespace)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop a subscription (idempotent)."""
        self._subscriptions.discard(subscription)

    @property
    def watchers(self) -> int:
        """How many subscriptions are open (watch streams in progress)."""
        return len(self._subscriptions)
