"""Eager mode: run tasks in the calling process, still through the envelope.

With ``App(eager=True)`` (or ``app.conf.eager = True``, or ``GEARQ_EAGER=1``) a call does
what a worker would, here and now, and returns a finished result:

* the call is encoded into its envelope and decoded again, so arguments the serializer
  cannot carry fail exactly as they would (:class:`SerializationError` from ``.delay()``),
  and the task receives what a worker would (tuples as lists with json, and so on);
* the task runs with a :class:`TaskContext` whose progress, chunks, warnings and state
  updates are recorded and show up on the result (``progress``, ``stream()``,
  ``warnings``, ``state``);
* the return value goes through the result envelope, an exception through the failure
  envelope and :func:`rebuild_exception`, so ``get()`` raises what it would remotely;
* retries follow the task's options (``retry_on``, ``max_retries``, ``ctx.retry()``),
  without waiting out the backoff; each attempt sees its number.

Not emulated: time limits, coalescing by unique, countdown/eta delays, the worker's
routing. ``async def`` tasks run on the running loop (``await task.adelay()``) or on a
private one (``task.delay()``).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .context import MaxRetriesExceeded, Retry, TaskContext
from .envelope import (
    decode_call,
    encode_call,
    encode_chunk,
    encode_failure,
    encode_result,
    encode_state,
)
from .options import retry_delay
from .remote_errors import RetryScheduled, qualified_name
from .result import AsyncResult, BackgroundResult
from .serializers import RawSerializer

if TYPE_CHECKING:
    from ..worker.job import Job
    from .task import Task

__all__ = ["EagerJob", "arun_eager", "local_context", "run_eager"]

T = TypeVar("T")


class EagerJob:
    """Stands in for a worker's job: records what the task sends."""

    def __init__(self, function: bytes = b"", payload: bytes = b"") -> None:
        self.handle = b"eager"
        self.function = function
        self.unique = b""
        self.payload = payload
        self.attempt: int | None = None
        self.data: list[bytes] = []
        self.warnings: list[bytes] = []
        self.status: tuple[int, int] | None = None

    def send_data(self, data: bytes) -> bool:
        self.data.append(bytes(data))
        return True

    def send_warning(self, data: bytes) -> bool:
        self.warnings.append(bytes(data))
        return True

    def send_status(self, numerator: int, denominator: int) -> bool:
        self.status = (int(numerator), int(denominator))
        return True


def local_context(task: Task[Any, Any]) -> TaskContext:
    """A context for calling a ``bind=True`` task here (``task(...)``): sends go nowhere."""
    return TaskContext(
        cast("Job", EagerJob(task.function_name)),
        task.name,
        max_retries=task.options.max_retries,
        serializer=task.serializer,
    )


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="gearq-eager")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return cast(T, box["value"])


async def _drain_async_gen(gen: Any, ctx: TaskContext) -> None:
    try:
        async for item in gen:
            ctx.job.send_data(encode_chunk(item, serializer=ctx.serializer, task_name=ctx.name))
    finally:
        await gen.aclose()


def _drain_gen(gen: Any, ctx: TaskContext) -> Any:
    try:
        while True:
            try:
                item = gen.send(None)
            except StopIteration as stop:
                return stop.value
            ctx.job.send_data(encode_chunk(item, serializer=ctx.serializer, task_name=ctx.name))
    finally:
        gen.close()


class _Attempts:
    """The attempts of one eager call, as the worker would make them."""

    def __init__(self, task: Task[Any, Any], payload: bytes, task_id: str) -> None:
        self.task = task
        self.call = decode_call(payload, serializer=task.serializer)
        self.job = EagerJob(task.function_name, payload)
        self.task_id = task_id
        self.attempt = 1
        options = task.options
        self.max_retries = (
            self.call.max_retries if self.call.max_retries is not None else options.max_retries
        )

    def context(self) -> TaskContext:
        call = self.call
        return TaskContext(
            cast("Job", self.job),
            self.task.name,
            id=self.task_id,
            attempt=self.attempt,
            max_retries=self.max_retries,
            headers=call.headers,
            serializer=call.serializer,
            eta=call.eta,
            expires=call.expires,
        )

    def start(self, ctx: TaskContext) -> Any:
        call = self.call
        args: Sequence[Any] = (ctx, *call.args) if self.task.options.bind else call.args
        value = self.task.fn(*args, **call.kwargs)
        if value.__class__ is GeneratorType:
            value = _drain_gen(value, ctx)
        return value

    def retry_or_fail(self, error: BaseException) -> bytes | None:
        """None: run again (a RETRY state was recorded); else the failure envelope."""
        options = self.task.options
        attempt = self.attempt
        max_retries = self.max_retries
        report: BaseException = error
        retry = False
        if isinstance(error, RetryScheduled):
            if isinstance(error, Retry) and error.max_retries is not None:
                max_retries = error.max_retries
            if attempt <= max_retries:
                retry = True
            elif isinstance(error, Retry) and error.exc is not None:
                report = error.exc
            else:
                report = MaxRetriesExceeded(
                    f"task {self.task.name} asked for a retry after attempt {attempt}, but"
                    f" max_retries is {max_retries}"
                )
        elif attempt <= max_retries and isinstance(error, options.retry_on):
            retry = True
        if not retry:
            return encode_failure(report, serializer=self.call.serializer, attempt=attempt)
        if not isinstance(self.task.serializer, RawSerializer):
            cause = error.exc if isinstance(error, Retry) and error.exc is not None else error
            delay = retry_delay(options, attempt)
            meta = {
                "attempt": attempt,
                "next_attempt": attempt + 1,
                "delay": delay,
                "eta": time.time() + delay,
                "type": qualified_name(type(cause)),
                "reason": str(cause),
            }
            self.job.send_data(encode_state("RETRY", meta, serializer=self.call.serializer))
        self.attempt += 1
        return None

    def finish(self, value: Any) -> tuple[bytes, bool]:
        try:
            return (
                encode_result(value, serializer=self.call.serializer, task_name=self.task.name),
                True,
            )
        except Exception as exc:
            return encode_failure(exc, serializer=self.call.serializer, attempt=self.attempt), False


def _encode(task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any] | None,
            task_id: str) -> bytes:  # fmt: skip
    if isinstance(task.serializer, RawSerializer):
        return encode_call(
            task.name, args, kwargs, serializer=task.serializer, param_names=task._param_names
        )
    return encode_call(
        task.name,
        args,
        kwargs,
        serializer=task.serializer,
        task_id=task_id,
        param_names=task._param_names,
    )


def _result(task: Task[Any, Any], task_id: str, runs: _Attempts, reply: bytes, ok: bool) -> Any:
    result: AsyncResult[Any] = AsyncResult(
        task.name,
        task_id,
        home=None,
        serializer=task.serializer,
        registry=task.app.exception_registry,
        stream=task.is_generator,
    )
    result._load_eager(runs.job.data, runs.job.warnings, runs.job.status, reply, ok)
    if task.app.conf.eager_propagates and result.failed():
        result.get()
    return result


def _background(task: Task[Any, Any], task_id: str) -> BackgroundResult:
    handle = BackgroundResult(
        task.app, task.name, task_id, function=task.function_name,
        unique=b"b:" + task_id.encode(), eta=None, home=None,
    )  # fmt: skip
    handle._eager = True
    return handle


def run_eager(
    task: Task[Any, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    task_id: str,
    *,
    background: bool = False,
) -> Any:
    """Run a call of ``task`` here (blocking); a finished :class:`AsyncResult` (or, for a
    background call, a :class:`BackgroundResult` after the task ran)."""
    runs = _Attempts(task, _encode(task, args, kwargs, task_id), task_id)
    while True:
        ctx = runs.context()
        try:
            value = runs.start(ctx)
            if value.__class__ is CoroutineType:
                value = _run_coroutine(value)
            elif value.__class__ is AsyncGeneratorType:
                _run_coroutine(_drain_async_gen(value, ctx))
                value = None
        except (Exception, SystemExit) as exc:
            failure = runs.retry_or_fail(exc)
            if failure is None:
                continue
            reply, ok = failure, False
            break
        reply, ok = runs.finish(value)
        break
    if background:
        return _background(task, task_id)
    return _result(task, task_id, runs, reply, ok)


async def arun_eager(
    task: Task[Any, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    task_id: str,
    *,
    background: bool = False,
) -> Any:
    """:func:`run_eager` on the running loop (``async def`` tasks are awaited here)."""
    runs = _Attempts(task, _encode(task, args, kwargs, task_id), task_id)
    while True:
        ctx = runs.context()
        try:
            value = runs.start(ctx)
            if inspect.isawaitable(value):
                value = await value
            elif value.__class__ is AsyncGeneratorType:
                await _drain_async_gen(value, ctx)
                value = None
        except (Exception, SystemExit) as exc:
            failure = runs.retry_or_fail(exc)
            if failure is None:
                continue
            reply, ok = failure, False
            break
        reply, ok = runs.finish(value)
        break
    if background:
        return _background(task, task_id)
    return _result(task, task_id, runs, reply, ok)
