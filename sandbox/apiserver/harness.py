"""Run the emulator in-process on a background thread, for tests and tools.

``EmulatorServer`` owns a thread with its own event loop serving the emulator on a free port of
127.0.0.1. Clients talk to it over real HTTP (``server.cluster_url(name)``, or a kubeconfig from
:meth:`EmulatorServer.write_kubeconfig`); code that needs the in-process API runs on the loop
through :meth:`EmulatorServer.call`, because the store belongs to that loop::

    with EmulatorServer(EmulatorConfig(clusters=[ClusterSpec(name="a")])) as server:
        server.call(lambda emu: emu.cluster("a").registry.list(resources.DEPLOYMENT))
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from sandbox import kubeconfig
from sandbox.apiserver import app
from sandbox.apiserver.adminclient import AdminClient
from sandbox.apiserver.config import EmulatorConfig
from sandbox.apiserver.emulator import Emulator

T = TypeVar("T")


class EmulatorServer:
    """An emulator served from a background thread."""

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: app.Running | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    def cluster_url(self, name: str) -> str:
        """The API server URL of one cluster."""
        return f"{self.url}/clusters/{name}"

    @property
    def admin(self) -> AdminClient:
        """A client of the admin endpoints (faults, request log, objects, clusters)."""
        return AdminClient(self.url)

    @property
    def emulator(self) -> Emulator:
        """The emulator; touch its state only through :meth:`call`."""
        if self._running is None:
            raise RuntimeError("the emulator is not running")
        return self._running.emulator

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        """Start serving; returns once the port is bound."""
        self._thread = threading.Thread(target=self._serve, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the emulator did not start within {timeout}s")
        if self._failure is not None:
            raise RuntimeError("the emulator failed to start") from self._failure
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._running = loop.run_until_complete(app.start(Emulator(self.config), self.host, self.port))
            self.port = self._running.port
        except BaseException as exc:  # reported to start(), which re-raises it in the caller's thread
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(app.stop(self._running))
            loop.close()

    def call(self, fn: Callable[[Emulator], T], timeout: float = 15.0) -> T:
        """Run ``fn(emulator)`` on the emulator's loop and return its result."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        emulator = self.emulator

        async def run() -> T:
            return fn(emulator)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def write_kubeconfig(self, path: str | os.PathLike[str], clusters: Sequence[str] | None = None) -> Path:
        """A kubeconfig with one context per cluster (named as the cluster)."""
        names = list(clusters) if clusters is not None else self.call(lambda emu: list(emu.clusters))
        return kubeconfig.write(path, self.url, [(n, n) for n in names])

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving and join the thread (idempotent)."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
