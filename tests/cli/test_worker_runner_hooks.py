"""The task worker hooks ``gearq worker`` builds on, in-process on a real gearmand: a
:class:`JobExecutor` runs the jobs the worker grabs (the prefork pool's seam), and threads
stuck past their time limit are counted and not waited for by a warm stop."""

from __future__ import annotations

import asyncio
import threading
import time

from gearq.tasks import FailureKind, encode_result
from gearq.tasks.runner import TaskLike, TaskWorker
from gearq.testing import GearmandProcess
from gearq.worker import Job
from tests.tasks.test_runner_support import caller, eventually, make_app, make_worker, run, serving


class Recorder:
    """An executor that answers every job itself, without running the task."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def execute(self, task: TaskLike, job: Job) -> bytes | None:
        self.seen.append((task.name, job.function))
        return encode_result(f"ran {task.name} elsewhere")


def test_an_executor_gets_every_job_instead_of_the_task(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    ran: list[int] = []

    @app.task
    def work(x: int) -> int:
        ran.append(x)
        return x

    executor = Recorder()

    async def main() -> None:
        worker = make_worker(app, executor=executor)
        async with serving(worker), caller(gearmand) as c:
            reply = await c.call(work, 1)
            assert reply.value == "ran work elsewhere"
        assert executor.seen == [("work", b"work")]
        assert ran == []

    run(main())


def test_handler_for_serves_calls_and_countdown_functions(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task(queue="q")
    def work() -> None: ...

    worker = TaskWorker(app, queues=["q", None])
    handlers = {name: worker.handler_for(name) for name in worker.functions}
    assert set(handlers) == {b"q:work", b"q:work@eta", b"work", b"work@eta"}
    assert len({id(getattr(h, "__self__", h)) for h in handlers.values()}) == 1


def test_stuck_threads_are_counted_and_a_warm_stop_does_not_wait_for_them(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)
    release = threading.Event()

    @app.task(time_limit=0.2)
    def stuck() -> str:
        release.wait(30)  # never looks at ctx.cancelled
        return "late"

    async def main() -> None:
        worker = make_worker(app, concurrency=3)
        serve = asyncio.ensure_future(worker.run())
        await worker.wait_ready(10)
        async with caller(gearmand) as c:
            replies = await asyncio.gather(c.call(stuck), c.call(stuck))
        assert [r.failure.kind for r in replies] == [FailureKind.TIME_LIMIT] * 2
        await eventually(lambda: worker.stuck_threads == 2)
        assert worker.running == 2
        started = time.monotonic()
        await worker.stop(graceful=True, timeout=20)
        await asyncio.wait_for(serve, 5)
        assert time.monotonic() - started < 3  # not the 20 s of the timeout
        release.set()
        await eventually(lambda: worker.stuck_threads == 0)

    run(main())
