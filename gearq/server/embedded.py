"""A :class:`GearmanServer` on its own event loop in a daemon thread, for synchronous code.

::

    with EmbeddedServer() as srv:
        run_my_sync_client(srv.host, srv.port)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from .server import GearmanServer

__all__ = ["EmbeddedServer"]

_R = TypeVar("_R")


class EmbeddedServer:
    """Runs a server in a background thread. Takes the same arguments as GearmanServer."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.server = GearmanServer(host, port, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return self.server.address

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        """Start the thread and wait until the server listens; returns self."""
        if self._thread is not None:
            raise RuntimeError("the embedded server is already started")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="gearq-server", daemon=True)
        self._thread.start()
        try:
            started.result(timeout)
        except BaseException:
            self._thread.join(timeout)
            self._thread = None
            self._loop = None
            raise
        return self

    def call(self, fn: Callable[[GearmanServer], _R], timeout: float = 10.0) -> _R:
        """Run ``fn(server)`` on the server's loop and return its result (thread-safe)."""
        loop = self._require_loop()

        async def run() -> _R:
            return fn(self.server)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = None
        self._thread = None
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the embedded server is not running")
        return self._loop

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedServer {self.server!r}>"
