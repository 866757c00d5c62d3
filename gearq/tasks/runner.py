"""The task worker: runs an app's ``@app.task`` functions for the jobs gearmand hands out.

    worker = TaskWorker(app, concurrency=16)         # or app.worker(concurrency=16)
    await worker.run()                               # until ``await worker.stop()``

    BlockingTaskWorker(app).work(handle_signals=True)  # the blocking twin

It sits on :class:`gearq.worker.AsyncWorker`. Every task is served on two Gearman
functions, ``task.function_name`` (calls) and ``task.delayed_function_name`` (the
SUBMIT_JOB_EPOCH jobs of countdown/eta calls, kept apart so that a job not yet due never
hides or delays the task's other jobs). Each call function has a connection of its own per
server; the countdown/eta functions of all tasks share one.

Per job: decode the call envelope, check it names this task and has not expired, run the
task (``async def`` on the loop, plain functions in a thread pool, or on the loop with
``pool="inline"``), and answer: WORK_COMPLETE with the result envelope, or WORK_EXCEPTION
with the failure envelope. Generator tasks stream each item as a WORK_DATA chunk.

Retries run in the same Gearman job: the attempt that failed sends a RETRY state update,
the handler waits out the backoff on the loop (no thread is held, but the job keeps its
concurrency slot), and runs the next attempt (announced with a STARTED state); the caller
follows the one job to its end.

Time limits are per attempt and kept by this module, not by the low-level worker (whose
limit would cover the retries and backoff waits of a job too, and whose answer is not an
envelope): at the limit the job is answered at once with a ``time_limit`` failure envelope
on its own connection (never requeued), an ``async`` task is cancelled, and a thread is
told through ``ctx.cancelled`` (it cannot be interrupted; its slot stays held until it
returns, and its late result is dropped; ``TaskWorker.stuck_threads`` counts them, and a warm
stop does not wait for them). Time limits are final: they are not retried.

``TaskWorker(executor=...)`` hands each job to a :class:`JobExecutor` instead of running it
here: the worker keeps the connections, the grabbing and the concurrency (the prefork pool
of ``gearq worker`` is one); ``handler_for(function)`` is what this worker would run for a
job, for the process on the other side.

Operators: run gearmand with an explicit ``-j N`` (``--job-retries``). A job whose worker
dies or disconnects while holding it is requeued, with the default forever.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any, Literal, Protocol

from ..net.address import ServerAddress
from ..net.inplace import waiter_for
from ..worker import AsyncWorker, Job, WorkerError, WorkerStats
from ..worker.blocking import BlockingDriver
from .context import MaxRetriesExceeded, Retry, TaskContext, UnknownTask
from .envelope import (
    Call,
    EnvelopeError,
    call_head,
    decode_call,
    decode_plain_call,
    decode_positional_call,
    detect_serializer,
    encode_chunk,
    encode_failure,
    encode_plain_result,
    encode_result,
    encode_state,
)
from .naming import function_name
from .options import TaskOptions, retry_delay
from .remote_errors import (
    Failure,
    FailureKind,
    RetryScheduled,
    TaskExpired,
    TimeLimitExceeded,
    qualified_name,
)
from .serializers import (
    JSON,
    MSGPACK,
    RAW,
    RawSerializer,
    SerializationError,
    Serializer,
    get_serializer,
)
from .threads import _PENDING_TYPES, LoneJob, TaskThreads

__all__ = [
    "BlockingTaskWorker",
    "JobExecutor",
    "TaskMiddleware",
    "TaskOutcome",
    "TaskStats",
    "TaskWorker",
    "time_limit_failure",
]

log = logging.getLogger("gearq.tasks.worker")

Pool = Literal["threads", "inline"]

#: The connection group (one connection per server) of all the countdown/eta functions.
ETA_GROUP = "gearq.eta"

#: State updates the worker sends (WORK_DATA state envelopes).
STARTED = "STARTED"
RETRY = "RETRY"


# --- what the worker needs of an app and its tasks (gearq.tasks.app / task) ---------------------


class TaskLike(Protocol):
    """What the worker reads of a task (:class:`gearq.tasks.task.Task`)."""

    @property
    def name(self) -> str: ...

    @property
    def fn(self) -> Callable[..., Any]: ...

    @property
    def options(self) -> TaskOptions: ...

    @property
    def function_name(self) -> bytes: ...

    @property
    def delayed_function_name(self) -> bytes: ...


class AppLike(Protocol):
    """What the worker reads of an app (:class:`gearq.tasks.app.App`)."""

    @property
    def tasks(self) -> Mapping[str, TaskLike]: ...

    @property
    def servers(self) -> Any: ...


class JobExecutor(Protocol):
    """Runs jobs somewhere else than in this process (``TaskWorker(executor=...)``).

    The worker still holds the Gearman connections, grabs the jobs and keeps the
    concurrency; for each job it awaits ``execute(task, job)`` instead of running the task
    itself. The executor answers the job (``job.complete``/``exception``/``send_data``...)
    or returns the WORK_COMPLETE bytes. A process pool (:mod:`gearq.runtime.prefork`)
    implements it: a child that dies must not take the job's connection with it.
    """

    async def execute(self, task: TaskLike, job: Job) -> bytes | None: ...


# --- outcomes, stats, middleware -------------------------------------------------------------


@dataclass(slots=True)
class TaskOutcome:
    """How one attempt ended, for :meth:`TaskMiddleware.after_task`.

    ``status``: ``"success"`` (``value`` is the result), ``"failure"`` (final; ``error``),
    ``"retry"`` (``error`` caused it, the next attempt runs in ``delay`` seconds) or
    ``"time_limit"``. ``duration``: seconds the attempt ran.
    """

    status: str
    duration: float
    value: Any = None
    error: BaseException | None = None
    delay: float | None = None


@dataclass(slots=True)
class TaskStats:
    """Counters since the worker started (read them from the loop's thread).

    ``rejected``: calls not run because their envelope was bad or named another task.
    """

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    time_limited: int = 0
    expired: int = 0
    rejected: int = 0


class TaskMiddleware:
    """Hooks around every attempt; subclass and override what you need.

    Both run on the event loop's thread (also for plain tasks, whose body runs in a pool
    thread), so they must be quick and must not block. ``before_task`` may raise to refuse
    the attempt: its exception is the attempt's failure (and may be retried like any other).
    An exception from ``after_task`` is logged and ignored.
    """

    def before_task(self, ctx: TaskContext) -> None:
        """Called before each attempt runs."""

    def after_task(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        """Called after each attempt, once its answer (or retry) is sent."""


class TaskLogger(TaskMiddleware):
    """One log line per attempt: name, id, attempt, duration, outcome (``log_tasks=True``).

    Successes and retries at INFO, failures and time limits at WARNING, on the logger
    ``gearq.tasks.worker``.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def after_task(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        ms = outcome.duration * 1000.0
        status = outcome.status
        if status == "success":
            self.logger.info(
                "task %s[%s] attempt %d succeeded in %.2f ms", ctx.name, ctx.id, ctx.attempt, ms
            )
        elif status == "retry":
            self.logger.info(
                "task %s[%s] attempt %d raised %s after %.2f ms; retrying in %.3g s",
                ctx.name, ctx.id, ctx.attempt, _describe(outcome.error), ms, outcome.delay,
            )  # fmt: skip
        elif status == "time_limit":
            self.logger.warning(
                "task %s[%s] attempt %d ran past its time limit (%.2f ms)",
                ctx.name, ctx.id, ctx.attempt, ms,
            )  # fmt: skip
        else:
            self.logger.warning(
                "task %s[%s] attempt %d failed in %.2f ms: %s",
                ctx.name, ctx.id, ctx.attempt, ms, _describe(outcome.error),
            )  # fmt: skip


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "?"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def time_limit_failure(
    task_name: str, task_id: str | None, attempt: int, limit: float, serializer: Serializer
) -> tuple[bytes, str]:
    """The failure envelope (and its message) that answers an attempt past its time limit."""
    failure = Failure(
        kind=FailureKind.TIME_LIMIT,
        exc_type=qualified_name(TimeLimitExceeded),
        message=(
            f"task {task_name}[{task_id}] attempt {attempt} ran past its time limit of {limit:g} s"
        ),
        attempt=attempt,
    )
    return encode_failure(failure, serializer=serializer), failure.message


# --- helpers ---------------------------------------------------------------------------------


def _is_async(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - an instance's async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _is_generator(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def _id_from_unique(unique: bytes) -> str | None:
    """The key of a gearq unique (``b:<key>#2`` -> ``<key>``), or the unique as text."""
    if not unique:
        return None
    text = unique.decode("utf-8", "replace")
    if len(text) > 2 and text[0] in "bf" and text[1] == ":":
        text = text[2:]
    key, sep, suffix = text.rpartition("#")
    if sep and suffix.isdigit() and key:
        text = key
    return text


# --- one task ---------------------------------------------------------------------------------


class _Served:
    """A task as the worker serves it: what to run and how; ``handle`` is the job handler."""

    __slots__ = (
        "bind",
        "detect",
        "fast",
        "fn",
        "head",
        "inline",
        "lane",
        "on_loop",
        "options",
        "raw",
        "runner",
        "serializer",
        "streams",
        "task",
        "task_name",
        "time_limit",
    )

    def __init__(self, runner: TaskWorker, task: TaskLike) -> None:
        options = task.options
        fn = task.fn
        self.runner = runner
        self.task = task
        self.task_name = task.name
        self.fn = fn
        self.options = options
        self.bind = options.bind
        ser = get_serializer(options.serializer)
        self.serializer = ser
        self.raw = isinstance(ser, RawSerializer)
        # msgpack and json calls are told apart by their first byte; other serializers
        # (registered ones) are taken at the task's word.
        self.detect = ser is MSGPACK or ser is JSON
        #: What this task's calls from delay() start with (see decode_positional_call).
        self.head = call_head(task.name)
        self.time_limit = options.time_limit
        self.on_loop = _is_async(fn)
        self.streams = _is_generator(fn)
        self.inline = runner.pool == "inline"
        # Nothing to set up around the call: no context, no timer, no hooks, no stream.
        self.fast = not (self.bind or self.streams or self.time_limit or runner._observed)
        #: A fast plain task run on the loop (see handle_now).
        self.lane = self.fast and self.inline and not self.on_loop

    # -- the job handler (registered with the low-level worker) --------------------------------

    async def handle(self, job: Job) -> bytes | None:
        """Run the task for ``job``; the bytes returned are its WORK_COMPLETE (None: the job
        was answered already)."""
        result = self.handle_now(job, True)
        if result is None or isinstance(result, bytes):
            return result
        assert not isinstance(result, LoneJob)  # (only for uncounted jobs)
        return await result

    def handle_now(
        self, job: Job, counted: bool = False
    ) -> bytes | Coroutine[Any, Any, bytes | None] | LoneJob | None:
        """:meth:`handle` as an inline handler of the low-level worker: the answer if the
        task is done at once (a plain task on the loop, or a lone one whose thread answers
        within HANDOFF_WAIT), else a coroutine that finishes the job, or a :class:`LoneJob`
        (run after the read by the thread the loop is lent to). Plain tasks go this way, so
        the common job costs no asyncio Task and no extra pass of the loop. ``counted``:
        the worker counts this job among its running ones."""
        try:
            if self.detect:
                payload = job.payload
                call = (
                    decode_positional_call(payload, self.head, self.task_name)
                    or decode_plain_call(payload)
                    or decode_call(payload)
                )
            elif self.raw:
                call = Call(None, (job.payload,), {}, serializer=RAW)
            else:
                call = decode_call(job.payload, serializer=self.serializer)
        except Exception as exc:  # undecodable or malformed: never run
            self.runner._reject(job, self.task_name, exc, None)
            return None
        named = call.task
        if named is not None and named != self.task_name:
            self._wrong_task(job, call, named)
            return None
        if call.expires is not None and call.expires <= time.time():
            self._expired(job, call)
            return None
        job.attempt = attempt = call.attempt
        if self.lane:
            # A plain task on the loop, nothing around it: _call_sync inlined (the common
            # job of pool="inline").
            try:
                value = self.fn(*call.args, **call.kwargs)
                if value.__class__ is GeneratorType:
                    value = self._stream(job, call, None, value)
            except (Exception, SystemExit) as exc:
                return self._retry_after(job, call, attempt, exc)
            if value.__class__ in _PENDING_TYPES:
                return self._finish_later(job, call, attempt, None, value)
            return self._encode_value(job, call, attempt, value)
        if not self.fast:
            return self._attempts(job, call, attempt)
        try:
            if self.on_loop:
                coro = self.fn(*call.args, **call.kwargs)
                return self._finish_later(job, call, attempt, coro, settle=False)
            # A plain task in the pool's threads (on the loop, it went the lane's way).
            threads = self.runner._threads
            assert threads is not None
            if self.runner.worker.running_jobs != (1 if counted else 0):
                return self._finish_later(
                    job, call, attempt, threads.submit(self._call_sync, job, call, None)
                )
            if threads.lent and not counted:
                # This thread has the loop (lent it while the worker had nothing in hand):
                # it runs the job itself, once the read that brought it is handled.
                return LoneJob(self, call, attempt)
            handoff, fut = threads.call_waiting_now(
                self._call_sync, job, call, None, answer=self._answer_from_thread
            )
            if handoff is None:
                return self._finish_later(job, call, attempt, fut)
            if handoff.answered:
                return None
            value = handoff.take()
        except (Exception, SystemExit) as exc:
            return self._retry_after(job, call, attempt, exc)
        if value.__class__ in _PENDING_TYPES:
            return self._finish_later(job, call, attempt, None, value)
        return self._encode_value(job, call, attempt, value)

    def _finish_lone(
        self, job: Job, lone: LoneJob, value: Any, error: BaseException | None
    ) -> None:
        """After a :class:`LoneJob` ran in the thread that has the loop: answer it there."""
        call, attempt = lone.call, lone.attempt
        worker = self.runner.worker
        result: bytes | Coroutine[Any, Any, bytes | None] | None
        if error is None:
            if value.__class__ not in _PENDING_TYPES:
                data = self._encode_value(job, call, attempt, value)
                if data is not None:
                    worker.complete_deferred(job, data)  # the common case, kept short
                    return
                result = None
            else:
                result = self._finish_later(job, call, attempt, None, value)
        elif isinstance(error, (Exception, SystemExit)):
            result = self._retry_after(job, call, attempt, error)
        else:
            worker.finish_deferred(job, None, error)
            return
        worker.finish_deferred(job, result, None)

    def _answer_from_thread(self, job: Job, call: Call, ctx: None, value: Any) -> bool:
        """In the pool thread, while the loop's thread waits for it: answer a plain value
        at once (anything else is left to the loop's thread). Called with the arguments
        of the hand-off's ``_call_sync`` (``ctx`` is None on this path), then the value."""
        if value.__class__ in _PENDING_TYPES:
            return False
        try:
            data = encode_plain_result(value, call.serializer, self.task_name)
        except SerializationError:
            return False  # the loop's thread encodes again and answers with the error
        if not job.complete_for_loop(data):
            return False
        self.runner.stats.succeeded += 1
        return True

    def _encode_value(self, job: Job, call: Call, attempt: int, value: Any) -> bytes | None:
        try:
            data = encode_plain_result(value, call.serializer, self.task_name)
        except SerializationError as exc:
            self._fail(job, call, None, attempt, exc, 0.0)
            return None
        self.runner.stats.succeeded += 1
        return data

    def _retry_after(
        self, job: Job, call: Call, attempt: int, exc: BaseException
    ) -> Coroutine[Any, Any, bytes | None] | None:
        """The fast path's attempt raised: answered (None), or a retry to run."""
        delay = self._after_error(job, call, None, attempt, exc, 0.0)
        return None if delay is None else self._retry(job, call, attempt + 1, delay)

    async def _retry(self, job: Job, call: Call, attempt: int, delay: float) -> bytes | None:
        await asyncio.sleep(delay)
        return await self._attempts(job, call, attempt)

    async def _finish_later(
        self,
        job: Job,
        call: Call,
        attempt: int,
        waiting: Awaitable[Any] | None,
        value: Any = None,
        settle: bool = True,
    ) -> bytes | None:
        """The rest of a fast-path attempt that has to wait: for ``waiting`` (an async
        task's coroutine, a pool thread's future), then, with ``settle``, for what a plain
        task returned that is not a value yet (a coroutine or an async generator)."""
        try:
            if waiting is not None:
                value = await waiting
            if settle and value.__class__ in _PENDING_TYPES:
                value = await self._settle(job, call, None, value)
        except (Exception, SystemExit) as exc:
            retry = self._retry_after(job, call, attempt, exc)
            return None if retry is None else await retry
        return self._encode_value(job, call, attempt, value)

    # -- the general path ------------------------------------------------------------------------

    async def _attempts(self, job: Job, call: Call, attempt: int) -> bytes | None:
        runner = self.runner
        loop = asyncio.get_running_loop()
        limit = self.time_limit
        max_retries = self._max_retries(call)
        task_id = call.task_id if call.task_id is not None else _id_from_unique(job.unique)
        middleware = runner.middleware
        while True:
            job.attempt = attempt
            ctx = TaskContext.for_call(job, self.task_name, call, task_id, attempt, max_retries)
            # STARTED: opt-in for first attempts (a packet per task), always for the
            # attempts after a retry, whose caller has seen RETRY.
            if (runner.track_started or attempt > call.attempt) and not self.raw:
                meta = {"attempt": attempt, "worker": runner.client_id}
                job.send_data(encode_state(STARTED, meta, serializer=call.serializer))
            started = time.perf_counter()
            timer: asyncio.TimerHandle | None = None
            if limit is not None:
                ctx.deadline = time.monotonic() + limit
                # Only a coroutine can be cancelled; a thread is told through ctx.cancelled.
                current = asyncio.current_task() if self.on_loop else None
                timer = loop.call_later(limit, self._time_up, job, ctx, current)
            value: Any = None
            error: BaseException | None = None
            try:
                for hook in middleware:
                    hook.before_task(ctx)
                # One attempt (inlined: no coroutine of its own on the hot path).
                if self.on_loop:
                    args = (ctx, *call.args) if self.bind else call.args
                    value = self.fn(*args, **call.kwargs)
                elif self.inline:
                    value = self._call_sync(job, call, ctx)
                else:
                    threads = runner._threads
                    assert threads is not None
                    try:
                        value = await threads.submit(self._call_sync, job, call, ctx)
                    finally:
                        if ctx.cancelled:
                            runner._stuck -= 1
                if value.__class__ is CoroutineType:
                    value = await value
                elif value.__class__ is AsyncGeneratorType:
                    value = await self._settle(job, call, ctx, value)
            except asyncio.CancelledError:
                if not ctx.cancelled:
                    raise  # a hard stop of the worker
                task = asyncio.current_task()
                uncancel = getattr(task, "uncancel", None)
                if uncancel is not None:
                    uncancel()
            except (Exception, SystemExit) as exc:
                error = exc
            finally:
                if timer is not None:
                    timer.cancel()
            duration = time.perf_counter() - started
            if not ctx.cancelled and limit is not None and duration > limit:
                # The timer could not fire in time (an inline task held the loop).
                ctx.cancelled = True
                self._answer_time_limit(job, ctx)
            if ctx.cancelled:
                if error is not None or value is not None:
                    log.debug("task %s[%s]: result after the time limit dropped", ctx.name, ctx.id)
                self._after(ctx, TaskOutcome("time_limit", duration, error=error))
                return None
            if error is None:
                try:
                    data = encode_result(
                        value, serializer=call.serializer, task_name=self.task_name
                    )
                except SerializationError as exc:
                    self._fail(job, call, ctx, attempt, exc, duration)
                    return None
                runner.stats.succeeded += 1
                if middleware:
                    # Answered here, not by returning: the hooks see the job answered.
                    job.complete(data)
                    self._after(ctx, TaskOutcome("success", duration, value=value))
                    return None
                return data
            delay = self._after_error(job, call, ctx, attempt, error, duration)
            if delay is None:
                return None
            await asyncio.sleep(delay)
            attempt += 1

    def _call_sync(self, job: Job, call: Call, ctx: TaskContext | None) -> Any:
        """Call a plain task (in a pool thread, or on the loop with ``pool="inline"``)."""
        if self.bind:
            value = self.fn(ctx, *call.args, **call.kwargs)
        else:
            value = self.fn(*call.args, **call.kwargs)
        if value.__class__ is GeneratorType:
            value = self._stream(job, call, ctx, value)
        return value

    def _stream(self, job: Job, call: Call, ctx: TaskContext | None, gen: Any) -> Any:
        """Send each item of a generator as a chunk; its return value is the result."""
        send = job.send_data
        ser = call.serializer
        name = self.task_name
        try:
            while True:
                if ctx is not None and ctx.cancelled:
                    return None
                try:
                    item = gen.send(None)
                except StopIteration as stop:
                    return stop.value
                send(encode_chunk(item, serializer=ser, task_name=name))
        finally:
            gen.close()

    async def _settle(self, job: Job, call: Call, ctx: TaskContext | None, value: Any) -> Any:
        """Await a coroutine, or stream an async generator (whose result is None)."""
        if value.__class__ is CoroutineType:
            return await value
        send = job.send_data
        ser = call.serializer
        name = self.task_name
        try:
            async for item in value:
                send(encode_chunk(item, serializer=ser, task_name=name))
        finally:
            await value.aclose()
        return None

    # -- endings -----------------------------------------------------------------------------

    def _max_retries(self, call: Call) -> int:
        return call.max_retries if call.max_retries is not None else self.options.max_retries

    def _after_error(
        self,
        job: Job,
        call: Call,
        ctx: TaskContext | None,
        attempt: int,
        error: BaseException,
        duration: float,
    ) -> float | None:
        """Retry (send RETRY; return the delay) or answer the final failure (return None)."""
        options = self.options
        max_retries = self._max_retries(call)
        report: BaseException = error
        delay: float | None = None
        if isinstance(error, RetryScheduled):
            if isinstance(error, Retry) and error.max_retries is not None:
                max_retries = error.max_retries
            if attempt <= max_retries:
                countdown = error.countdown if isinstance(error, Retry) else None
                if countdown is None and error.eta is not None:
                    countdown = max(0.0, error.eta - time.time())
                delay = retry_delay(options, attempt) if countdown is None else countdown
            elif isinstance(error, Retry) and error.exc is not None:
                report = error.exc
            else:
                report = MaxRetriesExceeded(
                    f"task {self.task_name} asked for a retry after attempt {attempt}, but"
                    f" max_retries is {max_retries}"
                )
        elif attempt <= max_retries and isinstance(error, options.retry_on):
            delay = retry_delay(options, attempt)
        if delay is None:
            self._fail(job, call, ctx, attempt, report, duration)
            return None
        runner = self.runner
        runner.stats.retried += 1
        if not self.raw:
            cause = error.exc if isinstance(error, Retry) and error.exc is not None else error
            meta = {
                "attempt": attempt,
                "next_attempt": attempt + 1,
                "delay": delay,
                "eta": time.time() + delay,
                "type": qualified_name(type(cause)),
                "reason": str(cause) if isinstance(cause, Retry) else _describe(cause),
            }
            job.send_data(encode_state(RETRY, meta, serializer=call.serializer))
        if ctx is not None and runner.middleware:
            self._after(ctx, TaskOutcome("retry", duration, error=error, delay=delay))
        return delay

    def _fail(
        self,
        job: Job,
        call: Call,
        ctx: TaskContext | None,
        attempt: int,
        error: BaseException,
        duration: float,
    ) -> None:
        runner = self.runner
        runner.stats.failed += 1
        job.exception(encode_failure(error, serializer=call.serializer, attempt=attempt))
        if ctx is not None and runner.middleware:
            self._after(ctx, TaskOutcome("failure", duration, error=error))
        if not runner._log_tasks:
            log.warning(
                "task %s[%s] attempt %d failed: %s",
                self.task_name,
                call.task_id if call.task_id is not None else _id_from_unique(job.unique),
                attempt,
                _describe(error),
            )

    def _after(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        for hook in self.runner.middleware:
            try:
                hook.after_task(ctx, outcome)
            except Exception:
                log.exception("middleware %r failed in after_task", hook)

    def _time_up(self, job: Job, ctx: TaskContext, task: asyncio.Task[Any] | None) -> None:
        ctx.cancelled = True
        self._answer_time_limit(job, ctx)
        if task is not None:
            task.cancel()
        elif not self.inline:
            # A thread runs on: counted until it returns (see TaskWorker.stuck_threads).
            self.runner._stuck += 1
            log.warning(
                "task %s[%s] attempt %d: its thread runs on past the time limit (%d stuck);"
                " its result will be dropped",
                ctx.name, ctx.id, ctx.attempt, self.runner._stuck,
            )  # fmt: skip

    def _answer_time_limit(self, job: Job, ctx: TaskContext) -> None:
        data, message = time_limit_failure(
            self.task_name, ctx.id, ctx.attempt, self.time_limit or 0.0, ctx.serializer
        )
        if job.exception(data):
            self.runner.stats.time_limited += 1
            if not self.runner._log_tasks:
                log.warning("%s", message)

    def _wrong_task(self, job: Job, call: Call, named: str) -> None:
        function = job.function.decode(errors="replace")
        if named in self.runner.app.tasks:
            text = (
                f"the call names task {named!r}, but it arrived on function {function!r},"
                f" which serves task {self.task_name!r}; the caller and the worker disagree"
                " about task routing"
            )
        else:
            text = (
                f"unknown task {named!r}: this worker serves task {self.task_name!r} on"
                f" function {function!r}"
            )
        self.runner._reject(job, self.task_name, UnknownTask(text), call.serializer)

    def _expired(self, job: Job, call: Call) -> None:
        expires = call.expires or 0.0
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(expires))
        failure = Failure(
            kind=FailureKind.EXPIRED,
            exc_type=qualified_name(TaskExpired),
            message=(
                f"task {self.task_name}[{call.task_id}] expired at {stamp} UTC"
                f" ({time.time() - expires:.3f} s before a worker got it); it did not run"
            ),
            attempt=call.attempt,
        )
        self.runner.stats.expired += 1
        job.exception(encode_failure(failure, serializer=call.serializer))
        log.info("%s", failure.message)


# --- the worker ---------------------------------------------------------------------------------


class TaskWorker:
    """Serve an app's tasks from its job servers (asyncio).

    :param app: the :class:`gearq.tasks.app.App` whose tasks to run.
    :param concurrency: attempts run at once (threads for plain tasks; a job waiting for
        its retry also holds one, without a thread).
    :param queues: the queues to serve, like Celery's ``-Q``: every task (of ``tasks``) is
        served on each of them, so calls routed there with ``apply_async(queue=...)`` run
        too; ``None`` in the collection is the unprefixed function. Default: each task on
        its own declared queue only.
    :param tasks: serve only these task names; default all of the app's.
    :param poll_interval: seconds between GRABs of an idle connection, which bounds how
        late a due countdown/eta job runs on gearmand 1.1.x.
    :param servers: job servers; default ``app.servers``.
    :param pool: where plain (non-``async``) tasks run: ``"threads"`` (default, a pool of
        ``concurrency`` threads) or ``"inline"`` (on the event loop: fastest, but only for
        tasks that return in microseconds and never block; time limits cannot interrupt
        them).
    :param track_started: send a ``STARTED`` state update (``{"attempt", "worker"}``)
        when a job's first attempt starts (one more packet per task; the attempts after a
        retry always send one).
    :param log_tasks: log one line per attempt (:class:`TaskLogger`) on
        ``gearq.tasks.worker``. Without it only failures and time limits are logged.
    :param middleware: :class:`TaskMiddleware` hooks around every attempt.
    :param executor: a :class:`JobExecutor` that runs the jobs instead of this worker
        (e.g. a pool of processes); the worker only grabs and hands them over.
    :param worker_options: passed to :class:`gearq.worker.AsyncWorker` (``client_id``,
        ``grab_window``, ``recover``, ``options``...).
    """

    def __init__(
        self,
        app: AppLike,
        *,
        concurrency: int = 8,
        queues: Iterable[str | None] | None = None,
        tasks: Iterable[str] | None = None,
        poll_interval: float = 1.0,
        servers: Any = None,
        pool: Pool = "threads",
        track_started: bool = False,
        log_tasks: bool = False,
        middleware: Sequence[TaskMiddleware] = (),
        executor: JobExecutor | None = None,
        **worker_options: Any,
    ) -> None:
        if pool not in ("threads", "inline"):
            raise ValueError(f"pool must be 'threads' or 'inline', got {pool!r}")
        self.app = app
        self.pool: Pool = pool
        self.track_started = bool(track_started)
        self._log_tasks = bool(log_tasks)
        hooks = list(middleware)
        if log_tasks:
            hooks.append(TaskLogger())
        self.middleware: tuple[TaskMiddleware, ...] = tuple(hooks)
        self._observed = bool(self.middleware) or self.track_started
        self.stats = TaskStats()
        self.worker = AsyncWorker(
            app.servers if servers is None else servers,
            concurrency=concurrency,
            poll_interval=poll_interval,
            **worker_options,
        )
        self.client_id = self.worker.client_id.decode(errors="replace")
        self.tasks: dict[str, TaskLike] = _select(app, tasks)
        self.queues: tuple[str | None, ...] | None = None if queues is None else tuple(queues)
        if self.queues is not None and not self.queues:
            raise WorkerError("queues is empty: no function to serve")
        self.executor = executor
        self._served: dict[str, _Served] = {}
        self._handlers: dict[bytes, _Served] = {}
        for name, task in self.tasks.items():
            served = _Served(self, task)
            self._served[name] = served
            handler: Callable[[Job], Any] = served.handle
            # Plain tasks: an inline handler that answers at once when it can (on the loop,
            # or from a lone job's thread), else returns the coroutine that finishes it.
            inline = executor is None and not served.on_loop
            if inline:
                handler = served.handle_now
            elif executor is not None:
                handler = functools.partial(executor.execute, task)
            for function, delayed in _functions(task, self.queues):
                self._handlers[function] = self._handlers[delayed] = served
                self.worker.register(function, handler, inline=inline)
                # Countdown/eta jobs of every task share one connection per server: a job
                # not yet due makes gearmand wake the connection in vain (§0.3 of the
                # gearmand notes), which must not slow down the tasks' own connections.
                self.worker.register(delayed, handler, group=ETA_GROUP, inline=inline)
        self._threads: TaskThreads | None = None
        self._stuck = 0
        self._started = False
        self._driver = BlockingDriver(self)  # the blocking side: work / request_stop

    # -- facts ------------------------------------------------------------------------------

    @property
    def servers(self) -> tuple[ServerAddress, ...]:
        return self.worker.servers

    @property
    def functions(self) -> tuple[bytes, ...]:
        """The Gearman functions served (two per task: calls and countdown/eta jobs)."""
        return self.worker.functions

    @property
    def worker_stats(self) -> WorkerStats:
        """The low-level worker's counters (jobs, grabs, connections...)."""
        return self.worker.stats

    @property
    def running(self) -> int:
        """Jobs in hand now (running, waiting for a retry, or past their time limit)."""
        return self.worker.running_jobs

    @property
    def stuck_threads(self) -> int:
        """Threads still running a task whose time limit struck (its job is answered).

        CPython cannot kill a thread: each holds its concurrency slot until its task
        returns. A process whose threads pile up should be recycled (``gearq worker``
        does it).
        """
        return self._stuck

    def handler_for(self, function: bytes) -> Callable[[Job], Awaitable[bytes | None]]:
        """The job handler of a served Gearman function (KeyError if not served): what
        this worker runs for a job of it, for a process that gets jobs from elsewhere."""
        return self._handlers[function].handle

    # -- asyncio ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` (or until cancelled: a hard stop)."""
        if self._started:
            raise WorkerError("a worker runs only once; make a new one")
        self._started = True
        loop = asyncio.get_running_loop()
        if (
            self.pool == "threads"
            and self.executor is None
            and any(not s.on_loop for s in self._served.values())
        ):
            self._threads = TaskThreads(self.worker.concurrency, loop)
        waiter = waiter_for(loop)
        lending = self._threads is not None and waiter.usable and waiter.lender is None
        if lending:
            self._threads.lend_with(waiter, self.worker)  # type: ignore[union-attr]
        try:
            await self.worker.run()
        finally:
            if lending:
                waiter.lender = None
            if self._threads is not None:
                self._threads.shutdown()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every connection is up and registered (TimeoutError after ``timeout``)."""
        await self.worker.wait_ready(timeout)

    async def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stop serving; see :meth:`gearq.worker.AsyncWorker.stop`.

        Graceful: no new jobs; jobs in hand (including ones waiting for a retry) may finish
        within ``timeout`` seconds, then the rest are dropped and gearmand requeues them
        (they run again from the attempt their call envelope carries). Threads stuck past
        their time limit are not waited for: their jobs are answered already.
        """
        if not graceful or not self._started or self.worker.stopping:
            await self.worker.stop(graceful, timeout)
            return
        stopping = asyncio.ensure_future(self.worker.stop(True, timeout))
        while not stopping.done():
            if self._stuck and self.running <= self._stuck:
                # Only stuck threads are left: nothing more to wait for.
                await self.worker.stop(False)
                break
            await asyncio.wait({stopping}, timeout=0.05)
        await stopping

    # -- blocking -----------------------------------------------------------------------------

    def work(self, *, handle_signals: bool = False) -> None:
        """Serve until :meth:`request_stop`, blocking this thread (on a loop of its own).

        ``handle_signals`` (main thread only): SIGTERM and SIGINT stop gracefully; a second
        SIGINT stops at once.
        """
        self._driver.run(handle_signals=handle_signals)

    run_forever = work

    def request_stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Ask :meth:`work` to stop; returns at once. Safe from any thread or a signal
        handler, and before :meth:`work` has started (it then stops at once)."""
        self._driver.stop(graceful, timeout)

    # -- answers that never ran the task ------------------------------------------------------

    def _reject(
        self, job: Job, task_name: str, error: BaseException, serializer: Serializer | None
    ) -> None:
        if serializer is None or isinstance(serializer, RawSerializer):
            try:
                serializer = detect_serializer(job.payload)
            except EnvelopeError:
                serializer = JSON
        self.stats.rejected += 1
        log.warning(
            "job %s of function %s refused: %s",
            job.handle.decode(errors="replace"),
            job.function.decode(errors="replace"),
            _describe(error),
        )
        job.exception(encode_failure(error, serializer=serializer))

    def __repr__(self) -> str:
        return f"<TaskWorker {len(self.tasks)} task(s) on {len(self.servers)} server(s)>"


def _select(app: AppLike, names: Iterable[str] | None) -> dict[str, TaskLike]:
    available = dict(app.tasks)
    if names is not None:
        wanted = list(names)
        unknown = [name for name in wanted if name not in available]
        if unknown:
            raise WorkerError(f"the app has no task named {', '.join(map(repr, unknown))}")
        available = {name: available[name] for name in wanted}
    if not available:
        raise WorkerError("no task to serve: the app has none")
    return available


def _functions(task: TaskLike, queues: tuple[str | None, ...] | None) -> list[tuple[bytes, bytes]]:
    """(calls, countdown/eta jobs) functions of ``task``: on its own queue, or on each of
    ``queues`` (a call may be routed to any queue, ``apply_async(queue=...)``)."""
    own, delayed = task.function_name, task.delayed_function_name
    if queues is None:
        return [(own, delayed)]
    suffix = delayed[len(own) :]
    pairs = []
    for name in dict.fromkeys(queues):
        function = own if name == task.options.queue else function_name(task.name, name)
        pairs.append((function, function + suffix))
    return pairs


class BlockingTaskWorker:
    """The blocking twin of :class:`TaskWorker` (same arguments).

    ``work()`` blocks the calling thread; ``stop()`` may be called from any other thread or
    from a signal handler (it only asks, and never blocks).
    """

    def __init__(self, app: AppLike, **options: Any) -> None:
        self.task_worker = TaskWorker(app, **options)

    @property
    def stats(self) -> TaskStats:
        return self.task_worker.stats

    def work(self, *, handle_signals: bool = False) -> None:
        """Serve until :meth:`stop`; see :meth:`TaskWorker.work`."""
        self.task_worker.work(handle_signals=handle_signals)

    run = work
    run_forever = work

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Ask the worker to stop; returns at once."""
        self.task_worker.request_stop(graceful, timeout)
