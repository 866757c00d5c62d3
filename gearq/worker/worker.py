"""The asyncio worker: connections to every server, slots, handlers, time limits, stop.

Concurrency is counted in *slots*. A slot is held by every outstanding GRAB (it may come
back with a job, which must then start at once) and by every running handler, so the
worker never takes a job it cannot start and never starves other workers. Connections
that want to GRAB wait in one queue and get free slots in turn, so every server and every
function gets its share.

By default each function gets its own connection to each server. gearmand scans a
connection's functions last-registered-first and hands out the first one that has a job,
so functions sharing a connection are not served fairly: a busy one starves the others.
``group=`` puts functions on a shared connection when that is what you want (fewer
connections; the first registered is served first).

Operators: gearmand requeues the jobs a worker held when its connection closes (a crash,
a kill, a lost network) and, with the default ``--job-retries 0``, does so forever, so one
job that kills its worker can take down every worker in turn. Run gearmand with an explicit
``-j N`` (e.g. ``-j 3``); note that gearmand 2.0 reads ``-j 0`` as "no retries".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import socket
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from types import CoroutineType
from typing import Any

from ..net.address import ServerAddress, ServerSpec, parse_servers
from ..net.connection import ConnectionOptions
from ..net.inplace import InPlaceWaiter, waiter_for
from ..net.recover import RecoverPolicy
from ..protocol.codec import encode_request
from ..protocol.limits import MAX_CLIENT_ID, check_client_id, check_function
from ..protocol.packets import PacketType
from .errors import TimeLimitExceeded, WorkerError, format_exception
from .job import COMPLETE, FAIL, Job
from .link import ACTIVE, Link
from .threads import HandlerThreads

__all__ = [
    "AsyncHandler",
    "AsyncWorker",
    "Deferred",
    "Handler",
    "HandlerResult",
    "SyncHandler",
    "WorkerStats",
    "default_client_id",
]

log = logging.getLogger("gearq.worker")

HandlerResult = bytes | bytearray | memoryview | None
SyncHandler = Callable[[Job], HandlerResult]
AsyncHandler = Callable[[Job], Awaitable[HandlerResult]]
Handler = SyncHandler | AsyncHandler


class Deferred:
    """What an inline handler may return instead of an answer: run the job after the read
    that brought it (:attr:`AsyncWorker.deferred`), outside the connection's handling.
    Whoever owns the loop then runs it and calls :meth:`AsyncWorker.finish_deferred`.

    For a thread the loop is lent to while it would only wait (see
    :attr:`gearq.net.inplace.InPlaceWaiter.lender`): a job it runs there can be handed to
    the loop's thread mid-way (which takes the loop back) without that thread finding the
    connection's state half-updated.
    """

    __slots__ = ()


# How a handler runs.
THREAD = 0  # a plain function, in the thread pool
ASYNC = 1  # an async function, as a task on the loop
INLINE = 2  # a plain function called on the loop (for handlers that return at once)


# 3.12+ can run a task's first step at once: a handler that never waits then costs no
# scheduling at all.
if sys.version_info >= (3, 12):

    def _new_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        return asyncio.Task(coro, loop=loop, eager_start=True)

else:

    def _new_task(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        # Not loop.create_task unless a task factory wants it: its Python-level checks cost
        # about 10% of an async job.
        if loop.get_task_factory() is None:
            return asyncio.Task(coro, loop=loop)
        return loop.create_task(coro)


MAX_DEFAULT_WINDOW = 32
# The default concurrency. Handlers on the loop (async, or inline) cost a slot nothing but
# a coroutine, and a deeper pipeline of GRABs is most of a drain's speed (8 outstanding
# GRABs drain about half as fast as 32); plain handlers get threads, and 8 threads in one
# process already hold more jobs than the GIL lets them run at once.
DEFAULT_CONCURRENCY = 32
DEFAULT_THREAD_CONCURRENCY = 8
DEFAULT_RECOVER = RecoverPolicy(recover_time=1.0, backoff=2.0, max_recover_time=30.0, jitter=0.2)


@dataclass(slots=True)
class _Function:
    name: bytes
    handler: Handler
    kind: int
    time_limit: float | None
    group: str


@dataclass(slots=True)
class WorkerStats:
    """Counters since the worker started (read them from the loop's thread)."""

    jobs_started: int = 0
    completed: int = 0
    failed: int = 0
    exceptions: int = 0
    handler_errors: int = 0
    time_limited: int = 0
    jobs_lost: int = 0  # held when their connection dropped; gearmand requeues them
    grabs: int = 0
    no_jobs: int = 0
    noops: int = 0
    polls: int = 0
    connects: int = 0
    server_errors: int = 0


class _NotOnLoop(WorkerError):
    """register() on a running worker, from another thread than its loop's."""


def default_client_id(name: str = "gearq") -> str:
    """``host-pid-name``, without whitespace, for the admin ``workers`` list."""
    raw = f"{socket.gethostname()}-{os.getpid()}-{name}"
    clean = "".join("_" if c.isspace() or c == "\0" else c for c in raw)
    return clean.encode()[:MAX_CLIENT_ID].decode(errors="ignore")


def _is_async(handler: object) -> bool:
    if isinstance(handler, functools.partial):
        return _is_async(handler.func)
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(type(handler), "__call__", None)  # noqa: B004 - an instance's async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _as_name(function: str | bytes) -> bytes:
    name = function.encode() if isinstance(function, str) else bytes(function)
    return check_function(name)


class AsyncWorker:
    """A Gearman worker on asyncio.

    :param servers: job servers (``"host:port"``, a comma-separated string, a list, ...);
        the worker connects to every one of them.
    :param concurrency: jobs run at once, over all servers and functions. Default (None):
        32 when every function runs on the event loop (``async def`` or ``inline``), 8 when
        any runs in threads; decided when :meth:`run` starts.
    :param client_id: shown in the admin ``workers`` list; default ``host-pid-gearq``.
    :param poll_interval: seconds between GRABs on an idle connection, besides the NOOP
        wake-ups. gearmand 1.1.20 never wakes a worker for a due epoch job, so this bounds
        how late such jobs run.
    :param grab_window: GRABs kept outstanding per connection at most (default: the
        concurrency, up to 32). Pipelined GRABs save a round trip per job (8 outstanding
        were 5x faster than 1 on gearmand 1.1.20); they never exceed the free slots, and
        an idle connection starts again from one after each wake.
    :param recover: how soon a dropped or refused server is tried again.
    :param options: socket settings (connect timeout, heartbeats, keepalive, TLS).
    :param executor: where plain handlers run; default ``concurrency`` daemon threads,
        started as needed (a handler stuck past its time limit cannot keep the process
        alive at exit).
    """

    loop: asyncio.AbstractEventLoop
    thread_id: int

    def __init__(
        self,
        servers: str | ServerSpec | Iterable[ServerSpec] | None = None,
        *,
        concurrency: int | None = None,
        client_id: str | None = None,
        poll_interval: float = 1.0,
        grab_window: int | None = None,
        recover: RecoverPolicy = DEFAULT_RECOVER,
        options: ConnectionOptions | None = None,
        executor: Executor | None = None,
    ) -> None:
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ValueError("concurrency must be an int >= 1 (or None: the default)")
        if grab_window is not None and (
            isinstance(grab_window, bool) or not isinstance(grab_window, int) or grab_window < 1
        ):
            raise ValueError("grab_window must be an int >= 1 (or None: the default)")
        if not poll_interval > 0:
            raise ValueError("poll_interval must be > 0")
        self.servers: tuple[ServerAddress, ...] = tuple(parse_servers(servers))
        self._concurrency = concurrency
        self._grab_window = grab_window
        self.client_id = check_client_id((client_id or default_client_id()).encode())
        self.poll_interval = float(poll_interval)
        self.recover = recover
        self.options = options or ConnectionOptions()
        self.stats = WorkerStats()
        self.stopping = False
        self._executor: Executor | HandlerThreads | None = executor
        self._functions: dict[bytes, _Function] = {}
        self._register_lock = threading.Lock()
        self._links: list[Link] = []
        self._free = 0  # set by run()
        self._hungry: deque[Link] = deque()
        self._running = 0
        self._zombies = 0  # handlers still running after their time limit answered the job
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread_done: deque[tuple[Job, Any, BaseException | None]] = deque()
        self._thread_wakeup = False
        self._up = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._started = False
        self._finished = False
        self._stop_requested: tuple[bool, float] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._force = False
        self._in_place: InPlaceWaiter | None = None  # set by run() where it can work
        #: Jobs whose inline handler returned a :class:`Deferred`, in hand (counted among
        #: the running ones) and not started yet.
        self.deferred: deque[tuple[Job, Deferred]] = deque()

    # -- registration ----------------------------------------------------------------------

    def register(
        self,
        function: str | bytes,
        handler: Handler,
        *,
        time_limit: float | None = None,
        group: str | None = None,
        inline: bool = False,
    ) -> None:
        """Serve ``function`` with ``handler(job)``.

        The handler returns the result as bytes (None means empty), or answers through the
        job itself (``job.complete/fail/exception``); an exception it raises becomes a
        WORK_EXCEPTION with its type, message and traceback. ``async def`` handlers run as
        tasks on the loop; plain ones in the executor, unless ``inline`` is set: then they
        are called on the loop itself, which is fastest but only right for handlers that
        return within microseconds and never block (an inline handler that returns a
        coroutine has the job go on as an async one).

        ``time_limit`` (seconds): a job still running after that is answered with a
        ``gearq.TimeLimitExceeded: ...`` WORK_EXCEPTION on its own connection; an async
        handler is cancelled, a thread's late result is discarded. ``group``: functions
        with the same group share a connection per server (default: one each).

        A running worker takes new functions too (call this on its loop; the blocking
        :class:`~gearq.worker.Worker` does that for you): a new group gets its connections,
        a function joins a live group's connections with a CAN_DO (and, being registered
        last there, is the one gearmand serves first on them).
        """
        name = _as_name(function)
        if not callable(handler):
            raise TypeError("handler must be callable")
        if time_limit is not None and not time_limit > 0:
            raise ValueError("time_limit must be > 0 or None")
        is_async = _is_async(handler)
        if inline and is_async:
            raise WorkerError("inline is for plain functions; async ones already run on the loop")
        kind = ASYNC if is_async else INLINE if inline else THREAD
        group = group if group is not None else name.decode()
        fn = _Function(name, handler, kind, time_limit, group)
        with self._register_lock:  # against run() starting in another thread meanwhile
            if not self._started:
                if name in self._functions:
                    raise WorkerError(f"function {name!r} is already registered")
                self._functions[name] = fn
                return
        if threading.get_ident() != self.thread_id:
            raise _NotOnLoop("a running worker registers functions on its own event loop")
        if self.stopping:
            raise WorkerError("the worker is stopping; it takes no new functions")
        if name in self._functions:
            raise WorkerError(f"function {name!r} is already registered")
        self._functions[name] = fn
        self._serve_new(fn)

    def _serve_new(self, fn: _Function) -> None:
        """Serve a function registered while running: CAN_DO on the live connections of its
        group, or new connections for a new group."""
        if fn.kind == THREAD and self._executor is None:
            self._executor = HandlerThreads(self.concurrency)
        links = [link for link in self._links if link.group == fn.group]
        if links:
            for link in links:
                link.add_function(fn)
            return
        for address in self.servers:
            self._add_link(address, fn.group, {fn.name: fn})
        self._ready.clear()

    def _add_link(
        self, address: ServerAddress, group: str, functions: dict[bytes, _Function]
    ) -> None:
        link = Link(self, address, group, functions)
        self._links.append(link)
        link.task = self.loop.create_task(link.supervise(), name=f"gearq-worker {link!r}")

    @property
    def functions(self) -> tuple[bytes, ...]:
        return tuple(self._functions)

    @property
    def concurrency(self) -> int:
        """Jobs run at once: the ``concurrency`` given, else the default for the functions
        registered so far (fixed once :meth:`run` has started)."""
        if self._concurrency is not None:
            return self._concurrency
        if any(fn.kind == THREAD for fn in self._functions.values()):
            return DEFAULT_THREAD_CONCURRENCY
        return DEFAULT_CONCURRENCY

    @property
    def grab_window(self) -> int:
        """GRABs outstanding per connection at most: the ``grab_window`` given, else the
        concurrency up to 32."""
        if self._grab_window is not None:
            return self._grab_window
        return min(self.concurrency, MAX_DEFAULT_WINDOW)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` (or until this coroutine is cancelled: a hard stop).

        An AsyncWorker runs once (its state belongs to the loop it ran on); the blocking
        :class:`~gearq.worker.Worker` makes a fresh one for each ``work()``.
        """
        loop = asyncio.get_running_loop()
        with self._register_lock:
            if self._started:
                raise WorkerError("an AsyncWorker runs only once; make a new one")
            if not self._functions:
                raise WorkerError("register at least one function before run()")
            self.loop = loop
            self.thread_id = threading.get_ident()
            self._started = True
        self._concurrency = self.concurrency
        self._grab_window = self.grab_window
        self._free = self._concurrency
        self._stopped = loop.create_future()
        waiter = waiter_for(loop)
        if waiter.usable:
            self._in_place = waiter
        if self._executor is None and any(f.kind == THREAD for f in self._functions.values()):
            self._executor = HandlerThreads(self.concurrency)
        groups: dict[str, dict[bytes, _Function]] = {}
        for fn in self._functions.values():
            groups.setdefault(fn.group, {})[fn.name] = fn
        for address in self.servers:
            for group, functions in groups.items():
                self._add_link(address, group, dict(functions))
        if self._stop_requested is not None:
            self._spawn_stop(*self._stop_requested)
        try:
            await asyncio.shield(self._stopped)
        except asyncio.CancelledError:
            self._shutdown(hard=True)
            raise
        await self._reap()

    def _asleep(self) -> None:
        """A connection has just sent PRE_SLEEP: the loop may soon have nothing to do but
        wait for the connections. Then wait for them in place (gearq.net.inplace): a job
        that wakes an idle worker costs no pass of the event loop to read its NOOP, nor
        its assignment."""
        waiter = self._in_place
        if waiter is not None:
            waiter.idle_soon()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every connection is up and gearmand has taken its registration
        (TimeoutError after ``timeout``)."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    @property
    def connected(self) -> int:
        """Connections up and registered now (one per server and function group)."""
        return self._up

    @property
    def running_jobs(self) -> int:
        """Handlers running now (including ones past their time limit)."""
        return self._running

    async def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stop serving and return once stopped.

        Graceful: no more GRABs; the jobs in hand (and those that outstanding GRABs still
        bring) finish within ``timeout`` seconds; then RESET_ABILITIES and close. Jobs still
        running at the deadline are treated as in a hard stop. Hard: close the connections
        now; gearmand requeues the jobs that were in hand, and their results are dropped.
        Calling it again with ``graceful=False`` turns a graceful stop into a hard one.
        """
        if not self._started:
            self._stop_requested = (graceful, timeout)
            return
        if self._finished:
            return
        self._spawn_stop(graceful, timeout)
        assert self._stop_task is not None
        await asyncio.shield(self._stop_task)

    def _spawn_stop(self, graceful: bool, timeout: float) -> None:
        if self._stop_task is None:
            self._stop_task = self.loop.create_task(self._stop(graceful, timeout))
        elif not graceful:
            self._force = True
            self._idle.set()

    async def _stop(self, graceful: bool, timeout: float) -> None:
        self.stopping = True
        for link in self._links:
            link.stop_grabbing()
        hard = not graceful
        if graceful:
            self._check_idle()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except asyncio.TimeoutError:
                log.warning(
                    "graceful stop: %d job(s) still running after %g s; closing, "
                    "gearmand requeues them",
                    self._running - self._zombies,
                    timeout,
                )
                hard = True
            hard = hard or self._force
        self._shutdown(hard=hard)

    def _shutdown(self, *, hard: bool) -> None:
        self.stopping = True
        self._finished = True
        for link in self._links:
            link.close(hard=hard)
            if link.task is not None:
                link.task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if isinstance(self._executor, HandlerThreads):
            self._executor.shutdown()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    async def _reap(self) -> None:
        tasks: list[asyncio.Task[Any]] = [lk.task for lk in self._links if lk.task is not None]
        tasks += list(self._tasks)
        if tasks:
            # A handler that swallows its cancellation is not waited for long.
            await asyncio.wait(tasks, timeout=1.0)

    def _check_idle(self) -> None:
        if self._running - self._zombies == 0 and not any(lk.grabs for lk in self._links):
            self._idle.set()

    # -- slots -----------------------------------------------------------------------------

    def _want(self, link: Link) -> None:
        """``link`` may GRAB: queue it for a slot."""
        if not link.queued and link.state is ACTIVE and link.grabs < link.limit:
            link.queued = True
            self._hungry.append(link)
            if self._free > 0:
                self._dispatch()

    def _dispatch(self) -> None:
        hungry = self._hungry
        while self._free > 0 and hungry:
            link = hungry.popleft()
            link.queued = False
            if link.state is ACTIVE and link.grabs < link.limit:
                # One slot per turn while others wait (fair shares); a link alone takes
                # all it may at once (one write).
                count = min(link.limit - link.grabs, self._free) if not hungry else 1
                link.grab(count)
                self._free -= count
                if link.grabs < link.limit:
                    link.queued = True
                    hungry.append(link)

    def _release_slot(self) -> None:
        self._free += 1
        if self._hungry:
            self._dispatch()
        if self.stopping:
            self._check_idle()

    def _link_up(self, link: Link) -> None:
        self._up += 1
        if self._up == len(self._links):
            self._ready.set()

    def _link_registering(self, link: Link) -> None:
        """``link`` was up and registers one more function: not ready until it has."""
        self._up -= 1
        self._ready.clear()

    def _link_down(self, link: Link, grabs: int, was_up: bool) -> None:
        if was_up:
            self._up -= 1
            self._ready.clear()
        self._free += grabs
        if self._hungry:
            self._dispatch()
        if self.stopping:
            self._check_idle()

    # -- jobs ------------------------------------------------------------------------------

    def _start_job(
        self,
        link: Link,
        handle: bytes,
        function: bytes,
        unique: bytes,
        payload: bytes,
        now: bool = False,
    ) -> None:
        """Start the job ``link`` was given. ``now``: an inline handler's answer is written
        at once (Link.complete_now), not queued for the link's next write (a lone job's,
        whose caller waits for nothing else)."""
        fn = link.functions.get(function)
        if fn is None:
            log.error(
                "%s: job %r for unregistered function %r; failing it",
                link.address,
                handle,
                function,
            )
            link.write(encode_request(PacketType.WORK_FAIL, handle))
            self._release_slot()
            return
        limit = fn.time_limit
        job = Job(link, handle, function, unique, payload, limit)
        self.stats.jobs_started += 1
        kind = fn.kind
        if kind == INLINE and limit is None:
            # The fast case: run and answer it here. It is held by nobody meanwhile: nothing
            # else runs on the loop until it returns. Link._assigned hands its slot out.
            try:
                result = fn.handler(job)
            except BaseException as exc:
                self._running += 1
                self._handler_done(job, None, exc)
                if not isinstance(exc, (Exception, SystemExit)):
                    raise
                return
            if result is None or result.__class__ is bytes:
                job._done = True
                if not job._answer:
                    if now:
                        link.complete_now(job, result or b"")
                    else:
                        link.complete(job, result or b"")
                self._free += 1
                if self.stopping:
                    self._check_idle()
            elif result.__class__ is CoroutineType:
                # The handler finishes asynchronously: from here on an async job.
                link.held[handle] = job
                self._running += 1
                self._start_task(job, result)
            elif isinstance(result, Deferred):
                link.held[handle] = job
                self._running += 1
                self.deferred.append((job, result))
            else:
                self._running += 1
                self._handler_done(job, result, None)
            return
        link.held[handle] = job
        self._running += 1
        if limit is not None:
            job._deadline = self.loop.time() + limit
            job._timer = self.loop.call_later(limit, self._expire, job)
        if kind == ASYNC:
            try:
                awaitable = fn.handler(job)
            except BaseException as exc:  # a callable that fails before its coroutine
                self._handler_done(job, None, exc)
                if not isinstance(exc, (Exception, SystemExit)):
                    raise
            else:
                self._start_task(job, awaitable)  # type: ignore[arg-type]
        elif kind == INLINE:
            try:
                result = fn.handler(job)
            except (Exception, SystemExit) as exc:
                self._handler_done(job, None, exc)
            except BaseException as exc:
                self._handler_done(job, None, exc)
                raise
            else:
                if result.__class__ is CoroutineType:
                    self._start_task(job, result)
                else:
                    self._handler_done(job, result, None)
        else:
            assert self._executor is not None
            try:
                self._executor.submit(self._run_in_thread, job, fn.handler)
            except RuntimeError as exc:  # the executor was shut down
                self._handler_done(job, None, exc)

    def finish_deferred(
        self,
        job: Job,
        result: HandlerResult | Coroutine[Any, Any, Any],
        error: BaseException | None,
    ) -> None:
        """End a :class:`Deferred` job as its handler would have: ``result`` is its answer
        (or a coroutine that finishes it), ``error`` what it raised. On the thread that owns
        the loop; the answer is written at once."""
        if result.__class__ is CoroutineType:
            self._start_task(job, result)
            return
        link = job._link
        corked = link.corked
        link.corked = True
        try:
            self._handler_done(job, result, error)
        finally:
            link.corked = corked
            if not corked and link._out:
                link.flush()

    def complete_deferred(self, job: Job, result: bytes) -> None:
        """:meth:`finish_deferred` of a WORK_COMPLETE, in fewer steps (a lone job's)."""
        job._done = True
        self._running -= 1
        job._link.complete_now(job, result)
        self._free += 1
        if self._hungry:
            self._dispatch()
        if self.stopping:
            self._check_idle()

    def _start_task(self, job: Job, awaitable: Awaitable[Any]) -> None:
        task = _new_task(self.loop, self._run_async(job, awaitable))
        if not task.done():
            job._task = task
            self._tasks.add(task)

    async def _run_async(self, job: Job, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except (Exception, SystemExit, asyncio.CancelledError) as exc:
            self._handler_done(job, None, exc)
        except BaseException as exc:  # KeyboardInterrupt: the operator's, it goes on up
            self._handler_done(job, None, exc)
            raise
        else:
            self._handler_done(job, result, None)

    def _run_in_thread(self, job: Job, handler: Handler) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = handler(job)
        except BaseException as exc:
            error = exc
        self._thread_done.append((job, result, error))
        if not self._thread_wakeup:
            # One wake-up per batch of finished threads, not one per job.
            self._thread_wakeup = True
            with contextlib.suppress(RuntimeError):  # a closed loop: the worker has gone
                self.loop.call_soon_threadsafe(self._drain_thread_done)

    def _drain_thread_done(self) -> None:
        self._thread_wakeup = False
        done = self._thread_done
        threads = self._executor if isinstance(self._executor, HandlerThreads) else None
        corked: list[Link] = []
        try:
            while done:
                job, result, error = done.popleft()
                if threads is not None:
                    threads.done()
                link = job._link
                if not link.corked:
                    # Answers and GRABs of the whole batch go out in one write per link.
                    link.corked = True
                    corked.append(link)
                self._handler_done(job, result, error)
        finally:
            for link in corked:
                link.corked = False
                link.flush()

    def _handler_done(self, job: Job, result: Any, error: BaseException | None) -> None:
        if job._done:
            return
        job._done = True
        timer = job._timer
        if timer is not None:
            timer.cancel()
            job._timer = None
        self._running -= 1
        if job._expired:
            self._zombies -= 1
        task = job._task
        if task is not None:
            job._task = None
            self._tasks.discard(task)
        if not job._answer and not isinstance(error, KeyboardInterrupt):
            # (After a KeyboardInterrupt the worker is going down: left unanswered, the job
            # is requeued by gearmand when the connection closes.)
            deadline = job._deadline
            if error is None and deadline is None and (result is None or type(result) is bytes):
                job._link.complete(job, result or b"")  # the common case, kept short
            elif deadline is not None and self.loop.time() > deadline:
                job._expired = True
                self._answer_time_limit(job)
            elif error is None:
                self._answer_result(job, result)
            else:
                self._answer_error(job, error)
        elif error is not None and job._answer and not job._expired:
            log.warning("%r raised after it was answered: %r", job, error)
        self._free += 1
        if self._hungry:
            self._dispatch()
        if self.stopping:
            self._check_idle()

    def _answer_result(self, job: Job, result: Any) -> None:
        if result is None:
            job.complete(b"")
        elif isinstance(result, bytes):
            job.complete(result)
        elif isinstance(result, (bytearray, memoryview)):
            job.complete(bytes(result))
        else:
            if isinstance(result, Coroutine):
                result.close()
            problem = TypeError(f"handler returned {type(result).__name__}; return bytes or None")
            self._answer_error(job, problem)

    def _answer_error(self, job: Job, error: BaseException) -> None:
        self.stats.handler_errors += 1
        if isinstance(error, asyncio.CancelledError):
            error = asyncio.CancelledError("the handler was cancelled")
        log.warning("%r raised %s: %s", job, type(error).__name__, error)
        job.exception(format_exception(error))

    def _expire(self, job: Job) -> None:
        job._timer = None
        if job._done:
            return
        job._expired = True
        self._zombies += 1
        self._answer_time_limit(job)
        task = job._task
        if task is not None:
            task.cancel()
        elif job._link.functions[job.function].kind == THREAD:
            log.warning(
                "%r: its thread runs on past the time limit; its slot is held until it returns",
                job,
            )
        if self.stopping:
            self._check_idle()

    def _answer_time_limit(self, job: Job) -> None:
        limit = job.time_limit or 0.0
        error = TimeLimitExceeded(
            f"job {job.handle.decode(errors='replace')} of "
            f"{job.function.decode(errors='replace')} ran past its time limit of {limit:g} s"
        )
        if job.exception(format_exception(error, with_traceback=False)):
            self.stats.time_limited += 1
            log.warning("%r: time limit of %g s exceeded", job, limit)

    def _count_answer(self, kind: int) -> None:
        stats = self.stats
        if kind == COMPLETE:
            stats.completed += 1
        elif kind == FAIL:
            stats.failed += 1
        else:
            stats.exceptions += 1
