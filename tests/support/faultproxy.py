"""A loopback TCP proxy that injects network faults, for tests.

``FaultProxy(host, port)`` listens on ``127.0.0.1`` (a free port) and forwards every accepted
connection to the target, bytes both ways. It runs its own asyncio event loop in a daemon
thread, so synchronous tests and asyncio tests (on their own loop) can both use it; every
control method is called from the test's thread and returns once the change is in effect.

Faults:

* ``delay(seconds)``: each chunk is forwarded ``seconds`` after it was received, in each
  direction (a request/response round trip gains at least ``2 * seconds``).
* ``freeze()`` / ``thaw()``: stop / resume forwarding in both directions. Connections are still
  accepted and held; data received meanwhile is buffered and forwarded on ``thaw()``.
* ``reset()``: abort every current connection with a TCP RST (SO_LINGER 0), both sides.
* ``cut()``: close every current connection cleanly (FIN), both sides.
* ``refuse(True)``: close new connections as soon as they are accepted (``reset=True``: RST).
* ``retarget(host, port)``: new connections go to another server; current ones stay.

It never blocks a test's teardown for long: ``close()`` gives up waiting after a few seconds
and the thread is a daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["FaultProxy"]

_T = TypeVar("_T")
_CHUNK = 65536
_QUEUE_CHUNKS = 256  # per direction; reading pauses when this many chunks wait
_CONTROL_TIMEOUT = 5.0
_CONNECT_TIMEOUT = 5.0
_EOF = b""

_CLOSE = "close"  # normal end: plain close
_RESET = "reset"  # RST: SO_LINGER 0, then close
_CUT = "cut"  # FIN: shutdown(SHUT_WR), then close


def _close_socket(sock: socket.socket | None, how: str) -> None:
    if sock is None or sock.fileno() == -1:
        return
    with contextlib.suppress(OSError):
        if how == _RESET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif how == _CUT:
            sock.shutdown(socket.SHUT_WR)
            # Unread input at close() would turn the FIN into an RST: drop it first.
            sock.setblocking(False)
            while sock.recv(_CHUNK):
                pass
    sock.close()


class _Link:
    """One proxied connection: the accepted client socket and our socket to the target."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.task: asyncio.Task[None] | None = None
        self.how = _CLOSE

    def close(self) -> None:
        _close_socket(self.client, self.how)
        _close_socket(self.upstream, self.how)


class FaultProxy:
    """Forward ``127.0.0.1:<free port>`` to ``target_host:target_port`` with injectable faults.

    Use as a context manager, or call :meth:`close` (idempotent) when done.
    """

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"):
        self._target = (target_host, target_port)
        self._delay = 0.0
        self._refusing = False
        self._refuse_how = _CLOSE
        self._links: set[_Link] = set()
        self._accepted_total = 0
        self._closed = False

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._host: str = listen_host
        self._port: int = self._listener.getsockname()[1]

        self._loop = asyncio.new_event_loop()
        self._thawed: asyncio.Event | None = None
        self._accept_task: asyncio.Task[None] | None = None
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name=f"FaultProxy:{self._port}", daemon=True
        )
        self._thread.start()
        if not started.wait(_CONTROL_TIMEOUT):
            raise RuntimeError("FaultProxy thread did not start")

    # -- public state ----------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``: where clients should connect."""
        return f"{self._host}:{self._port}"

    @property
    def target(self) -> tuple[str, int]:
        return self._target

    @property
    def connections(self) -> int:
        """Connections currently held (accepted and not yet closed)."""
        return len(self._links)

    @property
    def accepted_total(self) -> int:
        """Connections accepted since the start (refused ones included)."""
        return self._accepted_total

    def wait_connections(self, count: int, timeout: float = 5.0) -> None:
        """Wait until :attr:`connections` equals ``count`` (accepting happens in the background)."""
        deadline = time.monotonic() + timeout
        while self.connections != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"proxy holds {self.connections} connections, not {count}")
            time.sleep(0.005)

    # -- faults ----------------------------------------------------------------------------

    def delay(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` after it arrived (each direction); 0 turns it off."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")

        async def apply() -> None:
            self._delay = float(seconds)

        self._call(apply())

    def freeze(self) -> None:
        """Stop forwarding in both directions; keep accepting and holding connections."""

        async def apply() -> None:
            assert self._thawed is not None
            self._thawed.clear()

        self._call(apply())

    def thaw(self) -> None:
        """Resume forwarding, starting with what was buffered while frozen."""

        async def apply() -> None:
            assert self._thawed is not None
            self._thawed.set()

        self._call(apply())

    @property
    def frozen(self) -> bool:
        return self._thawed is not None and not self._thawed.is_set()

    def reset(self) -> int:
        """Abort all current connections with RST on both sides; returns how many."""
        return self._call(self._close_links(_RESET))

    def cut(self) -> int:
        """Close all current connections cleanly (FIN) on both sides; returns how many."""
        return self._call(self._close_links(_CUT))

    def refuse(self, refusing: bool = True, *, reset: bool = False) -> None:
        """While on, accepted connections are closed at once (with RST if ``reset``)."""

        async def apply() -> None:
            self._refusing = refusing
            self._refuse_how = _RESET if reset else _CLOSE

        self._call(apply())

    def retarget(self, host: str, port: int) -> None:
        """Send new connections to ``host:port``; current connections are not moved."""

        async def apply() -> None:
            self._target = (host, port)

        self._call(apply())

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and close every connection. Idempotent; never blocks for long."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
                fut.result(_CONTROL_TIMEOUT)
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CONTROL_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()
        _close_socket(self._listener, _CLOSE)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        host, port = self._target
        return f"<FaultProxy {self.address} -> {host}:{port} connections={self.connections}>"

    # -- the loop thread -------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coro.close()
            raise RuntimeError("FaultProxy is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CONTROL_TIMEOUT)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._accept_task = self._loop.create_task(self._accept_loop())
        self._loop.call_soon(started.set)
        try:
            self._loop.run_forever()
        finally:
            # Anything still pending (only after a failed shutdown) is cancelled quietly.
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                with contextlib.suppress(Exception):
                    self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(self._listener)
            except asyncio.CancelledError:
                raise
            except OSError:
                await asyncio.sleep(0.01)
                continue
            self._accepted_total += 1
            client.setblocking(False)
            if self._refusing:
                _close_socket(client, self._refuse_how)
                continue
            link = _Link(client)
            self._links.add(link)
            link.task = loop.create_task(self._serve(link))

    async def _serve(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        try:
            with contextlib.suppress(OSError):
                link.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            link.upstream = upstream
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await asyncio.wait_for(loop.sock_connect(upstream, self._target), _CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                link.how = _RESET  # the target is down: the client sees the connection fail
                return
            pumps = [
                loop.create_task(self._pump(link.client, upstream)),
                loop.create_task(self._pump(upstream, link.client)),
            ]
            try:
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                if any(not t.cancelled() and t.exception() is not None for t in done):
                    link.how = _RESET  # one side failed: pass the abort on to the other
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._links.discard(link)
            link.close()

    async def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy src to dst through a queue, honouring delay and freeze; ends after EOF."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)
        reader = asyncio.ensure_future(self._read_into(src, queue))
        try:
            await self._write_from(queue, dst)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        # Re-raise a read error (e.g. the peer's RST) so that the link is aborted.
        error = None if reader.cancelled() else reader.exception()
        if error is not None:
            raise error

    async def _read_into(
        self, src: socket.socket, queue: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(src, _CHUNK)
            except OSError:
                await queue.put((loop.time(), _EOF))
                raise
            await queue.put((loop.time(), data))
            if not data:
                return

    async def _write_from(
        self, queue: asyncio.Queue[tuple[float, bytes]], dst: socket.socket
    ) -> None:
        loop = asyncio.get_running_loop()
        thawed = self._thawed
        assert thawed is not None
        while True:
            received, data = await queue.get()
            while True:
                await thawed.wait()
                remaining = received + self._delay - loop.time()
                if remaining <= 0 and thawed.is_set():
                    break
                # Short naps, so that delay() and freeze() changes take effect quickly.
                await asyncio.sleep(min(max(remaining, 0.0), 0.02))
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            await loop.sock_sendall(dst, data)

    async def _close_links(self, how: str) -> int:
        links = list(self._links)
        for link in links:
            link.how = how
            if link.task is not None:
                link.task.cancel()
        tasks = [link.task for link in links if link.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for link in links:  # in case a task had not started yet
            self._links.discard(link)
            link.close()
        return len(links)

    async def _shutdown(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        await self._close_links(_CLOSE)
