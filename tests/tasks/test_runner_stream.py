"""TaskWorker: the context, and what a task sends while it runs (progress, chunks, warnings)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from gearq.tasks import StateUpdate
from gearq.tasks.context import TaskContext
from gearq.testing import GearmandProcess

from .test_runner_support import caller, eventually, make_app, make_worker, run, serving


def test_progress_warnings_and_chunks_arrive_in_order_while_the_task_runs(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)
    release = threading.Event()

    @app.task(bind=True)
    def report(ctx: TaskContext, parts: int) -> str:
        for i in range(parts):
            ctx.progress(i, parts)
            ctx.warn(f"part {i}")
            ctx.send_chunk({"part": i})
        ctx.update_state("WAITING", {"parts": parts})
        assert release.wait(10)  # the caller has seen everything so far, while we run
        ctx.progress(parts, parts)
        return "done"

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply, job = await c.submit(report, (3,))
            await eventually(lambda: len(reply.events) == 10)
            assert not job.done
            release.set()
            await c.finish(reply, job)
        kinds = [(kind, value) for kind, value, _ in reply.events]
        expected: list[tuple[str, Any]] = []
        for i in range(3):
            expected += [("status", (i, 3)), ("warning", f"part {i}")]
            expected += [("data", ("chunk", {"part": i}))]
        expected += [("data", ("state", "WAITING", {"parts": 3})), ("status", (3, 3))]
        seen = []
        for kind, value in kinds:
            if kind == "data":
                if isinstance(value, StateUpdate):
                    value = ("state", value.state, value.meta)
                else:
                    value = ("chunk", value.value)
            seen.append((kind, value))
        assert seen == expected
        assert reply.value == "done"

    run(main())


def test_generator_task_streams_its_items_as_they_are_made(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    release = threading.Event()

    @app.task
    def numbers(n: int) -> Iterator[int]:
        yield from range(n)
        assert release.wait(10)
        yield n
        return "the end"  # type: ignore[misc]  # a generator's return value is the result

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply, job = await c.submit(numbers, (3,))
            await eventually(lambda: reply.chunks == [0, 1, 2])
            assert not job.done
            release.set()
            await c.finish(reply, job)
            assert reply.chunks == [0, 1, 2, 3]
            assert reply.value == "the end"

    run(main())


def test_async_generator_task_streams_and_results_in_none(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    gate = asyncio.Event()
    closed: list[bool] = []

    @app.task
    async def letters(word: str) -> AsyncIterator[str]:
        try:
            for ch in word:
                yield ch
            await gate.wait()
            yield "!"
        finally:
            closed.append(True)

    @app.task(bind=True)
    async def broken(ctx: TaskContext) -> AsyncIterator[int]:
        yield ctx.attempt
        raise RuntimeError("stream broke")

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply, job = await c.submit(letters, ("abc",))
            await eventually(lambda: reply.chunks == ["a", "b", "c"])
            assert not job.done
            gate.set()
            await c.finish(reply, job)
            assert reply.chunks == ["a", "b", "c", "!"]
            assert (reply.kind, reply.value) == ("ok", None)
            assert closed == [True]
            reply = await c.call(broken)
            assert reply.chunks == [1]
            assert reply.failure.message == "stream broke"

    run(main())


def test_bound_context_has_the_call_ids_in_sync_and_async_tasks(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    def describe(ctx: TaskContext) -> dict[str, Any]:
        return {
            "id": ctx.id,
            "name": ctx.name,
            "attempt": ctx.attempt,
            "max_retries": ctx.max_retries,
            "headers": ctx.headers,
            "parent": ctx.parent_id,
            "root": ctx.root_id,
            "retries_left": ctx.retries_left,
        }

    @app.task(bind=True, max_retries=2)
    def sync_ctx(ctx: TaskContext, x: int) -> dict[str, Any]:
        return {**describe(ctx), "x": x}

    @app.task(bind=True)
    async def async_ctx(ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        return describe(ctx)

    @app.task(bind=True, serializer="raw")
    def raw_ctx(ctx: TaskContext, data: bytes) -> bytes:
        return f"{ctx.id}|{ctx.name}|{data.decode()}".encode()

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply = await c.call(
                sync_ctx, 5, task_id="id-1", headers={"trace": "t1"}, parent_id="p", root_id="r"
            )
            assert reply.value == {
                "id": "id-1",
                "name": "sync_ctx",
                "attempt": 1,
                "max_retries": 2,
                "headers": {"trace": "t1"},
                "parent": "p",
                "root": "r",
                "retries_left": 2,
                "x": 5,
            }
            reply = await c.call(async_ctx, task_id="id-2", max_retries=4)
            assert reply.value["id"] == "id-2" and reply.value["max_retries"] == 4
            assert reply.value["headers"] == {} and reply.value["attempt"] == 1
            # raw tasks have no envelope: the id is the key of the Gearman unique.
            payload = b"data"
            raw_reply, job = await c.submit(raw_ctx, payload=payload, serializer="raw")
            await c.finish(raw_reply, job)
            assert raw_reply.raw == b"None|raw_ctx|data"  # no unique given: no id
            job = await c.client.submit(raw_ctx.function_name, b"x", unique=b"f:abc123")
            assert await job.result(10) == b"abc123|raw_ctx|x"

    run(main())


def test_track_started_sends_a_started_state_first(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task
    def plain() -> int:
        return 1

    async def main() -> None:
        worker = make_worker(app, track_started=True, client_id="w-started")
        async with serving(worker), caller(gearmand) as c:
            reply = await c.call(plain)
            assert reply.value == 1
            assert [(s.state, s.meta) for s in reply.states] == [
                ("STARTED", {"attempt": 1, "worker": "w-started"})
            ]

    run(main())


def test_senders_return_false_once_the_job_is_answered(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    kept: list[TaskContext] = []

    @app.task(bind=True)
    def keep(ctx: TaskContext) -> int:
        kept.append(ctx)
        return 1

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            assert (await c.call(keep)).value == 1
            ctx = kept[0]
            assert ctx.progress(1, 2) is False
            assert ctx.send_chunk("late") is False
            assert ctx.warn("late") is False
            await asyncio.sleep(0.1)
            assert worker.worker_stats.server_errors == 0

    run(main())
