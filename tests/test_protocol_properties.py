"""Property tests for the incremental decoders: split invariance, and fuzzing for crashes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import TypeVar

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gearq.protocol import (
    ARG_COUNTS,
    Decoder,
    Magic,
    Packet,
    PacketType,
    ProtocolError,
    RequestDecoder,
    TextCommand,
    encode,
)
from gearq.protocol.packets import HEADER_SIZE

Item = Packet | TextCommand
R = TypeVar("R")

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_PACKET = 256
MAX_LINE = 64

# --------------------------------------------------------------------------- strategies

no_nul = st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"."))
# Opaque data: biased towards NULs, newlines and header-like bytes.
opaque = st.lists(
    st.one_of(
        st.binary(max_size=8),
        st.sampled_from([b"\0", b"\n", b"\r\n", b"\0REQ", b"\0RES", b"\0\0\0"]),
    ),
    max_size=6,
).map(b"".join)


@st.composite
def packets(draw: st.DrawFn, magic: Magic | None = None) -> Packet:
    m = draw(st.sampled_from(Magic)) if magic is None else magic
    ptype = draw(st.sampled_from(PacketType))
    n = ARG_COUNTS[ptype]
    args = tuple(draw(no_nul) for _ in range(n - 1)) + ((draw(opaque),) if n else ())
    return Packet(m, ptype, args)


def normalised(packet: Packet) -> Packet:
    """What the decoder gives back: gearmand's WORK_FAIL ``handle\\0`` loses the NUL."""
    if packet.type is PacketType.WORK_FAIL and packet.magic is Magic.RES:
        (handle,) = packet.args
        if handle.endswith(b"\0"):
            return Packet(packet.magic, packet.type, (handle[:-1],))
    return packet


# A text line: must not start with NUL (that would be a packet); no LF inside.
text_lines = st.tuples(
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
    st.sampled_from([b"\n", b"\r\n"]),
).filter(lambda t: not t[0].startswith(b"\0"))

splits = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def feed_all(feed: Callable[[bytes], list[R]], pieces: Sequence[bytes]) -> list[R]:
    out: list[R] = []
    for piece in pieces:
        out.extend(feed(piece))
    return out


# --------------------------------------------------------------------------- (a) split invariance


@FAST
@given(
    magic=st.sampled_from([Magic.REQ, Magic.RES, None]),
    data=st.data(),
    cuts=splits,
)
def test_any_split_decodes_like_the_whole_stream(
    magic: Magic | None, data: st.DataObject, cuts: list[int]
) -> None:
    pkts = data.draw(st.lists(packets(magic), max_size=12))
    stream = b"".join(encode(p) for p in pkts)
    expected = [normalised(p) for p in pkts]

    whole = Decoder(expect=magic)
    assert whole.feed(stream) == expected
    assert whole.buffered == 0

    decoder = Decoder(expect=magic)
    assert feed_all(decoder.feed, split(stream, cuts)) == expected
    assert decoder.buffered == 0


@FAST
@given(pkts=st.lists(packets(), min_size=1, max_size=6), data=st.data())
def test_incomplete_tail_waits_and_is_counted(pkts: list[Packet], data: st.DataObject) -> None:
    stream = b"".join(encode(p) for p in pkts)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream) - 1))
    decoder = Decoder(expect=None)
    got = decoder.feed(stream[:cut])
    # Only whole packets come out; the rest is held, byte for byte.
    assert got == [normalised(p) for p in pkts[: len(got)]]
    assert decoder.buffered == cut - sum(len(encode(p)) for p in pkts[: len(got)])
    assert got + decoder.feed(stream[cut:]) == [normalised(p) for p in pkts]


@FAST
@given(
    items=st.lists(st.one_of(packets(Magic.REQ), text_lines), max_size=12),
    cuts=splits,
)
def test_request_decoder_any_split(
    items: list[Packet | tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b""
    expected: list[Item] = []
    for item in items:
        if isinstance(item, Packet):
            stream += encode(item)
            expected.append(item)
        else:
            line, end = item
            stream += line + end
            expected.append(TextCommand(line))

    whole = RequestDecoder()
    assert whole.feed_mixed(stream) == expected
    assert whole.buffered == 0

    decoder = RequestDecoder()
    assert feed_all(decoder.feed_mixed, split(stream, cuts)) == expected
    assert decoder.buffered == 0


# --------------------------------------------------------------------------- (b), (c) fuzzing


@st.composite
def mutated_streams(draw: st.DrawFn, magic: Magic | None = None, text: bool = False) -> bytes:
    """A valid stream (with text lines if ``text``), then bytes flipped, inserted, deleted."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        if text and draw(st.booleans()):
            line, end = draw(text_lines)
            parts.append(line + end)
        else:
            parts.append(encode(draw(packets(magic))))
    stream = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "set"]))
        pos = draw(st.integers(min_value=0, max_value=len(stream)))
        byte = draw(st.integers(min_value=0, max_value=255))
        if op == "insert":
            stream.insert(pos, byte)
        elif pos < len(stream):
            if op == "delete":
                del stream[pos]
            elif op == "flip":
                stream[pos] ^= 1 << (byte % 8)
            else:
                stream[pos] = byte
    return bytes(stream)


def raw_headers() -> st.SearchStrategy[bytes]:
    """Headers with a plausible magic and arbitrary type and size, plus a little body."""
    return st.builds(
        lambda magic, tnum, size, body: (
            magic + tnum.to_bytes(4, "big") + size.to_bytes(4, "big") + body
        ),
        st.sampled_from([b"\0REQ", b"\0RES", b"\0REX", b"REQ\0"]),
        st.one_of(st.integers(0, 45), st.integers(0, 2**32 - 1)),
        st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)),
        st.binary(max_size=40),
    )


def fuzz_input(magic: Magic | None) -> st.SearchStrategy[bytes]:
    """Random bytes, or (mostly) damaged streams of packets with the expected magic."""
    return st.one_of(
        st.binary(max_size=100),
        mutated_streams(magic),
        mutated_streams(magic),
        mutated_streams(),
        st.lists(st.one_of(raw_headers(), mutated_streams(magic)), max_size=4).map(b"".join),
    )


fuzz_mixed_input = st.one_of(
    st.binary(max_size=100),
    mutated_streams(Magic.REQ, text=True),
    mutated_streams(Magic.REQ, text=True),
    mutated_streams(text=True),
    st.lists(st.one_of(raw_headers(), mutated_streams(text=True)), max_size=4).map(b"".join),
)


def run_fuzz(
    feed: Callable[[bytes], Sequence[Item]],
    buffered: Callable[[], int],
    pieces: Sequence[bytes],
    bound: int,
) -> tuple[list[Item], type[ProtocolError] | None]:
    """Feed pieces until the end or a ProtocolError; any other exception fails the test."""
    out: list[Item] = []
    for piece in pieces:
        try:
            got = feed(piece)
        except ProtocolError as exc:
            return out, type(exc)
        assert isinstance(got, list)
        out.extend(got)
        assert 0 <= buffered() <= bound
    return out, None


def check_waiting_tail(tail: bytes, expect: Magic | None, text: bool) -> None:
    """A decoder that stopped without an error holds only the start of something valid."""
    if not tail:
        return
    if text and tail[0] != 0:
        assert b"\n" not in tail
        assert len(tail) <= MAX_LINE
        return
    # A bad magic must fail once its 4 bytes are in (shorter prefixes may wait).
    if len(tail) >= 4:
        assert tail[:4] in ([m.value for m in Magic] if expect is None else [expect.value])
    else:
        assert tail[0] == 0
    if len(tail) >= HEADER_SIZE:
        tnum = int.from_bytes(tail[4:8], "big")
        size = int.from_bytes(tail[8:12], "big")
        assert tnum in set(PacketType)
        assert size <= MAX_PACKET
        assert len(tail) < HEADER_SIZE + size


def check_packet(packet: Packet, expect: Magic | None) -> None:
    assert type(packet) is Packet
    assert isinstance(packet.type, PacketType)
    assert isinstance(packet.magic, Magic)
    assert expect is None or packet.magic is expect
    assert len(packet.args) == ARG_COUNTS[packet.type]
    assert all(type(a) is bytes for a in packet.args)
    assert all(b"\0" not in a for a in packet.args[:-1])
    assert sum(map(len, packet.args)) <= MAX_PACKET


@settings(FAST, max_examples=200)
@given(expect=st.sampled_from([Magic.REQ, Magic.RES, None]), data=st.data(), cuts=splits)
def test_decoder_fuzz(expect: Magic | None, data: st.DataObject, cuts: list[int]) -> None:
    stream = data.draw(fuzz_input(expect), label="stream")
    decoder = Decoder(expect=expect, max_packet_size=MAX_PACKET)
    out, error = run_fuzz(
        decoder.feed, lambda: decoder.buffered, split(stream, cuts), MAX_PACKET + HEADER_SIZE
    )
    for packet in out:
        assert isinstance(packet, Packet)
        check_packet(packet, expect)
    if error is None:
        check_waiting_tail(stream[len(stream) - decoder.buffered :], expect, text=False)

    # Byte by byte gives every packet before the first error, and the same error: packets
    # from a split feed are a prefix of those.
    ref = Decoder(expect=expect, max_packet_size=MAX_PACKET)
    ref_out, ref_error = run_fuzz(
        ref.feed, lambda: ref.buffered, split(stream, range(len(stream))), MAX_PACKET + HEADER_SIZE
    )
    event(f"outcome: {error.__name__ if error else 'no error'}, {len(ref_out)} items")
    assert error == ref_error
    assert out == ref_out[: len(out)]
    if error is None:
        assert out == ref_out


@settings(FAST, max_examples=200)
@given(stream=fuzz_mixed_input, cuts=splits)
def test_request_decoder_fuzz(stream: bytes, cuts: list[int]) -> None:
    bound = max(MAX_PACKET + HEADER_SIZE, MAX_LINE)
    decoder = RequestDecoder(max_packet_size=MAX_PACKET, max_line=MAX_LINE)
    out, error = run_fuzz(decoder.feed_mixed, lambda: decoder.buffered, split(stream, cuts), bound)
    for item in out:
        if isinstance(item, TextCommand):
            assert type(item.line) is bytes
            assert b"\n" not in item.line
            assert len(item.line) <= MAX_LINE
            assert not item.line.startswith(b"\0")
        else:
            check_packet(item, None)
    if error is None:
        check_waiting_tail(stream[len(stream) - decoder.buffered :], None, text=True)

    ref = RequestDecoder(max_packet_size=MAX_PACKET, max_line=MAX_LINE)
    ref_out, ref_error = run_fuzz(
        ref.feed_mixed, lambda: ref.buffered, split(stream, range(len(stream))), bound
    )
    event(f"outcome: {error.__name__ if error else 'no error'}, {len(ref_out)} items")
    assert error == ref_error
    assert out == ref_out[: len(out)]
    if error is None:
        assert out == ref_out


# --------------------------------------------------------------------------- (d) feed_jobs


def jobs_as_packets(items: Sequence[Packet | list[bytes]]) -> list[Packet]:
    """feed_jobs' output in feed's terms: a job's argument list back into its Packet."""
    out: list[Packet] = []
    for item in items:
        if isinstance(item, list):
            assert len(item) == 4 and all(type(a) is bytes for a in item)
            out.append(Packet(Magic.RES, PacketType.JOB_ASSIGN_UNIQ, tuple(item)))
        else:
            assert type(item) is Packet
            assert not (item.type is PacketType.JOB_ASSIGN_UNIQ and item.magic is Magic.RES)
            out.append(item)
    return out


# Mostly what a worker reads, with anything else mixed in.
@st.composite
def worker_packets(draw: st.DrawFn, magic: Magic | None) -> Packet:
    m = Magic.RES if magic is None else magic
    kind = draw(st.sampled_from(["job", "job", "job", "noop", "no_job", "any"]))
    if kind == "job":
        args = (draw(no_nul), draw(no_nul), draw(no_nul), draw(opaque))
        return Packet(m, PacketType.JOB_ASSIGN_UNIQ, args)
    if kind in ("noop", "no_job"):
        return Packet(m, PacketType.NOOP if kind == "noop" else PacketType.NO_JOB, ())
    return draw(packets(magic))


@FAST
@given(magic=st.sampled_from([Magic.REQ, Magic.RES, None]), data=st.data(), cuts=splits)
def test_feed_jobs_decodes_like_feed_at_any_split(
    magic: Magic | None, data: st.DataObject, cuts: list[int]
) -> None:
    pkts = data.draw(st.lists(worker_packets(magic), max_size=16))
    stream = b"".join(encode(p) for p in pkts)
    expected = [normalised(p) for p in pkts]
    decoder = Decoder(expect=magic)
    got = feed_all(decoder.feed_jobs, split(stream, cuts))
    assert jobs_as_packets(got) == expected
    assert decoder.buffered == 0
    if magic is Magic.REQ:  # a server's decoder: no shortcut for a RES packet
        assert not any(isinstance(item, list) for item in got)


@settings(FAST, max_examples=200)
@given(expect=st.sampled_from([Magic.REQ, Magic.RES, None]), data=st.data(), cuts=splits)
def test_feed_jobs_fuzz_same_packets_and_errors_as_feed(
    expect: Magic | None, data: st.DataObject, cuts: list[int]
) -> None:
    stream = data.draw(
        st.one_of(
            fuzz_input(expect),
            st.lists(worker_packets(expect), max_size=8).map(
                lambda ps: b"".join(encode(p) for p in ps)
            ),
        ),
        label="stream",
    )
    pieces = split(stream, cuts)
    jobs = Decoder(expect=expect, max_packet_size=MAX_PACKET)
    bound = MAX_PACKET + HEADER_SIZE
    out, error = run_fuzz(jobs.feed_jobs, lambda: jobs.buffered, pieces, bound)  # type: ignore[arg-type]
    ref = Decoder(expect=expect, max_packet_size=MAX_PACKET)
    ref_out, ref_error = run_fuzz(ref.feed, lambda: ref.buffered, pieces, bound)
    event(f"outcome: {error.__name__ if error else 'no error'}, {len(ref_out)} items")
    assert error == ref_error
    assert jobs_as_packets(out) == ref_out  # type: ignore[arg-type]
    assert jobs.buffered == ref.buffered
