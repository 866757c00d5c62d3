"""The client's connection: gearq.net's Connection with a fast path for the two packets
that arrive once per job, JOB_CREATED (handed over in runs) and WORK_COMPLETE.

Those two are framed here and handed to the link as bytes, without building a Packet (the
generic decoder's packet objects were the largest single cost of a submit). Every other
packet, and anything malformed, goes whole to Connection.data_received, which decodes it,
answers heartbeats and fails the connection on protocol errors exactly as before. Order is
kept: packets are handled one by one, in stream order.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from ..net.connection import Connection

__all__ = ["ClientConnection"]

_unpack_head = struct.Struct(">III").unpack_from  # magic as an int, type, size
_unpack_size = struct.Struct(">I").unpack_from
_RES = int.from_bytes(b"\0RES", "big")
_JOB_CREATED = 8
_WORK_COMPLETE = 13
_EMPTY = b""
_MAGIC = b"\0RES"

log = logging.getLogger("gearq.client")


class ClientConnection(Connection):
    """A Connection whose owner may set ``on_created(handles)`` (the handles of
    consecutive JOB_CREATED packets, in order) and ``on_complete(handle, result)``; until
    it does, everything takes the generic path. ``on_created`` must deal with every handle
    it is given, even if one of them fails."""

    on_created: Callable[[list[bytes]], None] | None = None
    on_complete: Callable[[bytes, bytes], None] | None = None
    #: Called after the packets of each read are handled (even if handling one failed).
    on_read_end: Callable[[], None] | None = None
    # Bytes of a packet not yet whole: kept as parts and joined once, so a large packet
    # arriving in many reads is copied once, not once per read.
    _parts: list[bytes] | None = None
    _have = 0
    _need = 0

    def data_received(self, data: bytes) -> None:
        on_read_end = self.on_read_end
        if on_read_end is None:
            self._receive(data)
            return
        try:
            self._receive(data)
        finally:
            on_read_end()

    def _receive(self, data: bytes) -> None:
        on_created = self.on_created
        on_complete = self.on_complete
        if on_created is None or on_complete is None:
            super().data_received(data)
            return
        if self._parts is not None:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                super().data_received(_EMPTY)  # still a sign of life for the heartbeat
                return
            data = b"".join(self._parts)
            self._parts = None
        self._last_rx = self._loop.time()  # the liveness clock of the heartbeat
        limit = self.options.max_packet_size
        generic = super().data_received
        pos = 0
        end = len(data)
        while end - pos >= 12:
            magic, ptype, size = _unpack_head(data, pos)
            if magic != _RES or size > limit:
                generic(data[pos:])  # the decoder raises and fails the connection
                return
            stop = pos + 12 + size
            if stop > end:
                break
            kind = ptype
            try:
                if ptype == _JOB_CREATED:
                    # Replies to a pipelined burst of submits come as long runs of
                    # JOB_CREATED: frame the whole run here, hand it over in one call.
                    handles = [data[pos + 12 : stop]]
                    add = handles.append
                    pos = stop
                    while end - pos >= 12:
                        magic, ptype, size = _unpack_head(data, pos)
                        stop = pos + 12 + size
                        if ptype != _JOB_CREATED or magic != _RES or size > limit or stop > end:
                            break
                        add(data[pos + 12 : stop])
                        pos = stop
                    stop = pos
                    on_created(handles)
                elif ptype == _WORK_COMPLETE:
                    handle, _, result = data[pos + 12 : stop].partition(b"\0")
                    on_complete(handle, result)
                else:
                    generic(data[pos:stop])
            except Exception:
                # As on the generic path: a bug above must not lose the packets after it.
                log.exception("%s: error while handling a packet of type %d", self.address, kind)
            if self._closed:  # a handler closed the connection: the rest is moot
                return
            pos = stop
        if pos < end:
            rest = data[pos:]
            if not _MAGIC.startswith(rest[:4]):
                generic(rest)  # not the start of a packet: the decoder says so and fails
                return
            need = 12 + _unpack_size(rest, 8)[0] if len(rest) >= 12 else 12
            self._parts = [rest]
            self._have = len(rest)
            self._need = need
