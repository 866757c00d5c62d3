"""TaskWorker: which tasks it serves, stopping, the blocking twin, logging, middleware."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from gearq.tasks.context import TaskContext
from gearq.tasks.runner import BlockingTaskWorker, TaskMiddleware, TaskOutcome, TaskWorker
from gearq.testing import GearmandProcess
from gearq.worker import WorkerError

from .test_runner_support import caller, eventually, make_app, make_worker, run, serving


def test_queues_and_tasks_select_what_is_served(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task
    def plain() -> None: ...

    @app.task(queue="math")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(queue="io")
    def fetch() -> str:
        return "fetched"

    assert set(make_worker(app).functions) == {
        b"plain",
        b"plain@eta",
        b"math:add",
        b"math:add@eta",
        b"io:fetch",
        b"io:fetch@eta",
    }
    # Like Celery's -Q: every task on each queue served (a call may be routed anywhere).
    assert set(make_worker(app, queues=["math"]).functions) == {
        b"math:plain", b"math:plain@eta", b"math:add", b"math:add@eta",
        b"math:fetch", b"math:fetch@eta",
    }  # fmt: skip
    assert set(make_worker(app, queues=["io", None], tasks=["fetch"]).functions) == {
        b"io:fetch",
        b"io:fetch@eta",
        b"fetch",
        b"fetch@eta",
    }
    assert set(make_worker(app, tasks=["fetch", "add"]).tasks) == {"fetch", "add"}
    with pytest.raises(WorkerError, match="no task named 'nope'"):
        make_worker(app, tasks=["nope"])
    with pytest.raises(WorkerError, match="queues is empty"):
        make_worker(app, queues=[])
    with pytest.raises(ValueError, match="pool"):
        make_worker(app, pool="processes")

    async def main() -> None:
        async with serving(make_worker(app, queues=["math"])), caller(gearmand) as c:
            assert (await c.call(add, 2, 3)).value == 5
            # fetch (declared on queue io), routed to math for this call, is served there.
            assert (await c.call(fetch, function=b"math:fetch")).value == "fetched"

    run(main())


def test_graceful_stop_lets_running_tasks_answer(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    started = asyncio.Event()

    @app.task
    async def slow() -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    async def main() -> None:
        worker = make_worker(app)
        runner = asyncio.ensure_future(worker.run())
        await worker.wait_ready(10)
        async with caller(gearmand) as c:
            reply, job = await c.submit(slow)
            await asyncio.wait_for(started.wait(), 5)
            await worker.stop(graceful=True, timeout=5)
            await c.finish(reply, job)
            assert reply.value == "finished"
        await asyncio.wait_for(runner, 5)

    run(main())


def test_blocking_twin_works_until_stopped_from_another_thread(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task
    def echo(x: Any) -> Any:
        return x

    blocking = BlockingTaskWorker(app, poll_interval=0.5)
    thread = threading.Thread(target=blocking.work)
    thread.start()
    try:

        async def main() -> None:
            async with caller(gearmand) as c:
                assert (await c.call(echo, [1, 2])).value == [1, 2]

        run(main())
    finally:
        blocking.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert blocking.stats.succeeded == 1
    blocking.stop()  # after the end: a no-op


def test_stop_requested_before_work_returns_at_once(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task
    def noop() -> None: ...

    worker = TaskWorker(app)
    worker.request_stop()
    started = time.monotonic()
    worker.work()
    assert time.monotonic() - started < 5


def test_log_tasks_writes_one_line_per_attempt(
    gearmand: GearmandProcess, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(gearmand)

    @app.task(bind=True, max_retries=1, retry_on=(OSError,), retry_backoff=0.01)
    def logged(ctx: TaskContext, fail: bool) -> int:
        if fail or ctx.attempt == 1:
            raise OSError(f"attempt {ctx.attempt}")
        return ctx.attempt

    async def main() -> None:
        async with serving(make_worker(app, log_tasks=True)), caller(gearmand) as c:
            assert (await c.call(logged, False, task_id="ok-id")).value == 2
            assert (await c.call(logged, True, task_id="bad-id")).kind == "err"

    with caplog.at_level(logging.INFO, logger="gearq.tasks.worker"):
        run(main())
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "gearq.tasks.worker"
    ]
    assert [level for level, _ in lines] == ["INFO", "INFO", "INFO", "WARNING"]
    assert lines[0][1].startswith("task logged[ok-id] attempt 1 raised OSError: attempt 1 after")
    assert "retrying in" in lines[0][1]
    assert lines[1][1].startswith("task logged[ok-id] attempt 2 succeeded in ")
    assert lines[1][1].endswith(" ms")
    assert lines[3][1].startswith("task logged[bad-id] attempt 2 failed in ")
    assert lines[3][1].endswith("OSError: attempt 2")


def test_failures_are_logged_even_without_log_tasks(
    gearmand: GearmandProcess, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(gearmand)

    @app.task
    def bad() -> None:
        raise ValueError("nope")

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            await c.call(bad, task_id="x1")

    with caplog.at_level(logging.INFO, logger="gearq.tasks.worker"):
        run(main())
    messages = [r.getMessage() for r in caplog.records if r.name == "gearq.tasks.worker"]
    assert messages == ["task bad[x1] attempt 1 failed: ValueError: nope"]


class Recorder(TaskMiddleware):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def before_task(self, ctx: TaskContext) -> None:
        self.events.append(("before", ctx.name, ctx.attempt))
        if ctx.headers.get("refuse"):
            raise RuntimeError("refused by middleware")

    def after_task(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        self.events.append(("after", ctx.name, ctx.attempt, outcome.status, ctx.job.answered))
        assert outcome.duration >= 0


def test_middleware_runs_around_every_attempt(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    ran: list[int] = []

    @app.task(bind=True, max_retries=1, retry_on=(OSError,), retry_backoff=0.01)
    async def hooked(ctx: TaskContext) -> int:
        ran.append(ctx.attempt)
        if ctx.attempt == 1:
            raise OSError("once")
        return 7

    async def main() -> None:
        recorder = Recorder()
        async with serving(make_worker(app, middleware=[recorder])), caller(gearmand) as c:
            assert (await c.call(hooked)).value == 7
            reply = await c.call(hooked, headers={"refuse": True})
            assert reply.failure.exc_type == "builtins.RuntimeError"
        assert recorder.events == [
            ("before", "hooked", 1),
            ("after", "hooked", 1, "retry", False),
            ("before", "hooked", 2),
            ("after", "hooked", 2, "success", True),
            ("before", "hooked", 1),
            ("after", "hooked", 1, "failure", True),
        ]
        assert ran == [1, 2]

    run(main())


def test_job_waiting_for_its_retry_is_requeued_when_the_worker_stops(
    gearmand: GearmandProcess,
) -> None:
    """Stopped during a backoff wait, the worker drops the job; gearmand hands it to the
    next worker, which starts over from the call envelope's attempt."""
    attempts: list[tuple[str, int]] = []

    def make(label: str) -> Any:
        app = make_app(gearmand)

        @app.task(name="patient", bind=True, max_retries=1, retry_on=(OSError,), retry_backoff=30)
        def patient(ctx: TaskContext) -> str:
            attempts.append((label, ctx.attempt))
            if label == "first":
                raise OSError("wait a long time")
            return label

        return app, patient

    async def main() -> None:
        first_app, patient = make("first")
        first = make_worker(first_app)
        running = asyncio.ensure_future(first.run())
        await first.wait_ready(10)
        async with caller(gearmand) as c:
            reply, job = await c.submit(patient)
            await eventually(lambda: reply.retries)
            await first.stop(graceful=True, timeout=0.2)  # the wait outlasts the timeout
            await asyncio.wait_for(running, 5)
            second_app, _ = make("second")
            async with serving(make_worker(second_app)):
                await c.finish(reply, job)
        assert reply.value == "second"
        assert attempts == [("first", 1), ("second", 1)]

    run(main())
