"""Fault injection and the request log of each emulated cluster.

A :class:`FaultSpec` matches requests by Kubernetes verb (``get``, ``list``, ``watch``,
``create``, ``update``, ``patch``, ``delete``, ``deletecollection``) or HTTP method, and by a
shell-style pattern over the path below the cluster prefix (``/apis/apps/v1/namespaces/*``). A
matching fault adds latency, answers an error status (a ``kind: Status`` body, ``Retry-After`` for
429/503 when asked), or drops the connection without an answer; it lasts for ``count`` requests,
for ``durationSeconds``, or until removed. The first matching active fault applies.

The :class:`RequestLog` keeps what tests assert on: verb, path, field manager, content type,
user agent and the status answered, numbered so a reader can ask only for what is new.
"""

from __future__ import annotations

import fnmatch
import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class FaultSpec(BaseModel):
    """What to inject, into which requests, for how long (the admin endpoint's request body)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    verb: str = "*"
    """A Kubernetes verb or HTTP method (any case), or ``*``."""
    path: str = "*"
    """A shell-style pattern over the path below ``/clusters/<name>``, query excluded."""
    latency_seconds: float = Field(default=0.0, ge=0, le=600)
    status: int | None = Field(default=None, ge=400, le=599)
    """Answer this status instead of serving the request."""
    message: str | None = None
    retry_after_seconds: int | None = Field(default=None, ge=0)
    drop: bool = False
    """Close the connection without answering."""
    count: int | None = Field(default=None, ge=1)
    """Affect this many matching requests, then expire."""
    duration_seconds: float | None = Field(default=None, gt=0)
    """Expire this long after being added."""

    @model_validator(mode="after")
    def _does_something(self) -> FaultSpec:
        if not (self.latency_seconds or self.status or self.drop):
            raise ValueError("a fault needs latencySeconds, status or drop")
        if self.status and self.drop:
            raise ValueError("status and drop exclude each other")
        return self


@dataclass
class Fault:
    """An active fault: its spec, identity and how much of it is left."""

    id: str
    spec: FaultSpec
    added: float
    hits: int = 0

    def expired(self, now: float) -> bool:
        """Whether the fault's count or duration is used up."""
        spec = self.spec
        if spec.count is not None and self.hits >= spec.count:
            return True
        return spec.duration_seconds is not None and now - self.added >= spec.duration_seconds

    def matches(self, verb: str, method: str, path: str) -> bool:
        """Whether a request is affected."""
        wanted = self.spec.verb.lower()
        verb_ok = wanted in ("*", verb.lower(), method.lower())
        return verb_ok and fnmatch.fnmatchcase(path, self.spec.path)

    def describe(self) -> dict[str, Any]:
        """The admin endpoint's view."""
        out = {"id": self.id, "hits": self.hits, **self.spec.model_dump(by_alias=True, exclude_none=True)}
        if self.spec.count is not None:
            out["remaining"] = max(0, self.spec.count - self.hits)
        return out


class Faults:
    """The faults of one cluster."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: FaultSpec) -> Fault:
        """Activate a fault."""
        fault = Fault(f"fault-{next(self._ids)}", spec, time.monotonic())
        self._faults.append(fault)
        return fault

    def active(self) -> list[Fault]:
        """Faults still in force."""
        now = time.monotonic()
        self._faults = [f for f in self._faults if not f.expired(now)]
        return list(self._faults)

    def remove(self, fault_id: str) -> bool:
        """Remove one fault; False if there was none with that id."""
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> int:
        """Remove every fault; returns how many there were."""
        count, self._faults = len(self._faults), []
        return count

    def take(self, verb: str, method: str, path: str) -> Fault | None:
        """The fault a request suffers (counting it as a hit), or None."""
        for fault in self.active():
            if fault.matches(verb, method, path):
                fault.hits += 1
                return fault
        return None


@dataclass
class RequestRecord:
    """One request as the log shows it."""

    seq: int
    time: float
    method: str
    verb: str
    path: str
    query: str
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    field_manager: str = ""
    content_type: str = ""
    accept: str = ""
    user_agent: str = ""
    status: int = 0
    duration_ms: float = 0.0
    fault: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The admin endpoint's view (camelCase keys)."""
        raw = asdict(self)
        raw.pop("extra")
        return {to_camel(k): v for k, v in raw.items()}


class RequestLog:
    """The most recent requests of one cluster, numbered from 1."""

    def __init__(self, size: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=max(size, 1))
        self._seq = itertools.count(1)
        self._enabled = size > 0

    def start(self, method: str, verb: str, path: str, query: str) -> RequestRecord:
        """Begin a record (filled in as the request is served) and keep it."""
        record = RequestRecord(next(self._seq), time.time(), method, verb, path, query)
        if self._enabled:
            self._records.append(record)
        return record

    def since(
        self, seq: int = 0, *, verb: str | None = None, namespace: str | None = None
    ) -> list[RequestRecord]:
        """Records after ``seq`` (optionally of one verb, in one namespace), oldest first."""
        return [
            r
            for r in self._records
            if r.seq > seq
            and (verb is None or r.verb == verb)
            and (namespace is None or r.namespace == namespace)
        ]

    def clear(self) -> None:
        """Forget every record (numbering continues)."""
        self._records.clear()
