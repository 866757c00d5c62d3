"""encode_positional_call: the call envelope delay() sends, made in fewer steps; it must be
the very bytes encode_call makes. decode_positional_call, which reads it by its layout,
must read what decode_plain_call reads, or leave it to it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.tasks import MSGPACK, decode_call, encode_call
from gearq.tasks.envelope import (
    Call,
    call_head,
    decode_plain_call,
    decode_positional_call,
    encode_positional_call,
)
from gearq.tasks.serializers import JSON

from .strategies import msgpack_values, typed

_ID = "0123456789abcdef0123456789abcdef"


@given(st.text(min_size=1, max_size=40), st.lists(msgpack_values, max_size=4))
def test_the_same_bytes_as_encode_call(name: str, args: list[Any]) -> None:
    fast = encode_positional_call(MSGPACK, name, args, _ID)
    assert fast is not None
    assert fast == encode_call(name, args, None, serializer=MSGPACK, task_id=_ID)
    call = decode_call(fast)
    assert call.task == name and call.task_id == _ID and len(call.args) == len(args)


@given(st.text(max_size=40))
def test_any_task_id_gives_the_same_bytes_as_encode_call(task_id: str) -> None:
    # Only 32-byte ids take the short way; a longer, shorter or non-ASCII one the usual.
    fast = encode_positional_call(MSGPACK, "t", [1], task_id)
    assert fast == encode_call("t", [1], None, serializer=MSGPACK, task_id=task_id)


@pytest.mark.parametrize("task_id", ["é" * 32, "é" * 16, _ID[:31], _ID + "0"])
def test_ids_of_other_lengths_in_bytes(task_id: str) -> None:
    fast = encode_positional_call(MSGPACK, "t", [1], task_id)
    assert fast == encode_call("t", [1], None, serializer=MSGPACK, task_id=task_id)
    assert decode_call(fast).task_id == task_id


def test_other_serializers_and_what_does_not_serialize() -> None:
    assert encode_positional_call(JSON, "t", [1], _ID) == encode_call(
        "t", [1], None, serializer=JSON, task_id=_ID
    )
    assert encode_positional_call(MSGPACK, "t", [object()], _ID) is None
    assert encode_positional_call(MSGPACK, "t", [1], "\ud800" * 32) is None  # no UTF-8


def _same_call(fast: Call, plain: Call) -> None:
    assert typed(list(fast.args)) == typed(list(plain.args))
    fast.args = plain.args = ()  # (NaN is not equal to itself: compared above)
    assert fast == plain


@given(st.text(min_size=1, max_size=40), st.lists(msgpack_values, max_size=4))
def test_decode_positional_call_reads_what_decode_plain_call_reads(
    name: str, args: list[Any]
) -> None:
    data = encode_positional_call(MSGPACK, name, args, _ID)
    assert data is not None
    fast = decode_positional_call(data, call_head(name), name)
    plain = decode_plain_call(data)
    assert fast is not None and plain is not None
    _same_call(fast, plain)


@given(st.binary(max_size=40))
def test_decode_positional_call_of_anything_else_is_none_or_the_same(tail: bytes) -> None:
    head = call_head("t")
    for data in (head + tail, head + _ID.encode() + tail, head + _ID.encode() + b"\xa1a" + tail):
        fast = decode_positional_call(data, head, "t")
        if fast is not None:
            plain = decode_plain_call(data)
            assert plain is not None
            _same_call(fast, plain)


def test_decode_positional_call_leaves_other_calls_to_decode_plain_call() -> None:
    head = call_head("t")
    plain = encode_positional_call(MSGPACK, "t", [1], _ID)
    assert plain is not None
    others = [
        encode_positional_call(MSGPACK, "other", [1], _ID),  # another task's
        encode_call("t", [1], {"k": 2}, serializer=MSGPACK, task_id=_ID),  # keywords
        encode_call("t", [1], None, serializer=MSGPACK, task_id=_ID[:31]),  # another id size
        plain + b"\xc0",  # something after the arguments
        plain[:-1],  # the arguments cut short
        plain[:-2] + b"\x01",  # arguments that are no list
        plain.replace(b"\xd9\x20" + _ID.encode(), b"\xd9\x20" + b"\xff" * 32),  # no UTF-8
    ]
    for data in others:
        assert data is not None
        assert decode_positional_call(data, head, "t") is None, data
    call = decode_positional_call(plain, head, "t")
    assert call is not None and call.args == (1,) and call.task_id == _ID and call.task == "t"
