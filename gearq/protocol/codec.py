"""Encoding packets to bytes and decoding a byte stream into packets, with no I/O.

The decoders are incremental: feed them any split of a stream and they give the same packets.
They never wait for data that cannot come (a bad header fails at once) and never buffer more
than one packet of at most ``max_packet_size`` bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeAlias

from .errors import ArgumentError, BadMagic, MalformedPacket, PacketTooLarge, UnknownPacketType
from .packets import ARG_COUNTS, HEADER_SIZE, REQ, RES, Magic, Packet, PacketType

__all__ = [
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_PACKET_SIZE",
    "Decoder",
    "RequestDecoder",
    "TextCommand",
    "encode",
    "encode_request",
    "encode_response",
]

DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024
# gearmand reads a text command into an 8 KiB buffer and closes the connection past that.
DEFAULT_MAX_LINE = 8192

_HEADER = struct.Struct(">4sII")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_MAGICS: dict[bytes, Magic] = {REQ: Magic.REQ, RES: Magic.RES}
_ARGC: dict[int, int] = {int(t): n for t, n in ARG_COUNTS.items()}

# The decoder's fast path reads magic and type as one number and looks up everything it
# needs about that pair at once: (magic, type, argc, the shared Packet of an argument-less
# type, whether a trailing NUL is dropped). One table per ``expect`` setting.
_Kind: TypeAlias = tuple[Magic, PacketType, int, Packet | None, bool]
_KEY_HEADER = struct.Struct(">QI")
_unpack_key = _KEY_HEADER.unpack_from


def _kinds(expect: bytes | None) -> dict[int, _Kind]:
    kinds: dict[int, _Kind] = {}
    for magic_bytes, magic in _MAGICS.items():
        if expect is not None and magic_bytes != expect:
            continue
        for ptype in PacketType:
            argc = _ARGC[ptype]
            key = int.from_bytes(magic_bytes + ptype.to_bytes(4, "big"), "big")
            # Packets are frozen, so every NOOP (say) can be the same object.
            empty = Packet(magic, ptype, ()) if argc == 0 else None
            # gearmand adds a NUL to the handle of the WORK_FAIL it makes from an exception.
            strip_nul = ptype is PacketType.WORK_FAIL and magic is Magic.RES
            kinds[key] = (magic, ptype, argc, empty, strip_nul)
    return kinds


_KINDS: dict[bytes | None, dict[int, _Kind]] = {e: _kinds(e) for e in (None, REQ, RES)}
# The key of a ``\0RES`` JOB_ASSIGN_UNIQ header, which :meth:`Decoder.feed_jobs` hands out
# as a bare list of its four arguments.
_ASSIGN_UNIQ_KEY = int.from_bytes(RES + int(PacketType.JOB_ASSIGN_UNIQ).to_bytes(4, "big"), "big")

# Packet's frozen-dataclass __init__ costs three object.__setattr__ calls; setting the slots
# through their descriptors builds the same object in well under half the time. Only right
# while Packet has exactly these three fields and no __post_init__ (a unit test checks).
_new_object = object.__new__
_set_magic = Packet.__dict__["magic"].__set__
_set_type = Packet.__dict__["type"].__set__
_set_args = Packet.__dict__["args"].__set__


def _packet(magic: Magic, ptype: PacketType, args: tuple[bytes, ...]) -> Packet:
    packet: Packet = _new_object(Packet)
    _set_magic(packet, magic)
    _set_type(packet, ptype)
    _set_args(packet, args)
    return packet


@dataclass(frozen=True, slots=True)
class TextCommand:
    """A line of the text admin protocol, as a server receives it (without the line end)."""

    line: bytes


def _body(ptype: PacketType, args: tuple[bytes, ...]) -> bytes:
    argc = _ARGC[ptype]
    if len(args) != argc:
        raise ArgumentError(f"{ptype.name} takes {argc} argument(s), got {len(args)}")
    if argc <= 1:
        return args[0] if argc else b""
    body = b"\0".join(args)
    # Exactly argc - 1 NULs before the last argument: the separators. Else find the culprit.
    if body.count(0, 0, len(body) - len(args[-1])) != argc - 1:
        for arg in args[:-1]:
            if b"\0" in arg:
                raise ArgumentError(
                    f"{ptype.name}: only the last argument may contain NUL bytes, got {arg[:40]!r}"
                )
    return body


def encode_request(ptype: PacketType, *args: bytes) -> bytes:
    """Bytes of a ``\\0REQ`` packet (client or worker to server)."""
    body = _body(ptype, args)
    return _pack_header(REQ, ptype, len(body)) + body


def encode_response(ptype: PacketType, *args: bytes) -> bytes:
    """Bytes of a ``\\0RES`` packet (server to client or worker)."""
    body = _body(ptype, args)
    return _pack_header(RES, ptype, len(body)) + body


def encode(packet: Packet) -> bytes:
    """Bytes of any packet."""
    body = _body(packet.type, packet.args)
    return _pack_header(packet.magic.value, packet.type, len(body)) + body


class _StreamBuffer:
    """Collects fed chunks and joins them only once a whole unit can be parsed.

    Joining on every feed would be quadratic for a large payload arriving in small reads.
    """

    __slots__ = ("_chunks", "_have", "_need")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._have = 0
        # One byte may already complete a text line ("\n") or show a bad start.
        self._need = 1

    def add(self, data: bytes) -> bytes | None:
        if data:
            self._chunks.append(bytes(data))
            self._have += len(data)
        if self._have < self._need or not self._chunks:
            return None
        chunks = self._chunks
        buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._have = 0
        return buf

    def keep(self, rest: bytes, need: int) -> None:
        """Keep an unparsed tail; parsing resumes once ``need`` bytes are buffered."""
        if rest:
            self._chunks.append(rest)
        self._have = len(rest)
        self._need = max(need, 1)

    @property
    def buffered(self) -> int:
        return self._have


class Decoder:
    """Incremental decoder for the binary protocol.

    ``expect`` fixes the magic every packet must carry (``Magic.RES`` for a client or a
    worker, ``Magic.REQ`` for a server); ``None`` accepts both.
    """

    __slots__ = ("_assign_key", "_buffer", "_empties", "_expect", "_kinds", "max_packet_size")

    def __init__(
        self,
        *,
        expect: Magic | None = Magic.RES,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        self._buffer = _StreamBuffer()
        self._expect = expect.value if expect is not None else None
        self._kinds = _KINDS[self._expect]
        # The shared packets of argument-less types, by type key (feed_jobs' fast path).
        self._empties: dict[int, Packet] = {
            key: empty for key, (_, _, _, empty, _) in self._kinds.items() if empty is not None
        }
        self._assign_key = _ASSIGN_UNIQ_KEY if self._expect in (None, RES) else -1
        self.max_packet_size = max_packet_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole packet."""
        return self._buffer.buffered

    def feed(self, data: bytes) -> list[Packet]:
        """Add bytes from the stream; return the packets they complete, in order.

        Raises a :class:`~gearq.protocol.errors.ProtocolError` subclass on a bad header,
        an unknown type, a body without its arguments, or a packet over the size limit.
        """
        buf = self._buffer.add(data)
        if buf is None:
            return []
        out: list[Packet] = []
        pos = self._parse(buf, 0, out)
        self._keep_tail(buf, pos)
        return out

    def feed_jobs(self, data: bytes) -> list[Packet | list[bytes]]:
        """:meth:`feed` for a worker's hot path: a ``\\0RES`` JOB_ASSIGN_UNIQ comes out as
        the list ``[handle, function, unique, payload]`` instead of a :class:`Packet`
        (building one per job costs more than splitting its body); every other packet is
        the same :class:`Packet` that :meth:`feed` gives. Same checks, same errors.
        """
        buffer = self._buffer
        if buffer._have:  # the rest of a packet: joined with what came before
            joined = buffer.add(data)
            if joined is None:
                return []
            buf = joined
        elif data:
            if len(data) == HEADER_SIZE:
                # A lone argument-less packet: an idle worker's NOOP, most often.
                key, size = _unpack_key(data, 0)
                empty = None if size else self._empties.get(key)
                if empty is not None:
                    return [empty]
            # The usual read: whole packets, nothing buffered; parsed where it lies.
            buf = data if data.__class__ is bytes else bytes(data)
            if len(buf) > HEADER_SIZE:
                # Perhaps a lone job's probe answered: one job and nothing else (in one
                # step, not a turn of the loop below).
                key, size = _unpack_key(buf, 0)
                if key == self._assign_key and HEADER_SIZE + size == len(buf):
                    args = buf[HEADER_SIZE:].split(b"\0", 3)
                    if len(args) == 4 and size <= self.max_packet_size:
                        return [args]
        else:
            return []
        out: list[Packet | list[bytes]] = []
        end = len(buf)
        pos = 0
        limit = self.max_packet_size
        append = out.append
        assign = self._assign_key
        empties = self._empties
        while end - pos >= HEADER_SIZE:
            key, size = _unpack_key(buf, pos)
            if key == assign and size <= limit:
                stop = pos + HEADER_SIZE + size
                if stop > end:
                    break
                args = buf[pos + HEADER_SIZE : stop].split(b"\0", 3)
                if len(args) != 4:
                    raise MalformedPacket(f"JOB_ASSIGN_UNIQ needs 4 arguments, got {len(args)}")
                append(args)
                pos = stop
            elif not size and key in empties:  # NOOP, NO_JOB: the shared packet of its type
                append(empties[key])
                pos += HEADER_SIZE
            else:
                # Everything else (and an over-long assignment, for its error) exactly as
                # feed() does it, up to the next assignment.
                parsed = self._parse(buf, pos, out, until=assign)
                if parsed == pos:  # an incomplete packet, or text (already reported)
                    break
                pos = parsed
        else:
            if pos < end and buf[pos] != 0:
                self._on_text(buf, pos)
        if pos == end:
            buffer._need = 1  # nothing kept: any byte may start the next packet
        else:
            self._keep_tail(buf, pos)
        return out

    def _keep_tail(self, buf: bytes, pos: int) -> None:
        rest = buf[pos:]
        # While the header is incomplete, look again at every new byte: a bad magic fails
        # as soon as its 4 bytes are in, and a short text line is not held back.
        need = len(rest) + 1
        if len(rest) >= 4:
            magic = rest[:4]
            if magic not in _MAGICS or (self._expect is not None and magic != self._expect):
                raise BadMagic(f"bad packet magic {magic!r}")
        if len(rest) >= HEADER_SIZE:
            need = HEADER_SIZE + _unpack_header(rest, 0)[2]
        self._buffer.keep(rest, need)

    def _parse(
        self, buf: bytes, pos: int, out: list[Packet] | list[Packet | list[bytes]], until: int = -2
    ) -> int:
        """Decode whole packets from ``pos`` into ``out``; return where the rest starts.

        Stops early (for :meth:`feed_jobs`) before a packet whose type key is ``until`` and
        whose size is within the limit.
        """
        end = len(buf)
        kinds = self._kinds
        limit = self.max_packet_size
        append = out.append
        while end - pos >= HEADER_SIZE:
            if buf[pos] != 0:
                # A text line where a packet should start; only a server accepts those.
                break
            key, size = _unpack_key(buf, pos)
            if key == until and size <= limit:
                break
            kind = kinds.get(key)
            if kind is None:
                raise self._header_error(buf, pos)
            magic, ptype, argc, empty, strip_nul = kind
            if size > limit:
                raise PacketTooLarge(
                    f"{ptype.name} packet of {size} bytes is over the limit of {limit}"
                )
            stop = pos + HEADER_SIZE + size
            if stop > end:
                break
            if empty is not None:
                if size:
                    raise MalformedPacket(f"{ptype.name} takes no arguments, got {size} bytes")
                append(empty)
            elif argc == 1:
                arg = buf[pos + HEADER_SIZE : stop]
                if strip_nul and arg.endswith(b"\0"):
                    arg = arg[:-1]
                append(_packet(magic, ptype, (arg,)))
            else:
                args = tuple(buf[pos + HEADER_SIZE : stop].split(b"\0", argc - 1))
                if len(args) != argc:
                    raise MalformedPacket(
                        f"{ptype.name} needs {argc} arguments, got {len(args)}"
                    )
                append(_packet(magic, ptype, args))
            pos = stop
        if end - pos >= 1 and buf[pos] != 0:
            self._on_text(buf, pos)
        return pos

    def _header_error(self, buf: bytes, pos: int) -> BadMagic | UnknownPacketType:
        """Why a header at ``pos`` has no entry in the table (magic is checked first)."""
        magic_bytes, tnum, _ = _unpack_header(buf, pos)
        expect = self._expect
        if magic_bytes not in _MAGICS or (expect is not None and magic_bytes != expect):
            return BadMagic(f"bad packet magic {magic_bytes!r}")
        return UnknownPacketType(f"unknown packet type {tnum}")

    def _on_text(self, buf: bytes, pos: int) -> None:
        raise BadMagic(f"expected a packet, got text {buf[pos : pos + 16]!r}")


class RequestDecoder(Decoder):
    """What a job server reads: ``\\0REQ`` packets mixed with text admin lines.

    gearmand takes a request that does not start with a NUL byte as a text command, and
    both kinds may share one connection.
    """

    __slots__ = ("max_line",)

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        super().__init__(expect=None, max_packet_size=max_packet_size)
        self.max_line = max_line

    def feed_mixed(self, data: bytes) -> list[Packet | TextCommand]:
        """Like :meth:`feed`, but text command lines come out as :class:`TextCommand`."""
        buf = self._buffer.add(data)
        if buf is None:
            return []
        out: list[Packet | TextCommand] = []
        pos = 0
        end = len(buf)
        while pos < end:
            if buf[pos] == 0:
                packets: list[Packet] = []
                pos = self._parse(buf, pos, packets)
                out.extend(packets)
                if pos < end and buf[pos] == 0:
                    break  # a packet that is not whole yet
                continue
            nl = buf.find(b"\n", pos, pos + self.max_line + 1)
            if nl < 0:
                if end - pos > self.max_line:
                    raise PacketTooLarge(f"text command longer than {self.max_line} bytes")
                self._buffer.keep(buf[pos:], end - pos + 1)
                return out
            line = buf[pos:nl]
            if line.endswith(b"\r"):
                line = line[:-1]
            out.append(TextCommand(line))
            pos = nl + 1
        self._keep_tail(buf, pos)
        return out

    def feed(self, data: bytes) -> list[Packet]:
        items = self.feed_mixed(data)
        for item in items:
            if isinstance(item, TextCommand):
                raise BadMagic(f"expected a packet, got text {item.line[:16]!r}")
        return items  # type: ignore[return-value]

    def _on_text(self, buf: bytes, pos: int) -> None:
        # feed_mixed handles the text itself.
        return None
