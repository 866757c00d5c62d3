"""One asyncio connection to a job server, speaking binary packets.

The connection owns the socket options that Gearman needs (TCP_NODELAY above all: without
it a round trip costs ~44 ms), optional TLS, and an ECHO heartbeat that notices a server
that stopped answering without closing the socket. It knows nothing about jobs: packets go
to an ``on_packet`` callback and the end of the connection to ``on_lost``.

Reads land in a buffer kept for the connection's life (a buffered protocol): asyncio's own
reads allocate 256 KiB each, which glibc serves with mmap and munmap (~25 µs a read) until
something in the process happens to raise its mmap threshold. A plain TCP connection on a
selector loop can also be read *in place* (:meth:`Connection.read_in_place`), by a thread
that owns the loop without running it: see :func:`in_place_readers`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl as _ssl
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

from ..protocol.codec import DEFAULT_MAX_PACKET_SIZE, Decoder, encode_request
from ..protocol.errors import ProtocolError
from ..protocol.packets import Magic, Packet, PacketType
from .address import ServerAddress
from .errors import ConnectFailed, ConnectionLost, HeartbeatTimeout

__all__ = ["Connection", "ConnectionOptions", "in_place_readers"]

log = logging.getLogger("gearq.net")

_HEARTBEAT_TOKEN = b"gearq-heartbeat"
_ECHO_RES = PacketType.ECHO_RES
_READ_SIZE = 1 << 18  # as much as asyncio's own reads take at once

# Per event loop: its open connections that can be read in place, by file descriptor.
_IN_PLACE: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Connection]] = (
    weakref.WeakKeyDictionary()
)


def in_place_readers(loop: asyncio.AbstractEventLoop) -> dict[int, Connection]:
    """The open connections of ``loop`` that :meth:`Connection.read_in_place` can read,
    by file descriptor: plain TCP connections on a selector event loop, where the OS has
    ``readv``. The same dict for the loop's life, kept up to date as connections open and
    close (a snapshot is not needed: it changes only in the loop's own thread)."""
    readers = _IN_PLACE.get(loop)
    if readers is None:
        readers = _IN_PLACE[loop] = {}
    return readers


class ConnectionOptions:
    """Socket-level settings shared by every connection of a client or worker.

    ``heartbeat_interval``: send an ECHO after this many idle seconds (None: never).
    ``heartbeat_timeout``: declare the server down when nothing arrives this long after
    a heartbeat was sent. A frozen server is thus noticed within interval + timeout.
    """

    __slots__ = (
        "connect_timeout",
        "heartbeat_interval",
        "heartbeat_timeout",
        "keepalive",
        "max_packet_size",
        "ssl",
        "ssl_server_hostname",
    )

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        heartbeat_interval: float | None = 5.0,
        heartbeat_timeout: float = 5.0,
        keepalive: bool = True,
        ssl: _ssl.SSLContext | None = None,
        ssl_server_hostname: str | None = None,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive or None")
        if heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be positive")
        self.connect_timeout = connect_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.keepalive = keepalive
        self.ssl = ssl
        self.ssl_server_hostname = ssl_server_hostname
        self.max_packet_size = max_packet_size


def _tune_socket(sock: socket.socket, keepalive: bool) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not keepalive:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Linux names; other systems keep their defaults.
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        opt = getattr(socket, name, None)
        if opt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, value)


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or the C function it calls when the loop keeps asyncio's own clock (a
    Python call fewer on every read)."""
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


class Connection(asyncio.BufferedProtocol):
    """A live connection. Create it with :meth:`open`.

    Subclasses take the bytes of each read in :meth:`data_received`, as with a plain
    protocol.
    """

    def __init__(
        self,
        address: ServerAddress,
        options: ConnectionOptions,
        on_packet: Callable[[Packet], None],
        on_lost: Callable[[Connection, ConnectionLost | None], None],
    ) -> None:
        self.address = address
        self.options = options
        self._on_packet = on_packet
        self._on_lost = on_lost
        self._decoder = Decoder(expect=Magic.RES, max_packet_size=options.max_packet_size)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._now = loop_clock(self._loop)
        self._closed = False
        self._error: ConnectionLost | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._last_rx = self._loop.time()
        self._echo_sent_at: float | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._inbox = memoryview(bytearray(_READ_SIZE))
        self._fd = -1  # >= 0 while registered in in_place_readers

    # -- opening -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        address: ServerAddress,
        options: ConnectionOptions,
        on_packet: Callable[[Packet], None],
        on_lost: Callable[[Connection, ConnectionLost | None], None],
    ) -> Connection:
        """Connect, or raise :class:`ConnectFailed` naming the server."""
        loop = asyncio.get_running_loop()
        conn = cls(address, options, on_packet, on_lost)
        kwargs: dict[str, Any] = {}
        if options.ssl is not None:
            kwargs["ssl"] = options.ssl
            kwargs["server_hostname"] = options.ssl_server_hostname or address.host
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: conn, address.host, address.port, **kwargs),
                options.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectFailed(
                address, f"no connection within {options.connect_timeout:g} s"
            ) from None
        except (OSError, _ssl.SSLError) as exc:
            raise ConnectFailed(address, f"cannot connect: {exc}") from exc
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                _tune_socket(sock, self.options.keepalive)
            except OSError as exc:  # e.g. a socket type without TCP options
                log.debug("%s: socket options not set: %s", self.address, exc)
        self._last_rx = self._loop.time()
        if (
            sock is not None
            and self.options.ssl is None
            and isinstance(self._loop, asyncio.selector_events.BaseSelectorEventLoop)
            and hasattr(os, "readv")
        ):
            self._fd = sock.fileno()
            in_place_readers(self._loop)[self._fd] = self
        if self.options.heartbeat_interval is not None:
            self._heartbeat = self._loop.call_later(
                self.options.heartbeat_interval, self._check_heartbeat
            )

    # -- sending -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._closed

    def send(self, data: bytes) -> None:
        """Queue bytes for the server. Raises :class:`ConnectionLost` once it is closed."""
        if self._closed or self._transport is None:
            raise self._error or ConnectionLost(self.address, "connection is closed")
        self._transport.write(data)

    def send_now(self, data: bytes) -> None:
        """:meth:`send`, straight to the socket when nothing waits to be written (a write
        fewer layers deep, for the lone calls whose round trip it is part of); what does
        not fit, or comes behind bytes still waiting, goes through the transport."""
        if not self.send_idle(data):
            self.send(data)

    def send_idle(self, data: bytes) -> bool:
        """If the connection can be read in place (:meth:`ready_in_place`: open, nothing
        waiting to be written), write ``data`` straight to the socket (what does not fit
        goes through the transport) and return True; else False, and nothing was sent."""
        fd = self._fd
        transport = self._transport
        if fd < 0 or transport is None or transport.get_write_buffer_size():
            return False
        try:
            sent = os.write(fd, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.send(data)  # the transport meets the error and closes as usual
            return True
        if sent < len(data):
            self.send(data[sent:])
        return True

    def send_packet(self, ptype: PacketType, *args: bytes) -> None:
        self.send(encode_request(ptype, *args))

    async def drain(self) -> None:
        """Wait while the socket's write buffer is over its high-water mark."""
        if not self._paused:
            if self._closed and self._error is not None:
                raise self._error
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(fut)
        await fut

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drainers(None)

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

    # -- receiving -----------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._inbox

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._inbox[:nbytes].tobytes())

    def ready_in_place(self) -> bool:
        """True if :meth:`read_in_place` may read now: open, with nothing left to write
        (writing is the loop's job). (A connection never pauses its own reading.)"""
        transport = self._transport
        return self._fd >= 0 and transport is not None and not transport.get_write_buffer_size()

    def read_in_place(self) -> bool:
        """Read what the socket holds now and handle it, as the loop would, from a thread
        that owns the loop but is not running it (with the loop set as its running loop).
        False if nothing was read: nothing there, the end of the stream, or not a
        connection that can be read in place; the loop's own read then deals with it."""
        if self._fd < 0:
            return False
        try:
            nbytes = os.readv(self._fd, [self._inbox])
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._fail(ConnectionLost(self.address, f"connection lost: {exc}"))
            return True
        if not nbytes:
            return False  # EOF: the transport sees it too, and closes as usual
        try:
            self.buffer_updated(nbytes)
        except Exception as exc:  # as the transport does when a protocol callback fails
            log.exception("%s: error while handling a read", self.address)
            self._fail(ConnectionLost(self.address, f"connection lost: {exc!r}"))
        return True

    def data_received(self, data: bytes) -> None:
        self._last_rx = self._now()
        try:
            packets = self._decoder.feed(data)
        except ProtocolError as exc:
            log.warning("%s: protocol error, closing: %s", self.address, exc)
            self._fail(ConnectionLost(self.address, f"protocol error: {exc}"))
            return
        on_packet = self._on_packet
        for packet in packets:
            if packet.type is _ECHO_RES and packet.args[0] == _HEARTBEAT_TOKEN:
                self._echo_sent_at = None
                continue
            try:
                on_packet(packet)
            except Exception:
                # A bug above us must not take the connection (and its other jobs) down.
                log.exception("%s: error while handling %r", self.address, packet)

    def heartbeat_answered(self, token: bytes) -> bool:
        """For subclasses that decode packets their own way: True if ``token`` (an
        ECHO_RES payload) answers this connection's heartbeat, which then counts as
        answered; such a packet is the connection's own, not its owner's."""
        if token == _HEARTBEAT_TOKEN:
            self._echo_sent_at = None
            return True
        return False

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            self._finish()
            return
        reason = f"connection lost: {exc}" if exc else "server closed the connection"
        self._fail(ConnectionLost(self.address, reason))

    # -- heartbeat -----------------------------------------------------------------------

    def _check_heartbeat(self) -> None:
        self._heartbeat = None
        if self._closed:
            return
        interval = self.options.heartbeat_interval
        assert interval is not None
        now = self._loop.time()
        if self._echo_sent_at is not None and self._last_rx <= self._echo_sent_at:
            waited = now - self._echo_sent_at
            if waited >= self.options.heartbeat_timeout:
                self._fail(
                    HeartbeatTimeout(
                        self.address, f"no answer to a heartbeat within {waited:.1f} s"
                    )
                )
                return
            delay = self.options.heartbeat_timeout - waited
        else:
            idle = now - self._last_rx
            if idle >= interval:
                self._echo_sent_at = now
                try:
                    self.send_packet(PacketType.ECHO_REQ, _HEARTBEAT_TOKEN)
                except ConnectionLost:
                    return
                delay = self.options.heartbeat_timeout
            else:
                delay = interval - idle
        self._heartbeat = self._loop.call_later(max(delay, 0.01), self._check_heartbeat)

    # -- closing -------------------------------------------------------------------------

    def _fail(self, error: ConnectionLost) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        if self._transport is not None:
            self._transport.abort()
        self._finish()
        try:
            self._on_lost(self, error)
        except Exception:
            log.exception("%s: error in connection-lost handler", self.address)

    def _finish(self) -> None:
        if self._fd >= 0:
            readers = in_place_readers(self._loop)
            if readers.get(self._fd) is self:
                del readers[self._fd]
            self._fd = -1
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self._wake_drainers(self._error or ConnectionLost(self.address, "connection closed"))

    def close(self) -> None:
        """Close on purpose: pending writes are flushed, ``on_lost`` gets None."""
        self._shutdown(abort=False)

    def abort(self) -> None:
        """Close at once, dropping unsent bytes (gearmand then requeues held jobs)."""
        self._shutdown(abort=True)

    def _shutdown(self, *, abort: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()
        self._finish()
        try:
            self._on_lost(self, None)
        except Exception:
            log.exception("%s: error in connection-lost handler", self.address)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Connection {self.address} {state}>"
