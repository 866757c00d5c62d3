"""One accepted connection: bytes in through the decoder, events to the broker, bytes out.

Whatever a peer sends, the worst outcome is that its own connection is closed: protocol
errors close it quietly (as gearmand does), and a bug triggered by its input is logged and
closes it too, leaving the server and the other connections running.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import cast

from ..protocol.codec import DEFAULT_MAX_LINE, RequestDecoder, TextCommand
from ..protocol.errors import ProtocolError
from . import admin
from .broker import Broker
from .peer import Peer

__all__ = ["ServerConnection"]

log = logging.getLogger("gearq.server")


class ServerConnection(asyncio.Protocol):
    """The asyncio protocol of one client, worker or admin connection."""

    def __init__(
        self,
        broker: Broker,
        info: admin.AdminInfo,
        connections: set[ServerConnection],
        *,
        max_connections: int,
        max_packet_size: int,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self._broker = broker
        self._info = info
        self._connections = connections
        self._max_connections = max_connections
        self._decoder = RequestDecoder(max_packet_size=max_packet_size, max_line=max_line)
        self._transport: asyncio.Transport | None = None
        self.peer: Peer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr = cast(asyncio.Transport, transport)
        self._transport = tr
        if len(self._connections) >= self._max_connections:
            log.warning("refusing a connection: %d connections open", len(self._connections))
            tr.abort()
            return
        self._connections.add(self)
        sock: socket.socket | None = tr.get_extra_info("socket")
        fd = -1
        if sock is not None:
            fd = sock.fileno()
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # asyncio sets this too; a job server without it manages ~23 round trips
                # a second (Nagle plus delayed ACK), so make sure.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peername = tr.get_extra_info("peername")
        ip = str(peername[0]) if isinstance(peername, tuple) and peername else "-"
        self.peer = Peer(fd=fd, ip=ip, write=tr.write, close=tr.close, dirty=self._broker.dirty)
        self._broker.connect(self.peer)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.closed:
            return
        broker = self._broker
        try:
            items = self._decoder.feed_mixed(data)
        except ProtocolError as exc:
            log.info("closing connection fd=%d from %s: %s", peer.fd, peer.ip, exc)
            broker.flush()
            peer.close()
            return
        try:
            for item in items:
                if isinstance(item, TextCommand):
                    reply = admin.execute(broker, self._info, item.line)
                    if reply is None:
                        peer.close()
                        break
                    peer.send(reply)
                else:
                    broker.handle(peer, item)
                if peer.closed:
                    break
        except Exception:
            log.exception("internal error on connection fd=%d; closing it", peer.fd)
            peer.close()
        broker.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        peer = self.peer
        if peer is None:
            return
        try:
            self._broker.disconnect(peer)
        except Exception:
            log.exception("internal error while releasing connection fd=%d", peer.fd)
        self._broker.flush()

    # A peer that does not read its replies stops being read from, so that what it makes
    # the server send (echoes, status replies) cannot pile up without bound.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        """Close the connection (server shutdown); buffered replies are still sent."""
        if self.peer is not None:
            self.peer.close()
        elif self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent replies included."""
        if self.peer is not None:
            self.peer.closed = True
        if self._transport is not None:
            self._transport.abort()
