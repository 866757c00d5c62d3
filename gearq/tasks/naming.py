"""What a task's job is called on gearmand: its function name and its unique id.

Function names
    ``task_name``, or ``queue:task_name`` when the call is routed to a queue. Queue names
    cannot contain ``:``; task names can (the first ``:`` separates).

Unique ids (at most 63 bytes, the most gearmand 1.1.20 handles correctly)
    The first byte is a namespace: ``b`` for background jobs, ``f`` for foreground ones.
    gearmand cancels a background job when a foreground client that coalesced onto it
    disconnects, so the two must never share a unique. The second byte says what follows:

    ``b:<key>``             the key itself, when it is printable ASCII without spaces or
                            ``#`` and fits
    ``b~<prefix>~<hash>``   a longer or unprintable key: up to 28 readable leading bytes,
                            then 32 hex digits of BLAKE2b (16-byte digest) of the whole key
    ``b=<task>~<hash>``     "same arguments": the task name (cut to fit) and 32 hex digits
                            of BLAKE2b of the task name and a canonical form of the
                            arguments (dict and set order do not matter)

    Attempts after the first append ``#<n>`` (``b:3f2a...#2``), so a retry never coalesces
    onto the attempt that is still running. The namespace, marker and attempt suffix are
    outside the hash, so a PHP or Go client can compute the same unique for a key
    (BLAKE2b with a 16-byte digest, no key, no personalisation: libsodium's
    ``crypto_generichash(key, '', 16)``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import msgpack

from ..protocol.errors import ArgumentError
from ..protocol.limits import MAX_UNIQUE, check_function
from .serializers import MSGPACK

__all__ = [
    "SAME_ARGS",
    "UniqueSpec",
    "args_unique",
    "function_name",
    "key_unique",
    "make_unique",
    "new_task_id",
    "split_function_name",
]

SAME_ARGS: Final = "-"
"""The unique spec meaning "coalesce calls with the same task and arguments"."""

UniqueSpec: TypeAlias = str | bytes | Callable[..., str | bytes]

_HASH_HEX: Final = 32
_READABLE: Final = frozenset(range(0x21, 0x7F)) - {ord("#")}


def new_task_id() -> str:
    """A fresh random task id: 32 lowercase hex digits (a UUID4)."""
    return uuid.uuid4().hex


def function_name(task_name: str, queue: str | None = None) -> bytes:
    """The Gearman function for ``task_name`` (on ``queue``, when given)."""
    if not task_name:
        raise ArgumentError("task name is empty")
    if queue is not None:
        if not queue or ":" in queue:
            raise ArgumentError(f"queue name {queue!r} is empty or contains ':'")
        task_name = f"{queue}:{task_name}"
    return check_function(task_name.encode())


def split_function_name(function: bytes | str) -> tuple[str | None, str]:
    """``(queue, task_name)`` of a function name; the queue is None when there is none."""
    text = function.decode() if isinstance(function, bytes) else function
    queue, sep, task = text.partition(":")
    return (queue, task) if sep else (None, text)


def _namespace(background: bool) -> bytes:
    return b"b" if background else b"f"


def _suffix(attempt: int) -> bytes:
    if type(attempt) is not int or attempt < 1:
        raise ArgumentError(f"attempt must be an int >= 1, got {attempt!r}")
    return b"" if attempt == 1 else b"#%d" % attempt


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_HASH_HEX // 2).hexdigest().encode()


def _readable_prefix(data: bytes, limit: int) -> bytes:
    end = 0
    for byte in data[:limit]:
        if byte not in _READABLE:
            break
        end += 1
    return data[:end]


def key_unique(key: str | bytes, *, background: bool, attempt: int = 1) -> bytes:
    """The unique for a caller-chosen key (or a task id)."""
    raw = key.encode() if isinstance(key, str) else key
    if type(raw) is not bytes:
        raise ArgumentError(f"a unique key must be str or bytes, got {type(key).__name__}")
    if not raw:
        raise ArgumentError("a unique key must not be empty")
    ns = _namespace(background)
    suffix = _suffix(attempt)
    if 2 + len(raw) + len(suffix) <= MAX_UNIQUE and all(byte in _READABLE for byte in raw):
        return ns + b":" + raw + suffix
    room = MAX_UNIQUE - 3 - _HASH_HEX - len(suffix)
    return ns + b"~" + _readable_prefix(raw, room) + b"~" + _digest(raw) + suffix


def _canonical(value: Any) -> bytes:
    """Bytes that are equal for equal argument structures (dict and set order ignored)."""
    kind = type(value)
    if kind is list or kind is tuple:
        tag = b"L" if kind is list else b"T"
        return tag + msgpack.packb([_canonical(item) for item in value])
    if kind is dict:
        pairs = sorted((_canonical(k), _canonical(v)) for k, v in value.items())
        return b"D" + msgpack.packb([part for pair in pairs for part in pair])
    if kind is set or kind is frozenset:
        tag = b"S" if kind is set else b"F"
        return tag + msgpack.packb(sorted(_canonical(item) for item in value))
    return b"V" + MSGPACK.dumps(value)


def args_unique(
    task_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    background: bool,
    attempt: int = 1,
) -> bytes:
    """The unique for "the same call": equal task name and arguments give equal uniques.

    Arguments must be of the msgpack serializer's types (:class:`SerializationError`).
    """
    ns = _namespace(background)
    suffix = _suffix(attempt)
    body = _canonical([task_name, list(args), dict(kwargs)])
    room = MAX_UNIQUE - 3 - _HASH_HEX - len(suffix)
    prefix = _readable_prefix(task_name.encode(), room)
    return ns + b"=" + prefix + b"~" + _digest(body) + suffix


def make_unique(
    spec: UniqueSpec,
    *,
    task_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    background: bool,
    attempt: int = 1,
) -> bytes:
    """The unique for a task's ``unique=`` option.

    ``spec`` is a key (str or bytes), :data:`SAME_ARGS` (``"-"``) for "same task and
    arguments", or a callable that gets the call's arguments and returns a key.
    """
    if callable(spec):
        key = spec(*args, **kwargs)
        if not isinstance(key, (str, bytes)):
            raise ArgumentError(
                f"the unique callable of task {task_name!r} returned {type(key).__name__},"
                " not str or bytes"
            )
        return key_unique(key, background=background, attempt=attempt)
    if spec == SAME_ARGS:
        return args_unique(task_name, args, kwargs, background=background, attempt=attempt)
    return key_unique(spec, background=background, attempt=attempt)
