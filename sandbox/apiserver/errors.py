"""API errors as the real API server reports them: an HTTP status with a ``kind: Status`` body.

Every failure the emulator reports to a client goes through :class:`ApiError`, so clients see the
``reason``, ``message``, ``code`` and ``details`` they would see from kube-apiserver (the official
client raises ``ApiException`` with that body; kubectl prints the message). The helpers build the
common cases with the real server's wording.
"""

from __future__ import annotations

from typing import Any

from sandbox.apiserver.resources import ResourceType

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    """The Status ``reason`` the API server uses for an HTTP code (``Unknown`` otherwise)."""
    return _REASONS.get(code, "Unknown")


class ApiError(Exception):
    """A request the API refuses; rendered as a ``Status`` object with HTTP status ``code``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or reason_for(code)
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The ``kind: Status`` body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(rt: ResourceType, name: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    details.update(extra)
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    """404: ``deployments.apps "api" not found``."""
    return ApiError(404, f'{rt.qualified} "{name}" not found', details=_details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    """409 AlreadyExists on create."""
    return ApiError(
        409, f'{rt.qualified} "{name}" already exists', reason="AlreadyExists", details=_details(rt, name)
    )


def conflict(rt: ResourceType, name: str, why: str | None = None) -> ApiError:
    """409 Conflict: a stale resourceVersion or a failed precondition."""
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409, f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}', details=_details(rt, name)
    )


def uid_mismatch(rt: ResourceType, name: str, wanted: object, actual: object) -> ApiError:
    """409: a UID precondition that does not hold."""
    return conflict(
        rt, name, f"Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}"
    )


def name_mismatch(in_body: object, in_url: str) -> ApiError:
    """400: the object's name differs from the name in the URL."""
    return bad_request(f"the name of the object ({in_body}) does not match the name on the URL ({in_url})")


def invalid_patch_options(why: str) -> ApiError:
    """422 for patch options that do not fit the patch (``force`` without apply, apply without manager)."""
    return ApiError(422, f'PatchOptions.meta.k8s.io "" is invalid: {why}')


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with one cause per ``(field, message)``, worded like field validation errors."""
    listed = ", ".join(f"{field}: {message}" for field, message in causes)
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    return ApiError(
        422,
        f'{kind} "{name}" is invalid: {listed}',
        details={
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": field}
                for field, message in causes
            ],
        },
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, message)


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    """415: a body format the endpoint does not decode (protobuf, CBOR, strategic merge on a CRD)."""
    return ApiError(
        415,
        f"the body of the request was in an unknown format ({content_type or 'none'}) - "
        f"accepted media types include: {', '.join(accepted)}",
    )


def method_not_supported(rt: ResourceType | None, verb: str) -> ApiError:
    """405 for a verb the resource does not serve."""
    what = rt.qualified if rt else "this resource"
    return ApiError(405, f"{verb} is not supported on resources of kind {what!r}")


def forbidden_terminating(rt: ResourceType, name: str, namespace: str) -> ApiError:
    """403: creating in a namespace that is being deleted."""
    return ApiError(
        403,
        f'{rt.qualified} "{name}" is forbidden: unable to create new content in namespace {namespace} '
        "because it is being terminated",
        details=_details(
            rt, name, causes=[{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]
        ),
    )


def namespace_not_found(namespace: str) -> ApiError:
    """404 for a request into a namespace that does not exist."""
    return ApiError(
        404, f'namespaces "{namespace}" not found', details={"name": namespace, "kind": "namespaces"}
    )


def expired(requested: int, oldest: int) -> ApiError:
    """410 Gone: a watch from a resourceVersion older than the retained history."""
    return ApiError(410, f"too old resource version: {requested} ({oldest})", reason="Expired")
