"""The client's view of one job (its handle and server, its state, its events, its result),
and of a batch of background jobs submitted together.

A :class:`Job` is returned by ``AsyncClient.submit`` as soon as the request is on its way;
the server's answers update it. Futures are made only for callers that wait, so a job that
nobody awaits costs no more than this object. A :class:`BackgroundBatch` stands for many
background jobs at once, with no object per job at all.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from ..net.address import ServerAddress
from ..net.inplace import DONE, waiter_for
from .errors import BatchError, JobTimeout

if TYPE_CHECKING:
    from .client import AsyncClient

__all__ = [
    "BackgroundBatch",
    "Job",
    "JobEvent",
    "JobState",
    "JobStatus",
    "Priority",
    "UniqueStatus",
]

_get_running_loop = asyncio.events._get_running_loop

log = logging.getLogger("gearq.client")


class Priority(enum.Enum):
    """Queue priority within one function (gearmand does not order across functions)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class JobState(enum.Enum):
    #: Sent (or about to be); the server has not acknowledged it yet.
    PENDING = "pending"
    #: JOB_CREATED arrived. Final for a background job: the server has it.
    CREATED = "created"
    COMPLETE = "complete"
    FAILED = "failed"
    EXCEPTION = "exception"
    #: The client-side timeout ran out; later packets for it are ignored.
    TIMEOUT = "timeout"
    #: Rejected by the server, connection lost, or client closed: see ``job.error``.
    ERROR = "error"


JobEvent = Literal[
    "created", "data", "warning", "status", "complete", "fail", "exception", "timeout", "error"
]
#: ``callback(job, value)``: value is the handle (created), the bytes (data, warning,
#: complete, exception), ``(numerator, denominator)`` (status), None (fail, timeout) or the
#: exception (error).
JobCallback = Callable[["Job", Any], object]

_PENDING = JobState.PENDING
_CREATED = JobState.CREATED
_COMPLETE = JobState.COMPLETE
_FINAL_STATES = frozenset(
    {JobState.COMPLETE, JobState.FAILED, JobState.EXCEPTION, JobState.TIMEOUT, JobState.ERROR}
)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A STATUS_RES. A finished job and one that never existed look alike (known=False)."""

    handle: bytes
    server: ServerAddress
    known: bool
    running: bool
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class UniqueStatus:
    """A STATUS_RES_UNIQUE. ``waiting`` counts attached foreground clients only.

    ``server`` is the server that answered (for an unknown unique: the first one asked).
    """

    unique: bytes
    server: ServerAddress | None
    known: bool
    running: bool
    numerator: int
    denominator: int
    waiting: int


class Job:
    """A submitted job. Await it (``await job``) for its result.

    ``handle`` and ``server`` are set once the server has acknowledged the job; handles
    repeat across servers (each numbers from 1), so only the pair names a job.
    """

    # Slots, every one set in __init__: a job then never allocates again when it is
    # updated (with a __dict__, later attributes can spill into a new dict per job, and
    # those allocations drive the garbage collector on the hot path).
    __slots__ = (
        "_chunks",
        "_client",
        "_done_callbacks",
        "_done_waiters",
        "_error",
        "_listeners",
        "_result",
        "_timer",
        "_waiters",
        "_warnings",
        "attempts",
        "background",
        "denominator",
        "function",
        "handle",
        "numerator",
        "payload",
        "priority",
        "reducer",
        "resubmit",
        "run_at",
        "server",
        "state",
        "unique",
    )

    def __init__(
        self,
        client: AsyncClient,
        function: bytes,
        payload: bytes,
        unique: bytes,
        background: bool,
        priority: Priority = Priority.NORMAL,
        run_at: int | None = None,
        reducer: bytes | None = None,
        resubmit: bool = False,
    ) -> None:
        self._client = client
        self.function = function
        self.payload = payload
        self.unique = unique
        self.background = background
        self.priority = priority
        self.run_at = run_at
        self.reducer = reducer
        self.resubmit = resubmit
        self.handle: bytes | None = None
        self.server: ServerAddress | None = None
        self.state = _PENDING
        #: Latest WORK_STATUS (0/0 until one arrives).
        self.numerator = 0
        self.denominator = 0
        #: How often the job was submitted (more than 1 after a resubmit).
        self.attempts = 1
        self._warnings: list[bytes] | None = None
        self._result: bytes | None = None
        self._error: BaseException | None = None
        self._chunks: list[bytes] | None = None
        # Woken at the end only (``await job``), and at every change (created, data, end).
        self._done_waiters: list[asyncio.Future[None]] | None = None
        self._waiters: list[asyncio.Future[None]] | None = None
        self._listeners: dict[str, list[JobCallback]] | None = None
        self._done_callbacks: list[Callable[[Job], object]] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- reading ----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once nothing more will happen to the job (for a background job: created)."""
        state = self.state
        if state is _CREATED:
            return self.background
        return state is not _PENDING

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def warnings(self) -> list[bytes]:
        """The WORK_WARNING payloads received so far."""
        return list(self._warnings or ())

    @property
    def data(self) -> list[bytes]:
        """The WORK_DATA chunks received so far."""
        return list(self._chunks or ())

    @property
    def client(self) -> AsyncClient:
        return self._client

    def result_nowait(self) -> bytes:
        """The result of a finished job (b"" for a background job), or raise its error.

        Raises ``asyncio.InvalidStateError`` while the job is not done.
        """
        if not self.done:
            raise asyncio.InvalidStateError(f"{self!r} is not done")
        if self._error is not None:
            raise self._error
        return self._result if self._result is not None else b""

    # -- waiting ----------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, bytes]:
        # A plain generator, not a coroutine: ``await job`` is the hot path. The state is
        # tested inline (``done`` is a property call): PENDING, or a foreground CREATED.
        while self.state is _PENDING or (self.state is _CREATED and not self.background):
            client = self._client
            loop = client._get_loop()
            if _get_running_loop() is loop:
                # The loop has nothing else to do (but flush this client's writes): read
                # the connections here, and a reply that ends the job costs no suspension
                # of the awaiting task and no pass of the loop to wake it (see
                # gearq.net.inplace). Timers, other threads and other file descriptors
                # still end the wait, and the await goes on the usual way.
                # (usable first: other loops, uvloop's say, have no _ready.)
                waiter = waiter_for(loop)
                if waiter.usable:
                    ready = loop._ready  # type: ignore[attr-defined]
                    if (not ready or client._flush_if_alone(ready)) and waiter.wait(
                        None, running=True
                    ) == DONE:
                        continue
            fut: asyncio.Future[None] = loop.create_future()
            if self._done_waiters is None:
                self._done_waiters = [fut]
            else:
                self._done_waiters.append(fut)
            try:
                yield from fut
            finally:
                if not fut.done():
                    fut.cancel()
        return self.result_nowait()

    async def result(self, timeout: float | None = None) -> bytes:
        """Wait for the result (b"" for a background job, once the server has it).

        Raises the job's typed error, or :class:`JobTimeout` if ``timeout`` seconds pass
        first; the job itself goes on (use ``submit(timeout=...)`` to give up on it).
        """
        if not self.done:
            if timeout is None:
                return await self
            await self._wait(self._is_done, timeout)
        return self.result_nowait()

    async def created(self, timeout: float | None = None) -> bytes:
        """Wait until the server has acknowledged the job; return its handle."""
        if self.state is _PENDING:
            await self._wait(self._not_pending, timeout)
        if self.handle is None:
            assert self._error is not None
            raise self._error
        return self.handle

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the WORK_DATA chunks (those already received first) until the job ends.

        Raises the job's error at the end if it did not complete.
        """
        seen = 0
        while True:
            chunks = self._chunks
            if chunks is not None and seen < len(chunks):
                seen += 1
                yield chunks[seen - 1]
                continue
            if self.done:
                if self._error is not None:
                    raise self._error
                return
            await self._wait(partial(self._has_more, seen), None)

    def _has_more(self, seen: int) -> bool:
        return self.done or len(self._chunks or ()) > seen

    def _is_done(self) -> bool:
        return self.done

    def _not_pending(self) -> bool:
        return self.state is not _PENDING

    async def _wait(self, ready: Callable[[], bool], timeout: float | None) -> None:
        # One future per waiter: a cancelled waiter must not cancel anybody else's wait.
        loop = self._client._get_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not ready():
            fut: asyncio.Future[None] = loop.create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(fut)
            timer = None
            if deadline is not None:
                assert timeout is not None
                timer = loop.call_at(deadline, _expire_waiter, fut, self, timeout)
            try:
                await fut
            finally:
                if timer is not None:
                    timer.cancel()
                if not fut.done():
                    fut.cancel()

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def _wake_done(self) -> None:
        waiters = self._done_waiters
        if waiters:
            self._done_waiters = None
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    # -- callbacks --------------------------------------------------------------------------

    def on(self, event: JobEvent, callback: JobCallback) -> JobCallback:
        """Call ``callback(job, value)`` on each ``event``; returns the callback.

        Callbacks run in the event loop; an exception in one is logged, never raised.
        """
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(event, []).append(callback)
        return callback

    def off(self, event: JobEvent, callback: JobCallback) -> None:
        if self._listeners and callback in self._listeners.get(event, ()):
            self._listeners[event].remove(callback)

    def add_done_callback(self, callback: Callable[[Job], object]) -> None:
        """Call ``callback(job)`` once the job is done (at once if it already is)."""
        if self.done:
            self._run_callback(callback, self)
            return
        if self._done_callbacks is None:
            self._done_callbacks = []
        self._done_callbacks.append(callback)

    def _emit(self, event: str, value: object) -> None:
        listeners = self._listeners
        if listeners is not None:
            for callback in tuple(listeners.get(event, ())):
                self._run_callback(callback, self, value)

    @staticmethod
    def _run_callback(callback: Callable[..., object], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("error in job callback %r", callback)

    # -- updates from the connection ----------------------------------------------------------

    def _set_created(self, handle: bytes, server: ServerAddress) -> None:
        self.handle = handle
        self.server = server
        self.state = _CREATED
        if self.background:
            # _done() inlined for the common case: nobody waiting, no timer, no callbacks.
            if (
                self._timer is not None
                or self._done_waiters is not None
                or self._waiters is not None
                or self._done_callbacks is not None
            ):
                self._done()
        elif self._waiters is not None:
            self._wake()
        if self._listeners is not None:
            self._emit("created", handle)

    def _on_data(self, data: bytes) -> None:
        if self.state is not _CREATED:
            return
        if self._chunks is None:
            self._chunks = [data]
        else:
            self._chunks.append(data)
        if self._waiters is not None:
            self._wake()
        if self._listeners is not None:
            self._emit("data", data)

    def _on_warning(self, data: bytes) -> None:
        if self.state is not _CREATED:
            return
        if self._warnings is None:
            self._warnings = [data]
        else:
            self._warnings.append(data)
        if self._listeners is not None:
            self._emit("warning", data)

    def _on_status(self, numerator: int, denominator: int) -> None:
        if self.state is not _CREATED:
            return
        self.numerator = numerator
        self.denominator = denominator
        if self._listeners is not None:
            self._emit("status", (numerator, denominator))

    def _complete(self, result: bytes) -> bool:
        """WORK_COMPLETE; True if that woke a coroutine (which runs in the loop's next pass)."""
        if self.state is not _CREATED:
            return False
        self._result = result
        self.state = _COMPLETE
        woke = self._done_waiters is not None or self._waiters is not None
        if self._timer is None and self._waiters is None and self._done_callbacks is None:
            # _done() inlined: the usual case is one ``await job`` and nothing else.
            waiters = self._done_waiters
            if waiters is not None:
                self._done_waiters = None
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
        else:
            self._done()
        if self._listeners is not None:
            self._emit("complete", result)
            # No event follows a final one; dropped, the listeners (often bound to whoever
            # holds this job) cannot keep the pair alive as a reference cycle.
            self._listeners = None
        return woke

    def _finish(self, state: JobState, error: BaseException, event: str, value: object) -> None:
        """End the job with an error (fail, exception, timeout, rejected, lost, closed)."""
        if self.done:
            return
        self._error = error
        self.state = state
        self._done()
        if self._listeners is not None:
            self._emit(event, value)
            self._listeners = None  # (see _complete)

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._done_waiters is not None:
            self._wake_done()
        if self._waiters is not None:
            self._wake()
        callbacks = self._done_callbacks
        if callbacks:
            self._done_callbacks = None
            for callback in callbacks:
                self._run_callback(callback, self)

    def _restart(self) -> None:
        """Back to PENDING for a resubmit after a lost connection."""
        self.handle = None
        self.server = None
        self.state = _PENDING
        self.attempts += 1

    def _start_timer(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._timer = loop.call_later(timeout, self._expire, timeout)

    def _expire(self, timeout: float) -> None:
        self._timer = None
        if self.done:
            return
        error = JobTimeout(
            f"job not done within {timeout:g} s (client-side timeout)",
            server=self.server,
            handle=self.handle,
        )
        self._finish(JobState.TIMEOUT, error, "timeout", None)

    def __repr__(self) -> str:
        kind = "background" if self.background else "foreground"
        where = f" {self.handle!r}@{self.server}" if self.handle is not None else ""
        return f"<Job {self.function!r} {kind} {self.state.value}{where}>"


def _expire_waiter(fut: asyncio.Future[None], job: Job, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(
            JobTimeout(
                f"no result within {timeout:g} s (the job goes on)",
                server=job.server,
                handle=job.handle,
            )
        )


class BackgroundBatch:
    """Background jobs submitted together by ``AsyncClient.submit_background_many``.

    Job ``i`` is the one with ``uniques[i]`` and ``payloads[i]``. ``handles[i]`` and
    ``servers[i]`` are set when its server acknowledges it; ``errors[i]`` when it fails
    instead (rejected, connection lost, client-side timeout, client closed). Every job
    ends one way or the other, and then the batch is ``done``.

    One object for the lot, where ``submit`` makes a :class:`Job` each: the bulk path for
    callers that only need to know that the server has the jobs.
    """

    __slots__ = (
        "_callbacks",
        "_client",
        "_left",
        "_packet_size",
        "_timer",
        "_waiters",
        "errors",
        "function",
        "handles",
        "payloads",
        "priority",
        "resubmit",
        "servers",
        "uniques",
    )

    def __init__(
        self,
        client: AsyncClient,
        function: bytes,
        payloads: list[bytes],
        uniques: list[bytes],
        priority: Priority,
        resubmit: bool,
    ) -> None:
        count = len(uniques)
        self._client = client
        self.function = function
        self.payloads = payloads
        self.uniques = uniques
        self.priority = priority
        self.resubmit = resubmit
        self.handles: list[bytes | None] = [None] * count
        self.servers: list[ServerAddress | None] = [None] * count
        self.errors: dict[int, BaseException] = {}
        # Jobs neither acknowledged nor failed yet.
        self._left = count
        self._waiters: list[asyncio.Future[None]] | None = None
        self._callbacks: list[Callable[[BackgroundBatch], object]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Set by the client when every packet has the same size (a faster encoding).
        self._packet_size: int | None = None

    def __len__(self) -> int:
        return len(self.uniques)

    @property
    def done(self) -> bool:
        """True once every job is acknowledged or failed."""
        return self._left == 0

    @property
    def acknowledged(self) -> int:
        """How many jobs the servers have acknowledged so far."""
        return len(self.uniques) - self._left - len(self.errors)

    @property
    def client(self) -> AsyncClient:
        return self._client

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until the batch is done; failed jobs are in ``errors``, nothing is raised
        for them. Raises :class:`JobTimeout` if ``timeout`` seconds pass first (the jobs
        go on)."""
        if self._left == 0:
            return
        loop = self._client._get_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire_batch_waiter, fut, timeout)
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            if not fut.done():
                fut.cancel()

    async def created(self, timeout: float | None = None) -> list[bytes]:
        """Wait until the batch is done and return every job's handle; raise
        :class:`BatchError` if any job failed (or :class:`JobTimeout`, see :meth:`wait`)."""
        await self.wait(timeout)
        return self.result_nowait()

    def __await__(self) -> Generator[Any, None, list[bytes]]:
        return self.created().__await__()

    def result_nowait(self) -> list[bytes]:
        """The handles of a done batch, or raise :class:`BatchError`; raises
        ``asyncio.InvalidStateError`` while it is not done."""
        if self._left:
            raise asyncio.InvalidStateError(f"{self!r} is not done")
        if self.errors:
            raise BatchError(self.errors, self.handles)
        return list(self.handles)  # type: ignore[arg-type]  # no error: every one is set

    def add_done_callback(self, callback: Callable[[BackgroundBatch], object]) -> None:
        """Call ``callback(batch)`` once the batch is done (at once if it already is)."""
        if self._left == 0:
            Job._run_callback(callback, self)
            return
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(callback)

    # -- updates from the connections ---------------------------------------------------------

    def _fail(self, index: int, error: BaseException) -> None:
        """End job ``index`` with ``error`` unless it has ended already."""
        if self.handles[index] is not None or index in self.errors:
            return
        self.errors[index] = error
        self._left -= 1
        if self._left == 0:
            self._done()

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            for callback in callbacks:
                Job._run_callback(callback, self)

    def _is_done(self) -> bool:
        return self._left == 0

    def _start_timer(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        if self._left:
            self._timer = loop.call_later(timeout, self._expire, timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, timeout: float) -> None:
        self._timer = None
        message = f"job not acknowledged within {timeout:g} s (client-side timeout)"
        for index, handle in enumerate(self.handles):
            if handle is None and index not in self.errors:
                self._fail(index, JobTimeout(message))

    def __repr__(self) -> str:
        state = "done" if self._left == 0 else f"{self._left} waiting"
        return (
            f"<BackgroundBatch {self.function!r} {len(self.uniques)} jobs, "
            f"{len(self.errors)} failed, {state}>"
        )


def _expire_batch_waiter(fut: asyncio.Future[None], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(JobTimeout(f"batch not done within {timeout:g} s (the jobs go on)"))
