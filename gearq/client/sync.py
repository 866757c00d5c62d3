"""The blocking client: ``AsyncClient`` on a private event loop (:class:`DrivenLoop`).

A thread that blocks on the client (a submit, a result) runs the loop itself while nobody
else does, so a single-threaded caller pays no thread hand-off; a daemon thread runs it
the rest of the time. Any number of threads may share one ``Client``. After ``os.fork()``
the child notices the new pid and starts its own loop and connections (the parent's
sockets are never touched by the child).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

try:  # signal.signal's enum conversions cost ~15 µs a round trip; the C functions ~1 µs
    import _signal as _sig  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - not CPython
    _sig = signal

from ..net.address import ServerAddress, ServerSpec
from ..net.inplace import DONE, waiter_for
from ..protocol.errors import GearqError
from .client import AsyncClient, ClientCallback, ClientEvent
from .errors import ClientClosed, JobTimeout
from .job import (
    BackgroundBatch,
    Job,
    JobCallback,
    JobEvent,
    JobState,
    JobStatus,
    Priority,
    UniqueStatus,
)
from .lane import AWAY, OTHER, LaneCall, LaneSender
from .lane import DONE as LANE_DONE
from .many import ForegroundBatch

__all__ = ["Client", "DrivenLoop", "SyncJob", "driver_of"]

_T = TypeVar("_T")

# Kept for the life of the process: a forked child must not close (or even garbage-collect
# into closing) the event loop and sockets it inherited from its parent.
_ABANDONED: list[object] = []

# The DrivenLoop of each loop it owns, by id(loop) (dropped when the loop is closed).
_DRIVERS: dict[int, DrivenLoop] = {}

# This process's pid, kept up to date in forked children: os.getpid() is a system call,
# and the blocking calls check for a fork on every call.
_PID = [os.getpid()]
# The main thread's ident (a forked child's main thread is the one that forked).
_MAIN = [threading.main_thread().ident]


def _forked() -> None:
    _PID[0] = os.getpid()
    _MAIN[0] = threading.get_ident()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


#: ``os.getpid()``, without the system call (and, a C call, without a Python frame:
#: every blocking task call asks).
current_pid: Callable[[], int] = functools.partial(_PID.__getitem__, 0)


def driver_of(loop: asyncio.AbstractEventLoop | None) -> DrivenLoop | None:
    """The :class:`DrivenLoop` that runs ``loop``, if any."""
    if loop is None:
        return None
    driver = _DRIVERS.get(id(loop))
    return driver if driver is not None and driver.loop is loop else None


_SIGINT = int(signal.SIGINT)


class _Interrupt:
    """Ctrl-C while a caller runs the loop: stop the loop cleanly, then raise.

    Raised in the middle of a loop callback, KeyboardInterrupt could leave a connection
    half-read; so while the main thread runs the loop, SIGINT only stops it. One per
    loop, armed for each wait (only the thread holding the loop's baton arms it, and a
    wait cannot start inside another of the same loop): a new one per wait cost a lone
    round trip an object and a bound method.
    """

    __slots__ = ("handle", "hit", "loop", "previous")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.hit = False
        self.previous: Any = None
        self.handle = self._handle

    def _handle(self, signum: int, frame: object) -> None:
        self.hit = True
        self.loop.call_soon_threadsafe(self.loop.stop)

    def restore(self) -> None:
        # (previous is kept: it is Python's default handler, see _catch_sigint.)
        _sig.signal(_SIGINT, self.previous)


_get_ident = threading.get_ident
_monotonic = time.monotonic
_running_loop = asyncio._get_running_loop  # (a global and no attribute: on lane paths)
_getsignal = _sig.getsignal
_DEFAULT_INT = signal.default_int_handler


def _catch_sigint(interrupt: _Interrupt) -> _Interrupt | None:
    """Arm ``interrupt`` in the main thread while SIGINT has Python's default handler."""
    if _get_ident() == _MAIN[0] and _getsignal(_SIGINT) is _DEFAULT_INT:
        interrupt.hit = False
        interrupt.previous = _sig.signal(_SIGINT, interrupt.handle)
        return interrupt
    return None


class DrivenLoop:
    """An event loop run by whichever thread is waiting on it, else by a daemon thread.

    A blocking call that waits (a result, a submit) takes the *baton* if nobody holds it and
    runs the loop in its own thread until what it waits for is done: a single-threaded
    caller pays no thread hand-off at all (each costs tens of microseconds of wake-up and
    GIL latency, the bulk of a round trip's overhead). The daemon thread runs the loop only
    when no caller has held the baton for ``grace`` seconds (so timers, heartbeats, callbacks
    and events of results nobody waits for still run), and hands it back as soon as a
    caller asks. Callers that find the baton held by another caller wait on a condition and
    take over when it is released; one that cannot run the loop (another loop runs in its
    thread) wakes the daemon thread instead. Callbacks therefore run in whichever thread
    runs the loop at the time.
    """

    def __init__(self, name: str, grace: float = 0.02) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.grace = grace
        self._baton = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0  # callers blocked in wait_for without the baton
        self._kick = threading.Event()  # run the loop in the background now
        self._last_caller = time.monotonic()  # when a caller last gave the baton back
        self._handover = False  # a caller asked the background thread for the baton
        self._caller: Callable[[], bool] | None = None  # what the driving caller waits for
        self._deadline: float | None = None  # when it stops waiting (loop time)
        self._alarm: asyncio.TimerHandle | None = None  # a wake-up at or before that
        self._closing = False
        self._interrupt = _Interrupt(self.loop)
        #: A lone call read by its waiter (gearq.client.lane): made into a job by whoever
        #: takes the loop next, before anything else.
        self.lane: LaneCall | None = None
        # Waits for nothing but the connections skip the loop (see gearq.net.inplace).
        waiter = waiter_for(self.loop)
        self._in_place = waiter if waiter.usable else None
        _DRIVERS[id(self.loop)] = self
        self.thread = threading.Thread(target=self._background, name=name, daemon=True)
        self.thread.start()

    # -- the background thread ------------------------------------------------------------

    def _background(self) -> None:
        asyncio.set_event_loop(self.loop)
        baton, kick, loop, grace = self._baton, self._kick, self.loop, self.grace
        while not self._closing:
            quiet = time.monotonic() - self._last_caller
            kicked = kick.wait(grace - quiet if quiet < grace else grace if baton.locked() else 0)
            kick.clear()
            if self._closing or loop.is_closed():
                break
            if not kicked and time.monotonic() - self._last_caller < grace:
                continue
            if not baton.acquire(blocking=False):
                continue  # a caller runs the loop
            try:
                if not self._handover:
                    self._settle_lane()
                    loop.run_forever()  # until a caller asks for the baton, or close
            finally:
                if self._handover:
                    # Leave the loop to callers for a while: they are back.
                    self._handover = False
                    self._last_caller = time.monotonic()
                baton.release()
                if self._waiting:
                    with self._cond:
                        self._cond.notify_all()

    def _hand_over(self) -> None:
        if self._handover and threading.current_thread() is self.thread:
            self.loop.stop()

    # -- callers --------------------------------------------------------------------------

    def in_loop(self) -> bool:
        """True in a callback of this loop (whichever thread runs it)."""
        return asyncio._get_running_loop() is self.loop

    def notify(self) -> None:
        """Something a caller may wait for happened (call it from the loop)."""
        caller = self._caller
        # (Not running: the caller reads in place, and sees done() itself; a stop() now
        # would cut the loop's next run short.)
        if caller is not None and self.loop.is_running() and caller():
            self.loop.stop()
        if self._waiting:
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``done()`` (re-checked after each :meth:`notify`), running the loop
        in this thread while nobody else does; False after ``timeout`` seconds."""
        if done():
            return True
        if _PID[0] != self.pid:
            raise GearqError("this belongs to the parent process; submit it again here")
        # (One lookup: on 3.11 each costs a getpid() system call.)
        running = asyncio._get_running_loop()
        if running is self.loop:
            raise RuntimeError("a blocking gearq call from its own event loop would deadlock")
        can_run = running is None
        deadline = None if timeout is None else time.monotonic() + timeout
        baton = self._baton
        while True:
            if can_run and baton.acquire(blocking=False):
                try:
                    return self._run(done, deadline)
                finally:
                    self._release()
            with self._cond:
                self._waiting += 1
                try:
                    while not done():
                        if not baton.locked():
                            if can_run:
                                break
                            self._kick.set()
                        elif can_run and not self._handover and self._caller is None:
                            # The background thread runs the loop: ask for it.
                            self._handover = True
                            self.loop.call_soon_threadsafe(self._hand_over)
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            return False
                        self._cond.wait(left)
                    else:
                        return True
                finally:
                    self._waiting -= 1

    def _run(self, done: Callable[[], bool], deadline: float | None) -> bool:
        """Run the loop in this thread (holding the baton) until ``done()`` or deadline."""
        self._handover = False
        loop = self.loop
        if loop.is_closed():
            return done()
        self._settle_lane()
        interrupted = _catch_sigint(self._interrupt)
        self._caller = done
        in_place = self._in_place
        try:
            while not done():
                if interrupted is not None and interrupted.hit:
                    break
                left = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                if in_place is not None and in_place.wait(left) == DONE:
                    continue
                if left is not None:
                    self._deadline = loop.time() + left
                    self._arm(self._deadline)
                loop.run_forever()
            return True
        finally:
            self._caller = None
            self._deadline = None
            if interrupted is not None:
                interrupted.restore()
                if interrupted.hit:
                    raise KeyboardInterrupt

    def _arm(self, when: float) -> None:
        # One timer serves successive waits: with the same timeout each deadline is later
        # than the armed one, which then only re-arms itself when it rings (a new timer
        # per wait costs more than the rest of the wait's bookkeeping).
        alarm = self._alarm
        if alarm is not None:
            if alarm.when() <= when:
                return
            alarm.cancel()
        self._alarm = self.loop.call_at(when, self._ring)

    def _ring(self) -> None:
        self._alarm = None
        deadline = self._deadline
        if deadline is None:
            return
        if self.loop.time() >= deadline - 0.001:  # timers may ring a hair early
            self.loop.stop()  # the waiting caller sees its time is up
        else:
            self._alarm = self.loop.call_at(deadline, self._ring)

    def _release(self) -> None:
        self._last_caller = _monotonic()
        self._baton.release()
        if self._waiting:
            with self._cond:
                self._cond.notify_all()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run a coroutine on the loop and return its result (TimeoutError after
        ``timeout``; the coroutine goes on, as with ``Future.result(timeout)``)."""
        if self.in_loop():
            coro.close()
            raise RuntimeError("a blocking gearq call from its own event loop would deadlock")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        fut.add_done_callback(lambda _fut: self.notify())
        if not self.wait_for(fut.done, timeout):
            raise concurrent.futures.TimeoutError
        return fut.result()

    def call(self, fn: Callable[..., _T], *args: Any, timeout: float | None = None) -> _T:
        """Run ``fn(*args)`` in the loop and return its result (TimeoutError after
        ``timeout``; RuntimeError if the loop is closed)."""
        if self.in_loop():
            return fn(*args)
        fut: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)
            self.notify()

        self.loop.call_soon_threadsafe(run)
        if not self.wait_for(fut.done, timeout):
            raise concurrent.futures.TimeoutError
        return fut.result()

    def run_here(self, fn: Callable[[], _T | None]) -> _T | None:
        """Call ``fn`` in this thread as if it were the loop's own, when no thread runs the
        loop and no loop runs in this thread, and return what it returns; None (``fn``
        not called) otherwise.

        For a caller about to wait on what ``fn`` starts: the loop is set as this thread's
        running loop while ``fn`` runs (so it may create tasks and write to transports),
        and what ``fn`` schedules runs when a thread next runs the loop. This saves the
        loop passes a scheduled ``fn`` would cost before its first packet leaves.
        """
        if asyncio._get_running_loop() is not None:
            return None
        if not self._baton.acquire(blocking=False):
            return None
        try:
            if self.loop.is_closed():
                return None
            # Documented for event-loop implementers; the baton makes this thread the
            # loop's only user until it is released.
            asyncio.events._set_running_loop(self.loop)
            try:
                self._settle_lane()
                return fn()
            finally:
                asyncio.events._set_running_loop(None)
        finally:
            self._release()

    def send_lane(
        self, sender: LaneSender, payload: bytes, bind: Callable[..., _T], *args: Any
    ) -> _T | None:
        """Send a foreground submit of ``payload`` as this driver's lane (see
        gearq.client.lane) with ``sender`` (:meth:`AsyncClient.lane_sender`) from a thread
        outside the loop, if nobody runs the loop and the client can; then
        ``bind(lane, *args)``, before anyone else can take the loop, gives the lane its
        ``on_done`` and ``on_job`` (after the packet has left: what it makes is not on
        the round trip's path). Returns what ``bind`` returned, or None (nothing was
        sent)."""
        # (acquire(False): a keyword argument costs a lone round trip more than its clarity)
        if _running_loop() is not None or not self._baton.acquire(False):
            return None
        try:
            if self._closing:  # (set before stop() closes the loop; nothing else closes it)
                return None
            if self.lane is not None:
                self._settle_lane()
            lane = sender.send(payload, self)
            if lane is None:
                return None
            # Registered first: whatever happens in bind, the next taker of the loop makes
            # the lane a job, so the link's replies stay in step.
            self.lane = lane
            return bind(lane, *args)
        finally:
            self._release()

    def _settle_lane(self) -> None:
        # (Holding the baton.) Before the loop runs or anything else is sent.
        lane = self.lane
        if lane is None:
            return
        self.lane = None
        if not lane.open:
            return
        if asyncio._get_running_loop() is self.loop:
            lane.materialize()
            return
        asyncio.events._set_running_loop(self.loop)  # what it hands on may need it
        try:
            lane.materialize()
        finally:
            asyncio.events._set_running_loop(None)

    def wait_lane(self, lane: LaneCall, timeout: float | None) -> bool | None:
        """Wait for ``lane`` (this driver's open lane) by reading its connection in this
        thread: True once it finished (its ``on_done`` was called), False after
        ``timeout`` seconds (it goes on), None if it cannot be waited for this way (any
        more): it has been made a Job, or something else needs the loop; wait as usual."""
        waiter = self._in_place
        if waiter is None or _PID[0] != self.pid or _running_loop() is not None:
            return None
        if not self._baton.acquire(False):
            return None
        interrupted = None
        try:
            # (Whatever finishes the driver's lane or makes it a job drops it here first.)
            if self.lane is not lane or self.loop.is_closed():
                return None
            # The waiter's checks once, then only poll, read and feed: until this gives the
            # loop back, nothing but another thread (whose wake-up ends the wait) can make
            # them come out otherwise (see InPlaceWaiter.prepare).
            prepared = waiter.prepare()
            if prepared.__class__ is int:
                return None
            poll, timer = prepared  # type: ignore[misc]
            now = time.monotonic()
            until = None if timeout is None else now + timeout
            if timer is not None and (until is None or now + timer < until):
                until, timeout = now + timer, None  # the loop has to run the timer then
            # Ctrl-C stops the loop, which writes to its wake-up pipe: the poll sees that.
            interrupted = _catch_sigint(self._interrupt)
            got = lane.wait(poll, until)
            if got == LANE_DONE:
                self.lane = None
                if not lane.rest:
                    return True
            elif got == OTHER:
                self.lane = None
            else:
                return None if got == AWAY or timeout is None else False
            # What the connection's handlers get runs as in the loop.
            asyncio.events._set_running_loop(self.loop)
            try:
                if got == OTHER:
                    lane.materialize()
                else:
                    lane.hand_over()
            finally:
                asyncio.events._set_running_loop(None)
            return got == LANE_DONE or None
        finally:
            self._release()
            if interrupted is not None:
                interrupted.restore()
                if interrupted.hit:
                    raise KeyboardInterrupt

    def schedule(self, fn: Callable[[], object]) -> None:
        """Schedule ``fn`` in the loop from any thread, for a caller about to wait: when
        nobody runs the loop, no wake-up is written (whoever runs it next runs ``fn``;
        the background thread within ``grace``)."""
        if self._baton.acquire(blocking=False):
            try:
                self.loop.call_soon(fn)  # nobody is in select(), so this is safe and enough
            finally:
                self._release()
        else:
            self.loop.call_soon_threadsafe(fn)

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Schedule ``fn`` in the loop from any thread, without waiting: if no thread runs
        the loop now, the background thread starts at once rather than after ``grace``."""
        self.loop.call_soon_threadsafe(fn)
        self.wake()

    def wake(self) -> None:
        """Make sure some thread runs the loop soon (after scheduling work on it that
        nobody will wait for in :meth:`wait_for`)."""
        if not self._baton.locked():
            self._kick.set()

    def stop(self) -> None:
        """Stop the background thread and close the loop (not from a loop callback)."""
        if self.loop.is_closed() or os.getpid() != self.pid:
            return
        self._closing = True
        self._kick.set()
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._stop_background)
        if threading.current_thread() is not self.thread:
            self.thread.join(10)
        if self._baton.acquire(timeout=10):
            try:
                if not self.loop.is_closed():
                    self.loop.close()
            finally:
                self._baton.release()
        _DRIVERS.pop(id(self.loop), None)

    def _stop_background(self) -> None:
        if threading.current_thread() is self.thread:
            self.loop.stop()


#: The name the admin client imports.
_LoopThread = DrivenLoop


class SyncJob:
    """A job of the blocking client: the same attributes and method names as :class:`Job`,
    with blocking waits. Callbacks run in the thread that runs the client's loop at the
    time (a thread blocked on the client, or its daemon thread)."""

    __slots__ = ("_job", "_pid", "_runner")

    def __init__(self, job: Job, runner: DrivenLoop) -> None:
        # Built in the loop, so the callbacks cannot miss an event.
        self._job = job
        self._runner = runner
        self._pid = _PID[0]
        job.add_done_callback(self._changed)
        if job.state is JobState.PENDING:
            job.on("created", self._changed)

    def _changed(self, *_: object) -> None:
        self._runner.notify()

    def _is_created(self) -> bool:
        return self._job.handle is not None or self._job.done

    @property
    def job(self) -> Job:
        """The underlying asyncio job (touch it only from a callback of the client's loop)."""
        return self._job

    @property
    def handle(self) -> bytes | None:
        return self._job.handle

    @property
    def server(self) -> ServerAddress | None:
        return self._job.server

    @property
    def state(self) -> JobState:
        return self._job.state

    @property
    def done(self) -> bool:
        return self._job.done

    @property
    def error(self) -> BaseException | None:
        return self._job.error if self.done else None

    @property
    def function(self) -> bytes:
        return self._job.function

    @property
    def unique(self) -> bytes:
        return self._job.unique

    @property
    def background(self) -> bool:
        return self._job.background

    @property
    def payload(self) -> bytes:
        return self._job.payload

    @property
    def priority(self) -> Priority:
        return self._job.priority

    @property
    def numerator(self) -> int:
        return self._job.numerator

    @property
    def denominator(self) -> int:
        return self._job.denominator

    @property
    def warnings(self) -> list[bytes]:
        return list(self._job.warnings)

    @property
    def data(self) -> list[bytes]:
        return self._job.data

    @property
    def attempts(self) -> int:
        return self._job.attempts

    def _check_pid(self) -> None:
        if _PID[0] != self._pid:
            raise GearqError("this job belongs to the parent process; submit it again here")

    def result(self, timeout: float | None = None) -> bytes:
        """Block for the result (b"" for a background job once created); raises the typed
        error, or :class:`JobTimeout` after ``timeout`` seconds (the job goes on)."""
        self._check_pid()
        job = self._job
        if not job.done and not self._runner.wait_for(lambda: job.done, timeout):
            raise JobTimeout(
                f"no result within {timeout:g} s (the job goes on)",
                server=self._job.server,
                handle=self._job.handle,
            )
        return self._job.result_nowait()

    def created(self, timeout: float | None = None) -> bytes:
        """Block until the server acknowledged the job; return its handle."""
        self._check_pid()
        if not self._runner.wait_for(self._is_created, timeout):
            raise JobTimeout(f"not acknowledged within {timeout:g} s")
        handle = self._job.handle
        if handle is None:
            error = self._job.error
            assert error is not None
            raise error
        return handle

    def stream(self, timeout: float | None = None) -> Iterator[bytes]:
        """Yield WORK_DATA chunks as they arrive until the job ends; then raise its error
        if it did not complete. ``timeout`` bounds the wait for each chunk."""
        self._check_pid()
        chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        runner = self._runner

        def put(item: bytes | None) -> None:
            chunks.put(item)
            runner.notify()

        def start() -> None:
            for chunk in self._job.data:
                chunks.put(chunk)
            if self._job.done:
                chunks.put(None)
                return
            self._job.on("data", lambda _job, data: put(data))
            self._job.add_done_callback(lambda _job: put(None))

        runner.call(start)
        while True:
            if not runner.wait_for(lambda: not chunks.empty(), timeout):
                raise JobTimeout(f"no data within {timeout:g} s")
            item = chunks.get_nowait()
            if item is None:
                break
            yield item
        if self._job.error is not None:
            raise self._job.error

    def on(self, event: JobEvent, callback: JobCallback) -> JobCallback:
        """``callback(job, value)`` on each event, called in the loop (see the class) with
        the underlying :class:`Job`."""
        return self._runner.call(self._job.on, event, callback)

    def off(self, event: JobEvent, callback: JobCallback) -> None:
        self._runner.call(self._job.off, event, callback)

    def add_done_callback(self, callback: Callable[[Job], object]) -> None:
        self._runner.call(self._job.add_done_callback, callback)

    def __repr__(self) -> str:
        return repr(self._job).replace("<Job", "<SyncJob", 1)


class Client:
    """Blocking twin of :class:`AsyncClient`: the same arguments and method names."""

    def __init__(
        self, servers: str | ServerSpec | Iterable[ServerSpec] | None = None, **options: Any
    ) -> None:
        self._servers = servers
        self._options = options
        # Fail fast on bad arguments, in the caller's thread.
        probe = AsyncClient(servers, **options)
        self.servers: tuple[ServerAddress, ...] = probe.servers
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._runner: DrivenLoop | None = None
        self._client: AsyncClient | None = None
        self._listeners: list[tuple[ClientEvent, ClientCallback]] = []
        self._closed = False

    def _ensure(self) -> tuple[DrivenLoop, AsyncClient]:
        if self._pid != _PID[0]:
            self._after_fork()
        runner, client = self._runner, self._client
        if runner is not None and client is not None:
            return runner, client
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._runner is None or self._client is None:
                runner = DrivenLoop(f"gearq-client-{os.getpid()}")
                client = AsyncClient(self._servers, **self._options)
                for event, callback in self._listeners:
                    client.on(event, callback)
                self._runner, self._client = runner, client
            return self._runner, self._client

    def _after_fork(self) -> None:
        # The loop thread does not exist here, and the sockets are the parent's.
        _ABANDONED.append((self._runner, self._client))
        self._runner = None
        self._client = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def async_client(self) -> AsyncClient:
        return self._ensure()[1]

    def on(self, event: ClientEvent, callback: ClientCallback) -> ClientCallback:
        """Client events as in :meth:`AsyncClient.on`; callbacks run in the loop (see
        :class:`SyncJob`)."""
        self._listeners.append((event, callback))
        if self._client is not None and self._runner is not None:
            self._runner.call(self._client.on, event, callback)
        return callback

    def off(self, event: ClientEvent, callback: ClientCallback) -> None:
        if (event, callback) in self._listeners:
            self._listeners.remove((event, callback))
        if self._client is not None and self._runner is not None:
            self._runner.call(self._client.off, event, callback)

    def submit(
        self,
        function: str | bytes,
        payload: bytes = b"",
        *,
        background: bool = False,
        priority: Priority = Priority.NORMAL,
        unique: str | bytes | None = None,
        run_at: datetime | float | None = None,
        reducer: str | bytes | None = None,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> SyncJob:
        """See :meth:`AsyncClient.submit`; ``job.result(timeout)`` blocks for the result."""
        runner, client = self._ensure()
        if run_at is None and reducer is None:
            # Sent from this thread at once when nobody else runs the loop (one caller,
            # one job at a time): no hand-off to the loop, no wake-up through its pipe.
            def now() -> SyncJob | None:
                job = client.submit_now(
                    function, payload, background=background, priority=priority,
                    unique=unique, timeout=timeout, resubmit_on_failure=resubmit_on_failure,
                    send=True,
                )  # fmt: skip
                return None if job is None else SyncJob(job, runner)

            sync_job = runner.run_here(now)
            if sync_job is not None:
                return sync_job

        async def submit() -> SyncJob:
            job = await client.submit(
                function,
                payload,
                background=background,
                priority=priority,
                unique=unique,
                run_at=run_at,
                reducer=reducer,
                timeout=timeout,
                resubmit_on_failure=resubmit_on_failure,
            )
            return SyncJob(job, runner)

        return runner.run(submit())

    def submit_many(
        self,
        function: str | bytes,
        payloads: Iterable[bytes],
        *,
        background: bool = False,
        priority: Priority = Priority.NORMAL,
        uniques: Iterable[str | bytes | None] | None = None,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> list[SyncJob]:
        """See :meth:`AsyncClient.submit_many`."""
        runner, client = self._ensure()
        payload_list = list(payloads)
        unique_list = None if uniques is None else list(uniques)

        async def submit() -> list[SyncJob]:
            jobs = await client.submit_many(
                function,
                payload_list,
                background=background,
                priority=priority,
                uniques=unique_list,
                timeout=timeout,
                resubmit_on_failure=resubmit_on_failure,
            )
            return [SyncJob(job, runner) for job in jobs]

        return runner.run(submit())

    def submit_background_many(
        self,
        function: str | bytes,
        payloads: Iterable[bytes],
        *,
        uniques: Iterable[str | bytes | None] | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> BackgroundBatch:
        """See :meth:`AsyncClient.submit_background_many`. Blocks until every job is
        acknowledged or has failed, then returns the done batch: ``batch.handles``,
        ``batch.errors``, and ``batch.result_nowait()`` (the handles, or
        :class:`BatchError`). Without ``timeout`` a server that stops answering holds the
        call until heartbeats notice it."""
        runner, client = self._ensure()
        payload_list = list(payloads)
        unique_list = None if uniques is None else list(uniques)

        async def submit() -> BackgroundBatch:
            batch = await client.submit_background_many(
                function,
                payload_list,
                uniques=unique_list,
                priority=priority,
                timeout=timeout,
                resubmit_on_failure=resubmit_on_failure,
            )
            await batch.wait()
            return batch

        return runner.run(submit())

    def run_many(
        self,
        function: str | bytes,
        payloads: Iterable[bytes],
        *,
        in_flight: int = 100,
        uniques: Iterable[str | bytes | None] | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> ForegroundBatch:
        """See :meth:`AsyncClient.run_many`: blocks until every job has ended and returns
        the done :class:`ForegroundBatch` (``results``, ``errors``, ``result_nowait()``)."""
        runner, client = self._ensure()
        payload_list = list(payloads)
        unique_list = None if uniques is None else list(uniques)
        return runner.run(
            client.run_many(
                function,
                payload_list,
                in_flight=in_flight,
                uniques=unique_list,
                priority=priority,
                timeout=timeout,
                resubmit_on_failure=resubmit_on_failure,
            )
        )

    def get_status(
        self, handle: SyncJob | Job | str | bytes, server: ServerSpec | None = None
    ) -> JobStatus:
        runner, client = self._ensure()
        target = handle.job if isinstance(handle, SyncJob) else handle
        return runner.run(client.get_status(target, server))

    def get_status_unique(
        self, unique: str | bytes, server: ServerSpec | None = None
    ) -> UniqueStatus:
        runner, client = self._ensure()
        return runner.run(client.get_status_unique(unique, server))

    def echo(self, data: bytes = b"", server: ServerSpec | None = None) -> bytes:
        runner, client = self._ensure()
        return runner.run(client.echo(data, server))

    def ping(self, server: ServerSpec | None = None) -> float:
        runner, client = self._ensure()
        return runner.run(client.ping(server))

    def close(self) -> None:
        """Close the connections and stop the loop; waiting jobs fail."""
        with self._lock:
            self._closed = True
            runner, client = self._runner, self._client
            self._runner = self._client = None
        if self._pid != os.getpid():
            return
        if runner is not None and client is not None:
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                runner.run(client.close(), timeout=10)
            runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {','.join(str(s) for s in self.servers)}>"
