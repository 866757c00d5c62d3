"""gearmand's text admin protocol, sans-IO: commands to bytes, reply bytes to typed records.

The admin protocol shares gearmand's port with the binary protocol: a request whose first byte
is not NUL is read as a text line. This module only builds command lines and parses replies;
the caller owns the socket::

    parser = AdminParser()
    sock.sendall(parser.send(status()) + parser.send(version()))
    while parser.pending:
        for reply in parser.feed(sock.recv(65536)):
            handle(reply.command, reply.result())   # result() raises AdminError for ERR

Replies are matched to commands strictly in order, which is how gearmand answers them, so
any number of commands may be pipelined on one connection.

What gearmand 1.1.20 sends (checked against the real server):

* List replies (``status``, ``prioritystatus``, ``workers``, ``show jobs``,
  ``show unique jobs``) are lines ending ``\\n``, closed by the line ``.``.
* ``OK`` and ``ERR`` lines end ``\\r\\n``, ``OK <value>`` lines end ``\\n``. Both endings are
  accepted everywhere; a ``\\r`` right before a ``\\n`` is never part of a value.
* ``ERR <CODE> <message>``: the message has its spaces written as ``+``; they are turned
  back into spaces (nothing else is decoded: gearmand does no real URL encoding, it pastes
  the offending command after a literal ``Unknown+server+command``).
* ``drop function`` answers in free text, ``ERR function not found`` or
  ``ERR there are still connected workers or executing clients``. Those become the codes
  ``FUNCTION_NOT_FOUND`` and ``FUNCTION_IN_USE`` with the text as message. Any other ERR
  line whose first word is not an upper-case code gets the code ``UNSPECIFIED``.

Names, handles and uniques are decoded as UTF-8 with ``surrogateescape``: gearmand treats
them as bytes, and this keeps any byte string intact on the way back in (every command
function accepts such a ``str`` as well as ``bytes``).

Ambiguities of the format that no parser can resolve (gearq itself avoids them by never
putting spaces in client ids or function names, and by using UUID uniques):

* ``workers``: client ids (SET_CLIENT_ID) and function names may both contain spaces, and
  ``" : "`` separates them. A line is split at the *last* ``" :"`` that is followed by a
  space or the end of the line; a function literally named ``:`` ends up in the client id.
  A client id of ``-`` cannot be told apart from "no client id" (both give ``None``).
* ``show unique jobs``: a unique of ``.`` ends the list early, a unique holding a newline
  splits into two entries, and a first unique that looks like ``ERR SOME_CODE ...`` is read
  as an error reply.
* A name or unique that ends with ``\\r`` loses it.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from .errors import AdminError, ArgumentError, PacketTooLarge, ProtocolError

__all__ = [
    "DEFAULT_MAX_REPLY",
    "DEFAULT_MAX_REPLY_LINE",
    "MAX_COMMAND_LINE",
    "AdminCommand",
    "AdminParser",
    "AdminReply",
    "FunctionStatus",
    "JobInfo",
    "PriorityStatus",
    "ReplyKind",
    "WorkerInfo",
    "cancel_job",
    "create_function",
    "drop_function",
    "getpid",
    "maxqueue",
    "parse_reply",
    "priority_status",
    "show_jobs",
    "show_unique_jobs",
    "status",
    "verbose",
    "version",
    "workers",
]

T = TypeVar("T")

# gearmand reads a command into an 8 KiB buffer: a line of 8192 bytes including its "\n" is
# answered, one byte more and the connection is closed without a reply.
MAX_COMMAND_LINE = 8192
# A reply line is one function, job or connection; 64 KiB is far beyond any sane one (a
# worker with thousands of functions), yet small enough that garbage is caught quickly.
DEFAULT_MAX_REPLY_LINE = 64 * 1024
# `show jobs` with 300k queued jobs is about 5 MB; allow well past that, but not unbounded.
DEFAULT_MAX_REPLY = 64 * 1024 * 1024

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class FunctionStatus:
    """One line of ``status``: a function gearmand knows (even with no jobs or workers left)."""

    function: str
    #: Queued plus running jobs.
    total: int
    running: int
    #: Connections that registered the function (a worker that sent CAN_DO twice counts twice).
    workers: int

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker."""
        # Clamped because the two counters are separate in gearmand; a skewed snapshot must
        # not show up as a negative queue length on a dashboard.
        return max(self.total - self.running, 0)


@dataclass(frozen=True, slots=True)
class PriorityStatus:
    """One line of ``prioritystatus``: *queued* (not running) jobs per priority."""

    function: str
    high: int
    normal: int
    low: int
    workers: int

    @property
    def queued(self) -> int:
        """Queued jobs over all priorities."""
        return self.high + self.normal + self.low


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One line of ``workers``: one connection (clients and admin connections included)."""

    fd: int
    ip: str
    #: The SET_CLIENT_ID value, ``None`` when the connection never set one.
    client_id: str | None
    #: Registered functions, last registered first (gearmand's order).
    functions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One line of ``show jobs``."""

    handle: str
    #: How often the job was handed back after its worker died or gave it up.
    retries: int
    #: IGNORE_JOB: cancelled, or every foreground client left; the next GRAB discards it.
    ignored: bool
    #: JOB_QUEUED: a background job held by the queue layer (also with the builtin queue).
    #: False for foreground jobs, and for background jobs after ``cancel job``.
    queued: bool


# --------------------------------------------------------------------------------------------
# Commands


class ReplyKind(enum.Enum):
    """The shape of reply a command gets, which decides how its bytes are parsed."""

    #: ``OK`` alone; the value is ``None``.
    OK = "ok"
    #: ``OK <text>``; the value is the text (``version``, ``verbose``).
    TEXT = "text"
    #: ``OK <decimal>``; the value is an int (``getpid``).
    INT = "int"
    STATUS = "status"
    PRIORITY_STATUS = "prioritystatus"
    WORKERS = "workers"
    JOBS = "jobs"
    UNIQUE_JOBS = "unique_jobs"


_LIST_KINDS = frozenset(
    {
        ReplyKind.STATUS,
        ReplyKind.PRIORITY_STATUS,
        ReplyKind.WORKERS,
        ReplyKind.JOBS,
        ReplyKind.UNIQUE_JOBS,
    }
)


@dataclass(frozen=True, slots=True)
class AdminCommand(Generic[T]):
    """A command line ready to send, and the kind of reply it expects.

    The type parameter is the parsed reply value. The functions below build every command
    gearmand 1.1.20 knows; construct one directly for anything else (for instance
    ``AdminCommand(b"shutdown\\n", ReplyKind.OK)`` for servers that have it).
    """

    line: bytes
    kind: ReplyKind

    def __post_init__(self) -> None:
        # A line without its end, or with two, would leave the caller waiting for a reply
        # that never comes, or pair every later reply with the wrong command.
        line = self.line
        if not line.endswith(b"\n") or line.count(b"\n") != 1 or b"\r" in line[:-2]:
            raise ArgumentError(f"admin command must be one line ending in LF, got {line!r}")
        if len(line) > MAX_COMMAND_LINE:
            raise ArgumentError(
                f"admin command is {len(line)} bytes, gearmand closes the connection past"
                f" {MAX_COMMAND_LINE} (including the line end)"
            )

    def __bytes__(self) -> bytes:
        return self.line


@dataclass(frozen=True, slots=True)
class AdminReply(Generic[T]):
    """The answer to one command: its parsed value, or the server's ``ERR`` as an error."""

    command: AdminCommand[T]
    value: T | None = None
    error: AdminError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> T:
        """The value, or raise the :class:`AdminError` the server answered with."""
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


_FORBIDDEN = re.compile(rb"[ \r\n\0]")
_FORBIDDEN_NAMES = {b" ": "a space", b"\r": "a CR", b"\n": "a LF", b"\0": "a NUL byte"}
_MAX_INT32 = 2**31 - 1


def _token(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        try:
            raw = value.encode(_ENCODING, _ERRORS)
        except UnicodeEncodeError as exc:
            raise ArgumentError(f"{what} {value!r} cannot be encoded as UTF-8") from exc
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise ArgumentError(f"{what} must be str or bytes, got {type(value).__name__}")
    if not raw:
        # gearmand skips empty tokens, so the command would arrive with an argument missing.
        raise ArgumentError(f"{what} is empty")
    bad = _FORBIDDEN.search(raw)
    if bad is not None:
        # gearmand splits the line on spaces and ends it at CR/LF; a NUL would end the C
        # string early. Any of them would turn the argument into something else.
        raise ArgumentError(
            f"{what} {value!r} contains {_FORBIDDEN_NAMES[bad.group()]}, which the admin"
            " protocol cannot carry"
        )
    return raw


def _queue_size(value: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{what} must be an int, got {value!r}")
    # gearmand reads it with atoi() into an int: negative means unlimited, like 0, and
    # anything past INT32_MAX is undefined; insist on the one spelling of each meaning.
    if not 0 <= value <= _MAX_INT32:
        raise ArgumentError(f"{what} must be 0 (unlimited) to {_MAX_INT32}, got {value}")
    return str(value).encode("ascii")


def _command(kind: ReplyKind, *tokens: bytes, end: bytes = b"\n") -> AdminCommand[Any]:
    return AdminCommand(b" ".join(tokens) + end, kind)


_STATUS: AdminCommand[tuple[FunctionStatus, ...]] = _command(ReplyKind.STATUS, b"status")
_PRIORITY_STATUS: AdminCommand[tuple[PriorityStatus, ...]] = _command(
    ReplyKind.PRIORITY_STATUS, b"prioritystatus"
)
_WORKERS: AdminCommand[tuple[WorkerInfo, ...]] = _command(ReplyKind.WORKERS, b"workers")
_SHOW_JOBS: AdminCommand[tuple[JobInfo, ...]] = _command(ReplyKind.JOBS, b"show", b"jobs")
_SHOW_UNIQUE_JOBS: AdminCommand[tuple[str, ...]] = _command(
    ReplyKind.UNIQUE_JOBS, b"show", b"unique", b"jobs"
)
_VERSION: AdminCommand[str] = _command(ReplyKind.TEXT, b"version")
_GETPID: AdminCommand[int] = _command(ReplyKind.INT, b"getpid")
_VERBOSE: AdminCommand[str] = _command(ReplyKind.TEXT, b"verbose")


def status() -> AdminCommand[tuple[FunctionStatus, ...]]:
    """``status``: total, running and worker counts for every known function."""
    return _STATUS


def priority_status() -> AdminCommand[tuple[PriorityStatus, ...]]:
    """``prioritystatus``: queued jobs per priority for every known function."""
    return _PRIORITY_STATUS


def workers() -> AdminCommand[tuple[WorkerInfo, ...]]:
    """``workers``: every connection with its client id and registered functions."""
    return _WORKERS


def show_jobs() -> AdminCommand[tuple[JobInfo, ...]]:
    """``show jobs``: every job the server holds."""
    return _SHOW_JOBS


def show_unique_jobs() -> AdminCommand[tuple[str, ...]]:
    """``show unique jobs``: the unique of every job (``""`` for jobs submitted without)."""
    return _SHOW_UNIQUE_JOBS


def version() -> AdminCommand[str]:
    """``version``: the server version, e.g. ``"1.1.20+ds"``."""
    return _VERSION


def getpid() -> AdminCommand[int]:
    """``getpid``: the server's process id."""
    return _GETPID


def verbose() -> AdminCommand[str]:
    """``verbose``: the server's log level name, e.g. ``"ERROR"`` (read-only in 1.1.20)."""
    return _VERBOSE


def cancel_job(handle: str | bytes) -> AdminCommand[None]:
    """``cancel job <handle>``; fails with ``UNKNOWN_JOB`` for a handle the server lacks.

    gearmand 1.1.20 marks a queued job ignored (``show jobs`` then shows it with
    ``ignored=True``, and ``status`` keeps counting it) and discards it at the next GRAB.
    """
    return _command(ReplyKind.OK, b"cancel", b"job", _token(handle, "job handle"))


_PRIORITY_NAMES = ("high", "normal", "low")


def maxqueue(
    function: str | bytes, size: int | tuple[int, int, int] | None = None
) -> AdminCommand[None]:
    """``maxqueue <function> [<size> | <high> <normal> <low>]``: cap a function's queue.

    ``size=None`` restores the default, unlimited (gearmand resets all priorities when no
    size is given). 0 means unlimited. gearmand compares each limit with the function's
    total (queued plus running) jobs, and silently ignores functions it does not know yet.
    """
    tokens = [b"maxqueue", _token(function, "function name")]
    if isinstance(size, tuple):
        if len(size) != 3:
            raise ArgumentError(f"maxqueue takes one size or (high, normal, low), got {size!r}")
        tokens += [
            _queue_size(s, f"{name} queue size")
            for s, name in zip(size, _PRIORITY_NAMES, strict=True)
        ]
    elif size is not None:
        tokens.append(_queue_size(size, "queue size"))
    return _command(ReplyKind.OK, *tokens)


def create_function(function: str | bytes) -> AdminCommand[None]:
    """``create function <function>``: make the function known without any job or worker.

    gearmand 1.1.20 takes the name's length as "token length minus 2", assuming the line
    ended ``\\r\\n`` (with ``\\n`` alone, ``newf`` creates ``new``). The line is therefore sent
    with ``\\r\\n``, which every server strips, so the name arrives whole.
    """
    return _command(
        ReplyKind.OK, b"create", b"function", _token(function, "function name"), end=b"\r\n"
    )


def drop_function(function: str | bytes) -> AdminCommand[None]:
    """``drop function <function>``: make the server forget a function.

    Fails with ``FUNCTION_NOT_FOUND``, or ``FUNCTION_IN_USE`` while workers have it
    registered or jobs of it are running. gearmand 1.1.20 matches the name
    case-insensitively, and drops a function that still has *queued* jobs: those jobs stay
    in ``show jobs`` but no worker can get them any more, even after registering the
    function again. Check ``status`` first.
    """
    return _command(ReplyKind.OK, b"drop", b"function", _token(function, "function name"))


# --------------------------------------------------------------------------------------------
# Reply parsing

_ERR_CODE = re.compile(rb"[A-Z][A-Z0-9_]*\Z")
# A list line that starts like this is an error only on the first line; gearmand's codes
# are upper-case identifiers.
_LIST_ERR = re.compile(rb"ERR(?: [A-Z][A-Z0-9_]*(?: |\Z)|\Z)")
_FREE_TEXT_CODES = {
    b"function not found": "FUNCTION_NOT_FOUND",
    b"there are still connected workers or executing clients": "FUNCTION_IN_USE",
}


def _decode(raw: bytes) -> str:
    return raw.decode(_ENCODING, _ERRORS)


def _admin_error(line: bytes) -> AdminError:
    rest = line[4:]  # after "ERR " (or empty for a bare "ERR")
    code, _, message = rest.partition(b" ")
    if _ERR_CODE.match(code):
        return AdminError(_decode(code), _decode(message.replace(b"+", b" ")))
    text = rest.replace(b"+", b" ")
    return AdminError(_FREE_TEXT_CODES.get(text, "UNSPECIFIED"), _decode(text))


def _is_list_error(kind: ReplyKind, line: bytes) -> bool:
    if not line.startswith(b"ERR"):
        return False
    # Tab-separated rows can start with "ERR" (a function of that name) but always hold a
    # tab; an ERR line never does. Worker rows start with a file descriptor number.
    if kind is ReplyKind.UNIQUE_JOBS:
        return _LIST_ERR.match(line) is not None
    if kind is ReplyKind.WORKERS:
        return True
    return b"\t" not in line


def _bad_line(kind: ReplyKind, line: bytes) -> ProtocolError:
    shown = line if len(line) <= 200 else line[:200] + b"..."
    return ProtocolError(f"cannot parse {kind.value} reply line {shown!r}")


# The list parsers take a run of lines at once so a 300k-line `show jobs` costs one Python
# loop over the lines and no per-line method dispatch.


def _parse_status(lines: Sequence[bytes]) -> list[Any]:
    out: list[Any] = []
    append = out.append
    line = b""
    try:
        for line in lines:
            # rsplit: a function name may contain a tab (nothing stops a worker from
            # registering one), the three counters never do.
            name, total, running, count = line.rsplit(b"\t", 3)
            append(
                FunctionStatus(
                    name.decode(_ENCODING, _ERRORS), int(total), int(running), int(count)
                )
            )
    except ValueError:
        raise _bad_line(ReplyKind.STATUS, line) from None
    return out


def _parse_priority_status(lines: Sequence[bytes]) -> list[Any]:
    out: list[Any] = []
    append = out.append
    line = b""
    try:
        for line in lines:
            name, high, normal, low, count = line.rsplit(b"\t", 4)
            append(
                PriorityStatus(
                    name.decode(_ENCODING, _ERRORS), int(high), int(normal), int(low), int(count)
                )
            )
    except ValueError:
        raise _bad_line(ReplyKind.PRIORITY_STATUS, line) from None
    return out


_FLAGS = {b"0": False, b"1": True}


def _parse_jobs(lines: Sequence[bytes]) -> list[Any]:
    out: list[Any] = []
    append = out.append
    flag = _FLAGS.__getitem__
    job = JobInfo
    line = b""
    try:
        for line in lines:
            handle, retries, ignored, queued = line.rsplit(b"\t", 3)
            append(
                job(
                    handle.decode(_ENCODING, _ERRORS),
                    int(retries),
                    flag(ignored),
                    flag(queued),
                )
            )
    except (ValueError, KeyError):
        raise _bad_line(ReplyKind.JOBS, line) from None
    return out


def _split_worker_rest(rest: bytes) -> int:
    # Position of the " :" between client id and functions: the last one followed by a
    # space or the end of the line (see the module docstring for why that is a guess).
    end = len(rest)
    while True:
        at = rest.rfind(b" :", 0, end)
        if at < 0 or at + 2 == len(rest) or rest[at + 2] == 0x20:
            return at
        end = at + 1


def _parse_workers(lines: Sequence[bytes]) -> list[Any]:
    out: list[Any] = []
    line = b""
    try:
        for line in lines:
            fd, ip, rest = line.split(b" ", 2)
            at = _split_worker_rest(rest)
            if at < 0:
                raise ValueError
            client_id = rest[:at]
            functions = tuple(_decode(f) for f in rest[at + 2 :].split(b" ") if f)
            out.append(
                WorkerInfo(
                    int(fd),
                    _decode(ip),
                    None if client_id == b"-" else _decode(client_id),
                    functions,
                )
            )
    except ValueError:
        raise _bad_line(ReplyKind.WORKERS, line) from None
    return out


def _parse_unique_jobs(lines: Sequence[bytes]) -> list[Any]:
    return [line.decode(_ENCODING, _ERRORS) for line in lines]


_LIST_PARSERS: dict[ReplyKind, Callable[[Sequence[bytes]], list[Any]]] = {
    ReplyKind.STATUS: _parse_status,
    ReplyKind.PRIORITY_STATUS: _parse_priority_status,
    ReplyKind.WORKERS: _parse_workers,
    ReplyKind.JOBS: _parse_jobs,
    ReplyKind.UNIQUE_JOBS: _parse_unique_jobs,
}


def _single_reply(command: AdminCommand[Any], line: bytes) -> AdminReply[Any]:
    if line.startswith(b"ERR") and (len(line) == 3 or line[3] == 0x20):
        return AdminReply(command, None, _admin_error(line))
    if line == b"OK":
        text = None
    elif line.startswith(b"OK "):
        text = line[3:]
    else:
        raise _bad_line(command.kind, line)
    kind = command.kind
    if kind is ReplyKind.OK:
        # Text after a bare OK is tolerated: it carries nothing gearq needs.
        return AdminReply(command, None)
    if kind is ReplyKind.TEXT:
        return AdminReply(command, "" if text is None else _decode(text))
    if text is None or not text.isdigit():
        raise _bad_line(kind, line)
    return AdminReply(command, int(text))


class AdminParser:
    """Matches reply bytes from one connection to the commands sent on it, in order.

    Register each command with :meth:`send` (or :meth:`expect`) before its reply can
    arrive, then hand every received chunk to :meth:`feed`. Chunks may be split anywhere.

    ``ERR`` replies are returned as replies (``reply.error``), so only that request fails.
    Everything else that is wrong raises, after which the connection is out of step and
    the parser refuses further use: :class:`ProtocolError` for bytes no pending command can
    explain, :class:`PacketTooLarge` for a line over ``max_line`` bytes or a list reply
    over ``max_reply`` bytes (so a broken or hostile peer cannot make it buffer without
    bound).
    """

    __slots__ = ("_broken", "_buf", "_items", "_max_line", "_max_reply", "_pending", "_reply_bytes")

    def __init__(
        self, *, max_line: int = DEFAULT_MAX_REPLY_LINE, max_reply: int = DEFAULT_MAX_REPLY
    ) -> None:
        if max_line < 1 or max_reply < 1:
            raise ValueError("max_line and max_reply must be positive")
        self._max_line = max_line
        self._max_reply = max_reply
        self._pending: deque[AdminCommand[Any]] = deque()
        self._buf = bytearray()
        # Records of the list reply being read; None until its first line has been seen,
        # because only a first line can be an ERR.
        self._items: list[Any] | None = None
        self._reply_bytes = 0
        self._broken = False

    @property
    def pending(self) -> tuple[AdminCommand[Any], ...]:
        """Commands sent whose replies have not been completed yet, oldest first."""
        return tuple(self._pending)

    @property
    def buffered(self) -> int:
        """Bytes of a reply received so far but not yet complete (0 between replies)."""
        return len(self._buf) + self._reply_bytes

    def expect(self, command: AdminCommand[Any]) -> None:
        """Register a command that has been (or is about to be) sent."""
        self._check_usable()
        self._pending.append(command)

    def send(self, command: AdminCommand[Any]) -> bytes:
        """Register a command and return the bytes to write for it."""
        self.expect(command)
        return command.line

    def feed(self, data: bytes | bytearray | memoryview) -> list[AdminReply[Any]]:
        """Take received bytes; return the replies they complete, oldest first."""
        self._check_usable()
        if not data:
            return []
        try:
            return self._feed(data)
        except ProtocolError:
            self._broken = True
            raise

    def _check_usable(self) -> None:
        if self._broken:
            raise ProtocolError("admin connection is out of step after an earlier error")

    def _feed(self, data: bytes | bytearray | memoryview) -> list[AdminReply[Any]]:
        if not self._pending:
            raise ProtocolError(f"received {len(data)} bytes with no admin command pending")
        buf = self._buf
        scan_from = len(buf)
        buf += data
        last = buf.rfind(b"\n", scan_from)
        if last < 0:
            if len(buf) > self._max_line:
                raise PacketTooLarge(f"admin reply line exceeds {self._max_line} bytes")
            return []
        chunk = bytes(buf[: last + 1])
        del buf[: last + 1]
        if len(buf) > self._max_line:
            raise PacketTooLarge(f"admin reply line exceeds {self._max_line} bytes")
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        lines = chunk.split(b"\n")
        lines.pop()  # the empty piece after the final "\n"
        if len(chunk) > self._max_line and max(map(len, lines)) > self._max_line:
            raise PacketTooLarge(f"admin reply line exceeds {self._max_line} bytes")
        replies = self._lines(lines)
        if buf and not self._pending:
            raise ProtocolError(f"received {bytes(buf[:200])!r} after the last pending admin reply")
        return replies

    def _lines(self, lines: list[bytes]) -> list[AdminReply[Any]]:
        out: list[AdminReply[Any]] = []
        pending = self._pending
        count = len(lines)
        i = 0
        while i < count:
            if not pending:
                raise ProtocolError(
                    f"{count - i} admin reply line(s) arrived with no command pending,"
                    f" starting {lines[i][:200]!r}"
                )
            command = pending[0]
            kind = command.kind
            if kind not in _LIST_KINDS:
                out.append(_single_reply(command, lines[i]))
                pending.popleft()
                i += 1
                continue
            items = self._items
            if items is None:
                if _is_list_error(kind, lines[i]):
                    out.append(AdminReply(command, None, _admin_error(lines[i])))
                    pending.popleft()
                    i += 1
                    continue
                items = self._items = []
            try:
                end = lines.index(b".", i)
            except ValueError:
                end = count
            if end > i:
                run = lines[i:end]
                self._reply_bytes += sum(map(len, run)) + len(run)
                if self._reply_bytes > self._max_reply:
                    raise PacketTooLarge(
                        f"admin {kind.value} reply exceeds {self._max_reply} bytes"
                    )
                items.extend(_LIST_PARSERS[kind](run))
            if end == count:
                break
            out.append(AdminReply(command, tuple(items)))
            pending.popleft()
            self._items = None
            self._reply_bytes = 0
            i = end + 1
        return out


def parse_reply(
    command: AdminCommand[T],
    data: bytes,
    *,
    max_line: int = DEFAULT_MAX_REPLY_LINE,
    max_reply: int = DEFAULT_MAX_REPLY,
) -> T:
    """Parse the complete reply to one command; raise :class:`AdminError` for an ERR reply.

    A missing final line end is tolerated. Raises :class:`ProtocolError` if ``data`` is not
    exactly one whole reply.
    """
    parser = AdminParser(max_line=max_line, max_reply=max_reply)
    parser.expect(command)
    if not data.endswith(b"\n"):
        data = data + b"\n"
    replies = parser.feed(data)
    if not replies:
        raise ProtocolError(f"incomplete admin reply to {command.line!r}")
    reply: AdminReply[T] = replies[0]
    return reply.result()
