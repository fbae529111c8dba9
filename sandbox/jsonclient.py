"""The sandbox's plain-HTTP JSON calls, shared by the clients of its own servers.

The emulator's admin client (:mod:`sandbox.apiserver.adminclient`) and the traffic simulator's
client (:mod:`sandbox.trafficclient`) both send a JSON body, read a JSON answer, and turn an HTTP
error into an exception carrying the status and the decoded body. They speak urllib so they work
from any thread and from scripts, without an event loop.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, ClassVar


class RequestError(Exception):
    """A sandbox server refused a request; ``status`` and ``body`` say why."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{status}: {message}")
        self.status = status
        self.body = body


class JsonClient:
    """JSON calls against one server (``base_url`` like ``http://127.0.0.1:PORT``)."""

    error: ClassVar[type[RequestError]] = RequestError
    """What :meth:`call` raises for an HTTP error (a subclass names the server)."""

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        """Sent with every request (an ``Authorization`` token)."""

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """One request; returns the decoded JSON answer or raises :attr:`error`."""
        params = {k: v for k, v in query.items() if v is not None}
        url = self.base_url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) URL of our own server
        request.add_header("Content-Type", "application/json")
        for name, value in self.headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - same
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail: Any = json.loads(raw)
            except ValueError:
                detail = raw.decode(errors="replace")
            raise self.error(exc.code, detail) from None
