"""Envelopes: the maps a task call, its result, its failure and its stream chunks travel in.

Every envelope is one map, serialized with msgpack or json, whose ``v`` key is the format
version (1). Decoders ignore keys they do not know, so later versions can add optional
keys without breaking old peers; a larger ``v`` gives :class:`UnsupportedEnvelopeVersion`.
The full layout, for PHP, Go and Node authors, is in ``docs/wire-format.md``.

=============  ==================================================================
job payload    call envelope ``{v, t, id, a, k, att, mr, eta, exp, pid, rid, gid, h}``
WORK_COMPLETE  result envelope ``{v, s: "ok", r}`` (or a failure envelope)
WORK_EXCEPTION failure envelope ``{v, s: "err", kind, type, msg, args, tb, att, eta}``
WORK_DATA      chunk ``{v, s: "chunk", d}`` or state update ``{v, s: "state", state, meta}``
=============  ==================================================================

With the ``raw`` serializer there is no envelope: the job payload is the task's single
``bytes`` argument, WORK_COMPLETE and WORK_DATA carry bytes, and a failure is sent as a
*json* failure envelope (the only way to tell it from a result).

Decoders given ``serializer=None`` detect the format: a msgpack map starts with a byte in
0x80-0x8f, 0xde or 0xdf, a JSON object with ``{`` (after optional whitespace).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

from .remote_errors import Failure, FailureKind
from .serializers import (
    JSON,
    MSGPACK,
    DeserializationError,
    RawSerializer,
    SerializationError,
    Serializer,
    get_serializer,
    type_name,
)

__all__ = [
    "ENVELOPE_VERSION",
    "Call",
    "Chunk",
    "EnvelopeError",
    "Result",
    "StateUpdate",
    "UnsupportedEnvelopeVersion",
    "decode_call",
    "decode_data",
    "decode_failure",
    "decode_plain_call",
    "decode_reply",
    "detect_serializer",
    "encode_call",
    "encode_chunk",
    "encode_failure",
    "encode_plain_result",
    "encode_positional_call",
    "encode_result",
    "encode_state",
    "reply_value",
]

ENVELOPE_VERSION: Final = 1


class EnvelopeError(DeserializationError):
    """The bytes decoded, but not to a valid gearq envelope of the expected kind."""


class UnsupportedEnvelopeVersion(EnvelopeError):
    """The envelope's version ``v`` is newer than this gearq understands."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"envelope version {version} is not supported (this gearq reads version"
            f" {ENVELOPE_VERSION}); upgrade gearq on this side"
        )
        self.version = version
        self.supported = ENVELOPE_VERSION


@dataclass
class Call:
    """A decoded task call: what a worker needs to run the task.

    ``serializer`` is the one the call came in; the worker answers with the same one.
    ``eta`` and ``expires`` are unix times in seconds. (The envelope records are plain
    dataclasses, not frozen ones: they are made on the hot path, and a frozen dataclass
    costs several microseconds more to build. Not slotted either, so that the defaults
    are class attributes: :func:`decode_plain_call` sets only what the call has.)
    """

    task: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    task_id: str | None = None
    attempt: int = 1
    max_retries: int | None = None
    eta: float | None = None
    expires: float | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    serializer: Serializer = MSGPACK


@dataclass(slots=True)
class Result:
    """A task's return value (WORK_COMPLETE)."""

    value: Any


@dataclass(slots=True)
class Chunk:
    """One streamed partial result (WORK_DATA)."""

    value: Any


@dataclass(slots=True)
class StateUpdate:
    """A custom state the task reported, with its metadata (WORK_DATA)."""

    state: str
    meta: Any = None


# --- helpers ------------------------------------------------------------------------------


def _resolve(serializer: Serializer | str) -> Serializer:
    return get_serializer(serializer) if type(serializer) is str else serializer  # type: ignore[return-value]


def detect_serializer(data: bytes) -> Serializer:
    """msgpack or json, from the first byte of an envelope; :class:`EnvelopeError` if neither."""
    if data:
        first = data[0]
        if 0x80 <= first <= 0x8F or first == 0xDE or first == 0xDF:
            return MSGPACK
        if data.lstrip(b" \t\r\n")[:1] == b"{":
            return JSON
    raise EnvelopeError(
        f"not a gearq envelope (neither a msgpack map nor a JSON object): {bytes(data[:20])!r}"
    )


def _type_name(value: object) -> str:
    return type_name(type(value))


_Found = tuple[str, object, BaseException]
_MAX_LOCATE_DEPTH: Final = 64


def _locate(value: object, dumps: Callable[[Any], bytes], path: str, depth: int) -> _Found | None:
    """The innermost part of ``value`` that ``dumps`` refuses: (path, part, error)."""
    try:
        dumps(value)
        return None
    except (TypeError, ValueError, OverflowError) as exc:
        error: BaseException = exc
    kind = type(value)
    if depth < _MAX_LOCATE_DEPTH:
        if kind is list or kind is tuple:
            items: list[Any] = list(value)  # type: ignore[call-overload]
            for index, item in enumerate(items):
                found = _locate(item, dumps, f"{path}[{index}]", depth + 1)
                if found:
                    return found
        elif kind is dict:
            for key, item in value.items():  # type: ignore[attr-defined]
                found = _locate(key, dumps, f"{path}<key {key!r}>", depth + 1)
                if found:
                    return found
                found = _locate(item, dumps, f"{path}[{key!r}]", depth + 1)
                if found:
                    return found
        elif kind is set or kind is frozenset:
            for item in value:  # type: ignore[attr-defined]
                found = _locate(item, dumps, f"{path}<element>", depth + 1)
                if found:
                    return found
    return path, value, error


def _explain(
    serializer: Serializer,
    task: str | None,
    label: str,
    root: str,
    found: _Found,
) -> SerializationError:
    path, value, error = found
    whose = f" of task {task!r}" if task else ""
    subject = f"{label}{whose}: {path}" if path != root else f"{label}{whose}"
    name = serializer.name
    if isinstance(error, SerializationError) and error.value_type is type(value):
        supported = getattr(serializer, "supported", None)
        hint = f"; supported: {supported}" if supported else ""
        message = f"{subject} has type {_type_name(value)}, which {name} cannot carry{hint}"
    else:
        message = f"{subject} cannot be serialized with {name}: {error}"
    return SerializationError(
        message,
        task=task,
        argument=label,
        path=path,
        value_type=type(value),
        serializer=name,
    )


def _explain_call(
    serializer: Serializer,
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    headers: Mapping[str, Any] | None,
    param_names: Sequence[str],
    cause: BaseException,
) -> SerializationError:
    dumps = serializer.dumps
    for index, arg in enumerate(args):
        if index < len(param_names):
            label, root = f"argument {param_names[index]!r}", param_names[index]
        else:
            label, root = f"positional argument {index}", f"args[{index}]"
        found = _locate(arg, dumps, root, 0)
        if found:
            return _explain(serializer, task, label, root, found)
    for key, arg in kwargs.items():
        found = _locate(arg, dumps, key, 0)
        if found:
            return _explain(serializer, task, f"argument {key!r}", key, found)
    for key, arg in (headers or {}).items():
        found = _locate(arg, dumps, key, 0)
        if found:
            return _explain(serializer, task, f"header {key!r}", key, found)
    return SerializationError(
        f"the call of task {task!r} cannot be serialized with {serializer.name}: {cause}",
        task=task,
        serializer=serializer.name,
    )


def _check_number(name: str, value: object) -> None:
    kind = type(value)
    if kind is not int and kind is not float:
        raise TypeError(f"{name} must be unix seconds as int or float, got {value!r}")


# --- calls --------------------------------------------------------------------------------


def encode_call(
    task_name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    serializer: Serializer | str = MSGPACK,
    task_id: str | None = None,
    attempt: int = 1,
    max_retries: int | None = None,
    eta: float | None = None,
    expires: float | None = None,
    parent_id: str | None = None,
    root_id: str | None = None,
    group_id: str | None = None,
    headers: Mapping[str, Any] | None = None,
    param_names: Sequence[str] = (),
) -> bytes:
    """The job payload for a call of ``task_name``.

    Raises :class:`SerializationError` naming the argument (by ``param_names[i]`` for
    positional ones when given) and the place inside it that the serializer cannot carry.
    With the ``raw`` serializer the payload is the single ``bytes`` argument itself; only
    the ids (which travel in the Gearman unique, or nowhere) may be given with it.
    """
    ser = _resolve(serializer)
    if type(task_name) is not str or not task_name:
        raise TypeError(f"task name must be a non-empty str, got {task_name!r}")
    if isinstance(ser, RawSerializer):
        return _encode_raw_call(
            task_name, args, kwargs, attempt, max_retries, expires, headers, param_names
        )
    env: dict[str, Any] = {"v": ENVELOPE_VERSION, "t": task_name}
    if task_id is not None:
        env["id"] = task_id
    env["a"] = list(args)
    if kwargs:
        for key in kwargs:
            if type(key) is not str:
                raise SerializationError(
                    f"keyword argument names of task {task_name!r} must be str, got {key!r}",
                    task=task_name,
                    value_type=type(key),
                    serializer=ser.name,
                )
        env["k"] = kwargs if type(kwargs) is dict else dict(kwargs)
    if attempt != 1:
        if type(attempt) is not int or attempt < 1:
            raise TypeError(f"attempt must be an int >= 1, got {attempt!r}")
        env["att"] = attempt
    if max_retries is not None:
        if type(max_retries) is not int or max_retries < 0:
            raise TypeError(f"max_retries must be an int >= 0, got {max_retries!r}")
        env["mr"] = max_retries
    if eta is not None:
        _check_number("eta", eta)
        env["eta"] = eta
    if expires is not None:
        _check_number("expires", expires)
        env["exp"] = expires
    if parent_id is not None:
        env["pid"] = parent_id
    if root_id is not None:
        env["rid"] = root_id
    if group_id is not None:
        env["gid"] = group_id
    if headers:
        env["h"] = dict(headers)
    try:
        return ser.dumps(env)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _explain_call(ser, task_name, args, kwargs or {}, headers, param_names, exc) from exc


def encode_positional_call(
    ser: Serializer, task_name: str, args: Sequence[Any], task_id: str
) -> bytes | None:
    """``encode_call(task_name, args, serializer=ser, task_id=task_id)`` for an enveloping
    serializer, in fewer steps (every blocking call pays them); None if the arguments do
    not serialize: call :func:`encode_call`, which says why."""
    try:
        if ser is MSGPACK:
            # The same bytes, but only the id and the arguments packed per call: a map is
            # its entries one after another, and the rest is the same for every call.
            tid = task_id.encode()
            if len(tid) == 32:  # (what delay() makes; the head says 32 bytes)
                head = _CALL_HEADS.get(task_name) or _call_head(task_name)
                return b"".join((head, tid, _ARGS_KEY, ser.dumps(list(args))))
        return ser.dumps({"v": ENVELOPE_VERSION, "t": task_name, "id": task_id, "a": list(args)})
    except (TypeError, ValueError, OverflowError):
        return None


#: Per task name: a msgpack call envelope up to its id's 32 bytes (see _call_head).
_CALL_HEADS: dict[str, bytes] = {}
_ARGS_KEY = MSGPACK.dumps("a")


def _call_head(task_name: str) -> bytes:
    # {"v": ENVELOPE_VERSION, "t": task_name} as the first two entries of a map of four,
    # then "id" and the header of a string of 32 bytes.
    two = MSGPACK.dumps({"v": ENVELOPE_VERSION, "t": task_name})
    head = b"\x84" + two[1:] + MSGPACK.dumps("id") + b"\xd9\x20"
    if len(_CALL_HEADS) < 1024:  # (task names are few; any name can be encoded)
        _CALL_HEADS[task_name] = head
    return head


def _encode_raw_call(
    task_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    attempt: int,
    max_retries: int | None,
    expires: float | None,
    headers: Mapping[str, Any] | None,
    param_names: Sequence[str],
) -> bytes:
    def refuse(message: str) -> SerializationError:
        return SerializationError(
            f"task {task_name!r} uses the raw serializer: {message}",
            task=task_name,
            serializer="raw",
        )

    if kwargs or len(args) != 1:
        raise refuse("it takes exactly one positional bytes argument")
    if attempt != 1 or max_retries is not None or expires is not None or headers:
        raise refuse("a raw payload carries no attempt, max_retries, expires or headers")
    payload = args[0]
    kind = type(payload)
    if kind is bytes:
        return payload  # type: ignore[no-any-return]
    if kind is bytearray or kind is memoryview:
        return bytes(payload)
    name = param_names[0] if param_names else None
    label = f"argument {name!r}" if name else "positional argument 0"
    raise SerializationError(
        f"{label} of task {task_name!r} has type {_type_name(payload)}, which raw cannot"
        " carry; supported: bytes",
        task=task_name,
        argument=label,
        value_type=kind,
        serializer="raw",
    )


def _decode_map(data: bytes, ser: Serializer, what: str) -> dict[Any, Any]:
    return _check_map(ser.loads(data), what)


def _check_map(env: Any, what: str) -> dict[Any, Any]:
    if type(env) is not dict:
        raise EnvelopeError(f"a {what} envelope must be a map, got {_type_name(env)}")
    version = env.get("v")
    if version != ENVELOPE_VERSION or type(version) is not int:
        if type(version) is int and version > ENVELOPE_VERSION:
            raise UnsupportedEnvelopeVersion(version)
        raise EnvelopeError(f"{what} envelope has no valid version 'v': {version!r}")
    return env


def _opt_str(env: dict[Any, Any], key: str) -> str | None:
    value = env.get(key)
    if value is None or type(value) is str:
        return value
    raise EnvelopeError(f"envelope key {key!r} must be a string, got {_type_name(value)}")


def _opt_map(env: dict[Any, Any], key: str) -> dict[str, Any]:
    value = env.get(key)
    if value is None or value == []:  # PHP's json_encode writes an empty array as []
        return {}
    if type(value) is not dict or any(type(name) is not str for name in value):
        raise EnvelopeError(f"envelope key {key!r} must be a map with string keys")
    return value


def _opt_int(env: dict[Any, Any], key: str, minimum: int) -> int | None:
    value = env.get(key)
    if value is None:
        return None
    if type(value) is not int or value < minimum:
        raise EnvelopeError(f"envelope key {key!r} must be an integer >= {minimum}")
    return value


def _opt_time(env: dict[Any, Any], key: str) -> float | None:
    value = env.get(key)
    if value is None:
        return None
    if type(value) is not int and type(value) is not float:
        raise EnvelopeError(f"envelope key {key!r} must be unix seconds (a number)")
    return value


_BASIC_CALL_KEYS: Final = frozenset({"v", "t", "id", "a", "k"})


def decode_call(data: bytes, *, serializer: Serializer | str | None = None) -> Call:
    """The call a job payload describes. ``serializer=None`` detects msgpack or json.

    Raises :class:`DeserializationError` for undecodable bytes, :class:`EnvelopeError` for
    a malformed envelope and :class:`UnsupportedEnvelopeVersion` for a newer one.
    """
    ser = detect_serializer(data) if serializer is None else _resolve(serializer)
    if isinstance(ser, RawSerializer):
        return Call(None, (bytes(data),), {}, serializer=ser)
    env = _decode_map(data, ser, "call")
    get = env.get
    task = get("t")
    if task is not None and type(task) is not str:
        raise EnvelopeError(f"envelope key 't' must be a string, got {_type_name(task)}")
    task_id = get("id")
    if task_id is not None and type(task_id) is not str:
        raise EnvelopeError(f"envelope key 'id' must be a string, got {_type_name(task_id)}")
    args = get("a", ())
    if type(args) is not list and args != ():
        raise EnvelopeError(f"envelope key 'a' must be an array, got {_type_name(args)}")
    kwargs = get("k")
    if kwargs is None:
        kwargs = {}
    elif type(kwargs) is not dict or not all(type(key) is str for key in kwargs):
        kwargs = _opt_map(env, "k")
    if env.keys() <= _BASIC_CALL_KEYS:  # the common case: nothing optional to check
        return Call(task, tuple(args), kwargs, task_id, serializer=ser)
    attempt = _opt_int(env, "att", 1)
    return Call(
        task,
        tuple(args),
        kwargs,
        task_id,
        1 if attempt is None else attempt,
        _opt_int(env, "mr", 0),
        _opt_time(env, "eta"),
        _opt_time(env, "exp"),
        _opt_str(env, "pid"),
        _opt_str(env, "rid"),
        _opt_str(env, "gid"),
        _opt_map(env, "h"),
        ser,
    )


# --- replies ------------------------------------------------------------------------------


def encode_result(
    value: Any, *, serializer: Serializer | str = MSGPACK, task_name: str | None = None
) -> bytes:
    """The WORK_COMPLETE payload for a task's return value."""
    ser = _resolve(serializer)
    if isinstance(ser, RawSerializer):
        return _raw_value(value, task_name, "the return value")
    try:
        return ser.dumps({"v": ENVELOPE_VERSION, "s": "ok", "r": value})
    except (TypeError, ValueError, OverflowError) as exc:
        found = _locate(value, ser.dumps, "return value", 0) or ("return value", value, exc)
        raise _explain(ser, task_name, "the return value", "return value", found) from exc


def encode_chunk(
    value: Any, *, serializer: Serializer | str = MSGPACK, task_name: str | None = None
) -> bytes:
    """The WORK_DATA payload for one streamed partial result."""
    ser = _resolve(serializer)
    if isinstance(ser, RawSerializer):
        return _raw_value(value, task_name, "a streamed chunk")
    try:
        return ser.dumps({"v": ENVELOPE_VERSION, "s": "chunk", "d": value})
    except (TypeError, ValueError, OverflowError) as exc:
        found = _locate(value, ser.dumps, "chunk", 0) or ("chunk", value, exc)
        raise _explain(ser, task_name, "a streamed chunk", "chunk", found) from exc


def encode_state(
    state: str,
    meta: Any = None,
    *,
    serializer: Serializer | str = MSGPACK,
    task_name: str | None = None,
) -> bytes:
    """The WORK_DATA payload for a custom state update (``update_state``)."""
    ser = _resolve(serializer)
    if isinstance(ser, RawSerializer):
        raise SerializationError(
            "raw tasks cannot send state updates (WORK_DATA carries their raw chunks)",
            task=task_name,
            serializer="raw",
        )
    if type(state) is not str:
        raise TypeError(f"state must be a str, got {state!r}")
    try:
        return ser.dumps({"v": ENVELOPE_VERSION, "s": "state", "state": state, "meta": meta})
    except (TypeError, ValueError, OverflowError) as exc:
        found = _locate(meta, ser.dumps, "meta", 0) or ("meta", meta, exc)
        raise _explain(ser, task_name, "the state metadata", "meta", found) from exc


def _raw_value(value: Any, task_name: str | None, label: str) -> bytes:
    kind = type(value)
    if kind is bytes:
        return value  # type: ignore[no-any-return]
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    whose = f" of task {task_name!r}" if task_name else ""
    raise SerializationError(
        f"{label}{whose} has type {_type_name(value)}, but raw tasks must produce bytes",
        task=task_name,
        argument=label,
        value_type=kind,
        serializer="raw",
    )


def _clean(text: str) -> str:
    """``text`` without lone surrogates, which no serializer can carry."""
    return text.encode("utf-8", "replace").decode("utf-8")


def encode_failure(
    failure: Failure | BaseException,
    *,
    serializer: Serializer | str = MSGPACK,
    kind: FailureKind = FailureKind.ERROR,
    attempt: int | None = None,
    eta: float | None = None,
) -> bytes:
    """The WORK_EXCEPTION (or WORK_COMPLETE) payload for a failure.

    An exception is described with :meth:`Failure.from_exception` (``kind``, ``attempt``
    and ``eta`` apply only then). Its args are included when the serializer can carry
    them and left out otherwise. Raw tasks get a json failure envelope.
    """
    if isinstance(failure, BaseException):
        failure = Failure.from_exception(failure, kind=kind, attempt=attempt, eta=eta)
    ser = _resolve(serializer)
    if isinstance(ser, RawSerializer):
        ser = JSON
    env: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "s": "err",
        "kind": failure.kind.value,
        "type": failure.exc_type,
        "msg": failure.message,
        "tb": failure.traceback,
    }
    if failure.attempt is not None:
        env["att"] = failure.attempt
    if failure.eta is not None:
        env["eta"] = failure.eta
    if failure.args is not None:
        env["args"] = list(failure.args)
        try:
            return ser.dumps(env)
        except (TypeError, ValueError, OverflowError):
            del env["args"]  # the message still says what happened
    try:
        return ser.dumps(env)
    except (TypeError, ValueError, OverflowError):
        for key in ("type", "msg", "tb"):
            env[key] = _clean(env[key])
        return ser.dumps(env)


def _failure_from(env: dict[Any, Any]) -> Failure:
    args = env.get("args")
    if args is not None and type(args) is not list:
        raise EnvelopeError("failure envelope key 'args' must be an array")
    return Failure(
        kind=FailureKind.parse(env.get("kind")),
        exc_type=_opt_str(env, "type") or "",
        message=_opt_str(env, "msg") or "",
        traceback=_opt_str(env, "tb") or "",
        args=None if args is None else tuple(args),
        attempt=_opt_int(env, "att", 1),
        eta=_opt_time(env, "eta"),
    )


def decode_reply(data: bytes, *, serializer: Serializer | str | None = None) -> Result | Failure:
    """What a WORK_COMPLETE payload says: the task's value, or a failure sent that way."""
    ser = detect_serializer(data) if serializer is None else _resolve(serializer)
    if isinstance(ser, RawSerializer):
        return Result(bytes(data))
    env = _decode_map(data, ser, "result")
    status = env.get("s")
    if status == "ok":
        return Result(env.get("r"))
    if status == "err":
        return _failure_from(env)
    raise EnvelopeError(f"not a result envelope: status 's' is {status!r}")


_QUICK_KEYS = frozenset({"v", "t", "id", "a", "k"})


def call_head(task_name: str) -> bytes:
    """The bytes every call of ``task_name`` that :func:`encode_positional_call` makes
    starts with (up to its id), for :func:`decode_positional_call`."""
    return _CALL_HEADS.get(task_name) or _call_head(task_name)


def decode_positional_call(data: bytes, head: bytes, task_name: str) -> Call | None:
    """:func:`decode_plain_call` of what :func:`encode_positional_call` makes for
    ``task_name`` (``head``: its :func:`call_head`), read by its layout: the head, the id,
    the "a" key and the arguments, with only the arguments unpacked. None for anything
    else (call :func:`decode_plain_call`). (Every lone job pays this: the general decoding
    costs about three times as much.)"""
    size = len(head)
    if not data.startswith(head) or data[size + 32 : size + 34] != _ARGS_KEY:
        return None
    try:
        task_id = data[size : size + 32].decode()
        # The rest must be the arguments and nothing more (unpackb refuses extra data).
        args = _unpack(data[size + 34 :])
    except Exception:  # decode_plain_call and decode_call have their say
        return None
    if args.__class__ is not list:
        return None
    call = _new_call(Call)
    call.task = task_name
    call.args = tuple(args)
    call.kwargs = {}
    call.task_id = task_id
    call.headers = {}
    return call


def decode_plain_call(data: bytes) -> Call | None:
    """:func:`decode_call` of the common call, a msgpack map with
    nothing but the basic keys, each of the expected type (what ``delay()`` sends); None
    for anything else, which ``decode_call`` then decodes, or refuses with the reason.
    (On a lone job's path every Python call counts: this makes one where ``decode_call``
    makes six.)"""
    if not data or not 0x80 <= data[0] <= 0x8F:  # a msgpack map of up to 15 keys
        return None
    try:
        env = _unpack(data)
    except Exception:  # decode_call says what is wrong
        return None
    if env.__class__ is not dict or not env.keys() <= _QUICK_KEYS:
        return None
    get = env.get
    version = get("v")
    task = get("t")
    task_id = get("id")
    args = get("a", ())
    kwargs = get("k")
    if (
        version.__class__ is not int
        or version != ENVELOPE_VERSION
        or (task is not None and task.__class__ is not str)
        or (task_id is not None and task_id.__class__ is not str)
        or (args.__class__ is not list and args != ())
    ):
        return None
    if kwargs is None:
        kwargs = {}
    elif kwargs.__class__ is not dict or not all(key.__class__ is str for key in kwargs):
        return None
    # Call(task, tuple(args), kwargs, task_id), without the thirteen writes of its
    # __init__: the other fields keep their class defaults (msgpack, attempt 1...).
    call = _new_call(Call)
    call.task = task
    call.args = tuple(args)
    call.kwargs = kwargs
    call.task_id = task_id
    call.headers = {}
    return call


_new_call = object.__new__


def encode_plain_result(value: Any, ser: Serializer, task_name: str) -> bytes:
    """``encode_result(value, serializer=ser, task_name=task_name)``, without its detours
    for the common case (msgpack or json, a value they carry): about half its cost, on the
    path of every answer."""
    try:
        if ser is MSGPACK:
            # The map's entries one after another: the same bytes, without the map.
            return _OK_HEAD + ser.dumps(value)
        if ser is JSON:
            return ser.dumps({"v": ENVELOPE_VERSION, "s": "ok", "r": value})
    except (TypeError, ValueError, OverflowError):
        pass  # encode_result says what it cannot carry, and where
    return encode_result(value, serializer=ser, task_name=task_name)


#: The start of a success reply as gearq's workers write it (encode_plain_result): the
#: map's header, "v", "s" and "r"'s key; the value follows.
_OK_HEAD = MSGPACK.dumps({"v": ENVELOPE_VERSION, "s": "ok", "r": None})[:-1]
_OK_SIZE = len(_OK_HEAD)
_unpackb = msgpack.unpackb
_ext_hook = MSGPACK._ext_hook


def _unpack(data: bytes) -> Any:
    """``MSGPACK.unpack(data)``, its options given as keywords to a direct call: the
    functools.partial it is copies its keywords into a new dict on every call, which costs
    more than decoding a small value (tests/tasks/test_reply_value.py and
    test_positional_call.py keep the results the same)."""
    return _unpackb(
        data, ext_hook=_ext_hook, raw=False, use_list=True, strict_map_key=False, timestamp=3
    )


def reply_value(data: bytes) -> tuple[bool, Any]:
    """:func:`decode_reply`'s common case in fewer steps (every blocking call pays them):
    ``(True, value)`` for a msgpack envelope of a value; ``(False, None)`` for anything
    else (call :func:`decode_reply`)."""
    if data.startswith(_OK_HEAD):
        # Just the value: no map, no look-ups (anything more after it is no envelope of
        # ours, and msgpack refuses it: the full decoding below then has its say).
        try:
            return True, _unpack(data[_OK_SIZE:])
        except Exception:
            pass
    if data and 0x80 <= data[0] <= 0x8F:  # a small msgpack map
        try:
            env = MSGPACK.unpack(data)
        except Exception:  # decode_reply says what is wrong
            return False, None
        version = env.get("v")
        if env.get("s") == "ok" and version == ENVELOPE_VERSION and type(version) is int:
            return True, env.get("r")
    return False, None


def decode_failure(data: bytes, *, serializer: Serializer | str | None = None) -> Failure:
    """What a WORK_EXCEPTION payload says.

    Lenient on purpose: bytes that are not a gearq envelope at all (a non-gearq worker's
    plain text) give a Failure of kind ERROR whose message is that text. A gearq envelope
    of a newer version still raises :class:`UnsupportedEnvelopeVersion`.
    """
    ser: Serializer | None
    if serializer is None:
        try:
            ser = detect_serializer(data)
        except EnvelopeError:
            ser = None
    else:
        ser = _resolve(serializer)
        if isinstance(ser, RawSerializer):
            ser = JSON
    env: Any = None
    if ser is not None:
        try:
            env = ser.loads(data)
        except DeserializationError:
            env = None
    if type(env) is not dict or "v" not in env:
        return Failure(
            kind=FailureKind.ERROR, exc_type="", message=bytes(data).decode("utf-8", "replace")
        )
    env = _check_map(env, "failure")
    if env.get("s") != "err":
        raise EnvelopeError(f"not a failure envelope: status 's' is {env.get('s')!r}")
    return _failure_from(env)


def decode_data(data: bytes, *, serializer: Serializer | str | None = None) -> Chunk | StateUpdate:
    """What a WORK_DATA payload says: a streamed chunk or a state update."""
    ser = detect_serializer(data) if serializer is None else _resolve(serializer)
    if isinstance(ser, RawSerializer):
        return Chunk(bytes(data))
    env = _decode_map(data, ser, "data")
    status = env.get("s")
    if status == "chunk":
        return Chunk(env.get("d"))
    if status == "state":
        state = env.get("state")
        if type(state) is not str:
            raise EnvelopeError("state envelope key 'state' must be a string")
        return StateUpdate(state, env.get("meta"))
    raise EnvelopeError(f"not a data envelope: status 's' is {status!r}")
