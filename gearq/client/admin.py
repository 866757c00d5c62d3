"""Admin client: gearmand's text protocol on every configured server, results per server.

Each command goes to all servers (or the ones named) at once, and the answer maps each
server to its own :class:`ServerResult`: a server that is down or answers ``ERR`` gives an
error for that server only. Job handles repeat across servers, so ``cancel_job`` always
names its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl as _ssl
import threading
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from ..net.address import ServerAddress, ServerSpec, parse_servers
from ..net.errors import ConnectFailed, ConnectionLost
from ..protocol import admin as cmd
from ..protocol.admin import (
    AdminCommand,
    AdminParser,
    AdminReply,
    FunctionStatus,
    JobInfo,
    PriorityStatus,
    WorkerInfo,
)
from ..protocol.errors import ArgumentError, GearqError, ProtocolError
from .job import Job
from .sync import _ABANDONED, _LoopThread

__all__ = ["AdminClient", "AdminResults", "AsyncAdminClient", "ServerResult"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServerResult(Generic[T]):
    """One server's answer: ``value``, or ``error`` (AdminError for ERR, a connection
    error for a server that is down or did not answer in time)."""

    server: ServerAddress
    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class AdminResults(dict[ServerAddress, ServerResult[T]]):
    """Per-server results of one command, in server order."""

    def values_ok(self) -> dict[ServerAddress, T]:
        """The servers that answered, with their values."""
        return {s: r.value for s, r in self.items() if r.error is None}  # type: ignore[misc]

    def errors(self) -> dict[ServerAddress, BaseException]:
        return {s: r.error for s, r in self.items() if r.error is not None}

    def raise_errors(self) -> AdminResults[T]:
        """Raise the first error, if any server failed; returns self otherwise."""
        for r in self.values():
            if r.error is not None:
                raise r.error
        return self


class _AdminConnection(asyncio.Protocol):
    """One text-protocol connection; commands pipelined, replies matched in order."""

    def __init__(self, server: ServerAddress) -> None:
        self.server = server
        self.parser = AdminParser()
        self.waiters: deque[asyncio.Future[AdminReply[Any]]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports are not asyncio.Transport
        # subclasses, though they behave as one.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, command: AdminCommand[T]) -> asyncio.Future[AdminReply[T]]:
        if self.closed or self.transport is None:
            raise ConnectionLost(self.server, "admin connection is closed")
        fut: asyncio.Future[AdminReply[Any]] = asyncio.get_running_loop().create_future()
        self.transport.write(self.parser.send(command))
        self.waiters.append(fut)
        return fut

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.parser.feed(data)
        except ProtocolError as exc:
            self.fail(ConnectionLost(self.server, f"admin protocol error: {exc}"))
            return
        for reply in replies:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "server closed the admin connection"
        self.fail(ConnectionLost(self.server, reason))

    def fail(self, error: BaseException) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(error)


class AsyncAdminClient:
    """The text admin protocol of every server in ``servers``.

    :param timeout: seconds a server gets to answer one command; past it the result for
        that server is a ``TimeoutError`` and its connection is dropped.
    """

    def __init__(
        self,
        servers: str | ServerSpec | Iterable[ServerSpec] | None = None,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        ssl: _ssl.SSLContext | None = None,
        ssl_server_hostname: str | None = None,
    ) -> None:
        self.servers = tuple(parse_servers(servers))
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ssl = ssl
        self.ssl_server_hostname = ssl_server_hostname
        self._conns: dict[ServerAddress, _AdminConnection] = {}
        self._connecting: dict[ServerAddress, asyncio.Task[_AdminConnection]] = {}

    async def _connection(self, server: ServerAddress) -> _AdminConnection:
        conn = self._conns.get(server)
        if conn is not None and not conn.closed:
            return conn
        task = self._connecting.get(server)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(server))
            self._connecting[server] = task
            task.add_done_callback(lambda _t: self._connecting.pop(server, None))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    async def _open(self, server: ServerAddress) -> _AdminConnection:
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {}
        if self.ssl is not None:
            kwargs["ssl"] = self.ssl
            kwargs["server_hostname"] = self.ssl_server_hostname or server.host
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _AdminConnection(server), server.host, server.port, **kwargs
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            message = f"no connection within {self.connect_timeout:g} s"
            raise ConnectFailed(server, message) from None
        except (OSError, _ssl.SSLError) as exc:
            raise ConnectFailed(server, f"cannot connect: {exc}") from exc
        self._conns[server] = conn
        return conn

    async def _one(self, server: ServerAddress, command: AdminCommand[T]) -> ServerResult[T]:
        try:
            conn = await self._connection(server)
            fut = conn.send(command)
            try:
                reply = await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                # The reply may still come; the connection is out of step with us now.
                conn.fail(ConnectionLost(server, "admin command timed out"))
                raise TimeoutError(
                    f"{server}: no answer to {command.line.strip()!r} within {self.timeout:g} s"
                ) from None
        except (GearqError, OSError) as exc:
            return ServerResult(server, None, exc)
        if reply.error is not None:
            return ServerResult(server, None, reply.error)
        return ServerResult(server, reply.value)

    def _targets(self, servers: ServerSpec | Iterable[ServerSpec] | None) -> list[ServerAddress]:
        if servers is None:
            return list(self.servers)
        targets = parse_servers(servers)
        unknown = [s for s in targets if s not in self.servers]
        if unknown:
            raise ArgumentError(f"not configured: {', '.join(map(str, unknown))}")
        return targets

    async def command(
        self, command: AdminCommand[T], servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[T]:
        """Send any admin command to every server (or those given), concurrently."""
        targets = self._targets(servers)
        results = await asyncio.gather(*(self._one(s, command) for s in targets))
        return AdminResults((r.server, r) for r in results)

    async def status(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[FunctionStatus, ...]]:
        return await self.command(cmd.status(), servers)

    async def priority_status(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[PriorityStatus, ...]]:
        return await self.command(cmd.priority_status(), servers)

    async def workers(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[WorkerInfo, ...]]:
        return await self.command(cmd.workers(), servers)

    async def show_jobs(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[JobInfo, ...]]:
        return await self.command(cmd.show_jobs(), servers)

    async def show_unique_jobs(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[str, ...]]:
        return await self.command(cmd.show_unique_jobs(), servers)

    async def version(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[str]:
        return await self.command(cmd.version(), servers)

    async def getpid(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[int]:
        return await self.command(cmd.getpid(), servers)

    async def maxqueue(
        self,
        function: str | bytes,
        size: int | tuple[int, int, int] | None = None,
        servers: ServerSpec | Iterable[ServerSpec] | None = None,
    ) -> AdminResults[None]:
        """Cap ``function``'s queue on every server (gearmand ignores unknown functions)."""
        return await self.command(cmd.maxqueue(function, size), servers)

    async def cancel_job(self, handle: Job | str | bytes, server: ServerSpec | None = None) -> None:
        """``cancel job`` on the one server the handle belongs to; raises its error."""
        if isinstance(handle, Job):
            if handle.handle is None or handle.server is None:
                raise ArgumentError("the job has no handle yet")
            server = server or handle.server
            handle = handle.handle
        if server is None:
            raise ArgumentError("cancel_job needs the server: handles repeat across servers")
        results = await self.command(cmd.cancel_job(handle), server)
        next(iter(results.values())).result()

    async def close(self) -> None:
        for task in list(self._connecting.values()):
            task.cancel()
        for conn in self._conns.values():
            if conn.transport is not None:
                conn.closed = True
                conn.transport.close()
        self._conns.clear()

    async def __aenter__(self) -> AsyncAdminClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class AdminClient:
    """Blocking twin of :class:`AsyncAdminClient` (its own loop thread; fork-safe)."""

    def __init__(
        self, servers: str | ServerSpec | Iterable[ServerSpec] | None = None, **options: Any
    ) -> None:
        self._args = (servers, options)
        self.servers = AsyncAdminClient(servers, **options).servers
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._runner: _LoopThread | None = None
        self._client: AsyncAdminClient | None = None

    def _run(self, make: Any) -> Any:
        if self._pid != os.getpid():
            _ABANDONED.append((self._runner, self._client))
            self._runner = self._client = None
            self._lock = threading.Lock()
            self._pid = os.getpid()
        with self._lock:
            if self._runner is None or self._client is None:
                self._runner = _LoopThread("gearq-admin")
                servers, options = self._args
                self._client = AsyncAdminClient(servers, **options)
            runner, client = self._runner, self._client
        coro: Coroutine[Any, Any, Any] = make(client)
        return runner.run(coro)

    def command(
        self, command: AdminCommand[T], servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[T]:
        result: AdminResults[T] = self._run(lambda c: c.command(command, servers))
        return result

    def status(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[FunctionStatus, ...]]:
        return self.command(cmd.status(), servers)

    def priority_status(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[PriorityStatus, ...]]:
        return self.command(cmd.priority_status(), servers)

    def workers(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[WorkerInfo, ...]]:
        return self.command(cmd.workers(), servers)

    def show_jobs(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[JobInfo, ...]]:
        return self.command(cmd.show_jobs(), servers)

    def show_unique_jobs(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[tuple[str, ...]]:
        return self.command(cmd.show_unique_jobs(), servers)

    def version(
        self, servers: ServerSpec | Iterable[ServerSpec] | None = None
    ) -> AdminResults[str]:
        return self.command(cmd.version(), servers)

    def getpid(self, servers: ServerSpec | Iterable[ServerSpec] | None = None) -> AdminResults[int]:
        return self.command(cmd.getpid(), servers)

    def maxqueue(
        self,
        function: str | bytes,
        size: int | tuple[int, int, int] | None = None,
        servers: ServerSpec | Iterable[ServerSpec] | None = None,
    ) -> AdminResults[None]:
        return self.command(cmd.maxqueue(function, size), servers)

    def cancel_job(self, handle: Any, server: ServerSpec | None = None) -> None:
        """``cancel job``; ``handle`` may be a handle, a Job or a SyncJob."""
        target = getattr(handle, "job", handle)
        self._run(lambda c: c.cancel_job(target, server))

    def close(self) -> None:
        with self._lock:
            runner, client = self._runner, self._client
            self._runner = self._client = None
        if runner is not None and client is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                runner.run(client.close(), timeout=10)
            runner.stop()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
