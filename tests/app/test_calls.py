"""Calling tasks through a real gearmand and a real TaskWorker: values, options, progress,
streams, warnings and states, blocking and asyncio."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from gearq.client import AsyncAdminClient, Priority
from gearq.tasks import App, AsyncResult, SerializationError, TaskState
from gearq.tasks.context import TaskContext

from .helpers import StartWorker, run, wait_for

pytestmark = pytest.mark.timeout(60)


def test_delay_returns_typed_result(app: App, serve: StartWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    serve()
    result = add.delay(2, 3)
    assert isinstance(result, AsyncResult)
    assert len(result.id) == 32 and int(result.id, 16) >= 0
    assert result.get(timeout=10) == 5
    assert result.state == TaskState.SUCCESS == "SUCCESS"
    assert result.ready() and result.successful() and not result.failed()
    assert result.result == 5 and result.exception is None
    assert result.handle is not None and result.server is not None
    # calling the task runs it here
    assert add(4, 5) == 9


def test_keyword_arguments_and_msgpack_types_round_trip(app: App, serve: StartWorker) -> None:
    @app.task
    def echo(*args: object, **kwargs: object) -> list[object]:
        return [args, kwargs]

    serve()
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    value = {
        "when": when,
        "day": dt.date(2024, 1, 2),
        "blob": b"\x00\xff",
        "tuple": (1, 2),
        "set": {3, 4},
        "dec": decimal.Decimal("1.25"),
        "uuid": uuid.UUID(int=7),
        "big": 2**70,
    }
    args, kwargs = echo.delay(1, "two", k=value).get(timeout=10)
    assert list(args) == [1, "two"]
    assert kwargs == {"k": value}


def test_unsupported_argument_fails_at_delay_naming_it(app: App, serve: StartWorker) -> None:
    @app.task
    def store(name: str, payload: object) -> None:
        return None

    class Opaque:
        pass

    with pytest.raises(SerializationError) as info:
        store.delay("x", Opaque())
    assert "argument 'payload'" in str(info.value)
    assert info.value.argument == "argument 'payload'"
    assert app.pending() == 0  # nothing was submitted


def test_adelay_and_await(app: App, serve: StartWorker) -> None:
    @app.task
    async def mul(x: int, y: int) -> int:
        return x * y

    serve()

    async def main() -> list[int]:
        first = await mul.adelay(6, 7)
        assert await first == 42
        assert await first.aget(timeout=5) == 42
        results = [await mul.adelay(i, 2) for i in range(50)]
        values = [await r for r in results]
        await app.aclose()
        return values

    assert run(main()) == [2 * i for i in range(50)]


def test_blocking_result_awaited_from_asyncio_and_async_result_from_thread(
    app: App, serve: StartWorker
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        time.sleep(0.05)
        return x + y

    serve()
    blocking = add.delay(1, 1)

    async def main() -> tuple[int, AsyncResult[int]]:
        value = await blocking  # made on the app's loop thread, awaited on this loop
        other = await add.adelay(2, 2)
        got: list[int] = []
        thread = threading.Thread(target=lambda: got.append(other.get(timeout=10)))
        thread.start()
        await other
        await asyncio_sleep(0.01)
        thread.join(10)
        assert got == [4]
        return value, other

    value, other = run(main())
    assert value == 2
    assert other.get() == 4


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_get_inside_owning_loop_refuses_instead_of_deadlocking(
    app: App, serve: StartWorker
) -> None:
    @app.task
    def slow() -> int:
        time.sleep(0.3)
        return 1

    serve()

    async def main() -> None:
        result = await slow.adelay()
        with pytest.raises(RuntimeError, match="would block the event loop"):
            result.get(timeout=1)
        assert await result == 1

    run(main())


def test_progress_chunks_and_state_seen_while_the_task_runs(app: App, serve: StartWorker) -> None:
    go_on = threading.Event()

    @app.task(bind=True)
    def crawl(ctx: TaskContext, pages: int) -> int:
        ctx.progress(1, pages)
        ctx.update_state("FETCHING", {"page": 1})
        ctx.send_chunk({"page": 1})
        ctx.warn("slow site")
        assert go_on.wait(10), "the caller never saw the first chunk"
        for page in range(2, pages + 1):
            ctx.progress(page, pages)
            ctx.send_chunk({"page": page})
        return pages

    serve()
    result = crawl.delay(3)
    wait_for(lambda: result.progress == (1, 3))
    wait_for(lambda: result.state == "FETCHING")
    assert result.meta == {"page": 1}
    assert not result.ready()
    stream = result.stream(timeout=10)
    assert next(stream) == {"page": 1}
    wait_for(lambda: result.warnings == ["slow site"])
    go_on.set()  # only now may the task finish
    assert list(stream) == [{"page": 2}, {"page": 3}]
    assert result.get(timeout=10) == 3
    assert result.progress == (3, 3)
    assert result.chunks == [{"page": 1}, {"page": 2}, {"page": 3}]
    assert result.state == TaskState.SUCCESS


def test_async_for_streams_chunks_as_they_arrive(app: App, serve: StartWorker) -> None:
    gate = threading.Event()

    @app.task
    def numbers(n: int) -> Iterator[int]:
        yield 0
        gate.wait(10)
        yield from range(1, n)

    serve()

    async def main() -> list[int]:
        result = await numbers.adelay(4)
        seen: list[int] = []
        async for item in result:
            seen.append(item)
            if item == 0:
                assert not result.ready()
                gate.set()
        assert list(await result) == [0, 1, 2, 3]  # a generator task's value: its chunks
        return seen

    assert run(main()) == [0, 1, 2, 3]


def test_generator_task_blocking_stream_and_get(app: App, serve: StartWorker) -> None:
    @app.task
    def squares(n: int) -> Iterator[int]:
        for i in range(n):
            yield i * i

    serve()
    result = squares.delay(5)
    assert list(result.stream(timeout=10)) == [0, 1, 4, 9, 16]
    assert list(result.get(timeout=10)) == [0, 1, 4, 9, 16]
    assert list(result.get()) == [0, 1, 4, 9, 16]  # a fresh iterator each time


def test_add_done_callback_runs_once_done(app: App, serve: StartWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    serve()
    done = threading.Event()
    seen: list[object] = []
    result = add.delay(1, 2)

    def callback(r: AsyncResult[int]) -> None:
        seen.append(r.result)
        done.set()

    result.add_done_callback(callback)
    assert done.wait(10)
    assert seen == [3]
    result.add_done_callback(lambda r: seen.append("again"))  # already done: at once
    assert seen == [3, "again"]


def test_named_task_queue_routing_and_serializers(app: App, serve: StartWorker) -> None:
    @app.task(name="math.add", queue="fast", serializer="json")
    def add(x: int, y: list[int]) -> list[int]:
        return [x, *y]

    @app.task(name="raw.upper", serializer="raw")
    def upper(data: bytes) -> bytes:
        return data.upper()

    assert add.function_name == b"fast:math.add"
    assert add.delayed_function_name == b"fast:math.add@eta"
    serve(queues=["fast", None])
    assert add.delay(1, [2, 3]).get(timeout=10) == [1, 2, 3]
    with pytest.raises(SerializationError):
        add.delay(1, (2, 3))  # json would turn the tuple into a list: refused
    assert upper.delay(b"abc").get(timeout=10) == b"ABC"


def test_priority_orders_queued_jobs(app: App, serve: StartWorker) -> None:
    order: list[str] = []

    @app.task(priority="low")
    def record(tag: str) -> str:
        order.append(tag)
        return tag

    low = [record.delay(f"low{i}") for i in range(3)]
    high = [record.apply_async((f"high{i}",), priority=Priority.HIGH) for i in range(3)]
    normal = record.apply_async(("normal",), priority="normal")
    wait_for(lambda: all(r.state == TaskState.QUEUED for r in [*low, *high]))
    serve(concurrency=1)
    for r in [*low, *high, normal]:
        r.get(timeout=10)
    assert order == ["high0", "high1", "high2", "normal", "low0", "low1", "low2"]


def test_many_threads_calling_at_once(app: App, serve: StartWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    serve(concurrency=8)
    totals: list[int] = []

    def caller(base: int) -> None:
        results = [add.delay(base, i) for i in range(100)]
        totals.append(sum(r.get(timeout=20) for r in results))

    threads = [threading.Thread(target=caller, args=(b * 1000,)) for b in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(totals) == sorted(b * 1000 * 100 + 4950 for b in range(4))


def test_unknown_task_just_waits_queued(app: App, gearmand: object) -> None:
    @app.task(name="nobody.serves.this")
    def orphan() -> None:
        return None

    result = orphan.delay()
    wait_for(lambda: result.state == TaskState.QUEUED)
    from gearq.tasks import TaskTimeout

    with pytest.raises(TaskTimeout) as info:
        result.get(timeout=0.3)
    assert info.value.abandoned is False
    assert result.state == TaskState.QUEUED

    async def queued() -> int:
        admin = AsyncAdminClient(app.servers)
        try:
            status = (await admin.status()).values_ok()
        finally:
            await admin.close()
        rows = [s for rows in status.values() for s in rows if s.function == "nobody.serves.this"]
        return rows[0].total if rows else 0

    assert run(queued()) == 1


def test_blocking_and_asyncio_callers_at_once(app: App, serve: StartWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    serve(concurrency=8)
    blocking_total: list[int] = []

    def blocking_caller() -> None:
        results = [add.delay(i, 1) for i in range(300)]
        blocking_total.append(sum(r.get(timeout=30) for r in results))

    async def main() -> int:
        import asyncio

        thread = threading.Thread(target=blocking_caller)
        thread.start()
        results = await asyncio.gather(*(add.adelay(i, 2) for i in range(300)))
        values = await asyncio.gather(*(r.aget(timeout=30) for r in results))
        await asyncio.to_thread(thread.join, 30)
        await app.aclose()
        return sum(values)

    assert run(main()) == sum(range(300)) + 600
    assert blocking_total == [sum(range(300)) + 300]
