"""TaskWorker retries: in the same Gearman job, with backoff, RETRY updates, limits."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from gearq.tasks import FailureKind, RetryScheduled
from gearq.tasks.context import TaskContext
from gearq.testing import GearmandProcess

from .test_runner_support import caller, make_app, make_worker, run, serving, show_jobs

BACKOFF = {"retry_backoff": 0.05, "retry_jitter": False}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_retries_back_off_and_end_in_success_on_the_same_job(
    gearmand: GearmandProcess, kind: str
) -> None:
    app = make_app(gearmand)
    attempts: list[tuple[int, float]] = []

    def body(ctx: TaskContext) -> str:
        attempts.append((ctx.attempt, time.monotonic()))
        if ctx.attempt < 3:
            raise ConnectionError(f"down at {ctx.attempt}")
        return f"ok at {ctx.attempt}"

    if kind == "sync":

        @app.task(name="flaky", bind=True, max_retries=3, retry_on=(OSError,), **BACKOFF)
        def flaky(ctx: TaskContext) -> str:
            return body(ctx)

    else:

        @app.task(name="flaky", bind=True, max_retries=3, retry_on=(OSError,), **BACKOFF)
        async def flaky(ctx: TaskContext) -> str:
            await asyncio.sleep(0)
            return body(ctx)

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(flaky, task_id="r1")
            assert (reply.packet, reply.value) == ("complete", "ok at 3")
            assert [a for a, _ in attempts] == [1, 2, 3]
            # Backoff 0.05 * 2**(n-1): 0.05 s after attempt 1, 0.1 s after attempt 2.
            gaps = [attempts[i + 1][1] - attempts[i][1] for i in range(2)]
            assert 0.045 <= gaps[0] < 0.5 and 0.095 <= gaps[1] < 0.6
            retries = reply.retries
            assert [(s.meta["attempt"], s.meta["next_attempt"]) for s in retries] == [
                (1, 2),
                (2, 3),
            ]
            assert [s.meta["delay"] for s in retries] == pytest.approx([0.05, 0.1])
            assert retries[0].meta["type"] == "builtins.ConnectionError"
            assert retries[0].meta["reason"] == "ConnectionError: down at 1"
            # eta: the wall-clock time attempt 3 was due (it started then).
            third_started_at = time.time() - (time.monotonic() - attempts[2][1])
            assert retries[1].meta["eta"] == pytest.approx(third_started_at, abs=0.1)
            assert worker.stats.retried == 2 and worker.stats.succeeded == 1
            assert worker.worker_stats.jobs_started == 1  # one Gearman job for all attempts
            assert await show_jobs(gearmand) == ()

    run(main())


def test_exhausted_retries_end_in_the_last_failure(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    attempts: list[int] = []

    @app.task(bind=True, max_retries=2, retry_on=(ValueError,), **BACKOFF)
    def hopeless(ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        raise ValueError(f"attempt {ctx.attempt}")

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(hopeless)
            assert attempts == [1, 2, 3]
            # Each retry is announced (RETRY), and so is the attempt that follows (STARTED).
            assert [(s.state, s.meta["attempt"]) for s in reply.states] == [
                ("RETRY", 1),
                ("STARTED", 2),
                ("RETRY", 2),
                ("STARTED", 3),
            ]
            failure = reply.failure
            assert (failure.kind, failure.exc_type) == (FailureKind.ERROR, "builtins.ValueError")
            assert (failure.message, failure.attempt) == ("attempt 3", 3)
            assert worker.stats.retried == 2 and worker.stats.failed == 1

    run(main())


def test_errors_outside_retry_on_are_not_retried(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    attempts: list[int] = []

    @app.task(bind=True, max_retries=5, retry_on=(OSError,), **BACKOFF)
    def picky(ctx: TaskContext) -> None:
        attempts.append(ctx.attempt)
        raise TypeError("a bug, not a hiccup")

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply = await c.call(picky)
            assert reply.failure.exc_type == "builtins.TypeError"
            assert reply.states == [] and attempts == [1]

    run(main())


def test_ctx_retry_with_countdown_and_exhaustion_reports_the_cause(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)
    times: list[float] = []

    @app.task(bind=True, max_retries=1)
    async def poll(ctx: TaskContext, ready_at: int) -> int:
        times.append(time.monotonic())
        if ctx.attempt < ready_at:
            ctx.retry(countdown=0.2)
        return ctx.attempt

    @app.task(bind=True, max_retries=1, **BACKOFF)
    def gives_up(ctx: TaskContext) -> None:
        try:
            raise LookupError(f"not there at {ctx.attempt}")
        except LookupError:
            ctx.retry()  # the exception being handled is the cause

    @app.task(bind=True, max_retries=0)
    def no_cause(ctx: TaskContext) -> None:
        raise ctx.retry()

    @app.task(bind=True, max_retries=0)
    def more_for_this_one(ctx: TaskContext) -> int:
        if ctx.attempt < 3:
            ctx.retry(countdown=0, max_retries=5)
        return ctx.attempt

    @app.task(max_retries=1, **BACKOFF)
    def raises_retry_scheduled() -> None:
        raise RetryScheduled("remote said retry")

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(poll, 2)
            assert reply.value == 2
            assert 0.19 <= times[1] - times[0] < 1.0
            (retry,) = reply.retries
            assert retry.meta["delay"] == 0.2 and retry.meta["reason"] == "retry requested"
            reply = await c.call(gives_up)
            (retry,) = reply.retries
            assert retry.meta["type"] == "builtins.LookupError"
            assert reply.failure.exc_type == "builtins.LookupError"
            assert (reply.failure.message, reply.failure.attempt) == ("not there at 2", 2)
            reply = await c.call(no_cause)
            assert reply.failure.exc_type == "gearq.tasks.context.MaxRetriesExceeded"
            assert "max_retries is 0" in reply.failure.message
            assert (await c.call(more_for_this_one)).value == 3
            reply = await c.call(raises_retry_scheduled)
            assert [s.meta["delay"] for s in reply.retries] == [0.05]  # the task's backoff
            assert reply.failure.exc_type == "gearq.tasks.context.MaxRetriesExceeded"
            assert worker.stats.retried == 5

    run(main())


def test_a_retry_wait_holds_no_thread(gearmand: GearmandProcess) -> None:
    """While one task waits out its backoff, another plain task runs on the same (only)
    pool thread that ran the first attempt: the wait holds no thread."""
    app = make_app(gearmand)
    threads: dict[str, str] = {}
    first_failed = threading.Event()

    @app.task(bind=True, max_retries=1, retry_on=(OSError,), retry_backoff=1.0, retry_jitter=False)
    def waits(ctx: TaskContext) -> int:
        threads[f"waits-{ctx.attempt}"] = threading.current_thread().name
        if ctx.attempt == 1:
            first_failed.set()
            raise OSError("later")
        return ctx.attempt

    @app.task
    def other() -> str:
        threads["other"] = threading.current_thread().name
        return "other"

    async def main() -> None:
        async with serving(make_worker(app, concurrency=2)), caller(gearmand) as c:
            reply, job = await c.submit(waits)
            await asyncio.to_thread(first_failed.wait, 5)
            assert (await c.call(other)).value == "other"
            assert not job.done  # other ran during the 1 s backoff
            await c.finish(reply, job)
            assert reply.value == 2
        assert threads["waits-1"] == threads["other"] == threads["waits-2"]

    run(main())


def test_retry_keeps_the_payload_and_the_chunks_of_each_attempt_arrive(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)

    @app.task(bind=True, max_retries=1, retry_on=(OSError,), **BACKOFF)
    def stream(ctx: TaskContext, items: list[Any]) -> Any:
        for item in items:
            yield (ctx.attempt, item)
        if ctx.attempt == 1:
            raise OSError("flaky stream")

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply = await c.call(stream, ["a", "b"])
            assert (reply.kind, reply.value) == ("ok", None)
            data = [
                ("state", v.state) if hasattr(v, "state") else ("chunk", v.value)
                for v in reply.of("data")
            ]
            assert data == [
                ("chunk", (1, "a")),
                ("chunk", (1, "b")),
                ("state", "RETRY"),
                ("state", "STARTED"),
                ("chunk", (2, "a")),
                ("chunk", (2, "b")),
            ]

    run(main())
