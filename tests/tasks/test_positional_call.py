"""encode_positional_call: the call envelope delay() sends, made in fewer steps; it must be
the very bytes encode_call makes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.tasks import MSGPACK, decode_call, encode_call
from gearq.tasks.envelope import encode_positional_call
from gearq.tasks.serializers import JSON

from .strategies import msgpack_values

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
