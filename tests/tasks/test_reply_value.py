"""reply_value: decode_reply's common case in fewer steps, which must agree with it."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given

from gearq.tasks import ENVELOPE_VERSION, MSGPACK, decode_reply, encode_result
from gearq.tasks.envelope import encode_plain_result, reply_value

from .strategies import msgpack_values, typed


@given(msgpack_values)
def test_a_workers_reply_gives_the_value_decode_reply_gives(value: Any) -> None:
    data = encode_plain_result(value, MSGPACK, "task")
    ok, got = reply_value(data)
    assert ok
    assert typed(got) == typed(value) == typed(decode_reply(data).value)


@given(msgpack_values)
def test_a_workers_reply_is_the_bytes_encode_result_makes(value: Any) -> None:
    # encode_plain_result writes the map's entries one after another, not the map.
    from gearq.tasks.serializers import SerializationError

    try:
        expected: bytes | None = encode_result(value, serializer=MSGPACK, task_name="task")
    except SerializationError:
        expected = None
    try:
        got: bytes | None = encode_plain_result(value, MSGPACK, "task")
    except SerializationError:
        got = None
    assert got == expected


def _pack(envelope: dict[str, Any]) -> bytes:
    return msgpack.packb(envelope, use_bin_type=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "envelope",
    [
        {"s": "ok", "v": ENVELOPE_VERSION, "r": [1, "two"]},  # another key order
        {"v": ENVELOPE_VERSION, "s": "ok", "r": [1, "two"], "x": 0},  # a key more
        {"v": ENVELOPE_VERSION, "r": [1, "two"], "s": "ok"},
    ],
)
def test_other_writers_of_the_same_reply_give_the_same_value(envelope: dict[str, Any]) -> None:
    data = _pack(envelope)
    assert reply_value(data) == (True, [1, "two"]) == (True, decode_reply(data).value)


@pytest.mark.parametrize(
    "data",
    [
        encode_plain_result(5, MSGPACK, "task") + b"\xc0",  # something after the value
        encode_plain_result(5, MSGPACK, "task")[:-1],  # the value cut short
        _pack({"v": ENVELOPE_VERSION, "s": "ok"})[:-1],
        _pack({"v": ENVELOPE_VERSION + 1, "s": "ok", "r": 5}),  # a newer envelope
        _pack({"v": True, "s": "ok", "r": 5}),
        _pack({"v": ENVELOPE_VERSION, "s": "retry", "r": 5}),
        encode_result(5, serializer="json"),
        b"",
        b"plain text",
    ],
)
def test_anything_else_is_left_to_decode_reply(data: bytes) -> None:
    assert reply_value(data) == (False, None)


def test_its_fast_decoding_uses_the_serializers_own_options() -> None:
    # reply_value calls msgpack.unpackb with these itself (see gearq.tasks.envelope).
    assert MSGPACK.unpack.keywords == {  # type: ignore[attr-defined]
        "ext_hook": MSGPACK._ext_hook,
        "raw": False,
        "use_list": True,
        "strict_map_key": False,
        "timestamp": 3,
    }
