"""How a failed Kubernetes call becomes a :class:`~activities.errors.ClusterError` of the right kind.

- ``transient`` (retried with backoff): 409 ``the object has been modified`` (an optimistic lock),
  409 ``AlreadyExists`` (a create raced another), 429, any 5xx, 410 Gone (a watch fell behind),
  timeouts, refused and dropped connections;
- ``ownership-conflict`` (fails at once): a 409 answering a server-side apply with
  ``FieldManagerConflict`` causes that :mod:`.clients` may not take over; the message names the
  other manager, how it writes (apply or update) and each field;
- ``permanent`` (fails at once): 401, 403, 404 (a missing namespace or object), 422 and any other 4xx.

A cancellation is never classified: Temporal's ``CancelledError`` (raised into a call when the
activity is cancelled: an abort, a timeout, a worker shutting down) and ``asyncio.CancelledError``
leave :func:`classify` as they came, so the activity reports a cancellation and stops, instead of a
transient failure that the retry policy would run again.

Messages name the verb, the object and the API's reason and message (``patch Deployment
shop/api: Forbidden: ...``); the activity wrapper adds the cluster. Nothing from the request
(bodies, headers, tokens) is ever quoted.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from temporalio import exceptions as temporal_exceptions

from activities.errors import ClusterError, ErrorKind

_TRANSIENT_STATUS = frozenset({409, 410, 429})
_CONFLICT_MANAGER = re.compile(
    r'conflicts? with "(?P<manager>[^"]+)"(?: with subresource "(?P<sub>[^"]+)")?(?P<update> using \S+)?'
)


class ApiCallError(ClusterError):
    """A :class:`ClusterError` from an API answer, keeping its HTTP status (0 when none came)."""

    def __init__(self, message: str, *, kind: ErrorKind, cluster: str, status: int = 0) -> None:
        super().__init__(message, kind=kind, cluster=cluster)
        self.status = status


def is_not_found(err: ClusterError) -> bool:
    """Whether ``err`` is the API's 404 (a missing object, namespace or API)."""
    return isinstance(err, ApiCallError) and err.status == 404


@dataclass(frozen=True)
class FieldConflict:
    """One field another manager owns, from a 409 answer to a server-side apply."""

    manager: str
    field: str
    applied: bool
    """True when that manager applies the field (an ``Apply`` entry); False for an ``Update`` writer."""
    subresource: str = ""

    def describe(self) -> str:
        """``"argocd-controller" (apply) owns .spec.replicas``."""
        how = "apply" if self.applied else "update"
        via = f", subresource {self.subresource}" if self.subresource else ""
        return f'"{self.manager}" ({how}{via}) owns {self.field or "a field"}'


def status_body(exc: ApiException) -> dict[str, Any]:
    """The ``kind: Status`` body of an API error, or an empty dict when there is none."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def field_conflicts(exc: ApiException) -> list[FieldConflict]:
    """The field-manager conflicts of a 409 answer to an apply (empty for any other error)."""
    if exc.status != 409:
        return []
    body = status_body(exc)
    causes = (body.get("details") or {}).get("causes") or []
    found: list[FieldConflict] = []
    for cause in causes:
        if not isinstance(cause, dict):
            continue
        # kube-apiserver serialises StatusCause.Type as "reason"; accept "type" as well.
        if "FieldManagerConflict" not in (cause.get("reason"), cause.get("type")):
            continue
        match = _CONFLICT_MANAGER.search(str(cause.get("message", "")))
        if match is not None:
            found.append(
                FieldConflict(
                    manager=match["manager"],
                    field=str(cause.get("field", "")),
                    applied=match["update"] is None,
                    subresource=match["sub"] or "",
                )
            )
    if not found and str(body.get("message", "")).startswith("Apply failed with"):
        for match in _CONFLICT_MANAGER.finditer(str(body["message"])):
            found.append(FieldConflict(match["manager"], "", match["update"] is None, match["sub"] or ""))
    return found


def ownership_conflict(cluster: str, what: str, conflicts: list[FieldConflict]) -> ClusterError:
    """The error for fields ringmaster may not take from their manager."""
    managers = ", ".join(sorted({f'"{c.manager}"' for c in conflicts}))
    fields = "; ".join(c.describe() for c in conflicts)
    return ClusterError(
        f"{what}: server-side apply conflict: another manager owns the fields ringmaster must change "
        f"({fields}). Hand the fields over or exclude the workload from {managers} before releasing.",
        kind="ownership-conflict",
        cluster=cluster,
    )


CANCELLATIONS = (temporal_exceptions.CancelledError, asyncio.CancelledError)
"""What stops a call because its activity was cancelled: never a cluster error of any kind."""


def classify(exc: BaseException, *, cluster: str, what: str) -> ClusterError:
    """The :class:`ClusterError` for an exception raised while doing ``what`` (``get Deployment ns/x``).

    A cancellation (:data:`CANCELLATIONS`) is re-raised as it is, never classified.
    """
    if isinstance(exc, CANCELLATIONS):
        raise exc
    if isinstance(exc, ClusterError):
        return exc
    if isinstance(exc, ApiException):
        return _api_error(exc, cluster=cluster, what=what)
    if isinstance(exc, urllib3.exceptions.TimeoutError | socket.timeout | TimeoutError):
        return ClusterError(f"{what}: timed out ({type(exc).__name__})", kind="transient", cluster=cluster)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | OSError):
        reason = _network_reason(exc)
        return ClusterError(f"{what}: connection failed: {reason}", kind="transient", cluster=cluster)
    return ClusterError(f"{what}: {type(exc).__name__}: {exc}", kind="transient", cluster=cluster)


def _api_error(exc: ApiException, *, cluster: str, what: str) -> ClusterError:
    status = int(exc.status or 0)
    body = status_body(exc)
    reason = str(body.get("reason") or exc.reason or "Unknown")
    message = str(body.get("message") or "").strip()
    text = f"{what}: {status} {reason}" + (f": {message}" if message else "")
    conflicts = field_conflicts(exc)
    if conflicts:
        return ownership_conflict(cluster, what, conflicts)
    transient = status in _TRANSIENT_STATUS or status >= 500 or status == 0
    return ApiCallError(text, kind="transient" if transient else "permanent", cluster=cluster, status=status)


def _network_reason(exc: BaseException) -> str:
    """A short reason for a network failure, without the URL (which could carry a proxy's credentials)."""
    inner: BaseException = exc
    while True:
        nested = getattr(inner, "reason", None)
        if isinstance(nested, BaseException) and nested is not inner:
            inner = nested
            continue
        if inner.__context__ is not None and isinstance(inner, urllib3.exceptions.HTTPError):
            inner = inner.__context__
            continue
        break
    return type(inner).__name__


def error_class(exc: BaseException | None) -> str:
    """A bounded name for how a Kubernetes request failed, for ``ringmaster_kubernetes_requests``:
    ``none`` (answered), ``timeout``, ``unreachable`` (no connection), ``throttled`` (429),
    ``conflict`` (409), ``client`` (other 4xx), ``server`` (5xx) or ``other``."""
    if exc is None:
        return "none"
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status == 429:
            return "throttled"
        if status == 409:
            return "conflict"
        if 400 <= status < 500:
            return "client"
        return "server" if status >= 500 else "other"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | OSError):
        return "unreachable"
    return "other"
