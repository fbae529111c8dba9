"""A real webhook receiver for notification tests: an aiohttp server on 127.0.0.1 in the test process.

It records every request (path, headers, body, when) and answers from a programmable sequence of
replies (a status, optionally with ``Retry-After``), then with ``then`` for the rest. ``hold_until``
makes it hold every answer until that many requests have arrived: requests that are really in
flight together, which is how a test shows that deliveries run concurrently without timing them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """One answer: a status, and a ``Retry-After`` header when given."""

    status: int = 200
    retry_after: str | None = None


@dataclass(frozen=True)
class Received:
    """One request as it arrived; ``at`` is ``time.monotonic()``."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


class Receiver:
    """Records requests and answers them with :attr:`replies` in order, then with :attr:`then`."""

    def __init__(self, replies: Iterable[int | Reply] = (), *, then: int | Reply = 200, hold_until: int = 0):
        self.replies = [r if isinstance(r, Reply) else Reply(r) for r in replies]
        self.then = then if isinstance(then, Reply) else Reply(then)
        self.hold_until = hold_until
        self.requests: list[Received] = []
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Received(request.path_qs, dict(request.headers), await request.read(), time.monotonic())
        )
        if len(self.requests) >= self.hold_until:
            self._arrived.set()
        await self._arrived.wait()
        reply = self.replies.pop(0) if self.replies else self.then
        headers = {} if reply.retry_after is None else {"Retry-After": reply.retry_after}
        return web.Response(status=reply.status, headers=headers, text="ok" if reply.status < 300 else "no")

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(application, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        if self._runner is not None:
            self._arrived.set()  # a held answer must not keep the cleanup waiting
            await self._runner.cleanup()


@asynccontextmanager
async def running(
    replies: Iterable[int | Reply] = (), *, then: int | Reply = 200, hold_until: int = 0
) -> AsyncIterator[Receiver]:
    """A started :class:`Receiver`, stopped afterwards."""
    receiver = Receiver(replies, then=then, hold_until=hold_until)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
