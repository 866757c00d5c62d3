"""What a caller holds after submitting a task: :class:`AsyncResult` and :class:`BackgroundResult`.

A foreground task (``.delay()``) is one Gearman foreground job. Its worker's packets come
back over the caller's own connection, and the :class:`AsyncResult` follows them:

=================  ===============================================================
WORK_STATUS        ``result.progress`` (numerator, denominator)
WORK_DATA          a chunk (``result.stream()``, ``async for``) or a state update
                   (``STARTED``, ``RETRY``, custom states: ``result.state``/``meta``)
WORK_WARNING       ``result.warnings``
WORK_COMPLETE      the result envelope: ``get()`` returns the value (or raises the
                   failure sent that way)
WORK_EXCEPTION     the failure envelope: ``get()`` raises the rebuilt exception
WORK_FAIL          no reason given: ``get()`` raises :class:`TaskFailed`
=================  ===============================================================

Nothing is stored anywhere else: the result lives as long as the caller's connection.
gearmand drops a foreground job that is still *queued* when its caller disconnects (and
ignores the answer of one that is running), so a process must not exit with foreground
tasks pending: ``app.close(wait=...)`` waits for them, and the app warns at exit.

A background task (``.send()``, ``apply_async(background=True)``) is detached from its
caller; its :class:`BackgroundResult` gives state and progress from GET_STATUS_UNIQUE while
the job exists, and its ``get()`` raises :class:`ResultNotKept`.

Threads and loops: a result made by a blocking call (``.delay()``) lives on the app's
private event loop (run by the thread that blocks on a result while nobody else does, else
by a daemon thread: :class:`gearq.client.sync.DrivenLoop`); one made by
``await task.adelay()`` lives on the caller's loop. Either can be waited for from any
thread (``get()``) or any loop (``await``), except that ``get()`` inside the loop that
owns the result would deadlock and raises instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from ..client.errors import JobException, JobFailed, JobTimeout, SubmitError
from ..client.job import Job, JobState
from ..client.lane import LaneCall
from ..client.sync import DrivenLoop, driver_of
from ..net.address import ServerAddress
from ..protocol.errors import GearqError
from .envelope import (
    Chunk,
    StateUpdate,
    decode_data,
    decode_failure,
    decode_reply,
    reply_value,
)
from .remote_errors import (
    ExceptionRegistry,
    Failure,
    FailureKind,
    rebuild_exception,
)
from .serializers import DeserializationError, RawSerializer, Serializer

if TYPE_CHECKING:
    from .app import _View

__all__ = [
    "AsyncResult",
    "BackgroundResult",
    "BackgroundStatus",
    "NoWorkerAvailable",
    "PendingTasksWarning",
    "ResultNotKept",
    "TaskFailed",
    "TaskState",
    "TaskTimeout",
]

R_co = TypeVar("R_co", covariant=True)


class TaskState(str, enum.Enum):
    """The states a result reports. Members are ``str``: ``result.state == "SUCCESS"``.

    Custom states a task reports with ``update_state`` come back as plain strings.
    """

    #: Not yet acknowledged by a job server (or not yet sent).
    PENDING = "PENDING"
    #: The server has the job; no worker has reported starting it.
    QUEUED = "QUEUED"
    #: A background job with a countdown/eta that is not due yet.
    SCHEDULED = "SCHEDULED"
    #: A worker runs it.
    STARTED = "STARTED"
    #: An attempt failed; the worker runs it again after its backoff.
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    #: Its ``expires`` time had passed when a worker got it; it did not run.
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    #: A background job the server no longer knows: finished, failed, dropped or cancelled
    #: (gearmand cannot tell which), or never submitted there.
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


READY_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.EXPIRED, TaskState.REVOKED}
)


# --- errors --------------------------------------------------------------------------------


class TaskFailed(JobFailed):
    """The task's job ended with a bare WORK_FAIL: no reason was given.

    The worker did not report an exception (gearq workers always do). The usual causes:
    gearmand's ``--job-retries`` limit ran out because workers holding the job died or
    disconnected, an operator ran ``cancel job``, or a non-gearq worker failed it.
    """

    def __init__(self, message: str, *, task_name: str, task_id: str | None, job: Job) -> None:
        super().__init__(message, server=job.server, handle=job.handle)
        self.task_name = task_name
        self.task_id = task_id


class TaskTimeout(JobTimeout):
    """The caller's own timeout ran out.

    From ``get(timeout=...)``: the task goes on (call ``get`` again to keep waiting).
    From ``apply_async(timeout=...)`` (``abandoned`` is True): the caller gave up on the
    job; later packets for it are ignored, though a worker may still run it.
    """

    def __init__(
        self,
        message: str,
        *,
        task_name: str,
        task_id: str | None,
        abandoned: bool,
        server: ServerAddress | None = None,
        handle: bytes | None = None,
    ) -> None:
        super().__init__(message, server=server, handle=handle)
        self.task_name = task_name
        self.task_id = task_id
        self.abandoned = abandoned


class NoWorkerAvailable(SubmitError):
    """No job server lists a worker for the task's function (``require_worker=True``).

    Without that check, a call of a task no worker serves is not an error in Gearman: the
    job just waits in the queue until a worker for it appears, or the caller's timeout.
    """

    def __init__(self, task_name: str, function: bytes, detail: str = "") -> None:
        fn = function.decode(errors="replace")
        more = f" ({detail})" if detail else ""
        super().__init__(
            f"no worker serves task {task_name!r} (function {fn!r}) on any job server{more}"
        )
        self.task_name = task_name
        self.function = function


class ResultNotKept(GearqError):
    """Background tasks deliver no result to their caller, and gearq keeps none.

    Use ``.delay()`` (a foreground task, whose result comes back over the connection) when
    you need the value, or have the task store it somewhere.
    """


class PendingTasksWarning(RuntimeWarning):
    """The process is exiting (or the app closing) with foreground tasks still pending.

    gearmand drops a foreground job that is still queued when its caller disconnects, and
    ignores the answer of one that runs: those tasks are lost. Wait for them (``get()``,
    ``app.close(wait=...)``) or submit durable background tasks (``.send()``).
    """


# --- foreground results --------------------------------------------------------------------

_COMPLETE = JobState.COMPLETE
_SUCCESS = TaskState.SUCCESS
_EXCEPTION = JobState.EXCEPTION
_FAILED = JobState.FAILED
_TIMEOUT = JobState.TIMEOUT
_PENDING = JobState.PENDING
_KIND_STATE = {FailureKind.EXPIRED: TaskState.EXPIRED, FailureKind.REVOKED: TaskState.REVOKED}

_absorb_lock = threading.Lock()
#: Seconds to wait for the owning loop to run a call for another thread.
_OWNER_TIMEOUT = 10.0
#: The value of a generator task that returned nothing: ``get()`` gives its chunks.
_CHUNKS: Any = object()


#: The running loop of this thread, or None (without raising: get() calls it every time).
_running_loop = asyncio._get_running_loop


def _call_soon_in(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """``loop.call_soon_threadsafe(fn)``, making sure a thread runs the app's loop."""
    driver = driver_of(loop)
    if driver is not None:
        driver.call_soon(fn)
    else:
        loop.call_soon_threadsafe(fn)


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncResult(Generic[R_co]):
    """The handle of one foreground task call. ``get()`` blocks, ``await result`` waits.

    ``id``
        The task id (32 hex digits), sent in the call envelope; the worker's context sees
        it. (Calls coalesced by ``unique`` run once, with the first caller's id.)
    ``state``
        PENDING, QUEUED, STARTED, RETRY, SUCCESS, FAILURE (or EXPIRED, REVOKED, or a
        custom state the task reported).
    ``progress``
        The last ``(numerator, denominator)`` the task reported, or None.
    """

    # Defaults on the class, not set per instance: a blocking call makes one of these per
    # round trip, and each line run in it is a measurable part of the round trip.
    eta: float | None = None
    _home: _View | None = None
    _serializer: Serializer | None = None
    _registry: ExceptionRegistry | None = None
    _job: Job | None = None
    _lane: LaneCall | None = None  # a lone call its waiter reads (gearq.client.lane)
    _done = False
    _value: Any = None
    _error: BaseException | None = None
    _failure: Failure | None = None
    # A lock held until the result is done: blocking waiters acquire it. Made up front
    # only for results of blocking calls; others make it when someone blocks on them.
    _gate: threading.Lock | None = None
    _cond: threading.Condition | None = None
    # The DrivenLoop to wake when something changes, once a thread waits on us.
    _driver: DrivenLoop | None = None
    _afuts: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] | None = None
    _callbacks: list[Callable[[AsyncResult[Any]], object]] | None = None
    _listening = False
    _want_listen = False
    _warnings: list[str] | None = None
    _state: str | None = None
    _meta: Any = None
    _attempt = 1
    #: A generator task: its value is the iterator of its chunks.
    _stream_result = False
    #: A reply :func:`reply_value` may read (not a generator task's, not a raw serializer's):
    #: known when the result is made, so that a reply's path does not ask.
    _plain_reply = True
    _progress: tuple[int, int] | None = None  # eager results only

    def __init__(
        self,
        task_name: str,
        task_id: str,
        home: _View | None = None,
        serializer: Serializer | None = None,
        registry: ExceptionRegistry | None = None,
        blocking: bool = False,
        stream: bool = False,
    ) -> None:
        self.id = task_id
        self.task_name = task_name
        if home is not None:
            self._home = home
        self._serializer = serializer
        self._registry = registry
        if blocking:
            gate = self._gate = threading.Lock()
            gate.acquire()
        if stream:  # a generator task's: listened to, its value the iterator of its chunks
            self._want_listen = self._stream_result = True
            self._plain_reply = False
        elif serializer.__class__ is RawSerializer:
            self._plain_reply = False
        self._chunks: list[Any] = []

    # -- feeding (always in the owning loop's thread) ---------------------------------------

    def _lane_done(self, data: bytes) -> None:
        try:
            self._settle_reply(data)
        except Exception as exc:  # undecodable (or a bug): the caller still hears of it
            self._settle_error(exc)
        self._finish()

    def _attach(self, job: Job) -> None:
        self._job = job
        if self._want_listen:
            self._listen_now()
        job.add_done_callback(self._job_done)

    def _job_done(self, job: Job) -> None:
        state = job.state
        try:
            if state is _COMPLETE:
                self._settle_reply(job.result_nowait())
            elif state is _EXCEPTION:
                error = job.error
                data = error.data if isinstance(error, JobException) else b""
                ser = self._serializer
                failure = decode_failure(
                    data, serializer=ser if isinstance(ser, RawSerializer) else None
                )
                self._settle_failure(failure, error)
            elif state is _FAILED:
                exc: BaseException = TaskFailed(
                    f"task {self.task_name!r} (id {self.id}) failed without a reason"
                    " (WORK_FAIL): gearmand's --job-retries ran out after workers were lost,"
                    " the job was cancelled, or a non-gearq worker failed it",
                    task_name=self.task_name,
                    task_id=self.id,
                    job=job,
                )
                exc.__cause__ = job.error
                self._settle_error(exc)
            elif state is _TIMEOUT:
                exc = TaskTimeout(
                    f"task {self.task_name!r} (id {self.id}) not done within its timeout;"
                    " the caller gave up on it (a worker may still run it)",
                    task_name=self.task_name,
                    task_id=self.id,
                    abandoned=True,
                    server=job.server,
                    handle=job.handle,
                )
                exc.__cause__ = job.error
                self._settle_error(exc)
            else:
                self._settle_error(job.error or GearqError(f"job ended in state {state}"))
        except (DeserializationError, GearqError) as exc:
            # An undecodable reply (a non-gearq worker, a newer envelope version...).
            self._settle_error(exc)
        self._finish()

    def _settle_reply(self, data: bytes) -> None:
        if self._plain_reply:
            ok, value = reply_value(data)  # the common reply, in fewer steps
            if ok:
                self._value = value
                self._state = _SUCCESS
                return
        self._settle_decoded(data)

    def _settle_decoded(self, data: bytes) -> None:
        """A WORK_COMPLETE payload but the common reply (see reply_value)."""
        ser = self._serializer
        reply = decode_reply(data, serializer=ser if isinstance(ser, RawSerializer) else None)
        if isinstance(reply, Failure):
            self._settle_failure(reply, None)
        else:
            value = reply.value
            if self._stream_result and value is None:
                value = _CHUNKS
            self._value = value
            self._state = TaskState.SUCCESS

    def _settle_failure(self, failure: Failure, cause: BaseException | None) -> None:
        self._failure = failure
        if failure.attempt is not None:
            self._attempt = max(self._attempt, failure.attempt)
        exc = rebuild_exception(failure, registry=self._registry, task_id=self.id)
        if cause is not None:
            exc.__cause__ = cause
            exc.__suppress_context__ = True
        self._error = exc
        self._state = _KIND_STATE.get(failure.kind, TaskState.FAILURE)

    def _settle_error(self, exc: BaseException) -> None:
        self._error = exc
        self._state = TaskState.FAILURE

    def _load_eager(
        self,
        data: list[bytes],
        warnings: list[bytes],
        progress: tuple[int, int] | None,
        reply: bytes,
        ok: bool,
    ) -> None:
        """Finish from what an eager run recorded (the same bytes a worker would send)."""
        for item in data:
            self._absorb(item)
        self._listening = True
        self._warnings = [w.decode("utf-8", "replace") for w in warnings]
        self._progress = progress
        ser = self._serializer
        try:
            if ok:
                self._settle_reply(reply)
            else:
                raw = isinstance(ser, RawSerializer)
                self._settle_failure(decode_failure(reply, serializer=ser if raw else None), None)
        except (DeserializationError, GearqError) as exc:
            self._settle_error(exc)
        self._finish()

    def _fail(self, exc: BaseException) -> None:
        """The call could not be submitted (called in the owning loop, or before sharing)."""
        self._settle_error(exc)
        self._finish()

    def _finish(self) -> None:
        self._done = True
        home = self._home
        if home is not None:
            home._result_done()
        gate = self._gate
        if gate is not None:
            gate.release()
        if self._cond is not None or self._afuts is not None or self._driver is not None:
            self._notify()
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            for callback in callbacks:
                _run_callback(callback, self)

    def _on_data(self, job: Job, data: bytes) -> None:
        self._absorb(data)
        self._notify()

    def _absorb(self, data: bytes) -> None:
        ser = self._serializer
        try:
            item = decode_data(data, serializer=ser if isinstance(ser, RawSerializer) else None)
        except DeserializationError:
            item = Chunk(data)  # a non-gearq worker's raw WORK_DATA
        if item.__class__ is Chunk:
            self._chunks.append(item.value)
            if self._state is None:
                self._state = TaskState.STARTED
            return
        assert isinstance(item, StateUpdate)
        if not self._done:  # taken in late (after the end): the final state stays
            self._state = item.state
        self._meta = item.meta
        meta = item.meta
        if isinstance(meta, dict):
            attempt = meta.get("next_attempt", meta.get("attempt"))
            if type(attempt) is int and attempt > self._attempt:
                self._attempt = attempt

    def _notify(self) -> None:
        driver = self._driver
        if driver is not None:
            driver.notify()
        cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()
        futs = self._afuts
        if futs:
            self._afuts = None
            own = self._home.loop if self._home is not None else None
            for loop, fut in futs:
                if loop is own:
                    _set_none(fut)
                else:
                    # RuntimeError: that loop is closed, so nobody waits there any more.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(_set_none, fut)

    def _listen_now(self) -> None:
        """Follow WORK_DATA from now on, after taking in what arrived so far (loop thread)."""
        if self._listening:
            return
        job = self._job
        if job is None:
            self._want_listen = True  # _attach starts listening
            return
        self._listening = True
        for data in job.data:
            self._absorb(data)
        job.on("data", self._on_data)

    # -- thread plumbing ----------------------------------------------------------------------

    def _owner_loop(self) -> asyncio.AbstractEventLoop | None:
        home = self._home
        return None if home is None else home.loop

    def _in_owner_thread(self) -> bool:
        loop = self._owner_loop()
        return loop is not None and _running_loop() is loop

    def _call_in_owner(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the owning loop's thread and wait for it (at once if we are there)."""
        loop = self._owner_loop()
        if loop is None or self._done or _running_loop() is loop:
            with _absorb_lock:
                fn()
            return
        driver = driver_of(loop)
        if driver is not None:
            try:
                driver.call(fn, timeout=_OWNER_TIMEOUT)
            except (RuntimeError, GearqError, concurrent.futures.TimeoutError):
                with _absorb_lock:  # closed, or the parent's loop after fork
                    fn()
            return
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(None)

        try:
            loop.call_soon_threadsafe(run)
            fut.result(_OWNER_TIMEOUT)
        except (RuntimeError, concurrent.futures.TimeoutError):
            # The owning loop is closed or no longer runs: nothing will change any more.
            with _absorb_lock:
                fn()

    def _ensure_listening(self) -> None:
        if not self._listening:
            self._call_in_owner(self._listen_now)

    def _ensure_cond(self) -> threading.Condition:
        cond = self._cond
        if cond is None:

            def make() -> None:
                if self._cond is None:
                    self._cond = threading.Condition()
                self._listen_now()

            self._call_in_owner(make)
            cond = self._cond
            assert cond is not None
        return cond

    def _no_deadlock(self, what: str) -> None:
        if not self._done and self._in_owner_thread():
            raise RuntimeError(
                f"result.{what}() would block the event loop this result belongs to;"
                " use `await result` (or result.aget()) / `async for` inside it"
            )

    def _is_done(self) -> bool:
        return self._done

    def _waker(self) -> DrivenLoop | None:
        """The DrivenLoop that owns this result, told to wake us from now on (or None)."""
        driver = self._driver
        if driver is None:
            driver = self._driver = driver_of(self._owner_loop())
        return driver

    def _wait_blocking(self, timeout: float | None) -> bool:
        """Block until done or ``timeout``; True if done."""
        if self._done:
            return True
        lane = self._lane
        if lane is not None:  # (wait_lane says None at once if it is no longer open)
            start = time.monotonic()
            got = lane.owner.wait_lane(lane, timeout)
            if got is not None or self._done:
                return got or self._done
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - start))
        self._no_deadlock("get")
        driver = self._waker()
        if driver is not None:
            # Runs the loop in this thread if nobody else does: no thread hand-off.
            return driver.wait_for(self._is_done, timeout)
        gate = self._gate
        if gate is None:
            made = threading.Lock()
            made.acquire()

            def install() -> None:
                if self._gate is None:
                    self._gate = made
                    if self._done:
                        made.release()

            self._call_in_owner(install)
            gate = self._gate
            assert gate is not None
        got = gate.acquire() if timeout is None else gate.acquire(timeout=max(timeout, 0.0))
        if got:
            gate.release()
        return got or self._done

    async def _wait_async(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        """Wait in the current loop until ``condition()`` or done; False on timeout."""
        loop = asyncio.get_running_loop()
        own = self._owner_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not (self._done or condition()):
            fut: asyncio.Future[None] = loop.create_future()

            def register(fut: asyncio.Future[None] = fut) -> None:
                if self._done or condition():
                    if own is None or own is loop:
                        _set_none(fut)
                    else:
                        loop.call_soon_threadsafe(_set_none, fut)
                    return
                if self._afuts is None:
                    self._afuts = []
                self._afuts.append((loop, fut))

            if own is None or own is loop:
                register()
            else:
                try:
                    _call_soon_in(own, register)
                except RuntimeError:
                    return self._done
            try:
                if deadline is None:
                    await fut
                else:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return self._done or condition()
                    try:
                        await asyncio.wait_for(fut, remaining)
                    except asyncio.TimeoutError:
                        return self._done or condition()
            finally:
                if not fut.done():
                    fut.cancel()
        return True

    # -- reading ------------------------------------------------------------------------------

    @property
    def job(self) -> Job | None:
        """The underlying client job (None until it is submitted); read it in its loop."""
        job = self._job
        if job is None and self._lane is not None:
            return self._lane.completed_job()
        return job

    @property
    def handle(self) -> bytes | None:
        job = self._job
        if job is None:
            return None if self._lane is None else self._lane.handle
        return job.handle

    @property
    def server(self) -> ServerAddress | None:
        job = self._job
        if job is None:
            lane = self._lane
            return None if lane is None or lane.handle is None else lane.link.address
        return job.server

    @property
    def state(self) -> str:
        if self._done:
            return self._state or TaskState.FAILURE
        self._ensure_listening()
        return self._peek_state()

    def _peek_state(self) -> str:
        """The state from what has been taken in so far (no listening started)."""
        if self._done:
            return self._state or TaskState.FAILURE
        state = self._state
        if state is not None:
            return state
        job = self._job
        if job is None or job.state is _PENDING:
            return TaskState.PENDING
        if job.numerator or job.denominator:
            return TaskState.STARTED
        return TaskState.QUEUED

    @property
    def status(self) -> str:
        """Celery's name for :attr:`state`."""
        return self.state

    @property
    def meta(self) -> Any:
        """The metadata of the last state update (``update_state``, STARTED, RETRY)."""
        self._ensure_listening()
        return self._meta

    @property
    def attempts(self) -> int:
        """The attempt the task is on (1 for the first run; more after retries)."""
        self._ensure_listening()
        return self._attempt

    @property
    def progress(self) -> tuple[int, int] | None:
        """The last ``(numerator, denominator)`` from WORK_STATUS, or None before any."""
        job = self._job
        if job is None:
            return self._progress
        numerator, denominator = job.numerator, job.denominator
        if numerator == 0 and denominator == 0:
            return None
        return numerator, denominator

    @property
    def warnings(self) -> list[str]:
        """The task's warnings (WORK_WARNING) so far, oldest first."""
        if self._warnings is not None:
            return list(self._warnings)
        job = self._job
        if job is None:
            return []
        return [w.decode("utf-8", "replace") for w in job.warnings]

    @property
    def chunks(self) -> list[Any]:
        """The streamed chunks received so far (see :meth:`stream`)."""
        self._ensure_listening()
        return list(self._chunks)

    def ready(self) -> bool:
        """True once the task has finished (successfully or not)."""
        return self._done

    def successful(self) -> bool:
        return self._done and self._error is None

    def failed(self) -> bool:
        return self._done and self._error is not None

    @property
    def result(self) -> Any:
        """The value if it succeeded, the exception if it failed, else None (as Celery)."""
        if not self._done:
            return None
        return self._error if self._error is not None else self._outcome(False)

    @property
    def exception(self) -> BaseException | None:
        return self._error if self._done else None

    @property
    def traceback(self) -> str | None:
        """The remote traceback text of a failed task."""
        if not self._done:
            return None
        if self._failure is not None:
            return self._failure.traceback or None
        return getattr(self._error, "remote_traceback", None)

    # -- waiting ------------------------------------------------------------------------------

    def _outcome(self, propagate: bool) -> Any:
        error = self._error
        if error is None:
            value = self._value
            if value is _CHUNKS:
                return iter(list(self._chunks))
            return value
        if propagate:
            raise error
        return error

    def _timeout(self, timeout: float) -> TaskTimeout:
        return TaskTimeout(
            f"task {self.task_name!r} (id {self.id}) gave no result within {timeout:g} s"
            " (it goes on; get() again to keep waiting)",
            task_name=self.task_name,
            task_id=self.id,
            abandoned=False,
            server=self.server,
            handle=self.handle,
        )

    @overload
    def get(self, timeout: float | None = None, propagate: Literal[True] = True) -> R_co: ...
    @overload
    def get(self, timeout: float | None = None, *, propagate: bool) -> R_co | BaseException: ...
    @overload
    def get(self, timeout: float | None, propagate: bool) -> R_co | BaseException: ...

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Block until the task is done; return its value or raise its error.

        ``timeout``: raise :class:`TaskTimeout` after that many seconds (the task goes on).
        ``propagate=False``: return the exception instead of raising it.

        Errors: the task's own exception (rebuilt: builtin and allow-listed types as
        themselves, others as a :class:`RemoteError` subclass of the same name, with the
        remote traceback attached), :class:`TimeLimitExceeded`, :class:`TaskFailed` (a bare
        WORK_FAIL), :class:`TaskTimeout`, and the client's errors (``JobConnectionLost``,
        ``QueueFull``, ``NoServerAvailable``...).
        """
        if not self._done and not self._wait_blocking(timeout):
            assert timeout is not None
            raise self._timeout(timeout)
        # A value as _outcome gives it, without its frame: this is the end of a blocking
        # round trip's path.
        if self._error is None and self._value is not _CHUNKS:
            return self._value
        return self._outcome(propagate)

    def wait(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Celery's alias of :meth:`get`."""
        return self.get(timeout, propagate)

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """``get`` for asyncio: wait without blocking the loop."""
        if not self._done:
            job = self._job
            if timeout is None and job is not None and self._in_owner_thread():
                with contextlib.suppress(Exception):  # settled by the job's done callback
                    await job
            elif not await self._wait_async(_never, timeout):
                assert timeout is not None
                raise self._timeout(timeout)
        return self._outcome(propagate)

    def __await__(self) -> Generator[Any, None, R_co]:
        if not self._done:
            job = self._job
            if job is not None and self._in_owner_thread():
                with contextlib.suppress(Exception):  # settled by the job's done callback
                    yield from job.__await__()
                if not self._done:  # pragma: no cover - the callback runs before waking us
                    yield from self._wait_async(_never, None).__await__()
            else:
                yield from self._wait_async(_never, None).__await__()
        return self._outcome(True)  # type: ignore[no-any-return]

    def add_done_callback(self, callback: Callable[[AsyncResult[R_co]], object]) -> None:
        """Call ``callback(result)`` once the task is done (at once if it already is).

        It runs in the loop that owns the result (for results of blocking calls, in the
        thread running the app's loop at the time); exceptions in it are logged, not raised.
        """
        if self._done:
            _run_callback(callback, self)
            return

        def add() -> None:
            if self._done:
                _run_callback(callback, self)
            else:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)

        loop = self._owner_loop()
        if loop is None or _running_loop() is loop:
            add()
        else:
            _call_soon_in(loop, add)

    # -- streaming ----------------------------------------------------------------------------

    def stream(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield the task's streamed chunks as they arrive, until it ends.

        Chunks are what a generator task yields (or ``ctx.send_chunk``). After the last
        one, a failed task's error is raised. ``timeout`` bounds each wait for a chunk
        (:class:`TaskTimeout`).
        """
        self._no_deadlock("stream")
        driver = self._waker()
        cond = self._ensure_cond()
        index = 0
        while True:
            if driver is not None:
                if not driver.wait_for(functools.partial(self._has_news, index), timeout):
                    assert timeout is not None
                    raise self._timeout(timeout)
            else:
                with cond:
                    while index >= len(self._chunks) and not self._done:
                        if not cond.wait(timeout):
                            assert timeout is not None
                            raise self._timeout(timeout)
            chunks = self._chunks
            while index < len(chunks):
                index += 1
                yield chunks[index - 1]
            if self._done and index >= len(self._chunks):
                break
        self._outcome(True)

    async def astream(self, timeout: float | None = None) -> AsyncIterator[Any]:
        """:meth:`stream` for asyncio (also ``async for chunk in result``)."""
        own = self._owner_loop()
        loop = asyncio.get_running_loop()
        if own is None or own is loop:
            self._listen_now()
        elif not self._listening:
            listening = asyncio.run_coroutine_threadsafe(_call(self._listen_now), own)
            driver = driver_of(own)
            if driver is not None:
                driver.wake()
            await asyncio.wrap_future(listening)
        index = 0
        while True:
            chunks = self._chunks
            while index < len(chunks):
                index += 1
                yield chunks[index - 1]
            if self._done:
                if index >= len(self._chunks):
                    break
                continue
            if not await self._wait_async(functools.partial(self._has_more, index), timeout):
                assert timeout is not None
                raise self._timeout(timeout)
        self._outcome(True)

    def _has_more(self, seen: int) -> bool:
        return len(self._chunks) > seen

    def _has_news(self, seen: int) -> bool:
        return self._done or len(self._chunks) > seen

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.astream()

    def __repr__(self) -> str:
        return f"<AsyncResult {self.task_name} {self.id} {self._peek_state()}>"


def _never() -> bool:
    return False


async def _call(fn: Callable[[], None]) -> None:
    fn()


def _run_callback(callback: Callable[..., object], *args: object) -> None:
    try:
        callback(*args)
    except Exception:
        import logging

        logging.getLogger("gearq.tasks").exception("error in result callback %r", callback)


# --- background results --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackgroundStatus:
    """What GET_STATUS_UNIQUE says about a background task right now."""

    state: str
    known: bool
    running: bool
    numerator: int
    denominator: int
    #: Foreground clients attached to the job (coalesced callers).
    waiting: int
    server: ServerAddress | None

    @property
    def progress(self) -> tuple[int, int] | None:
        if self.numerator == 0 and self.denominator == 0:
            return None
        return self.numerator, self.denominator


class BackgroundResult:
    """The handle of a background task: durable, detached, fire-and-forget.

    gearmand tells a background submitter nothing after it has accepted the job, so this
    handle can say whether the server still has the job, whether a worker runs it, and its
    progress (GET_STATUS_UNIQUE, while the job exists), but not its result: :meth:`get`
    raises :class:`ResultNotKept`. Once the job has finished (or failed, or was dropped)
    the server forgets it and the state reads UNKNOWN.
    """

    __slots__ = (
        "__weakref__",
        "_app",
        "_created",
        "_eager",
        "_error",
        "_home",
        "_job",
        "eta",
        "function",
        "id",
        "task_name",
        "unique",
    )

    def __init__(
        self,
        app: Any,
        task_name: str,
        task_id: str,
        *,
        function: bytes,
        unique: bytes,
        eta: float | None,
        home: _View | None,
        blocking: bool = False,
    ) -> None:
        self._app = app
        self.task_name = task_name
        self.id = task_id
        self.function = function
        self.unique = unique
        self.eta = eta
        self._home = home
        self._job: Job | None = None
        self._error: BaseException | None = None
        gate: threading.Lock | None = None
        if blocking:
            gate = threading.Lock()
            gate.acquire()
        self._created = gate
        self._eager = False

    # fed in the owning loop
    def _attach(self, job: Job) -> None:
        self._job = job
        job.add_done_callback(self._job_done)

    def _job_done(self, job: Job) -> None:
        if job.handle is None:
            self._error = job.error
        self._finish()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._finish()

    def _finish(self) -> None:
        home = self._home
        if home is not None:
            home._result_done()
        if self._created is not None:
            self._created.release()
            driver = driver_of(None if home is None else home.loop)
            if driver is not None:
                driver.notify()

    @property
    def handle(self) -> bytes | None:
        job = self._job
        return None if job is None else job.handle

    @property
    def server(self) -> ServerAddress | None:
        job = self._job
        return None if job is None else job.server

    @property
    def submitted(self) -> bool:
        """True once a job server has acknowledged the job (it is durable from then on,
        if the server runs a persistent queue)."""
        return self.handle is not None

    def created(self, timeout: float | None = None) -> bytes:
        """Block until the server acknowledged the job; return its handle, or raise why
        it could not be submitted."""
        job = self._job
        if self._eager:
            return b"eager"
        if job is None or job.state is _PENDING:
            gate = self._created
            if gate is None:
                raise RuntimeError(
                    "this background result belongs to an event loop: use `await result.acreated()`"
                )
            home = self._home
            driver = driver_of(None if home is None else home.loop)
            if driver is not None:
                got = driver.wait_for(lambda: not gate.locked(), timeout)
            else:
                got = gate.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
                if got:
                    gate.release()
            if not got:
                assert timeout is not None
                raise TaskTimeout(
                    f"background task {self.task_name!r} not acknowledged within {timeout:g} s",
                    task_name=self.task_name,
                    task_id=self.id,
                    abandoned=False,
                )
        return self._handle_or_raise()

    async def acreated(self, timeout: float | None = None) -> bytes:
        job = self._job
        if self._eager:
            return b"eager"
        if self._created is not None and (job is None or job.state is _PENDING):
            return await asyncio.to_thread(self.created, timeout)
        if job is not None and job.state is _PENDING:
            try:
                await job.created(timeout)
            except JobTimeout:
                assert timeout is not None
                raise TaskTimeout(
                    f"background task {self.task_name!r} not acknowledged within {timeout:g} s",
                    task_name=self.task_name,
                    task_id=self.id,
                    abandoned=False,
                ) from None
            except Exception:
                pass
        return self._handle_or_raise()

    def _handle_or_raise(self) -> bytes:
        if self._eager:
            return b"eager"
        if self._error is not None:
            raise self._error
        job = self._job
        if job is None or job.handle is None:
            error = None if job is None else job.error
            raise error or GearqError("the background task was not submitted")
        return job.handle

    def _status_from(self, status: Any) -> BackgroundStatus:
        if status.known:
            if status.running:
                state: str = TaskState.STARTED
            elif self.eta is not None and time.time() < self.eta:
                state = TaskState.SCHEDULED
            else:
                state = TaskState.QUEUED
        else:
            state = TaskState.UNKNOWN
        return BackgroundStatus(
            state,
            status.known,
            status.running,
            status.numerator,
            status.denominator,
            status.waiting,
            status.server if status.known else None,
        )

    def status(self) -> BackgroundStatus:
        """Ask the job servers (GET_STATUS_UNIQUE) about the task, blocking (first until
        the submit is acknowledged, if it is not yet)."""
        if self._eager:  # it ran already, here
            return BackgroundStatus(TaskState.UNKNOWN, False, False, 0, 0, 0, None)
        self.created()  # as astatus(): right after send() the server may not have answered
        return self._status_from(self._app._status_unique(self.unique, self.server))

    async def astatus(self) -> BackgroundStatus:
        if self._eager:
            return self.status()
        await self.acreated()
        return self._status_from(await self._app._astatus_unique(self.unique, self.server))

    @property
    def state(self) -> str:
        """QUEUED, SCHEDULED, STARTED or UNKNOWN (a blocking GET_STATUS_UNIQUE)."""
        if self._eager:
            return TaskState.UNKNOWN
        if self._job is None or self._job.state is _PENDING:
            if self._error is not None:
                return TaskState.FAILURE
            return TaskState.PENDING
        if self._error is not None:
            return TaskState.FAILURE
        return self.status().state

    @property
    def progress(self) -> tuple[int, int] | None:
        """The task's last reported progress (a blocking GET_STATUS_UNIQUE)."""
        return self.status().progress

    def ready(self) -> bool:
        """Whether the server no longer has the job (finished, failed or dropped)."""
        return self.status().state is TaskState.UNKNOWN

    def _not_kept(self) -> ResultNotKept:
        return ResultNotKept(
            f"background results are not kept: task {self.task_name!r} (id {self.id}) was"
            " submitted as a background job, whose result nobody receives. Use .delay()"
            " (a foreground call) when you need the value, or a result store."
        )

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Always raises :class:`ResultNotKept`: background results are not kept."""
        raise self._not_kept()

    def __await__(self) -> Generator[Any, None, Any]:
        raise self._not_kept()
        yield  # pragma: no cover

    def __repr__(self) -> str:
        return f"<BackgroundResult {self.task_name} {self.id} unique={self.unique!r}>"
