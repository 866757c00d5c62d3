"""Envelopes: golden bytes, round trips, versioning, and argument-naming errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.tasks import (
    ENVELOPE_VERSION,
    JSON,
    MSGPACK,
    RAW,
    Call,
    Chunk,
    DeserializationError,
    EnvelopeError,
    Failure,
    FailureKind,
    RemoteError,
    Result,
    SerializationError,
    StateUpdate,
    TimeLimitExceeded,
    UnknownSerializer,
    UnsupportedEnvelopeVersion,
    decode_call,
    decode_data,
    decode_failure,
    decode_reply,
    detect_serializer,
    encode_call,
    encode_chunk,
    encode_failure,
    encode_result,
    encode_state,
    rebuild_exception,
)

from .strategies import json_values, kwarg_names, msgpack_values, typed

TASK_ID = "0f3c9a2b7d4e4f6a8b1c2d3e4f5a6b7c"


class Foo:
    pass


# --- golden bytes -------------------------------------------------------------------------

# encode_call("app.add", (2, 3), {"z": 1}, task_id=TASK_ID), annotated. If this test fails,
# the wire format changed: bump ENVELOPE_VERSION or fix the change, and update the docs.
GOLDEN_CALL = bytes.fromhex(
    "85"  # map, 5 entries
    "a176"
    "01"  # "v": 1
    "a174"
    "a7"
    + b"app.add".hex()  # "t": "app.add"
    + "a26964"
    "d920"
    + TASK_ID.encode().hex()  # "id": str8 of 32 bytes
    + "a161"
    "92"
    "02"
    "03"  # "a": [2, 3]
    "a16b"
    "81"
    "a17a"
    "01"  # "k": {"z": 1}
)
GOLDEN_JSON_CALL = (
    b'{"v":1,"t":"app.add","id":"0f3c9a2b7d4e4f6a8b1c2d3e4f5a6b7c","a":[2,3],"k":{"z":1}}'
)
GOLDEN_RESULT = bytes.fromhex("83a17601a173a26f6ba17205")  # {v:1, s:"ok", r:5}


def test_golden_msgpack_call() -> None:
    assert encode_call("app.add", (2, 3), {"z": 1}, task_id=TASK_ID) == GOLDEN_CALL
    call = decode_call(GOLDEN_CALL)
    assert (call.task, call.args, call.kwargs, call.task_id) == (
        "app.add",
        (2, 3),
        {"z": 1},
        TASK_ID,
    )


def test_golden_json_call() -> None:
    wire = encode_call("app.add", [2, 3], {"z": 1}, task_id=TASK_ID, serializer="json")
    assert wire == GOLDEN_JSON_CALL


def test_golden_result() -> None:
    assert encode_result(5) == GOLDEN_RESULT
    assert decode_reply(GOLDEN_RESULT) == Result(5)


def test_golden_call_with_every_field() -> None:
    wire = encode_call(
        "t",
        (),
        task_id="i",
        attempt=2,
        max_retries=3,
        eta=4,
        expires=5.5,
        parent_id="p",
        root_id="r",
        group_id="g",
        headers={"h": 1},
    )
    assert msgpack.unpackb(wire) == {
        "v": 1,
        "t": "t",
        "id": "i",
        "a": [],
        "att": 2,
        "mr": 3,
        "eta": 4,
        "exp": 5.5,
        "pid": "p",
        "rid": "r",
        "gid": "g",
        "h": {"h": 1},
    }
    assert list(msgpack.unpackb(wire)) == [
        "v", "t", "id", "a", "att", "mr", "eta", "exp", "pid", "rid", "gid", "h"
    ]  # fmt: skip


# --- calls --------------------------------------------------------------------------------


def test_call_round_trip_with_every_field() -> None:
    for serializer in (MSGPACK, JSON):
        wire = encode_call(
            "app.report",
            ("x",),
            {"n": 1},
            serializer=serializer,
            task_id="id1",
            attempt=3,
            max_retries=5,
            eta=1700000000.5,
            expires=1700000100,
            parent_id="p1",
            root_id="r1",
            group_id="g1",
            headers={"trace": "abc"},
        )
        assert decode_call(wire) == Call(
            task="app.report",
            args=("x",),
            kwargs={"n": 1},
            task_id="id1",
            attempt=3,
            max_retries=5,
            eta=1700000000.5,
            expires=1700000100,
            parent_id="p1",
            root_id="r1",
            group_id="g1",
            headers={"trace": "abc"},
            serializer=serializer,
        )


def test_minimal_call_defaults() -> None:
    call = decode_call(msgpack.packb({"v": 1}))
    assert call == Call(task=None, args=(), kwargs={}, serializer=MSGPACK)
    assert call.attempt == 1
    assert call.headers == {}


@given(
    st.lists(msgpack_values, max_size=4),
    st.dictionaries(kwarg_names, msgpack_values, max_size=4),
)
def test_msgpack_call_round_trip_keeps_types(args: list[Any], kwargs: dict[str, Any]) -> None:
    call = decode_call(encode_call("t", args, kwargs))
    assert typed(call.args) == typed(tuple(args))
    assert typed(call.kwargs) == typed(kwargs)


@given(st.lists(json_values, max_size=4), st.dictionaries(kwarg_names, json_values, max_size=4))
def test_json_call_round_trip(args: list[Any], kwargs: dict[str, Any]) -> None:
    wire = encode_call("t", args, kwargs, serializer="json")
    call = decode_call(wire)
    assert call.serializer is JSON
    assert typed(call.args) == typed(tuple(args))
    assert typed(call.kwargs) == typed(kwargs)
    plain = json.loads(wire)  # any JSON reader can take it apart
    assert plain["v"] == 1
    assert typed(plain["a"]) == typed(args)


def test_php_style_json_call() -> None:
    # What PHP's json_encode(['v' => 1, 't' => 'app.add', 'a' => [2, 3], 'k' => []]) sends:
    # an empty PHP array is written as [] even where a map is meant.
    call = decode_call(b'  {"v":1,"t":"app.add","a":[2,3],"k":[],"h":[]}')
    assert call == Call(task="app.add", args=(2, 3), kwargs={}, serializer=JSON)


def test_detect_serializer() -> None:
    assert detect_serializer(msgpack.packb({})) is MSGPACK
    assert detect_serializer(msgpack.packb({str(i): i for i in range(20)})) is MSGPACK  # map16
    assert detect_serializer(b"\n {}") is JSON
    for data in (b"", b"[1]", b"\x92\x01\x02", b"x"):
        with pytest.raises(EnvelopeError):
            detect_serializer(data)


def test_serializer_by_name_and_unknown_name() -> None:
    assert encode_call("t", (1,), serializer="msgpack") == encode_call("t", (1,))
    with pytest.raises(UnknownSerializer):
        encode_call("t", (1,), serializer="pickle")
    with pytest.raises(UnknownSerializer):
        decode_call(b"x", serializer="pickle")


def test_unknown_keys_are_ignored() -> None:
    base = {"v": 1, "t": "t", "a": [1]}
    for extra in ({"zz": [1, 2]}, {"zz": 1, "att": 2}, {"future": {"x": 1}, "k": {"a": 1}}):
        for wire in (msgpack.packb(base | extra), json.dumps(base | extra).encode()):
            call = decode_call(wire)
            assert call.args == (1,)
            assert call.attempt == extra.get("att", 1)


def test_newer_version_is_a_typed_error() -> None:
    for wire in (msgpack.packb({"v": 2, "t": "t", "a": []}), b'{"v":7,"whatever":true}'):
        with pytest.raises(UnsupportedEnvelopeVersion) as info:
            decode_call(wire)
        assert info.value.version > ENVELOPE_VERSION
        assert isinstance(info.value, EnvelopeError)
        assert isinstance(info.value, DeserializationError)


@pytest.mark.parametrize(
    "env",
    [
        {"t": "t", "a": []},  # no version
        {"v": "1", "a": []},
        {"v": 0, "a": []},
        {"v": True, "a": []},
        {"v": 1.0, "a": []},
        {"v": 1, "a": {"x": 1}},
        {"v": 1, "a": "abc"},
        {"v": 1, "k": [1]},
        {"v": 1, "k": {1: 2}},
        {"v": 1, "k": "x"},
        {"v": 1, "t": 5},
        {"v": 1, "id": b"x"},
        {"v": 1, "att": 0},
        {"v": 1, "att": True},
        {"v": 1, "att": "2"},
        {"v": 1, "mr": -1},
        {"v": 1, "eta": "soon"},
        {"v": 1, "exp": [1]},
        {"v": 1, "pid": 1},
        {"v": 1, "h": {1: 1}},
    ],
    ids=repr,
)
def test_malformed_call_envelopes(env: dict[Any, Any]) -> None:
    with pytest.raises(EnvelopeError):
        decode_call(msgpack.packb(env))


@pytest.mark.parametrize("wire", [b"", b"\xc1", b"\x85", b"[1,2]", msgpack.packb([1]), b"{"])
def test_undecodable_calls(wire: bytes) -> None:
    with pytest.raises(DeserializationError):
        decode_call(wire)
    with pytest.raises(DeserializationError):
        decode_call(wire, serializer=JSON if wire.startswith(b"[") else MSGPACK)


def test_top_level_must_be_a_map() -> None:
    with pytest.raises(EnvelopeError, match="map"):
        decode_call(b"[1]", serializer="json")
    with pytest.raises(EnvelopeError, match="map"):
        decode_call(msgpack.packb(7), serializer=MSGPACK)


def test_call_metadata_is_checked_when_encoding() -> None:
    with pytest.raises(TypeError):
        encode_call("", ())
    with pytest.raises(TypeError):
        encode_call("t", (), attempt=0)
    with pytest.raises(TypeError):
        encode_call("t", (), max_retries=-1)
    with pytest.raises(TypeError):
        encode_call("t", (), eta="tomorrow")  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="keyword argument names"):
        encode_call("t", (), {1: 2})  # type: ignore[dict-item]


# --- argument-naming errors ---------------------------------------------------------------


def test_unsupported_argument_is_named_by_parameter_name() -> None:
    with pytest.raises(SerializationError) as info:
        encode_call("app.reports.build", (1, Foo()), param_names=("n", "when"))
    err = info.value
    assert str(err).startswith(
        "argument 'when' of task 'app.reports.build' has type "
        f"{Foo.__module__}.Foo, which msgpack cannot carry; supported: None, bool, int"
    )
    assert (err.task, err.argument, err.path, err.value_type) == (
        "app.reports.build",
        "argument 'when'",
        "when",
        Foo,
    )
    assert err.serializer == "msgpack"
    assert isinstance(err, TypeError)


def test_unsupported_keyword_argument_and_nested_path() -> None:
    with pytest.raises(SerializationError) as info:
        encode_call("t", (), {"ok": [1], "when": {"start": [1, 2, Foo()]}})
    assert info.value.argument == "argument 'when'"
    assert info.value.path == "when['start'][2]"
    assert "argument 'when' of task 't': when['start'][2] has type" in str(info.value)


def test_positional_argument_without_names_and_inside_sets_and_keys() -> None:
    with pytest.raises(SerializationError, match=r"positional argument 1 of task 't': args\[1\]"):
        encode_call("t", (1, [Foo()]))
    with pytest.raises(SerializationError) as info:
        encode_call("t", ({1, (2, Foo())},))
    assert info.value.path == "args[0]<element>[1]"
    with pytest.raises(SerializationError) as info:
        encode_call("t", (), {"m": {(1, Foo()): 1}})
    assert info.value.path is not None
    assert info.value.path.startswith("m<key")


def test_unsupported_header_is_named() -> None:
    with pytest.raises(SerializationError, match="header 'trace'"):
        encode_call("t", (), headers={"trace": Foo()})


def test_json_specific_refusals_name_the_argument() -> None:
    cases: list[tuple[Any, str]] = [
        (b"bytes", "has type bytes, which json cannot carry"),
        ((1, 2), "has type tuple, which json cannot carry"),
        (datetime.now(timezone.utc), "has type datetime.datetime, which json cannot carry"),
        (float("nan"), "cannot be serialized with json"),
        ({1: "a"}, "JSON object keys must be str"),
    ]
    for value, text in cases:
        with pytest.raises(SerializationError, match="argument 'x' of task 't'") as info:
            encode_call("t", (), {"x": value}, serializer="json")
        assert text in str(info.value)


def test_invalid_unicode_argument() -> None:
    with pytest.raises(SerializationError, match="argument 's'"):
        encode_call("t", (), {"s": "bad \ud800"})


# --- raw ----------------------------------------------------------------------------------


def test_raw_call_is_the_payload_itself() -> None:
    assert (
        encode_call("t", (b"\x00payload",), serializer="raw", task_id="ignored") == b"\x00payload"
    )
    assert encode_call("t", [bytearray(b"ab")], serializer=RAW) == b"ab"
    call = decode_call(b"\x00payload", serializer="raw")
    assert call.args == (b"\x00payload",)
    assert call.kwargs == {}
    assert call.serializer is RAW


def test_raw_call_refusals() -> None:
    with pytest.raises(SerializationError, match="argument 'data' of task 't' has type str"):
        encode_call("t", ("text",), serializer="raw", param_names=("data",))
    with pytest.raises(SerializationError, match="exactly one"):
        encode_call("t", (b"a", b"b"), serializer="raw")
    with pytest.raises(SerializationError, match="exactly one"):
        encode_call("t", (), {"data": b"a"}, serializer="raw")
    with pytest.raises(SerializationError, match="carries no"):
        encode_call("t", (b"a",), serializer="raw", expires=5)


def test_raw_replies() -> None:
    assert encode_result(b"out", serializer="raw") == b"out"
    assert decode_reply(b"out", serializer="raw") == Result(b"out")
    assert encode_chunk(b"part", serializer="raw") == b"part"
    assert decode_data(b"part", serializer="raw") == Chunk(b"part")
    with pytest.raises(SerializationError, match="the return value of task 't' has type int"):
        encode_result(5, serializer="raw", task_name="t")
    with pytest.raises(SerializationError, match="state"):
        encode_state("X", serializer="raw")


def test_raw_failure_is_a_json_failure_envelope() -> None:
    wire = encode_failure(ValueError("bad"), serializer="raw")
    plain = json.loads(wire)
    assert (plain["s"], plain["kind"], plain["type"], plain["msg"]) == (
        "err",
        "error",
        "builtins.ValueError",
        "bad",
    )
    assert decode_failure(wire, serializer="raw").message == "bad"


# --- results, chunks, state ---------------------------------------------------------------


@given(msgpack_values)
def test_result_and_chunk_round_trip(value: Any) -> None:
    reply = decode_reply(encode_result(value))
    assert isinstance(reply, Result)
    assert typed(reply.value) == typed(value)
    chunk = decode_data(encode_chunk(value))
    assert isinstance(chunk, Chunk)
    assert typed(chunk.value) == typed(value)


def test_json_result_reads_with_plain_json() -> None:
    wire = encode_result({"total": 5, "items": [1, None]}, serializer="json")
    assert json.loads(wire) == {"v": 1, "s": "ok", "r": {"total": 5, "items": [1, None]}}
    assert decode_reply(wire) == Result({"total": 5, "items": [1, None]})
    assert json.loads(encode_chunk([1], serializer="json")) == {"v": 1, "s": "chunk", "d": [1]}


def test_state_update_round_trip() -> None:
    for serializer in (MSGPACK, JSON):
        wire = encode_state("FETCHING", {"url": "u"}, serializer=serializer)
        assert decode_data(wire) == StateUpdate("FETCHING", {"url": "u"})
    assert decode_data(encode_state("DONE")) == StateUpdate("DONE", None)
    with pytest.raises(TypeError):
        encode_state(5)  # type: ignore[arg-type]


def test_unsupported_return_value_and_chunk_are_named() -> None:
    with pytest.raises(SerializationError) as info:
        encode_result({"a": [Foo()]}, task_name="t")
    assert str(info.value).startswith("the return value of task 't': return value['a'][0] has")
    with pytest.raises(SerializationError, match="a streamed chunk"):
        encode_chunk(Foo())
    with pytest.raises(SerializationError, match="state metadata"):
        encode_state("S", Foo())
    with pytest.raises(SerializationError, match="has type tuple"):
        encode_result((1,), serializer="json")


def test_reply_kind_is_checked() -> None:
    with pytest.raises(EnvelopeError):
        decode_reply(encode_chunk(1))
    with pytest.raises(EnvelopeError):
        decode_data(encode_result(1))
    with pytest.raises(EnvelopeError):
        decode_data(msgpack.packb({"v": 1, "s": "state", "state": 5}))
    with pytest.raises(UnsupportedEnvelopeVersion):
        decode_reply(msgpack.packb({"v": 2, "s": "ok", "r": 1}))
    with pytest.raises(UnsupportedEnvelopeVersion):
        decode_data(b'{"v":2,"s":"chunk","d":1}')


# --- failures -----------------------------------------------------------------------------


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_failure_envelope_round_trip() -> None:
    exc = _raise(KeyError("missing"))
    for serializer in (MSGPACK, JSON):
        wire = encode_failure(exc, serializer=serializer, attempt=2)
        failure = decode_failure(wire)
        assert failure.kind is FailureKind.ERROR
        assert failure.exc_type == "builtins.KeyError"
        assert failure.message == "'missing'"
        assert failure.args == ("missing",)
        assert failure.attempt == 2
        assert "KeyError: 'missing'" in failure.traceback
        assert "_raise" in failure.traceback
        rebuilt = rebuild_exception(failure)
        assert type(rebuilt) is KeyError
        assert rebuilt.args == ("missing",)


def test_failure_in_work_complete_is_read_as_failure() -> None:
    wire = encode_failure(ValueError("x"))
    reply = decode_reply(wire)
    assert isinstance(reply, Failure)
    assert reply.exc_type == "builtins.ValueError"


def test_failure_json_layout() -> None:
    wire = encode_failure(
        Failure(FailureKind.RETRY, "myapp.Boom", "boom", "tb", ("boom",), 1, 1700000000.0),
        serializer="json",
    )
    assert json.loads(wire) == {
        "v": 1,
        "s": "err",
        "kind": "retry",
        "type": "myapp.Boom",
        "msg": "boom",
        "tb": "tb",
        "att": 1,
        "eta": 1700000000.0,
        "args": ["boom"],
    }


def test_failure_kinds_and_unknown_kind() -> None:
    wire = encode_failure(RuntimeError("slow"), kind=FailureKind.TIME_LIMIT)
    exc = rebuild_exception(decode_failure(wire), task_id="abc")
    assert isinstance(exc, TimeLimitExceeded)
    assert exc.task_id == "abc"
    assert exc.remote_type == "builtins.RuntimeError"
    future = msgpack.packb({"v": 1, "s": "err", "kind": "cosmic_ray", "type": "", "msg": "m"})
    assert decode_failure(future).kind is FailureKind.ERROR


def test_unserializable_exception_args_are_dropped_not_fatal() -> None:
    exc = ValueError("bad", Foo(), "\ud800")
    for serializer in (MSGPACK, JSON):
        failure = decode_failure(encode_failure(exc, serializer=serializer))
        assert failure.args is None
        assert failure.exc_type == "builtins.ValueError"
        assert "bad" in failure.message
    # A message that no serializer can carry as is (a lone surrogate) is cleaned up.
    failure = decode_failure(encode_failure(Failure(FailureKind.ERROR, "x.Y", "a\ud800b")))
    assert failure.message == "a?b"


def test_decode_failure_is_lenient_with_plain_text() -> None:
    # What a PHP worker's $job->sendException("it broke") sends.
    for wire in (b"it broke", b"{not json", b"\x92\x01", msgpack.packb({"no": "version"})):
        failure = decode_failure(wire)
        assert failure.kind is FailureKind.ERROR
        assert failure.exc_type == ""
        assert failure.message == wire.decode("utf-8", "replace")
        exc = rebuild_exception(failure)
        assert type(exc) is RemoteError
    assert decode_failure(b"it broke", serializer="msgpack").message == "it broke"


def test_decode_failure_is_strict_with_gearq_envelopes() -> None:
    with pytest.raises(UnsupportedEnvelopeVersion):
        decode_failure(msgpack.packb({"v": 3, "s": "err"}))
    with pytest.raises(EnvelopeError):
        decode_failure(encode_result(1))
    with pytest.raises(EnvelopeError):
        decode_failure(msgpack.packb({"v": 1, "s": "err", "args": "x"}))
    with pytest.raises(EnvelopeError):
        decode_failure(msgpack.packb({"v": 1, "s": "err", "msg": 5}))
