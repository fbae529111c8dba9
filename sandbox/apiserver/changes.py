"""One cluster's change log: every write that changed what an object says, numbered, with its time.

The store (:mod:`.store`) hands every write to :meth:`ChangeLog.record`. Creations and deletions
always count; an update counts only when the object's content changed: anything but ``status`` and
the metadata the server manages (``resourceVersion``, ``managedFields``, ``generation``, ``uid``,
``creationTimestamp``, the deletion marks). So the controller writing status, or a server-side
apply that only takes ownership of fields, leaves no entry; a new pod template image does. A run
can be judged afterwards from the clusters' own record (a chaos scenario replays each cluster's
states from it), whoever made the writes and however they reached the API.

The log keeps the most recent entries (200000 by default, :class:`~.config.EmulatorConfig`);
numbers are consecutive from 1, so ``dropped`` (how many were forgotten) also says where the
kept ones start. Served at ``GET /admin/clusters/<c>/changes`` (:mod:`.admin`).
"""

from __future__ import annotations

import copy
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

HIDDEN = ("resourceVersion", "managedFields")
"""Metadata an entry's object leaves out: it changes on every write, status writes included."""
SERVER_MANAGED = (
    *HIDDEN,
    "generation",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
"""Metadata the server writes: a change of these alone is no change of content."""


def shown(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` as an entry shows it: without status, resourceVersion and managedFields."""
    out = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("status", "metadata")}
    out["metadata"] = {k: copy.deepcopy(v) for k, v in obj.get("metadata", {}).items() if k not in HIDDEN}
    return out


def content(obj: dict[str, Any]) -> dict[str, Any]:
    """What ``obj`` says, for comparison: no status, no metadata the server manages."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in SERVER_MANAGED}
    return {**{k: v for k, v in obj.items() if k not in ("status", "metadata")}, "metadata": meta}


@dataclass(frozen=True)
class Change:
    """One write that changed an object's content."""

    seq: int
    time: float
    """Unix time of the write, in seconds."""
    op: str
    """``created``, ``updated`` or ``deleted``."""
    kind: str
    namespace: str | None
    """None for cluster-scoped kinds."""
    name: str
    object: dict[str, Any]
    """The object after the write (a deletion: its last content), as :func:`shown`."""

    def describe(self) -> dict[str, Any]:
        """The admin view of the entry."""
        return {
            "seq": self.seq,
            "time": self.time,
            "op": self.op,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "object": self.object,
        }


class ChangeLog:
    """The most recent content changes of one cluster, numbered from 1."""

    def __init__(self, size: int = 200_000) -> None:
        self._entries: deque[Change] = deque(maxlen=max(size, 0))
        self.last = 0
        """The number of the newest change (0 before the first)."""

    @property
    def dropped(self) -> int:
        """How many changes were forgotten to keep the log bounded (the oldest ones)."""
        return self.last - len(self._entries)

    def record(self, kind: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> Change | None:
        """Log a write of a ``kind`` object from ``before`` to ``after`` (None: absent) if content changed."""
        if before is None:
            if after is None:
                return None
            op, final = "created", after
        elif after is None:
            op, final = "deleted", before
        elif content(before) == content(after):
            return None
        else:
            op, final = "updated", after
        meta = final.get("metadata", {})
        self.last += 1
        change = Change(
            self.last,
            time.time(),
            op,
            kind,
            meta.get("namespace") or None,
            meta.get("name", ""),
            shown(final),
        )
        self._entries.append(change)
        return change

    def since(self, seq: int = 0, *, namespace: str | None = None) -> list[Change]:
        """Changes after number ``seq`` (in ``namespace`` when given), oldest first."""
        start = max(seq - self.dropped, 0)
        kept = itertools.islice(self._entries, start, None)
        return [c for c in kept if namespace is None or c.namespace == namespace]
