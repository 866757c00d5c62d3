"""Unit tests for the sans-IO binary codec (gearq.protocol.codec) and the value limits."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from gearq.protocol import (
    ARG_COUNTS,
    DEFAULT_MAX_PACKET_SIZE,
    ArgumentError,
    BadMagic,
    Decoder,
    GearqError,
    Magic,
    MalformedPacket,
    Packet,
    PacketTooLarge,
    PacketType,
    ProtocolError,
    RequestDecoder,
    TextCommand,
    UnknownPacketType,
    encode,
    encode_request,
    encode_response,
)
from gearq.protocol.limits import (
    MAX_CLIENT_ID,
    MAX_EPOCH,
    MAX_FUNCTION,
    check_client_id,
    check_epoch,
    check_function,
    check_handle,
    check_unique,
)

T = PacketType

# Which way each packet type travels (gearmand-behaviour.md §1.2). The WORK_* packets go
# both ways: a worker sends them, and the server forwards them to the client.
BOTH_WAYS = {
    T.WORK_STATUS,
    T.WORK_COMPLETE,
    T.WORK_FAIL,
    T.WORK_EXCEPTION,
    T.WORK_DATA,
    T.WORK_WARNING,
}
RES_ONLY = {
    T.NOOP,
    T.JOB_CREATED,
    T.NO_JOB,
    T.JOB_ASSIGN,
    T.ECHO_RES,
    T.ERROR,
    T.STATUS_RES,
    T.OPTION_RES,
    T.JOB_ASSIGN_UNIQ,
    T.JOB_ASSIGN_ALL,
    T.STATUS_RES_UNIQUE,
}
REQ_ONLY = set(PacketType) - BOTH_WAYS - RES_ONLY

DIRECTED: list[tuple[Magic, PacketType]] = sorted(
    [(Magic.REQ, t) for t in REQ_ONLY | BOTH_WAYS] + [(Magic.RES, t) for t in RES_ONLY | BOTH_WAYS],
    key=lambda mt: (mt[1], mt[0].name),
)


def _ids(mt: tuple[Magic, PacketType]) -> str:
    return f"{mt[0].name}-{mt[1].name}"


def header(magic: bytes, ptype: int, size: int) -> bytes:
    """A 12-byte header written out by hand, independent of the codec's own struct."""
    return magic + ptype.to_bytes(4, "big") + size.to_bytes(4, "big")


def raw(magic: bytes, ptype: int, body: bytes) -> bytes:
    return header(magic, ptype, len(body)) + body


def encode_for(magic: Magic, ptype: PacketType, *args: bytes) -> bytes:
    if magic is Magic.REQ:
        return encode_request(ptype, *args)
    return encode_response(ptype, *args)


def feed_bytewise(decoder: Decoder, data: bytes) -> list[Packet]:
    out: list[Packet] = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
    return out


def sample_args(ptype: PacketType) -> tuple[bytes, ...]:
    """Distinct arguments for a type; the last one holds NUL bytes (it may, as opaque data)."""
    n = ARG_COUNTS[ptype]
    if n == 0:
        return ()
    return (*(f"arg{i}".encode() for i in range(n - 1)), b"\0last\0 \x00data\xff\0x")


# --------------------------------------------------------------------------- packet table


def test_packet_table_covers_1_to_42_without_5() -> None:
    assert sorted(int(t) for t in PacketType) == [n for n in range(1, 43) if n != 5]
    assert set(ARG_COUNTS) == set(PacketType)
    assert REQ_ONLY.isdisjoint(RES_ONLY)


@pytest.mark.parametrize(
    ("ptype", "argc"),
    [
        (T.SUBMIT_JOB, 3),
        (T.SUBMIT_JOB_EPOCH, 4),
        (T.SUBMIT_JOB_SCHED, 8),
        (T.SUBMIT_REDUCE_JOB, 5),
        (T.SUBMIT_REDUCE_JOB_BACKGROUND, 5),
        (T.JOB_ASSIGN_UNIQ, 4),
        (T.JOB_ASSIGN_ALL, 5),
        (T.STATUS_RES, 5),
        (T.STATUS_RES_UNIQUE, 6),
        (T.WORK_STATUS, 3),
        (T.WORK_FAIL, 1),
        (T.ECHO_REQ, 1),
        (T.GRAB_JOB_ALL, 0),
    ],
)
def test_wire_argument_counts(ptype: PacketType, argc: int) -> None:
    assert ARG_COUNTS[ptype] == argc


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("mt", DIRECTED, ids=_ids)
def test_round_trip_with_nul_in_last_arg(mt: tuple[Magic, PacketType]) -> None:
    magic, ptype = mt
    args = sample_args(ptype)
    packet = Packet(magic, ptype, args)
    data = encode(packet)
    assert data == encode_for(magic, ptype, *args)
    assert data[:4] == magic.value
    assert struct.unpack(">II", data[4:12]) == (int(ptype), len(data) - 12)
    assert Decoder(expect=magic).feed(data) == [packet]
    assert Decoder(expect=None).feed(data) == [packet]
    assert feed_bytewise(Decoder(expect=magic), data) == [packet]


@pytest.mark.parametrize("mt", DIRECTED, ids=_ids)
def test_round_trip_with_empty_args(mt: tuple[Magic, PacketType]) -> None:
    magic, ptype = mt
    n = ARG_COUNTS[ptype]
    packet = Packet(magic, ptype, (b"",) * n)
    data = encode(packet)
    # n empty arguments are n - 1 separators.
    assert data == header(magic.value, ptype, max(n - 1, 0)) + b"\0" * max(n - 1, 0)
    decoder = Decoder(expect=magic)
    assert decoder.feed(data) == [packet]
    assert decoder.buffered == 0


def test_every_packet_in_one_stream_any_split() -> None:
    packets = [Packet(m, t, sample_args(t)) for m, t in DIRECTED]
    stream = b"".join(encode(p) for p in packets)
    assert Decoder(expect=None).feed(stream) == packets
    assert feed_bytewise(Decoder(expect=None), stream) == packets
    for size in (5, 11, 12, 13, 64):
        decoder = Decoder(expect=None)
        got: list[Packet] = []
        for i in range(0, len(stream), size):
            got.extend(decoder.feed(stream[i : i + size]))
        assert got == packets
        assert decoder.buffered == 0


def test_decoded_packets_are_ordinary_packets() -> None:
    # The decoder builds Packets without calling __init__ (it is slow for a frozen
    # dataclass): that is only right while Packet is exactly these three fields.
    assert [f.name for f in dataclasses.fields(Packet)] == ["magic", "type", "args"]
    assert not hasattr(Packet, "__post_init__")
    stream = encode_response(T.WORK_DATA, b"H:1", b"d") + encode_response(T.NO_JOB)
    decoded = Decoder().feed(stream)
    for got, want in zip(
        decoded,
        [Packet(Magic.RES, T.WORK_DATA, (b"H:1", b"d")), Packet(Magic.RES, T.NO_JOB)],
        strict=True,
    ):
        assert type(got) is Packet
        assert got == want
        assert hash(got) == hash(want)
        assert repr(got) == repr(want)
        assert dataclasses.astuple(got) == dataclasses.astuple(want)
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.args = ()  # type: ignore[misc]


def test_feed_copes_with_bytearray_and_memoryview() -> None:
    # feed() is typed for bytes, but a socket loop using recv_into hands over reused buffers.
    data = encode_response(T.JOB_CREATED, b"H:vm:1") + encode_response(T.NOOP)
    expected = [Packet(Magic.RES, T.JOB_CREATED, (b"H:vm:1",)), Packet(Magic.RES, T.NOOP)]
    assert Decoder().feed(bytearray(data)) == expected  # type: ignore[arg-type]
    assert Decoder().feed(memoryview(data)) == expected  # type: ignore[arg-type]
    assert all(type(a) is bytes for p in Decoder().feed(bytearray(data)) for a in p.args)  # type: ignore[arg-type]
    # The decoder must not keep a view of a buffer the caller reuses.
    buf = bytearray(data[:15])
    decoder = Decoder()
    assert decoder.feed(buf) == []  # type: ignore[arg-type]
    buf[:] = b"\xff" * len(buf)
    assert decoder.feed(data[15:]) == expected


# --------------------------------------------------------------------------- encoding errors


@pytest.mark.parametrize("ptype", list(PacketType), ids=lambda t: t.name)
def test_encoding_wrong_arg_count_raises(ptype: PacketType) -> None:
    n = ARG_COUNTS[ptype]
    for wrong in {n + 1, n - 1, 0} - {n, -1}:
        args = (b"x",) * wrong
        with pytest.raises(ArgumentError, match=ptype.name):
            encode_request(ptype, *args)
        with pytest.raises(ArgumentError):
            encode_response(ptype, *args)
        with pytest.raises(ArgumentError):
            encode(Packet(Magic.REQ, ptype, args))


@pytest.mark.parametrize(
    "ptype", [t for t in PacketType if ARG_COUNTS[t] >= 2], ids=lambda t: t.name
)
def test_encoding_nul_in_non_last_arg_raises(ptype: PacketType) -> None:
    n = ARG_COUNTS[ptype]
    for bad in range(n - 1):
        args = [b"ok"] * n
        args[bad] = b"x\0y"
        with pytest.raises(ArgumentError, match="only the last argument"):
            encode_request(ptype, *args)
        with pytest.raises(ArgumentError):
            encode(Packet(Magic.RES, ptype, tuple(args)))
    # The same NUL in the last argument is fine.
    args = [b"ok"] * n
    args[-1] = b"x\0y"
    assert encode_request(ptype, *args).endswith(b"ok\0x\0y")


def test_argument_error_is_a_value_error_not_a_protocol_error() -> None:
    with pytest.raises(ValueError) as info:
        encode_request(T.SUBMIT_JOB, b"f")
    assert isinstance(info.value, GearqError)
    assert not isinstance(info.value, ProtocolError)


# --------------------------------------------------------------------------- byte-exact


def test_echo_req_bytes() -> None:
    data = b"\0REQ\x00\x00\x00\x10\x00\x00\x00\x05hello"
    assert encode_request(T.ECHO_REQ, b"hello") == data
    assert Decoder(expect=Magic.REQ).feed(data) == [Packet(Magic.REQ, T.ECHO_REQ, (b"hello",))]


def test_noop_and_grab_job_uniq_bytes() -> None:
    assert encode_response(T.NOOP) == b"\0RES\x00\x00\x00\x06\x00\x00\x00\x00"
    assert encode_request(T.GRAB_JOB_UNIQ) == b"\0REQ\x00\x00\x00\x1e\x00\x00\x00\x00"
    assert encode_request(T.PRE_SLEEP) == b"\0REQ\x00\x00\x00\x04\x00\x00\x00\x00"


def test_submit_job_bytes() -> None:
    data = b"\0REQ\x00\x00\x00\x07\x00\x00\x00\x11reverse\0u1\0da\0ta!"
    assert encode_request(T.SUBMIT_JOB, b"reverse", b"u1", b"da\0ta!") == data
    assert Decoder(expect=Magic.REQ).feed(data) == [
        Packet(Magic.REQ, T.SUBMIT_JOB, (b"reverse", b"u1", b"da\0ta!"))
    ]


def test_submit_job_epoch_and_can_do_timeout_bytes() -> None:
    assert (
        encode_request(T.SUBMIT_JOB_EPOCH, b"f", b"", b"1700000000", b"w")
        == b"\0REQ\x00\x00\x00\x24\x00\x00\x00\x0ff\0\x001700000000\0w"
    )
    assert (
        encode_request(T.CAN_DO_TIMEOUT, b"fn", b"1000")
        == b"\0REQ\x00\x00\x00\x17\x00\x00\x00\x07fn\x001000"
    )


def test_job_assign_uniq_bytes() -> None:
    body = b"H:vm:7\0resize\0img-42\0\x89PNG\0\0"
    data = b"\0RES\x00\x00\x00\x1f" + len(body).to_bytes(4, "big") + body
    assert len(body) == 0x1B
    args = (b"H:vm:7", b"resize", b"img-42", b"\x89PNG\0\0")
    assert encode_response(T.JOB_ASSIGN_UNIQ, *args) == data
    assert Decoder().feed(data) == [
        Packet(Magic.RES, T.JOB_ASSIGN_UNIQ, (b"H:vm:7", b"resize", b"img-42", b"\x89PNG\0\0"))
    ]


def test_reduce_job_has_four_fields_then_workload() -> None:
    # func, unique, reducer, aggregate (empty, but its NUL is required), workload.
    data = b"\0REQ\x00\x00\x00\x25\x00\x00\x00\x14fr\0ur4\0reducerX\0\0w\0x"
    assert encode_request(T.SUBMIT_REDUCE_JOB, b"fr", b"ur4", b"reducerX", b"", b"w\0x") == data
    assert Decoder(expect=Magic.REQ).feed(data) == [
        Packet(Magic.REQ, T.SUBMIT_REDUCE_JOB, (b"fr", b"ur4", b"reducerX", b"", b"w\0x"))
    ]
    # The 3-field layout of the PROTOCOL file is one field short.
    bg = encode_request(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"fr", b"ur4", b"reducerX", b"", b"w")
    assert bg[4:8] == b"\x00\x00\x00\x26"
    assert bg[12:] == b"fr\0ur4\0reducerX\0\0w"
    with pytest.raises(MalformedPacket):
        Decoder(expect=Magic.REQ).feed(raw(b"\0REQ", 37, b"fr\0ur4\0reducerX\0w"))


def test_job_assign_all_field_order() -> None:
    data = raw(b"\0RES", 40, b"H:vm:1\0fr\0ur4\0reducerX\0payload4")
    assert Decoder().feed(data) == [
        Packet(Magic.RES, T.JOB_ASSIGN_ALL, (b"H:vm:1", b"fr", b"ur4", b"reducerX", b"payload4"))
    ]


def test_status_res_unique_first_field_is_the_unique() -> None:
    data = b"\0RES\x00\x00\x00\x2a\x00\x00\x00\x13order-17\x001\x001\x003\x0010\x002"
    (packet,) = Decoder().feed(data)
    assert packet.type is T.STATUS_RES_UNIQUE
    assert packet.args == (b"order-17", b"1", b"1", b"3", b"10", b"2")
    assert encode(packet) == data


def test_error_packet_text_may_contain_nul() -> None:
    data = raw(b"\0RES", 19, b"JOB_NOT_FOUND\0Job given\0in work result")
    assert Decoder().feed(data) == [
        Packet(Magic.RES, T.ERROR, (b"JOB_NOT_FOUND", b"Job given\0in work result"))
    ]


# --------------------------------------------------------------------------- WORK_FAIL quirk


def test_work_fail_trailing_nul_from_server_is_dropped() -> None:
    # gearmand makes this WORK_FAIL from a WORK_EXCEPTION for clients without "exceptions".
    data = b"\0RES\x00\x00\x00\x0e\x00\x00\x00\x07H:vm:1\0"
    assert Decoder().feed(data) == [Packet(Magic.RES, T.WORK_FAIL, (b"H:vm:1",))]
    # The WORK_FAIL of a cancel or exhausted retries has no NUL and decodes the same way.
    assert Decoder().feed(raw(b"\0RES", 14, b"H:vm:1")) == [
        Packet(Magic.RES, T.WORK_FAIL, (b"H:vm:1",))
    ]


def test_work_fail_quirk_strips_exactly_one_nul_and_only_on_res() -> None:
    assert Decoder().feed(raw(b"\0RES", 14, b"H:1\0\0")) == [
        Packet(Magic.RES, T.WORK_FAIL, (b"H:1\0",))
    ]
    # A request's trailing NUL is part of the value, as gearmand reads it.
    assert Decoder(expect=Magic.REQ).feed(raw(b"\0REQ", 14, b"H:1\0")) == [
        Packet(Magic.REQ, T.WORK_FAIL, (b"H:1\0",))
    ]
    # Other one-argument packets keep their trailing NUL.
    assert Decoder().feed(raw(b"\0RES", 8, b"H:1\0")) == [
        Packet(Magic.RES, T.JOB_CREATED, (b"H:1\0",))
    ]


# --------------------------------------------------------------------------- decode errors


def test_bad_magic_whole_header() -> None:
    with pytest.raises(BadMagic):
        Decoder().feed(header(b"\0XYZ", 6, 0))
    with pytest.raises(BadMagic):
        Decoder(expect=None).feed(header(b"\0req", 7, 0))


@pytest.mark.parametrize("expect", [Magic.RES, Magic.REQ, None])
def test_bad_magic_detected_after_only_four_bytes(expect: Magic | None) -> None:
    decoder = Decoder(expect=expect)
    assert decoder.feed(b"\0") == []
    assert decoder.feed(b"X") == []
    assert decoder.feed(b"Y") == []
    with pytest.raises(BadMagic):
        decoder.feed(b"Z")
    with pytest.raises(BadMagic):
        Decoder(expect=expect).feed(b"\0ABC")


def test_bad_magic_after_a_good_packet_detected_after_four_bytes() -> None:
    decoder = Decoder()
    assert decoder.feed(encode_response(T.NOOP) + b"\0RE") == [Packet(Magic.RES, T.NOOP)]
    assert decoder.buffered == 3
    with pytest.raises(BadMagic):
        decoder.feed(b"X")


def test_text_where_a_packet_should_start_is_bad_magic() -> None:
    with pytest.raises(BadMagic):
        Decoder(expect=None).feed(b"s")
    with pytest.raises(BadMagic):
        Decoder().feed(encode_response(T.NOOP) + b"status\n")


@pytest.mark.parametrize(("expect", "wrong"), [(Magic.RES, b"\0REQ"), (Magic.REQ, b"\0RES")])
def test_wrong_direction_magic(expect: Magic, wrong: bytes) -> None:
    with pytest.raises(BadMagic):
        Decoder(expect=expect).feed(raw(wrong, 16, b"hi"))
    # ... also before the header is complete.
    with pytest.raises(BadMagic):
        Decoder(expect=expect).feed(wrong)
    decoder = Decoder(expect=expect)
    assert decoder.feed(wrong[:3]) == []
    with pytest.raises(BadMagic):
        decoder.feed(wrong[3:])
    # With no expectation both directions decode.
    assert Decoder(expect=None).feed(raw(wrong, 16, b"hi"))[0].magic.value == wrong


def test_decoder_expects_res_by_default() -> None:
    with pytest.raises(BadMagic):
        Decoder().feed(encode_request(T.ECHO_REQ, b"x"))


@pytest.mark.parametrize("tnum", [0, 5, 43, 100, 2**31, 2**32 - 1])
def test_unknown_packet_type(tnum: int) -> None:
    # The header alone is enough: the decoder must not wait for the announced body.
    with pytest.raises(UnknownPacketType, match=str(tnum)):
        Decoder().feed(header(b"\0RES", tnum, 5))
    decoder = Decoder(expect=Magic.REQ)
    assert decoder.feed(header(b"\0REQ", tnum, 0)[:11]) == []
    with pytest.raises(UnknownPacketType):
        decoder.feed(b"\0")


@pytest.mark.parametrize(
    ("magic", "tnum", "body"),
    [
        (b"\0REQ", 7, b"abc"),  # SUBMIT_JOB without separators
        (b"\0REQ", 7, b"f\0abc"),  # ... one short
        (b"\0REQ", 36, b"f\0u\0w"),  # SUBMIT_JOB_EPOCH without the epoch
        (b"\0RES", 11, b""),  # JOB_ASSIGN, empty body
        (b"\0RES", 31, b"H:1\0f\0w"),  # JOB_ASSIGN_UNIQ one short
        (b"\0REQ", 12, b"H:1\x001"),  # WORK_STATUS with 2 of 3
        (b"\0RES", 19, b"CODE"),  # ERROR without its text
        (b"\0RES", 20, b"H:1\x001\x001\x000"),  # STATUS_RES one short
        (b"\0RES", 42, b"u\x001\x001\x000\x000"),  # STATUS_RES_UNIQUE one short
        (b"\0REQ", 13, b"H:1"),  # WORK_COMPLETE without result
    ],
)
def test_too_few_arguments(magic: bytes, tnum: int, body: bytes) -> None:
    with pytest.raises(MalformedPacket, match="arguments"):
        Decoder(expect=None).feed(raw(magic, tnum, body))


@pytest.mark.parametrize(
    "tnum", [t for t in PacketType if ARG_COUNTS[t] == 0], ids=lambda t: PacketType(t).name
)
def test_body_on_an_argumentless_packet(tnum: int) -> None:
    with pytest.raises(MalformedPacket):
        Decoder(expect=None).feed(raw(b"\0RES", tnum, b"x"))
    with pytest.raises(MalformedPacket):
        Decoder(expect=None).feed(raw(b"\0REQ", tnum, b"\0\0"))


def test_packet_too_large_fails_on_the_header() -> None:
    decoder = Decoder(max_packet_size=1024)
    with pytest.raises(PacketTooLarge):
        decoder.feed(header(b"\0RES", 17, 1025))
    # Exactly the limit is fine: the decoder waits for the body.
    decoder = Decoder(max_packet_size=1024)
    assert decoder.feed(header(b"\0RES", 17, 1024) + b"ab") == []
    assert decoder.buffered == 14
    assert decoder.feed(b"c" * 1022) == [Packet(Magic.RES, T.ECHO_RES, (b"ab" + b"c" * 1022,))]


def test_default_limit_refuses_a_huge_announced_size_at_once() -> None:
    decoder = Decoder()
    assert decoder.max_packet_size == DEFAULT_MAX_PACKET_SIZE
    with pytest.raises(PacketTooLarge):
        decoder.feed(header(b"\0RES", 17, 0xFFFFFFF0))
    decoder = Decoder()
    assert decoder.feed(header(b"\0RES", 13, DEFAULT_MAX_PACKET_SIZE + 1)[:-1]) == []
    with pytest.raises(PacketTooLarge):
        decoder.feed(b"\x01")


def test_errors_are_protocol_errors() -> None:
    for cls in (BadMagic, UnknownPacketType, MalformedPacket, PacketTooLarge):
        assert issubclass(cls, ProtocolError)
        assert issubclass(cls, GearqError)
        assert not issubclass(cls, ValueError)


# --------------------------------------------------------------------------- request decoder


def test_request_decoder_mixes_text_lines_and_packets() -> None:
    submit = Packet(Magic.REQ, T.SUBMIT_JOB, (b"f", b"", b"w\nx\r\n"))
    echo = Packet(Magic.REQ, T.ECHO_REQ, (b"status\n",))
    stream = (
        b"status\n"
        + encode(submit)
        + b"version\r\n"
        + b"show jobs\n"
        + encode(echo)
        + encode(echo)
        + b"\n"
        + b"workers\r\n"
    )
    expected: list[Packet | TextCommand] = [
        TextCommand(b"status"),
        submit,
        TextCommand(b"version"),
        TextCommand(b"show jobs"),
        echo,
        echo,
        TextCommand(b""),
        TextCommand(b"workers"),
    ]
    assert RequestDecoder().feed_mixed(stream) == expected
    for size in (1, 2, 3, 7, 12, 13, 50):
        decoder = RequestDecoder()
        got: list[Packet | TextCommand] = []
        for i in range(0, len(stream), size):
            got.extend(decoder.feed_mixed(stream[i : i + size]))
        assert got == expected, size
        assert decoder.buffered == 0


def test_request_decoder_returns_a_short_line_at_once() -> None:
    # gearadmin sends "status\n" (7 bytes, shorter than a packet header) and waits.
    decoder = RequestDecoder()
    assert decoder.feed_mixed(b"status\n") == [TextCommand(b"status")]
    assert decoder.feed_mixed(b"\n") == [TextCommand(b"")]
    assert decoder.feed_mixed(encode_request(T.GRAB_JOB) + b"getpid\r\n") == [
        Packet(Magic.REQ, T.GRAB_JOB),
        TextCommand(b"getpid"),
    ]


def test_request_decoder_keeps_a_partial_line() -> None:
    decoder = RequestDecoder()
    assert decoder.feed_mixed(b"stat") == []
    assert decoder.buffered == 4
    assert decoder.feed_mixed(b"us\r") == []
    assert decoder.buffered == 7
    assert decoder.feed_mixed(b"\n\0RE") == [TextCommand(b"status")]
    assert decoder.buffered == 3


def test_request_decoder_passes_res_packets_on() -> None:
    # gearmand answers a \0RES packet with ERROR INVALID_MAGIC and keeps the connection, so
    # the server side needs to see it.
    assert RequestDecoder().feed_mixed(encode_response(T.NOOP)) == [Packet(Magic.RES, T.NOOP)]


def test_request_decoder_line_limit() -> None:
    decoder = RequestDecoder(max_line=16)
    assert decoder.feed_mixed(b"x" * 16 + b"\n") == [TextCommand(b"x" * 16)]
    assert decoder.feed_mixed(b"y" * 16) == []
    with pytest.raises(PacketTooLarge):
        decoder.feed_mixed(b"y")
    with pytest.raises(PacketTooLarge):
        RequestDecoder(max_line=16).feed_mixed(b"z" * 17 + b"\n")
    with pytest.raises(PacketTooLarge):
        RequestDecoder().feed_mixed(b"status " + b"a" * 12 * 1024)


def test_request_decoder_errors() -> None:
    with pytest.raises(BadMagic):
        RequestDecoder().feed_mixed(b"status\n\0XYZ")
    with pytest.raises(UnknownPacketType):
        RequestDecoder().feed_mixed(header(b"\0REQ", 0, 0))
    with pytest.raises(PacketTooLarge):
        RequestDecoder(max_packet_size=100).feed_mixed(header(b"\0REQ", 16, 101))
    with pytest.raises(MalformedPacket):
        RequestDecoder().feed_mixed(raw(b"\0REQ", 7, b"abc") + b"status\n")
    # Plain feed() on a server decoder refuses text.
    assert RequestDecoder().feed(encode_request(T.GRAB_JOB)) == [Packet(Magic.REQ, T.GRAB_JOB)]
    with pytest.raises(BadMagic):
        RequestDecoder().feed(b"status\n")


# --------------------------------------------------------------------------- big payloads


def test_big_payload_in_small_chunks() -> None:
    size = 8 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    data = encode_response(T.WORK_COMPLETE, b"H:vm:9", payload) + encode_response(T.NOOP)
    chunk = 4096
    decoder = Decoder()
    got: list[Packet] = []
    fed = 0
    for i in range(0, len(data), chunk):
        piece = data[i : i + chunk]
        out = decoder.feed(piece)
        fed += len(piece)
        if out:
            got.extend(out)
        else:
            # Nothing is parsed or dropped while the body is incomplete.
            assert decoder.buffered == fed
    assert decoder.buffered == 0
    assert len(got) == 2
    assert got[0].args[0] == b"H:vm:9"
    assert got[0].args[1] == payload
    assert got[1] == Packet(Magic.RES, T.NOOP)


def test_big_payload_request_decoder() -> None:
    payload = b"\0\n" * (1024 * 1024)
    data = b"version\n" + encode_request(T.ECHO_REQ, payload) + b"status\n"
    decoder = RequestDecoder()
    got: list[Packet | TextCommand] = []
    for i in range(0, len(data), 4096):
        got.extend(decoder.feed_mixed(data[i : i + 4096]))
        assert decoder.buffered <= 12 + len(payload)
    assert got == [
        TextCommand(b"version"),
        Packet(Magic.REQ, T.ECHO_REQ, (payload,)),
        TextCommand(b"status"),
    ]


# --------------------------------------------------------------------------- limits


def test_check_unique() -> None:
    assert check_unique(b"u" * 63) == b"u" * 63
    assert check_unique(b"") == b""
    with pytest.raises(ArgumentError, match="64"):
        check_unique(b"u" * 64)
    with pytest.raises(ArgumentError):
        check_unique(b"u" * 65)
    with pytest.raises(ArgumentError):
        check_unique(b"a\0b")


@pytest.mark.parametrize(
    "name", [b"", b"a b", b"a\0b", b"\0", b"tab\there", b"nl\n", b"cr\r", b" ", b"x" * 513]
)
def test_check_function_rejects(name: bytes) -> None:
    with pytest.raises(ArgumentError):
        check_function(name)


def test_check_function_accepts() -> None:
    for name in (b"f", b"resize-image.v2", b"x" * MAX_FUNCTION, "nom-é".encode()):
        assert check_function(name) == name


def test_check_handle() -> None:
    assert check_handle(b"H:vm:1") == b"H:vm:1"
    assert check_handle(b"h" * 63) == b"h" * 63
    for bad in (b"", b"h" * 64, b"H:vm 1", b"H:\0"):
        with pytest.raises(ArgumentError):
            check_handle(bad)


def test_check_epoch() -> None:
    assert check_epoch(0) == 0
    assert check_epoch(1_700_000_000) == 1_700_000_000
    assert check_epoch(MAX_EPOCH) == MAX_EPOCH
    for bad in (-1, MAX_EPOCH + 1, 2**63):
        with pytest.raises(ArgumentError):
            check_epoch(bad)
    for wrong_type in (True, False, 1.5, 1e9, "1700000000", None):
        with pytest.raises(ArgumentError):
            check_epoch(wrong_type)  # type: ignore[arg-type]


def test_check_client_id() -> None:
    assert check_client_id(b"w" * MAX_CLIENT_ID) == b"w" * MAX_CLIENT_ID
    for bad in (b"", b"w" * (MAX_CLIENT_ID + 1), b"worker one", b"w\0"):
        with pytest.raises(ArgumentError):
            check_client_id(bad)


def test_feed_jobs_gives_a_job_as_its_argument_list_and_the_rest_as_packets() -> None:
    job = encode_response(T.JOB_ASSIGN_UNIQ, b"H:1", b"fn", b"u-1", b"pay\0load")
    stream = job + encode_response(T.NO_JOB) + encode_response(T.ERROR, b"E", b"text") + job
    decoder = Decoder()
    got = decoder.feed_jobs(stream[:20]) + decoder.feed_jobs(stream[20:])
    assert got == [
        [b"H:1", b"fn", b"u-1", b"pay\0load"],
        Packet(Magic.RES, T.NO_JOB, ()),
        Packet(Magic.RES, T.ERROR, (b"E", b"text")),
        [b"H:1", b"fn", b"u-1", b"pay\0load"],
    ]
    # A read that is one job (a lone job's probe answered): its argument list alone.
    assert decoder.feed_jobs(job) == [[b"H:1", b"fn", b"u-1", b"pay\0load"]]
    # Argument-less packets are the very objects feed() gives.
    assert decoder.feed_jobs(encode_response(T.NOOP))[0] is Decoder().feed(
        encode_response(T.NOOP)
    )[0]
    assert decoder.buffered == 0


def test_feed_jobs_checks_jobs_like_feed() -> None:
    with pytest.raises(MalformedPacket, match="JOB_ASSIGN_UNIQ needs 4 arguments"):
        Decoder().feed_jobs(raw(b"\0RES", 31, b"H:1\0f\0w"))
    decoder = Decoder(max_packet_size=64)
    with pytest.raises(PacketTooLarge, match="JOB_ASSIGN_UNIQ"):
        decoder.feed_jobs(header(b"\0RES", 31, 65))  # on the header, without the body
    with pytest.raises(PacketTooLarge, match="JOB_ASSIGN_UNIQ"):  # whole, in one read
        Decoder(max_packet_size=64).feed_jobs(
            encode_response(T.JOB_ASSIGN_UNIQ, b"H:1", b"f", b"u", b"x" * 80)
        )
    with pytest.raises(BadMagic):  # a server's decoder takes no RES packet
        Decoder(expect=Magic.REQ).feed_jobs(encode_response(T.JOB_ASSIGN_UNIQ, *[b"a"] * 4))
    with pytest.raises(BadMagic):
        Decoder().feed_jobs(b"text\n")
