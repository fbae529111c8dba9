"""The Unleash Admin API over urllib3: one request at a time, classified, with the worker's admin tokens.

:class:`UnleashAdmin` sends one JSON request to a region's flag server (its ``FlagServer.url``, with
the admin token the worker's settings hold for that host as Unleash's ``Authorization`` header) and
returns the decoded answer, or raises :class:`FlagError` of the right kind:

- ``transient`` (the workflow retries, then holds the cluster as ``flag server unreachable``): no
  answer (refused, timed out, reset, TLS), 429 and any 5xx;
- ``permanent``: 400, 401, 403, 404 and any other 4xx or 3xx (a server that moved is a fleet to fix),
  an answer that is not JSON, and a host the worker holds no token for;
- ``ownership-conflict`` is raised by :mod:`activities.flags`, never here.

Messages name the flag, the cluster, the request (``GET strategies``) and the server's host, and
quote at most a short message from Unleash; never the token, a header or urllib3's exception text
(which names the address). No retries and no redirects: the workflow's retry policy decides.
"""

from __future__ import annotations

import http
import json
from collections.abc import Mapping
from typing import Any, Protocol

import urllib3
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities import _webhook, errors
from activities.errors import ClusterError, ErrorKind
from policies import flags

MAX_ANSWER_BYTES = 1024 * 1024
"""The most of an answer read: a flag's strategies in one environment are a few KiB."""
_QUOTED = 200
"""The most characters of Unleash's own error message repeated in ours."""


class FlagError(ClusterError):
    """A failure of a flag operation for one cluster, leaving the activity as the flag's error types."""

    def __init__(self, message: str, *, kind: ErrorKind, cluster: str, status: int = 0) -> None:
        super().__init__(message, kind=kind, cluster=cluster)
        self.status = status
        """The HTTP status Unleash answered, 0 when none came (or the error is not an answer's)."""

    def to_application_error(self) -> ApplicationError:
        """The Temporal error the workflow sees: ``FlagServerUnreachable`` (retryable),
        ``FlagRequestRefused`` or ``OwnershipConflict`` (both not)."""
        error_type = {
            "transient": errors.FLAG_SERVER_UNREACHABLE,
            "permanent": errors.FLAG_REQUEST_REFUSED,
            "ownership-conflict": errors.OWNERSHIP_CONFLICT,
            "rollout-stuck": errors.FLAG_REQUEST_REFUSED,
        }[self.kind]
        return ApplicationError(
            f"cluster {self.cluster}: {self}", type=error_type, non_retryable=self.kind != "transient"
        )


class FlagAdmin(Protocol):
    """What the flag activities need of Unleash: one Admin API request, answered or classified."""

    def call(
        self, server: flags.FlagServer, method: str, path: str, body: object = None, *, about: Target
    ) -> Any:
        """``method path`` on ``server`` (``path`` from ``FlagServer.admin_path``); the JSON answer
        (None for an empty one), or :class:`FlagError` naming ``about``."""
        ...


class Target:
    """What a request is about, for its error messages: the flag, the cluster and a short verb."""

    __slots__ = ("cluster", "flag", "what")

    def __init__(self, flag: str, cluster: str, what: str) -> None:
        self.flag = flag
        self.cluster = cluster
        self.what = what

    def error(self, server: flags.FlagServer, problem: str, kind: ErrorKind, status: int = 0) -> FlagError:
        """``flag checkout-v2 on unleash.eu.example.com: GET strategies: <problem>``."""
        text = f"flag {self.flag} on {server.host}: {self.what}: {problem}"
        return FlagError(text, kind=kind, cluster=self.cluster, status=status)


def token_for(tokens: Mapping[str, SecretStr], server: flags.FlagServer) -> SecretStr | None:
    """The admin token for ``server``: the one for ``host:port`` if given, else for its host."""
    url = server.api_url
    keyed = {key.strip().lower(): value for key, value in tokens.items()}
    if url.port is not None and f"{server.host}:{url.port}" in keyed:
        return keyed[f"{server.host}:{url.port}"]
    return keyed.get(server.host)


class UnleashAdmin:
    """The Admin API of every flag server of the fleet, with the tokens the worker's settings hold.

    Blocking: call it from a worker thread (the activities run it on the cluster pool).
    """

    def __init__(self, tokens: Mapping[str, SecretStr], *, timeout: float = 10.0) -> None:
        self._tokens = dict(tokens)
        self._timeout = timeout
        self._pool = urllib3.PoolManager(retries=False, num_pools=16, maxsize=4)

    def close(self) -> None:
        """Drop the pooled connections."""
        self._pool.clear()

    def call(
        self, server: flags.FlagServer, method: str, path: str, body: object = None, *, about: Target
    ) -> Any:
        """One request; see :class:`FlagAdmin`."""
        token = token_for(self._tokens, server)
        if token is None:
            raise about.error(
                server,
                f"the worker holds no admin token for {server.host} (RINGMASTER_UNLEASH_ADMIN_TOKENS)",
                "permanent",
            )
        secret = token.get_secret_value()
        headers = {"Authorization": secret, "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        base = server.api_url
        url = f"{base.scheme}://{base.host.url_form}{'' if base.port is None else f':{base.port}'}{path}"
        try:
            response = self._pool.request(
                method,
                url,
                body=payload,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(total=self._timeout),
                preload_content=False,
            )
            raw = b""
            try:
                raw = response.read(MAX_ANSWER_BYTES, decode_content=True)
            finally:
                if len(raw) >= MAX_ANSWER_BYTES:
                    response.close()  # not kept alive: the unread rest must not reach the next request
                response.release_conn()
        except Exception as exc:  # a cancellation is no Exception; everything here is "no answer"
            raise about.error(server, _webhook.describe(exc, self._timeout), "transient") from None
        return _answer(server, about, response.status, raw, secret)


def _answer(server: flags.FlagServer, about: Target, status: int, raw: bytes, secret: str) -> Any:
    """The decoded answer of a 2xx, or the error of any other status."""
    try:
        decoded = json.loads(raw) if raw.strip() else None
    except ValueError:
        decoded = _NOT_JSON
    if 200 <= status < 300:
        if decoded is _NOT_JSON:
            raise about.error(
                server, f"{status} answered with something other than JSON", "permanent", status
            )
        return decoded
    transient = status == 429 or status >= 500
    text = f"{status} {_phrase(status)}"
    said = decoded.get("message") if isinstance(decoded, dict) else None
    if isinstance(said, str) and said.strip():
        quoted = said.strip().replace(secret, "***")  # Unleash never echoes it; a proxy might
        text += ": " + (quoted[:_QUOTED] + "..." if len(quoted) > _QUOTED else quoted)
    raise about.error(server, text, "transient" if transient else "permanent", status)


_NOT_JSON = object()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "answer"


def is_not_found(err: FlagError) -> bool:
    """Whether ``err`` is a 404 answer (an object that is not there)."""
    return err.status == 404
