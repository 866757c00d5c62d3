"""Serializers: how task arguments, results and envelopes become bytes, and back.

Three are built in, and none of them can run code while decoding (there is no pickle):

``msgpack`` (the default)
    msgpack plus the extension types below, so Python values come back with their types:
    tuples stay tuples, lists stay lists, sets stay sets. Readable from any language with a
    msgpack library; the ext layouts are simple enough to decode by hand.
``json``
    Only what JSON has: None, bool, int, finite float, str, list, and dict with str keys.
    Anything else (bytes, tuples, sets, datetimes, NaN) is refused, so a value never comes
    back as something else. Meant for PHP, Go and Node peers.
``raw``
    Bytes in, bytes out, and no envelope at all (see :mod:`gearq.tasks.envelope`).

msgpack extension types (type code: payload)::

    1  datetime   UTF-8 ISO 8601 ``YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM[:SS[.ffffff]]]``;
                  no offset means a naive datetime
    2  date       UTF-8 ``YYYY-MM-DD``
    3  time       UTF-8 ``HH:MM:SS[.ffffff][+HH:MM[:SS[.ffffff]]]``; no offset means naive
    4  timedelta  msgpack array ``[days, seconds, microseconds]`` (Python's normalised form:
                  0 <= seconds < 86400, 0 <= microseconds < 1000000; days may be negative)
    5  Decimal    UTF-8 text as Python's ``str(Decimal)``: ``"1.10"``, ``"-0"``, ``"1E+3"``,
                  ``"NaN"``, ``"sNaN"``, ``"Infinity"``, ``"-Infinity"``
    6  UUID       the 16 bytes of the UUID, in RFC 4122 (big-endian) order
    7  set        a msgpack array of the elements
    8  frozenset  a msgpack array of the elements
    9  tuple      a msgpack array of the elements
    10 int        an integer outside msgpack's range (-2**63 .. 2**64-1), as UTF-8 decimal
                  text with an optional leading ``-``

Arrays inside ext payloads are full msgpack documents and may themselves hold ext values.
When reading, the standard msgpack timestamp (ext -1, what Go and Node libraries write for
their time types) is accepted and becomes an aware UTC datetime; gearq itself always writes
ext 1. Offsets are kept, time zone *names* are not: a ``ZoneInfo("Europe/Paris")`` datetime
comes back with ``timezone(timedelta(hours=1))`` (the same instant and offset). ``fold`` is
not carried. ``bytearray`` and ``memoryview`` travel as msgpack bin and come back as
``bytes``. Subclasses of the supported types (``IntEnum``, ``OrderedDict``, named tuples...)
are refused rather than silently flattened.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import msgpack

from ..protocol.errors import GearqError

__all__ = [
    "DEFAULT_SERIALIZER",
    "JSON",
    "MSGPACK",
    "RAW",
    "DeserializationError",
    "ExtType",
    "JsonSerializer",
    "MsgpackSerializer",
    "RawSerializer",
    "SerializationError",
    "Serializer",
    "UnknownSerializer",
    "get_serializer",
    "register_serializer",
    "type_name",
]


class SerializationError(GearqError, TypeError):
    """A value cannot be carried by the chosen serializer.

    Raised on the sending side (``.delay()``, a task's return) before anything is sent.
    ``argument`` names the task argument (or ``"return value"``, ``"header 'x'"``...),
    ``path`` the place inside it (``when['start'][2]``), ``value_type`` the offending type.
    """

    def __init__(
        self,
        message: str,
        *,
        task: str | None = None,
        argument: str | None = None,
        path: str | None = None,
        value_type: type | None = None,
        serializer: str | None = None,
    ) -> None:
        super().__init__(message)
        self.task = task
        self.argument = argument
        self.path = path
        self.value_type = value_type
        self.serializer = serializer


class DeserializationError(GearqError, ValueError):
    """Bytes could not be decoded by the serializer (corrupt, truncated, or not its format)."""


class UnknownSerializer(GearqError, LookupError):
    """No serializer is registered under that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown serializer {name!r}; known: {', '.join(known)}")
        self.name = name


@runtime_checkable
class Serializer(Protocol):
    """What a serializer is: a name, a MIME type, and a pair of functions.

    ``dumps`` raises :class:`SerializationError` (or another ``TypeError``/``ValueError``)
    for what it cannot carry; ``loads`` raises :class:`DeserializationError`.
    """

    @property
    def name(self) -> str: ...

    @property
    def content_type(self) -> str: ...

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


# --- msgpack ------------------------------------------------------------------------------


class ExtType:
    """The msgpack extension type codes gearq writes (documented in docs/wire-format.md)."""

    DATETIME: Final = 1
    DATE: Final = 2
    TIME: Final = 3
    TIMEDELTA: Final = 4
    DECIMAL: Final = 5
    UUID: Final = 6
    SET: Final = 7
    FROZENSET: Final = 8
    TUPLE: Final = 9
    BIGINT: Final = 10


def _unsupported(obj: object, serializer: str) -> SerializationError:
    kind = type(obj)
    return SerializationError(
        f"type {type_name(kind)} is not supported by {serializer}",
        value_type=kind,
        serializer=serializer,
    )


def type_name(kind: type) -> str:
    """``Name`` for builtins, ``module.QualName`` otherwise (as error messages show types)."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{6})")
_T = TypeVar("_T", datetime, time)


def _fix_offset(value: _T, text: str) -> _T:
    """``value`` with the exact offset of ``text`` (``fromisoformat`` drops the microseconds
    of an offset such as ``+05:30:00.000001`` on some Python versions)."""
    if value.tzinfo is None:
        return value
    offset = text[max(text.rfind("+"), text.rfind("-")) :]
    if "." not in offset:
        return value
    match = _OFFSET.fullmatch(offset)
    if match is None:
        raise ValueError(f"bad UTC offset {offset!r}")
    sign, hours, minutes, seconds, micros = match.groups()
    delta = timedelta(
        hours=int(hours), minutes=int(minutes), seconds=int(seconds), microseconds=int(micros)
    )
    return value.replace(tzinfo=timezone(-delta if sign == "-" else delta))


class MsgpackSerializer:
    """msgpack with gearq's extension types; the default serializer."""

    name: Final = "msgpack"
    content_type: Final = "application/msgpack"
    supported: Final = (
        "None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset, "
        "datetime, date, time, timedelta, Decimal, UUID"
    )

    def __init__(self) -> None:
        pack = msgpack.packb
        default = self._default

        def pack_items(items: Any) -> bytes:
            return pack(items, default=default, use_bin_type=True, strict_types=True)

        self._pack_items = pack_items
        #: :meth:`loads` without its error translation (msgpack's own errors, or an ext
        #: decoder's): one C call, for hot paths that fall back to ``loads`` on failure.
        self.unpack: Callable[[bytes], Any] = functools.partial(
            msgpack.unpackb,
            ext_hook=self._ext_hook,
            raw=False,
            use_list=True,
            strict_map_key=False,
            timestamp=3,
        )
        # A Packer per thread for dumps(): packb() builds a new one (and its buffer) per
        # call, which costs 4x the packing of a small envelope. The encoders of nested
        # ext types pack with packb(), never with this packer (which is mid-pack then).
        self._local = threading.local()
        # Exact-type dispatch: subclasses are refused on purpose (see the module docstring).
        self._encoders: dict[type, Callable[[Any], msgpack.ExtType]] = {
            datetime: lambda v: msgpack.ExtType(ExtType.DATETIME, v.isoformat().encode()),
            date: lambda v: msgpack.ExtType(ExtType.DATE, v.isoformat().encode()),
            time: lambda v: msgpack.ExtType(ExtType.TIME, v.isoformat().encode()),
            timedelta: lambda v: msgpack.ExtType(
                ExtType.TIMEDELTA, pack_items([v.days, v.seconds, v.microseconds])
            ),
            Decimal: lambda v: msgpack.ExtType(ExtType.DECIMAL, str(v).encode()),
            uuid.UUID: lambda v: msgpack.ExtType(ExtType.UUID, v.bytes),
            set: lambda v: msgpack.ExtType(ExtType.SET, pack_items(list(v))),
            frozenset: lambda v: msgpack.ExtType(ExtType.FROZENSET, pack_items(list(v))),
            tuple: lambda v: msgpack.ExtType(ExtType.TUPLE, pack_items(list(v))),
            # msgpack calls default for ints outside -2**63 .. 2**64-1.
            int: lambda v: msgpack.ExtType(ExtType.BIGINT, str(v).encode()),
        }

    def _default(self, obj: Any) -> msgpack.ExtType:
        encoder = self._encoders.get(type(obj))
        if encoder is None:
            raise _unsupported(obj, "msgpack")
        return encoder(obj)

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == ExtType.TUPLE:
            return tuple(self.unpack(data))
        if code == ExtType.DATETIME:
            text = data.decode()
            return _fix_offset(datetime.fromisoformat(text), text)
        if code == ExtType.SET:
            return set(self.unpack(data))
        if code == ExtType.FROZENSET:
            return frozenset(self.unpack(data))
        if code == ExtType.DATE:
            return date.fromisoformat(data.decode())
        if code == ExtType.TIME:
            text = data.decode()
            return _fix_offset(time.fromisoformat(text), text)
        if code == ExtType.TIMEDELTA:
            parts = self.unpack(data)
            if (
                type(parts) is not list
                or len(parts) != 3
                or any(type(part) is not int for part in parts)
            ):
                raise ValueError("timedelta ext payload must be [days, seconds, microseconds]")
            return timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])
        if code == ExtType.DECIMAL:
            return Decimal(data.decode())
        if code == ExtType.UUID:
            return uuid.UUID(bytes=data)
        if code == ExtType.BIGINT:
            text = data.decode("ascii")
            if not text.lstrip("-").isdigit() or text.count("-") > int(text.startswith("-")):
                raise ValueError(f"bad big int ext payload {text[:40]!r}")
            return int(text)
        raise ValueError(f"unknown msgpack ext type {code}")

    def dumps(self, obj: Any) -> bytes:
        try:
            packer = self._local.packer
        except AttributeError:
            packer = self._local.packer = msgpack.Packer(
                default=self._default, use_bin_type=True, strict_types=True
            )
        return packer.pack(obj)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        try:
            return self.unpack(data)
        except Exception as exc:  # any failure inside msgpack or an ext decoder
            raise DeserializationError(f"cannot decode msgpack data: {exc}") from exc

    def __repr__(self) -> str:
        return "<Serializer msgpack>"


# --- json ---------------------------------------------------------------------------------

_MAX_DEPTH: Final = 512


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


class JsonSerializer:
    """Plain JSON: only JSON's own types, so every peer reads back exactly what was sent."""

    name: Final = "json"
    content_type: Final = "application/json"
    supported: Final = "None, bool, int, float (finite), str, list, dict with str keys"

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
        )
        self._decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def _check(self, obj: Any, depth: int) -> None:
        kind = type(obj)
        if kind is str or kind is int or kind is bool or obj is None:
            return
        if kind is float:
            if obj != obj or obj in (float("inf"), float("-inf")):
                raise ValueError(f"float {obj!r} is not valid JSON")
            return
        if depth >= _MAX_DEPTH:
            raise ValueError(f"nested deeper than {_MAX_DEPTH} levels (or circular)")
        if kind is list:
            for item in obj:
                self._check(item, depth + 1)
            return
        if kind is dict:
            for key, value in obj.items():
                if type(key) is not str:
                    raise SerializationError(
                        f"dict key {key!r} has type {type_name(type(key))};"
                        " JSON object keys must be str",
                        value_type=type(key),
                        serializer="json",
                    )
                self._check(value, depth + 1)
            return
        raise _unsupported(obj, "json")

    def dumps(self, obj: Any) -> bytes:
        self._check(obj, 0)
        text = self._encoder.encode(obj)
        try:
            return text.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"str is not valid Unicode (lone surrogate): {exc}") from None

    def loads(self, data: bytes) -> Any:
        try:
            return self._decoder.decode(data.decode())
        except Exception as exc:
            raise DeserializationError(f"cannot decode JSON data: {exc}") from exc

    def __repr__(self) -> str:
        return "<Serializer json>"


# --- raw ----------------------------------------------------------------------------------


class RawSerializer:
    """Bytes in, bytes out. The envelope layer sends raw payloads without an envelope."""

    name: Final = "raw"
    content_type: Final = "application/octet-stream"
    supported: Final = "bytes (bytearray and memoryview are sent as bytes)"

    def dumps(self, obj: Any) -> bytes:
        kind = type(obj)
        if kind is bytes:
            return obj  # type: ignore[no-any-return]
        if kind is bytearray or kind is memoryview:
            return bytes(obj)
        raise _unsupported(obj, "raw")

    def loads(self, data: bytes) -> bytes:
        return bytes(data)

    def __repr__(self) -> str:
        return "<Serializer raw>"


# --- registry -----------------------------------------------------------------------------

MSGPACK: Final = MsgpackSerializer()
JSON: Final = JsonSerializer()
RAW: Final = RawSerializer()
DEFAULT_SERIALIZER: Final = "msgpack"

_registry: dict[str, Serializer] = {MSGPACK.name: MSGPACK, JSON.name: JSON, RAW.name: RAW}


def get_serializer(name: str | Serializer) -> Serializer:
    """The serializer registered as ``name``; a :class:`Serializer` is returned as is."""
    if isinstance(name, str):
        try:
            return _registry[name]
        except KeyError:
            raise UnknownSerializer(name, sorted(_registry)) from None
    return name


def register_serializer(serializer: Serializer, *, replace: bool = False) -> None:
    """Make ``serializer`` available to :func:`get_serializer` under its ``name``."""
    if not replace and serializer.name in _registry:
        raise ValueError(f"a serializer named {serializer.name!r} is already registered")
    _registry[serializer.name] = serializer
