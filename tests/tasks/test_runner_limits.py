"""TaskWorker time limits: per attempt, answered at once with a time_limit envelope, never
requeued."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

from gearq.tasks import FailureKind
from gearq.tasks.context import TaskContext
from gearq.testing import GearmandProcess

from .test_runner_support import (
    caller,
    eventually,
    make_app,
    make_worker,
    run,
    serving,
    show_jobs,
)

TIME_LIMIT_TYPE = "gearq.tasks.remote_errors.TimeLimitExceeded"


async def _nobody_gets_it(gearmand: GearmandProcess, name: str, seconds: float) -> None:
    """A second worker for the same task, polling, gets no job for ``seconds``."""
    other = make_app(gearmand)
    got: list[int] = []

    @other.task(name=name)
    def again() -> None:
        got.append(1)

    async with serving(make_worker(other, poll_interval=0.2)):
        await asyncio.sleep(seconds)
    assert got == []


def test_async_task_past_its_limit_is_cancelled_and_answered(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    cancelled = asyncio.Event()

    @app.task(time_limit=0.3)
    async def sleepy() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "too late"

    async def main() -> None:
        worker = make_worker(app)
        async with serving(worker), caller(gearmand) as c:
            reply = await c.call(sleepy, task_id="tl-1")
            assert reply.packet == "exception"
            failure = reply.failure
            assert failure.kind is FailureKind.TIME_LIMIT
            assert failure.exc_type == TIME_LIMIT_TYPE
            assert "sleepy[tl-1] attempt 1" in failure.message
            assert "time limit of 0.3 s" in failure.message
            assert failure.attempt == 1
            assert 0.25 < reply.elapsed < 2.0
            await asyncio.wait_for(cancelled.wait(), 2)
            await eventually(lambda: worker.running == 0)
            assert await show_jobs(gearmand) == ()
            assert worker.stats.time_limited == 1
        await _nobody_gets_it(gearmand, "sleepy", 0.6)
        assert worker.worker_stats.server_errors == 0

    run(main())


def test_sync_task_past_its_limit_is_answered_and_told_to_stop(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    saw_cancel = threading.Event()
    release = threading.Event()

    @app.task(bind=True, time_limit=0.3)
    def grind(ctx: TaskContext) -> str:
        while not ctx.cancelled:
            time.sleep(0.01)
        assert ctx.time_left() is not None and ctx.time_left() < 0  # type: ignore[operator]
        saw_cancel.set()
        assert release.wait(10)
        return "too late"

    async def main() -> None:
        worker = make_worker(app, concurrency=2)
        async with serving(worker), caller(gearmand) as c:
            reply = await c.call(grind)
            assert reply.failure.kind is FailureKind.TIME_LIMIT
            assert 0.25 < reply.elapsed < 2.0
            assert await asyncio.to_thread(saw_cancel.wait, 5)
            assert worker.running == 1  # its thread still runs and keeps its slot
            release.set()
            await eventually(lambda: worker.running == 0)
            await asyncio.sleep(0.1)  # a late answer would draw an ERROR from gearmand
            assert await show_jobs(gearmand) == ()
            assert worker.worker_stats.server_errors == 0
            assert (worker.stats.time_limited, worker.stats.succeeded) == (1, 0)
        await _nobody_gets_it(gearmand, "grind", 0.6)

    run(main())


def test_time_limit_is_per_attempt_not_per_job(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task(
        bind=True,
        time_limit=0.5,
        max_retries=2,
        retry_on=(OSError,),
        retry_backoff=0.2,
        retry_jitter=False,
    )
    async def steady(ctx: TaskContext) -> int:
        await asyncio.sleep(0.3)
        if ctx.attempt < 3:
            raise OSError("again")
        return ctx.attempt

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply = await c.call(steady)
            assert reply.value == 3  # 3 x 0.3 s + 0.2 + 0.4 s of backoff: well over 0.5 s
            assert reply.elapsed > 1.4

    run(main())


def test_generator_past_its_limit_stops_streaming(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    stopped = threading.Event()

    @app.task(time_limit=0.3)
    def endless() -> Iterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
                time.sleep(0.05)
        finally:
            stopped.set()  # closed by the worker once the limit struck

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(endless)
            assert reply.failure.kind is FailureKind.TIME_LIMIT
            assert 1 <= len(reply.chunks) <= 8
            assert reply.chunks == list(range(len(reply.chunks)))
            assert await asyncio.to_thread(stopped.wait, 5)
            await eventually(lambda: worker.running == 0)

    run(main())


def test_inline_task_over_its_limit_is_reported_as_time_limit(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task(time_limit=0.1)
    def hog() -> str:
        time.sleep(0.3)  # holds the loop: the timer cannot fire in time
        return "late"

    async def main() -> None:
        async with serving(make_worker(app, pool="inline")), caller(gearmand) as c:
            reply = await c.call(hog)
            assert reply.failure.kind is FailureKind.TIME_LIMIT

    run(main())
