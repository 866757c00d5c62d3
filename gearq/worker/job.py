"""The job a handler gets: what gearmand handed out, and the packets that answer it.

Every method may be called from the event loop or from any other thread (a plain handler
runs in a pool thread); packets are always written by the loop, in the order they were
asked for. A job gets exactly one final answer: the first of :meth:`Job.complete`,
:meth:`Job.fail` or :meth:`Job.exception` wins and the others return False, so a job can
never see both WORK_EXCEPTION and WORK_FAIL.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from asyncio import Task, TimerHandle
from typing import TYPE_CHECKING, Any

from ..net.address import ServerAddress
from ..protocol.errors import ArgumentError
from ..protocol.packets import REQ, PacketType
from .attempts import server_retries
from .errors import format_exception

if TYPE_CHECKING:
    from .link import Link

__all__ = ["BytesLike", "Job"]

BytesLike = bytes | bytearray | memoryview

_HEADER = struct.Struct(">4sII")
_pack = _HEADER.pack
_WORK_COMPLETE = int(PacketType.WORK_COMPLETE)
_WORK_EXCEPTION = int(PacketType.WORK_EXCEPTION)
_WORK_FAIL = int(PacketType.WORK_FAIL)
_WORK_DATA = int(PacketType.WORK_DATA)
_WORK_WARNING = int(PacketType.WORK_WARNING)
_WORK_STATUS = int(PacketType.WORK_STATUS)
_UINT32_MAX = 0xFFFFFFFF

# Final answers, in Job._answer; 0 means none yet.
COMPLETE = 1
FAIL = 2
EXCEPTION = 3
_OUTCOMES = {COMPLETE: "complete", FAIL: "fail", EXCEPTION: "exception"}

# One lock for the "first final answer wins" check: taken for a few instructions per job,
# it is cheaper than a lock per job and a handler thread may race the loop's time limit.
_answer_lock = threading.Lock()


def _data_packet(ptype: int, handle: bytes, data: bytes) -> bytes:
    return _pack(REQ, ptype, len(handle) + 1 + len(data)) + handle + b"\0" + data


def _as_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes, bytearray or memoryview, not {type(data).__name__}")


class Job:
    """A job handed to this worker by one job server.

    ``handle``, ``function``, ``unique`` and ``payload`` are the bytes gearmand sent in
    JOB_ASSIGN_UNIQ; ``server`` is where it came from (a handle means something only
    together with its server). ``time_limit`` is the function's limit in seconds, or None.

    ``attempt`` is how many times the job has been handed out, when that is known, else
    None. gearmand does not tell a worker: it counts retries per server (the admin
    ``show jobs`` RETRIES column) and only ever uses that count to drop a job after
    ``--job-retries`` (``-j N``) hand-outs. :meth:`fetch_attempt` asks the server for it
    (one ``show jobs``, whose size grows with the queue: for the occasional job, not all);
    the task layer can fill it from its own envelope instead.
    """

    # Not slotted: what only some jobs change keeps its default here (eight attribute
    # writes fewer for each job, on every job's path).
    attempt: int | None = None
    _answer = 0
    _final_sent = False
    _done = False  # the handler has returned
    _expired = False  # the time limit struck
    _deadline: float | None = None
    _task: Task[None] | None = None
    _timer: TimerHandle | None = None

    def __init__(
        self,
        link: Link,
        handle: bytes,
        function: bytes,
        unique: bytes,
        payload: bytes,
        time_limit: float | None = None,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.payload = payload
        self.time_limit = time_limit
        self._link = link
        self._gen = link.gen

    # -- state -----------------------------------------------------------------------------

    @property
    def server(self) -> ServerAddress:
        """The job server that handed out the job."""
        return self._link.address

    @property
    def answered(self) -> bool:
        """True once a final answer (complete, fail or exception) has been given."""
        return self._answer != 0

    @property
    def outcome(self) -> str | None:
        """``"complete"``, ``"fail"``, ``"exception"``, or None while unanswered."""
        return _OUTCOMES.get(self._answer)

    @property
    def expired(self) -> bool:
        """True when the job ran past its time limit (and was answered with an exception)."""
        return self._expired

    async def fetch_attempt(self, timeout: float = 5.0) -> int | None:
        """Ask the job's server how often it has handed this job out (RETRIES + 1 from
        ``show jobs``), store it in :attr:`attempt` and return it (None: not listed).

        Await it on the worker's loop; a thread handler calls :meth:`fetch_attempt_blocking`.
        """
        retries = await server_retries(
            self._link.address, self.handle, timeout=timeout, ssl=self._link.worker.options.ssl
        )
        self.attempt = None if retries is None else retries + 1
        return self.attempt

    def fetch_attempt_blocking(self, timeout: float = 5.0) -> int | None:
        """:meth:`fetch_attempt` for a handler running in a thread (not on the loop)."""
        if threading.get_ident() == self._link.thread_id:
            raise RuntimeError("on the worker's loop, await job.fetch_attempt() instead")
        future = asyncio.run_coroutine_threadsafe(self.fetch_attempt(timeout), self._link.loop)
        return future.result(timeout + 1.0)

    # -- progress --------------------------------------------------------------------------

    def send_data(self, data: BytesLike) -> bool:
        """Send a WORK_DATA chunk to the waiting clients; False once the job is answered."""
        return self._progress(_data_packet(_WORK_DATA, self.handle, _as_bytes(data, "data")))

    def send_warning(self, data: BytesLike) -> bool:
        """Send a WORK_WARNING to the waiting clients; False once the job is answered."""
        return self._progress(_data_packet(_WORK_WARNING, self.handle, _as_bytes(data, "warning")))

    def send_status(self, numerator: int, denominator: int) -> bool:
        """Send WORK_STATUS ``numerator``/``denominator`` (whole numbers, 0 to 2**32-1).

        gearmand keeps the last status for GET_STATUS and forwards it to foreground clients.
        """
        for name, value in (("numerator", numerator), ("denominator", denominator)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArgumentError(f"status {name} must be an int, got {value!r}")
            if not 0 <= value <= _UINT32_MAX:
                raise ArgumentError(f"status {name} {value} is outside 0..{_UINT32_MAX}")
        body = b"%s\0%d\0%d" % (self.handle, numerator, denominator)
        return self._progress(_pack(REQ, _WORK_STATUS, len(body)) + body)

    # -- final answers ---------------------------------------------------------------------

    def complete(self, result: BytesLike = b"") -> bool:
        """Answer WORK_COMPLETE with ``result``. False if the job was already answered."""
        data = _as_bytes(result, "result")
        return self._final(COMPLETE, _data_packet(_WORK_COMPLETE, self.handle, data))

    def fail(self) -> bool:
        """Answer WORK_FAIL (no details). False if the job was already answered."""
        handle = self.handle
        return self._final(FAIL, _pack(REQ, _WORK_FAIL, len(handle)) + handle)

    def exception(self, data: BytesLike | BaseException) -> bool:
        """Answer WORK_EXCEPTION with ``data`` (an exception is formatted with its traceback).

        gearmand ends the job with it; clients that asked for exceptions get the data, the
        others a WORK_FAIL. False if the job was already answered.
        """
        raw = format_exception(data) if isinstance(data, BaseException) else data
        packet = _data_packet(_WORK_EXCEPTION, self.handle, _as_bytes(raw, "exception data"))
        return self._final(EXCEPTION, packet)

    def complete_for_loop(self, result: bytes) -> bool:
        """Answer WORK_COMPLETE and write it at once, for a thread that the loop's thread is
        blocked waiting for (so that nothing else touches the connection meanwhile): the
        answer leaves without waiting for the loop's thread to wake. False if the job was
        already answered."""
        return self._link.complete_now(self, result)

    # -- plumbing --------------------------------------------------------------------------

    def _progress(self, packet: bytes) -> bool:
        if self._answer:
            return False
        if threading.get_ident() == self._link.thread_id:
            self._link.send_progress(self, packet)
            return True
        return self._call_on_loop(self._link.send_progress, packet)

    def _final(self, kind: int, packet: bytes) -> bool:
        with _answer_lock:
            if self._answer:
                return False
            self._answer = kind
        if threading.get_ident() == self._link.thread_id:
            self._link.send_final(self, packet)
            return True
        return self._call_on_loop(self._link.send_final, packet)

    def _call_on_loop(self, method: Any, packet: bytes) -> bool:
        try:
            self._link.loop.call_soon_threadsafe(method, self, packet)
        except RuntimeError:  # the loop is closed: the worker is gone, and so is the job
            return False
        return True

    def __repr__(self) -> str:
        state = self.outcome or "running"
        return (
            f"<Job {self.handle.decode(errors='replace')} "
            f"{self.function.decode(errors='replace')} from {self.server} {state}>"
        )
