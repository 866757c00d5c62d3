"""Serializers: exact round trips, the documented msgpack ext layouts, and what is refused."""

from __future__ import annotations

import collections
import enum
import json
import math
import pathlib
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.protocol.errors import GearqError
from gearq.tasks import (
    JSON,
    MSGPACK,
    RAW,
    DeserializationError,
    ExtType,
    SerializationError,
    Serializer,
    UnknownSerializer,
    get_serializer,
    register_serializer,
)

from .strategies import json_values, msgpack_values, typed


class Color(enum.IntEnum):
    RED = 1


class Point(NamedTuple):
    x: int
    y: int


class Foo:
    pass


# --- msgpack ------------------------------------------------------------------------------


@given(msgpack_values)
def test_msgpack_round_trip_keeps_every_type(value: Any) -> None:
    assert typed(MSGPACK.loads(MSGPACK.dumps(value))) == typed(value)


def test_typed_oracle_tells_types_apart() -> None:
    # The round-trip test is only as strong as this fingerprint.
    variants: list[Any] = [
        1,
        1.0,
        True,
        Decimal(1),
        [1],
        (1,),
        {1},
        frozenset({1}),
        "1",
        b"1",
        datetime(2024, 1, 1),
        datetime(2024, 1, 1, tzinfo=timezone.utc),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        Decimal("1.0"),
        -0.0,
        0.0,
    ]
    assert len({typed(v) for v in variants}) == len(variants)


@pytest.mark.parametrize(
    "value",
    [
        (),
        (1, (2, [3, (4,)])),
        [(), []],
        {(1, 2): "tuple key", 3: "int key", b"k": "bytes key", frozenset({1}): "fs key"},
        {1, 2, (3, 4)},
        frozenset(),
        2**64 - 1,
        2**64,
        -(2**63),
        -(2**63) - 1,
        10**100,
        -(10**100),
        datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(seconds=3601, microseconds=5))),
        # Offsets under a second: Python 3.11's fromisoformat reads them as UTC.
        datetime(2000, 1, 1, tzinfo=timezone(timedelta(microseconds=1))),
        datetime(2000, 1, 1, tzinfo=timezone(-timedelta(microseconds=999999))),
        time(1, 2, tzinfo=timezone(timedelta(microseconds=7))),
        time(0, 0),
        time(23, 59, 59, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        timedelta(days=-999999999),
        timedelta.max,
        Decimal("-0"),
        Decimal("1E+3"),
        Decimal("sNaN"),
        Decimal("-Infinity"),
        float("nan"),
        float("-inf"),
        uuid.UUID(int=0),
        bytearray(b"x"),  # comes back as bytes, see below
    ],
    ids=repr,
)
def test_msgpack_round_trip_edge_cases(value: Any) -> None:
    out = MSGPACK.loads(MSGPACK.dumps(value))
    if type(value) is bytearray:
        assert type(out) is bytes
        assert out == value
    else:
        assert typed(out) == typed(value)


def test_zoneinfo_keeps_instant_and_offset_but_not_the_zone_name() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database")
    value = datetime(2024, 7, 1, 12, 0, tzinfo=paris)
    out = MSGPACK.loads(MSGPACK.dumps(value))
    assert out == value
    assert out.utcoffset() == timedelta(hours=2)
    assert out.tzinfo == timezone(timedelta(hours=2))


# Byte-exact layouts, as docs/wire-format.md documents them for other languages.
GOLDEN_EXT = [
    (date(2024, 1, 2), "c7 0a 02" + b"2024-01-02".hex()),
    (datetime(2024, 1, 2, 3, 4, 5), "c7 13 01" + b"2024-01-02T03:04:05".hex()),
    (
        datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        "c7 20 01" + b"2024-01-02T03:04:05.000006+05:30".hex(),
    ),
    (datetime(2024, 1, 2, tzinfo=timezone.utc), "c7 19 01" + b"2024-01-02T00:00:00+00:00".hex()),
    (time(3, 4, 5), "d7 03" + b"03:04:05".hex()),
    (timedelta(days=-1, seconds=5, microseconds=7), "d6 04 93 ff 05 07"),
    (Decimal("1.10"), "d6 05" + b"1.10".hex()),
    (uuid.UUID("12345678-1234-5678-1234-567812345678"), "d8 06 12345678123456781234567812345678"),
    ({1}, "d5 07 91 01"),
    (frozenset(), "d4 08 90"),
    ((1, "a"), "d6 09 92 01 a1 61"),
    (2**64, "c7 14 0a" + b"18446744073709551616".hex()),
    (-(2**63) - 1, "c7 14 0a" + b"-9223372036854775809".hex()),
    (b"\x00\xff", "c4 02 00 ff"),
    ([1, (2,)], "92 01 d5 09 91 02"),
    ({"a": None}, "81 a1 61 c0"),
]


@pytest.mark.parametrize(("value", "layout"), GOLDEN_EXT, ids=[repr(v) for v, _ in GOLDEN_EXT])
def test_msgpack_layout_is_byte_exact(value: Any, layout: str) -> None:
    wire = bytes.fromhex(layout.replace(" ", ""))
    assert MSGPACK.dumps(value) == wire
    assert typed(MSGPACK.loads(wire)) == typed(value)


def test_ext_codes_are_the_documented_ones() -> None:
    assert tuple(range(1, 11)) == (
        ExtType.DATETIME,
        ExtType.DATE,
        ExtType.TIME,
        ExtType.TIMEDELTA,
        ExtType.DECIMAL,
        ExtType.UUID,
        ExtType.SET,
        ExtType.FROZENSET,
        ExtType.TUPLE,
        ExtType.BIGINT,
    )


def test_msgpack_reads_the_standard_timestamp_as_aware_utc() -> None:
    # What Go's and Node's msgpack libraries write for their time types (ext -1).
    instant = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    out = MSGPACK.loads(msgpack.packb(instant, datetime=True))
    assert out == instant
    assert out.utcoffset() == timedelta(0)


def test_msgpack_lists_stay_lists_and_tuples_stay_tuples() -> None:
    out = MSGPACK.loads(MSGPACK.dumps([(1, 2), [3, 4], ((),)]))
    assert type(out) is list
    assert [type(x) for x in out] == [tuple, list, tuple]
    assert type(out[2][0]) is tuple


@pytest.mark.parametrize(
    "value",
    [
        object(),
        Foo(),
        Color.RED,  # an int subclass: refused rather than sent as a plain int
        Point(1, 2),  # a tuple subclass
        collections.OrderedDict(a=1),
        collections.defaultdict(list),
        1j,
        pathlib.PurePosixPath("/tmp"),
        print,
        int,
    ],
    ids=lambda v: type(v).__name__,
)
def test_msgpack_refuses_other_types(value: Any) -> None:
    with pytest.raises(SerializationError) as info:
        MSGPACK.dumps(value)
    assert info.value.value_type is type(value)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, GearqError)


def test_msgpack_refuses_nested_unsupported_and_surrogates() -> None:
    with pytest.raises(SerializationError):
        MSGPACK.dumps({"a": [1, (2, {3: Foo()})]})
    with pytest.raises(ValueError):
        MSGPACK.dumps("\ud800")


def test_msgpack_packer_is_clean_after_a_refusal_and_safe_across_threads() -> None:
    import threading

    # dumps() reuses a packer per thread: a refusal half-way must leave nothing behind.
    value = {"t": (1, (2, 3)), "s": {(4, 5)}, "b": b"x" * 100}
    expected = MSGPACK.dumps(value)
    with pytest.raises(SerializationError):
        MSGPACK.dumps([1, 2, (3, Foo())])
    assert MSGPACK.dumps(value) == expected
    assert MSGPACK.loads(expected) == value

    results: dict[int, list[bytes]] = {}

    def pack(n: int) -> None:
        results[n] = [MSGPACK.dumps({"n": n, "i": i, "t": (n, i)}) for i in range(500)]

    threads = [threading.Thread(target=pack, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, packed in results.items():
        assert [MSGPACK.loads(data) for data in packed] == [
            {"n": n, "i": i, "t": (n, i)} for i in range(500)
        ]


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\xc1",  # never used
        b"\x92\x01",  # truncated
        b"\x01\x02",  # extra data
        bytes.fromhex("d4 7f 00"),  # unknown ext code 127
        bytes.fromhex("d4 00 00"),  # unknown ext code 0
        bytes.fromhex("d5 04 91 01"),  # timedelta payload is not [d, s, us]
        bytes.fromhex("d6 04 93 c3 00 00"),  # timedelta with a bool
        bytes.fromhex("d4 06 00"),  # a UUID of 1 byte
        bytes.fromhex("c7 03 07 91 91 01"),  # a set holding a list (unhashable)
        bytes.fromhex("d6 01") + b"nope",  # datetime text
        bytes.fromhex("d6 05") + b"1.x1",  # Decimal text
        bytes.fromhex("d6 0a") + b"12a4",  # big int text
        bytes.fromhex("d6 0a") + b"--12",  # big int text
        bytes.fromhex("d5 09 ff ff"),  # tuple payload not msgpack
        bytes.fromhex("81 90 01"),  # map with a list key (unhashable)
        b"\x91" * 100_000 + b"\xc0",  # nested far too deep
    ],
    ids=repr,
)
def test_msgpack_bad_input_gives_deserialization_error(wire: bytes) -> None:
    with pytest.raises(DeserializationError):
        MSGPACK.loads(wire)


def _allowed_only(value: Any) -> None:
    typed(value)  # raises AssertionError on anything but the supported types


def _ext(code: int, payload: bytes) -> bytes:
    return b"\xc7" + bytes([len(payload)]) + code.to_bytes(1, "big", signed=True) + payload


# msgpack documents built by hand, so that every ext code (-128..127) can appear anywhere.
ext_documents = st.builds(_ext, st.integers(min_value=-128, max_value=127), st.binary(max_size=24))
documents = st.recursive(
    st.builds(msgpack.packb, st.none() | st.integers(min_value=-(2**63), max_value=2**64 - 1))
    | ext_documents,
    lambda inner: st.lists(inner, max_size=15).map(
        lambda items: bytes([0x90 | len(items)]) + b"".join(items)
    ),
    max_leaves=8,
)


@given(documents)
def test_crafted_ext_values_never_build_other_objects(wire: bytes) -> None:
    try:
        out = MSGPACK.loads(wire)
    except DeserializationError:
        return
    _allowed_only(out)


@given(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), st.binary(max_size=24))
def test_every_known_ext_code_decodes_or_fails_typed(code: int, payload: bytes) -> None:
    try:
        out = MSGPACK.loads(_ext(code, payload))
    except DeserializationError:
        return
    _allowed_only(out)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_to_supported_types_or_a_typed_error(wire: bytes) -> None:
    try:
        out = MSGPACK.loads(wire)
    except DeserializationError:
        return
    _allowed_only(out)


# --- json ---------------------------------------------------------------------------------


@given(json_values)
def test_json_round_trip(value: Any) -> None:
    wire = JSON.dumps(value)
    assert typed(JSON.loads(wire)) == typed(value)
    assert typed(json.loads(wire)) == typed(value)  # any JSON reader sees the same


def test_json_is_compact_utf8() -> None:
    assert JSON.dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()


@pytest.mark.parametrize(
    "value",
    [b"x", (1, 2), {1, 2}, frozenset(), datetime(2024, 1, 1), Decimal(1), uuid.UUID(int=1), Foo()],
    ids=lambda v: type(v).__name__,
)
def test_json_refuses_non_json_types(value: Any) -> None:
    with pytest.raises(SerializationError) as info:
        JSON.dumps({"nested": [value]})
    assert info.value.value_type is type(value)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), {1: "int key"}, {None: 1}, "\udc80", Color.RED],
    ids=repr,
)
def test_json_refuses_values_it_would_change(value: Any) -> None:
    with pytest.raises((SerializationError, ValueError)):
        JSON.dumps([value])


def test_json_refuses_circular_structures() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        JSON.dumps(loop)


@pytest.mark.parametrize("wire", [b"", b"{", b"NaN", b"[Infinity]", b"\xff", b"{} {}"])
def test_json_bad_input_gives_deserialization_error(wire: bytes) -> None:
    with pytest.raises(DeserializationError):
        JSON.loads(wire)


# --- raw ----------------------------------------------------------------------------------


def test_raw_is_bytes_in_bytes_out() -> None:
    assert RAW.dumps(b"\x00abc") == b"\x00abc"
    assert RAW.dumps(bytearray(b"ab")) == b"ab"
    assert type(RAW.dumps(memoryview(b"ab"))) is bytes
    assert RAW.loads(b"\x00abc") == b"\x00abc"
    with pytest.raises(SerializationError):
        RAW.dumps("text")


# --- registry -----------------------------------------------------------------------------


def test_registry() -> None:
    assert get_serializer("msgpack") is MSGPACK
    assert get_serializer("json") is JSON
    assert get_serializer("raw") is RAW
    assert get_serializer(JSON) is JSON
    for serializer in (MSGPACK, JSON, RAW):
        assert isinstance(serializer, Serializer)
        assert serializer.content_type.startswith("application/")
    with pytest.raises(UnknownSerializer, match="pickle") as info:
        get_serializer("pickle")
    assert isinstance(info.value, LookupError)
    assert "msgpack" in str(info.value)


def test_register_serializer() -> None:
    class Upper:
        name = "test-upper"
        content_type = "text/plain"

        def dumps(self, obj: Any) -> bytes:
            return str(obj).upper().encode()

        def loads(self, data: bytes) -> Any:
            return data.decode()

    upper = Upper()
    register_serializer(upper)
    assert get_serializer("test-upper") is upper
    with pytest.raises(ValueError, match="already"):
        register_serializer(Upper())
    register_serializer(Upper(), replace=True)
    assert get_serializer("test-upper") is not upper


def test_nan_round_trips_as_nan() -> None:
    assert math.isnan(MSGPACK.loads(MSGPACK.dumps(float("nan"))))
