"""The task worker's thread pool: where plain tasks run with ``pool="threads"``.

A job costs its round trip more the more threads it crosses: handing it to a pool thread
and back costs two thread wake-ups, tens of microseconds on the machines gearq is measured
on. So a lone job (nothing else in hand) avoids them when it can:

* while the worker has no job in hand, its loop is *lent* to a pool thread
  (:meth:`TaskThreads.lend`): the loop's thread blocks, and the pool thread waits for the
  connections in place (:meth:`gearq.net.inplace.InPlaceWaiter.serve`), reads the job
  that comes and runs it itself, after the read (a :class:`~gearq.worker.worker.Deferred`
  job), then answers at once and waits again. A run of lone jobs costs no thread wake-up
  at all. If a task holds the loop for long (:data:`LEND_CHECK`, checked twice), the
  loop's thread takes the loop back, and the task's result reaches it through a future,
  as from any pool thread; the worker takes its other jobs meanwhile;
* else (the loop's thread is the one waiting: a timer, other callbacks, no lending), a
  lone job is handed to a pool thread and the loop's thread waits for it in place, up to
  :data:`HANDOFF_WAIT` (:meth:`TaskThreads.call_waiting_now`).

Jobs of a burst are submitted (:meth:`TaskThreads.submit`), their results delivered to the
loop in batches.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from types import AsyncGeneratorType, CoroutineType
from typing import TYPE_CHECKING, Any

from ..net.inplace import BUSY, LEFT, InPlaceWaiter
from ..worker.worker import Deferred

if TYPE_CHECKING:
    from ..worker import AsyncWorker, Job
    from .envelope import Call
    from .runner import _Served

__all__ = ["HANDOFF_WAIT", "LEND_CHECK", "LoneJob", "TaskThreads"]

log = logging.getLogger("gearq.tasks.worker")

_new_lock = threading.Lock
_set_running_loop = asyncio.events._set_running_loop
# Results that are not values yet: awaited / drained on the loop.
_PENDING_TYPES = (CoroutineType, AsyncGeneratorType)


class _Handoff:
    """A call the loop thread waits for in place (see :meth:`TaskThreads.call_waiting_now`):
    the pool's queue item for it, and what comes back."""

    # Not slotted: what only some hand-offs set keeps its default here (one attribute
    # write fewer each, on a lone job's path).
    #: False once the loop's thread has stopped waiting (under the pool's mutex).
    waiting = True
    value: Any = None
    error: BaseException | None = None
    #: True if the pool thread answered the job (see ``answer``).
    answered = False
    #: Where the value goes once the loop's thread has stopped waiting (set then).
    fut: asyncio.Future[Any] | None = None

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], answer: Callable[..., bool] | None
    ) -> None:
        self.fn = fn
        self.args = args
        #: Called by the pool thread as ``answer(*args, value)`` while the loop's thread
        #: still waits: True if it answered the job (so the answer did not wait for the
        #: loop's thread to wake).
        self.answer = answer
        # What the loop's thread waits on: released by the pool thread, under the pool's
        # mutex, only while the loop's thread still waits. (One per hand-off: a wait cut
        # short by an exception cannot leave it open for the next.)
        self.gate = gate = _new_lock()
        gate.acquire()

    def take(self) -> Any:
        """The call's value, or raise its error."""
        error = self.error
        if error is not None:
            self.error = None
            raise error
        return self.value


#: How often the loop's thread checks on the pool thread it lent the loop to (seconds).
#: A task found running at two checks in a row has held the loop too long: the loop's
#: thread takes it back (so after 1-2 of these).
LEND_CHECK = 0.002
#: Checks in a row that find the lent thread only waiting, before the loop's thread stops
#: checking (it is then woken when a task starts): an idle worker stays quiet.
LEND_QUIET_CHECKS = 50


class LoneJob(Deferred):
    """A lone job read by a thread the loop is lent to: run by that thread after the read."""

    __slots__ = ("attempt", "call", "served")

    def __init__(self, served: _Served, call: Call, attempt: int) -> None:
        self.served = served
        self.call = call
        self.attempt = attempt


class _Lease:
    """The loop, lent to a pool thread (the pool's queue item for it). Its fields change
    under the pool's mutex."""

    taken = False  # a pool thread has it
    cancelled = False  # no thread took it in time: the loop's thread waits itself
    seq = 0  # tasks started
    current: tuple[Job, LoneJob] | None = None  # the task the thread runs (not the loop's handling)
    #: Set when the loop's thread takes the loop back while a task runs: where that
    #: task's result goes.
    fut: asyncio.Future[Any] | None = None
    given = False  # the thread gave the loop back
    outcome = BUSY  # what its InPlaceWaiter.serve returned
    deep = False  # the loop's thread waits without checks: wake it when a task starts
    opened = False  # the gate is released and not yet taken

    def __init__(self, waiter: InPlaceWaiter) -> None:
        self.waiter = waiter
        # What the loop's thread waits on: released when the loop is given back, and when
        # a task starts while the loop's thread is not checking.
        self.gate = gate = _new_lock()
        gate.acquire()

    def open(self) -> None:
        """Release the gate unless it is already (under the pool's mutex)."""
        if not self.opened:
            self.opened = True
            self.gate.release()


#: How long the loop thread waits in place for a lone plain task's thread (seconds).
HANDOFF_WAIT = 0.001

_Item = tuple[asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]] | _Handoff | _Lease | None


class TaskThreads:
    """Up to ``size`` daemon threads running plain tasks; results go back to the loop in
    batches (one wake-up of the loop per batch of finished calls, not one per call).

    Daemon threads: a task stuck past its time limit cannot keep a stopped worker's
    process alive at exit.
    """

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self.size = size
        self.loop = loop
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        # One token per idle thread (deque append/pop are atomic, and cost a fraction of
        # a Semaphore's Python-level lock and condition).
        self._idle: deque[None] = deque()
        self._threads: list[threading.Thread] = []
        self._done: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._wakeup = False
        self._closed = False
        self._mutex = threading.Lock()  # settles a hand-off (or a lease) between its two threads
        #: True while a pool thread has the loop (see :meth:`lend`): the loop's handlers
        #: then run in that thread.
        self.lent = False
        self._worker: AsyncWorker | None = None
        self._quiet = False  # the last lease ended with no task for a while

    def lend_with(self, waiter: InPlaceWaiter, worker: AsyncWorker) -> None:
        """Lend ``worker``'s loop to a pool thread whenever ``waiter`` would wait for its
        connections while the worker has nothing in hand (see the module docstring)."""
        self._worker = worker
        waiter.lender = functools.partial(self.lend, waiter)

    # -- lending the loop ---------------------------------------------------------------

    def lend(self, waiter: InPlaceWaiter) -> int | None:
        """In the loop's thread (an :attr:`~InPlaceWaiter.lender`): have a pool thread
        serve the connections in place, and block until it gives the loop back (or this
        thread takes it back from a task that holds it too long). Returns what the pool
        thread's serve returned, or None to have this thread wait itself (a job in hand:
        a lone one gets no thread wake-up then either, see :meth:`call_waiting_now`)."""
        worker = self._worker
        if worker is None or worker._running or worker.deferred or self._closed:
            return None
        lease = _Lease(waiter)
        self._take_thread()
        self._queue.put(lease)
        gate = lease.gate
        mutex = self._mutex
        timeout: float = LEND_CHECK
        seen = -1  # the task found running at the last check
        # Quiet checks so far. An idle worker's loop comes back for its timers now and
        # then: the lease after a quiet one stops checking after its first check (which
        # also makes sure a thread took it).
        quiet = LEND_QUIET_CHECKS - 1 if self._quiet else 0
        try:
            while True:
                if gate.acquire(True, timeout) if timeout > 0 else gate.acquire():
                    with mutex:
                        lease.opened = False
                        if lease.given:
                            self._quiet = lease.deep
                            return lease.outcome
                    timeout, quiet = LEND_CHECK, 0  # a task started: check on it
                    continue
                with mutex:
                    if lease.given:
                        continue  # (the gate is open)
                    if not lease.taken:
                        lease.cancelled = True  # no thread free for it: wait here
                        return None
                    if lease.current is not None:
                        if lease.seq != seen:
                            seen, quiet = lease.seq, 0
                            continue
                        current = self._evict(lease)
                    else:
                        quiet += 1
                        if quiet >= LEND_QUIET_CHECKS:
                            lease.deep = True
                            timeout = 0
                        continue
                self._finish_evicted(*current)
                return BUSY
        except BaseException:
            # A signal handler raised: the loop must be back before anything else runs here.
            self._recall(lease)
            raise

    def _evict(self, lease: _Lease) -> tuple[Job, LoneJob, asyncio.Future[Any]]:
        """Take the loop back from the task ``lease``'s thread runs (under the mutex)."""
        assert lease.current is not None
        self.lent = False
        fut = lease.fut = self.loop.create_future()
        return (*lease.current, fut)

    def _finish_evicted(self, job: Job, lone: LoneJob, fut: asyncio.Future[Any]) -> None:
        """In the loop's thread, which took the loop back: the job now ends when ``fut``
        (its thread's result) comes, as a job submitted to the pool does."""
        worker = self._worker
        assert worker is not None
        served = lone.served
        worker.finish_deferred(job, served._finish_later(job, lone.call, lone.attempt, fut), None)

    def _recall(self, lease: _Lease) -> None:
        """Have the loop back at once: wake the lent thread's wait (it then gives the loop
        back), or take it from its task."""
        mutex = self._mutex
        with mutex:
            if not lease.taken:
                lease.cancelled = True
                return
        self.loop._write_to_self()  # type: ignore[attr-defined]
        while True:
            try:
                if lease.gate.acquire(True, LEND_CHECK):
                    with mutex:
                        lease.opened = False
                        if lease.given:
                            return
                    continue
                with mutex:
                    if lease.current is None:
                        continue
                    current = self._evict(lease)
                self._finish_evicted(*current)
                return
            except BaseException:  # another signal: the first one goes up
                continue

    def _serve_lent(
        self, lease: _Lease
    ) -> tuple[asyncio.Future[Any], Any, BaseException | None] | None:
        """In a pool thread: serve the connections until the loop is needed, then give it
        back. Returns the result to deliver of a task the loop's thread took the loop
        back from."""
        mutex = self._mutex
        with mutex:
            if lease.cancelled:
                return None
            lease.taken = True
        outcome = BUSY
        evicted: list[Any] = []
        run = functools.partial(self._run_lent, lease, evicted)
        deferred = self._worker.deferred  # type: ignore[union-attr]
        self.lent = True
        _set_running_loop(self.loop)
        try:
            try:
                outcome = lease.waiter.serve(deferred, run)
            except Exception:
                log.exception("error while serving the connections from a task thread")
            if outcome != LEFT and deferred:  # (serve stopped with a job read: run it)
                run()
        finally:
            _set_running_loop(None)
            if not evicted:
                with mutex:
                    self.lent = False
                    lease.outcome = outcome
                    lease.given = True
                    lease.open()
        return evicted[0] if evicted else None

    def _run_lent(self, lease: _Lease, evicted: list[Any]) -> bool:
        """After a read, in the thread the loop is lent to: run the lone job it brought,
        then answer it. True if the loop's thread took the loop back meanwhile (the
        result is then in ``evicted``, for the loop: nothing here touches it any more)."""
        worker = self._worker
        assert worker is not None
        # (Only LoneJobs come while the loop is lent.)
        deferred: deque[tuple[Job, LoneJob]] = worker.deferred  # type: ignore[assignment]
        mutex = self._mutex
        while deferred:
            job, lone = deferred.popleft()
            served, call = lone.served, lone.call
            with mutex:
                lease.current = (job, lone)
                lease.seq += 1
                if lease.deep:
                    lease.deep = False
                    lease.open()
            # The task sees a pool thread, with no running loop (it may run one of its own).
            _set_running_loop(None)
            try:
                value = served._call_sync(job, call, None)
                error = None
            except BaseException as exc:
                value, error = None, exc
            _set_running_loop(self.loop)
            with mutex:
                lease.current = None
                fut = lease.fut
            if fut is not None:
                evicted.append((fut, value, error))
                return True
            try:
                served._finish_lone(job, lone, value, error)
            except Exception as exc:  # a bug: still end the job, and serve on
                log.exception("error while answering %r", job)
                worker.finish_deferred(job, None, exc)
        return False

    def _take_thread(self) -> None:
        """An idle thread for one more call, started if there is none and room for one."""
        try:
            self._idle.pop()
        except IndexError:
            if len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._run, name=f"gearq-task-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError("the task threads have been shut down")
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._take_thread()
        self._queue.put((fut, fn, args))
        return fut

    def call_waiting_now(
        self, fn: Callable[..., Any], *args: Any, answer: Callable[..., bool] | None = None
    ) -> tuple[_Handoff | None, asyncio.Future[Any] | None]:
        """Submit ``fn(*args)`` for a lone job and block the loop's thread up to
        HANDOFF_WAIT for the answer, which then comes straight back (``handoff.take()``),
        without the wake-up of the loop through its self-pipe and the extra passes of the
        loop that a future set from another thread costs (tens of microseconds of a round
        trip). Returns (handoff, None), or (None, future) if the thread has not answered by
        then: await the future. Only when nothing else is in hand, so no other job waits
        on the loop. ``answer``: see :class:`_Handoff`."""
        if self._closed:
            raise RuntimeError("the task threads have been shut down")
        handoff = _Handoff(fn, args, answer)
        idle = self._idle
        if idle:  # (the common case without a call: an idle thread is there)
            idle.pop()
        else:
            self._take_thread()
        gate = handoff.gate
        # The put last: the woken thread wants the GIL just as this one lets go of it.
        self._queue.put(handoff)
        try:
            if gate.acquire(True, HANDOFF_WAIT):
                return handoff, None
            with self._mutex:
                handoff.waiting = False
                if gate.acquire(False):
                    return handoff, None  # it answered just in time
                # A long task: its thread delivers through the loop.
                fut = handoff.fut = self.loop.create_future()
            return None, fut
        except BaseException:
            # A signal handler raised: stop waiting before anything else runs here, so
            # that the pool thread no longer writes to the connection.
            with self._mutex:
                handoff.waiting = False
            raise

    def _run(self) -> None:
        get = self._queue.get
        done = self._done
        mutex = self._mutex
        idle = self._idle
        while True:
            item = get()
            value: Any = None
            error: BaseException | None = None
            if item.__class__ is _Handoff:
                try:
                    value = item.fn(*item.args)
                except BaseException as exc:
                    error = exc
                with mutex:
                    fut = item.fut
                    if item.waiting:  # the loop's thread takes it
                        if error is not None:
                            item.error = error
                        else:
                            item.value = value
                            if item.answer is not None:
                                try:
                                    item.answered = item.answer(*item.args, value)
                                except Exception:  # the loop's thread answers instead
                                    log.exception("error while answering from the task thread")
                        # Idle before the gate opens, and nothing but get() after it: the
                        # loop's thread then wakes to a free GIL, not to this one's tail.
                        idle.append(None)
                        item.gate.release()
                if fut is None:
                    del item, value, error
                    continue
                del item
            elif item is None:
                return
            elif item.__class__ is _Lease:
                result = self._serve_lent(item)
                del item
                if result is None:
                    idle.append(None)
                    continue
                fut, value, error = result
                del result
            else:
                fut, fn, args = item  # type: ignore[misc]
                try:
                    value = fn(*args)
                except BaseException as exc:
                    error = exc
                del item, fn, args
            done.append((fut, value, error))
            del fut, value, error  # hold no reference while idle
            if not self._wakeup:
                self._wakeup = True
                try:
                    self.loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: the worker has gone
                    return
            idle.append(None)

    def _deliver(self) -> None:
        self._wakeup = False
        done = self._done
        while done:
            fut, value, error = done.popleft()
            if fut.done():
                continue
            if error is None:
                fut.set_result(value)
            else:
                fut.set_exception(error)

    def shutdown(self) -> None:
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)

    @property
    def threads(self) -> int:
        return len(self._threads)
