"""One HTTP POST to a webhook, with urllib3 on a thread: the transport of :mod:`activities.notify`.

:class:`Urllib3Sender` posts once and reports what came back (:class:`Answer`: the status and a
``Retry-After`` in seconds), or raises :class:`Unreachable` when no answer came. It neither retries
nor follows redirects: :mod:`activities.notify` decides what to retry, and a webhook that moved is a
configuration to fix. A webhook URL is a credential (a Slack incoming webhook's path is its secret),
so an :class:`Unreachable` says what happened in a few fixed words and never quotes urllib3's
exception, whose text names the host, port and sometimes the path.

Requests run on this sender's own small thread pool, not the event loop's default executor that the
SDK and every other ``to_thread`` share: a receiver that hangs then holds these threads only, each at
most its timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import urllib3
from urllib3 import exceptions

from policies import hosts

"""The schemes a webhook may use."""


@dataclass(frozen=True)
class Answer:
    """What a receiver answered: its status, and the seconds its ``Retry-After`` asked for, if any."""

    status: int
    retry_after: float | None = None


class Unreachable(Exception):
    """No answer came (refused, timed out, TLS, reset); the message is a few words and no address."""


@dataclass(frozen=True)
class Target:
    """Where a webhook is posted: its URL without userinfo, and the headers that carry the userinfo."""

    url: str
    headers: Mapping[str, str]


def target(url: hosts.Url) -> Target:
    """The URL a request is sent to, rebuilt from the parsed parts (so it names the host that was
    checked and no other), with ``user:password@`` moved into a basic ``Authorization`` header."""
    headers: dict[str, str] = {}
    if url.username is not None:
        credentials = f"{url.username}:{url.password or ''}"
        headers = urllib3.util.make_headers(basic_auth=credentials)
    bare = hosts.Url(url.scheme, url.host, url.port, url.path)
    return Target(bare.connect_form(), headers)


def retry_after(value: str | None) -> float | None:
    """The seconds of a ``Retry-After: <seconds>`` header; None when absent or a date (not honoured)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def describe(exc: BaseException, timeout: float) -> str:
    """A few words on why no answer came; never the exception's text (it names the address)."""
    if isinstance(exc, exceptions.NameResolutionError):
        return "host name not resolved"
    if isinstance(exc, exceptions.NewConnectionError):  # before ConnectTimeoutError: it subclasses it
        refused = isinstance(exc.__cause__, ConnectionRefusedError)
        return "connection refused" if refused else "connection failed"
    if isinstance(exc, exceptions.TimeoutError | TimeoutError):
        return f"timed out after {timeout:.3g} s"
    if isinstance(exc, exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, exceptions.ProtocolError):
        return "connection closed without an answer"
    return f"connection failed ({type(exc).__name__})"


class Urllib3Sender:
    """POSTs with urllib3 on its own threads: no retries, no redirects, one timeout for the request."""

    def __init__(self, *, threads: int = 8) -> None:
        self._pool = urllib3.PoolManager(retries=False, num_pools=16)
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="notify")

    def close(self) -> None:
        """Stop the request threads (after the worker stopped notifying)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._pool.clear()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], seconds: float) -> Answer:
        """POST ``body`` once; the answer, or Unreachable when none came within ``seconds``."""
        loop = asyncio.get_running_loop()
        request = loop.run_in_executor(self._threads, self._post, url, body, dict(headers), seconds)
        try:
            # urllib3's timeouts bound the connection and each read; this bounds the whole request,
            # so a receiver trickling its answer cannot stretch an attempt past its timeout.
            return await asyncio.wait_for(request, seconds)
        except Exception as exc:  # CancelledError is no Exception: a cancellation propagates
            raise Unreachable(describe(exc, seconds)) from None

    def _post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        response = self._pool.request(
            "POST",
            url,
            body=body,
            headers=headers,
            retries=False,
            redirect=False,
            timeout=urllib3.Timeout(total=timeout),
            preload_content=False,
        )
        try:
            response.read(64 * 1024, decode_content=False)  # the answer is not used; read a little
        finally:
            response.close()  # not kept alive: a body left unread must not reach the next request
            response.release_conn()
        return Answer(response.status, retry_after(response.headers.get("Retry-After")))
