"""The listener: :class:`GearmanServer`, an embedded Gearman job server on asyncio."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from types import TracebackType

from .. import __version__
from ..protocol.codec import DEFAULT_MAX_PACKET_SIZE
from .admin import AdminInfo
from .broker import Broker
from .connection import ServerConnection
from .jobs import TimerHandle

__all__ = ["DEFAULT_MAX_CONNECTIONS", "GearmanServer"]

log = logging.getLogger("gearq.server")

DEFAULT_MAX_CONNECTIONS = 4096
# Leaves room for a 20-digit job counter within the 63-byte handle limit.
MAX_HANDLE_PREFIX = 43


class GearmanServer:
    """A Gearman job server speaking gearmand's binary and text protocols.

    For development, tests and demos; production stays on gearmand. Jobs live in memory
    only. ``port=0`` picks a free port (see :attr:`port` after :meth:`start`)::

        async with GearmanServer(port=0) as server:
            ...  # connect clients and workers to server.host, server.port

    :param job_retries: how often a job may be handed out before it fails when its workers
        keep dying on it; 0 means unlimited, as with gearmand 1.1.x.
    :param max_packet_size: bigger packets (or their declared size) close the connection.
    :param max_connections: further connections are closed as soon as they are accepted.
    :param handle_prefix: job handles are ``<prefix><n>``; default ``H:<hostname>:``.
    :param verbose: the level name the admin ``verbose`` command reports.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        job_retries: int = 0,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        handle_prefix: str | None = None,
        verbose: str = "ERROR",
        backlog: int = 128,
    ) -> None:
        if job_retries < 0:
            raise ValueError("job_retries must be >= 0 (0 means unlimited)")
        if max_packet_size < 1 or max_connections < 1:
            raise ValueError("max_packet_size and max_connections must be positive")
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.job_retries = job_retries
        self.max_packet_size = max_packet_size
        self.max_connections = max_connections
        if handle_prefix is None:
            handle_prefix = f"H:{socket.gethostname()[: MAX_HANDLE_PREFIX - 3]}:"
        # Handles are at most 63 bytes (gearmand's limit, checked by gearq's clients), and
        # travel as NUL-terminated arguments and space-separated admin fields.
        if len(handle_prefix.encode()) > MAX_HANDLE_PREFIX or any(
            c.isspace() or c == "\0" for c in handle_prefix
        ):
            raise ValueError(
                f"handle_prefix must be at most {MAX_HANDLE_PREFIX} bytes without whitespace"
            )
        self.handle_prefix = handle_prefix
        self.backlog = backlog
        self._info = AdminInfo(version=__version__.encode(), verbose=verbose.upper().encode())
        self._broker: Broker | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[ServerConnection] = set()
        self._stopped: asyncio.Event | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening port (known once started)."""
        if self._port is None:
            raise RuntimeError("the server has not been started yet, so it has no port")
        return self._port

    @property
    def address(self) -> str:
        """``"host:port"``, as gearq's clients and workers take it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def broker(self) -> Broker:
        """The job state (for tests that want to look inside; not thread-safe)."""
        if self._broker is None:
            raise RuntimeError("the server has not been started yet")
        return self._broker

    @property
    def is_serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> GearmanServer:
        """Bind and start accepting connections; returns self."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.get_running_loop()

        def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
            return loop.call_later(delay, callback)

        broker = Broker(
            handle_prefix=self.handle_prefix.encode(),
            call_later=call_later,
            job_retries=self.job_retries,
        )
        info = self._info
        connections = self._connections

        def factory() -> ServerConnection:
            return ServerConnection(
                broker,
                info,
                connections,
                max_connections=self.max_connections,
                max_packet_size=self.max_packet_size,
            )

        self._server = await loop.create_server(
            factory,
            self.host,
            self._requested_port,
            reuse_address=True,
            backlog=self.backlog,
        )
        self._broker = broker
        self._stopped = asyncio.Event()
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("gearq server listening on %s", self.address)
        return self

    async def stop(self) -> None:
        """Stop listening, close every connection, cancel timers. Safe to call twice."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.close()
        for conn in list(self._connections):
            conn.close()
        if self._broker is not None:
            self._broker.close()
        # connection_lost runs on the next loop iterations; give it a moment so that no
        # callback touches the broker after stop() returned. A peer that does not read
        # keeps its transport open with unsent data: drop those after the grace period
        # (Server.wait_closed would otherwise wait for them forever on Python >= 3.12).
        for i in range(100):
            if not self._connections:
                break
            if i == 50:
                for conn in list(self._connections):
                    conn.abort()
            await asyncio.sleep(0.01)
        await server.wait_closed()
        if self._stopped is not None:
            self._stopped.set()
        log.info("gearq server on %s stopped", self.address)

    async def serve_forever(self) -> None:
        """Start if needed, then wait until :meth:`stop` is called."""
        if self._server is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    async def __aenter__(self) -> GearmanServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = self.address if self._port is not None else f"{self.host}:?"
        state = "serving" if self.is_serving else "stopped"
        return f"<GearmanServer {where} {state}>"
