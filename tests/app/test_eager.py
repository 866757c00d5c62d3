"""Eager mode: tasks run in-process, but through the envelope, with the same errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gearq.tasks import (
    App,
    BackgroundResult,
    RemoteError,
    ResultNotKept,
    SerializationError,
    TaskState,
    chain,
    group,
)
from gearq.tasks.context import TaskContext


@pytest.fixture
def app() -> App:
    return App("eager", eager=True, env=False)


def test_eager_round_trips_arguments_and_result(app: App) -> None:
    seen: list[object] = []

    @app.task(serializer="json")
    def keep(items: list[int], *, label: str) -> dict[str, object]:
        seen.append(items)
        return {"n": len(items), "label": label}

    result = keep.delay([1, 2], label="x")
    assert result.ready() and result.state == TaskState.SUCCESS
    assert result.get() == {"n": 2, "label": "x"}
    with pytest.raises(SerializationError, match="argument 'items'"):
        keep.delay((1, 2), label="x")  # json cannot carry a tuple: refused, as remotely
    assert seen == [[1, 2]]


def test_eager_unsupported_argument_and_result(app: App) -> None:
    @app.task
    def give(x: object) -> object:
        return x

    with pytest.raises(SerializationError, match="argument 'x'"):
        give.delay(object())

    @app.task
    def bad_result() -> object:
        return object()

    with pytest.raises(SerializationError, match="return value"):
        bad_result.delay().get()


def test_eager_errors_are_rebuilt_like_remote_ones(app: App) -> None:
    class Custom(Exception):
        pass

    @app.task
    def fail(kind: str) -> None:
        if kind == "builtin":
            raise KeyError("k")
        raise Custom("custom")

    with pytest.raises(KeyError):
        fail.delay("builtin").get()
    result = fail.delay("custom")
    with pytest.raises(RemoteError) as info:
        result.get()
    assert type(info.value).__name__ == "Custom"
    assert result.failed() and "Custom" in (result.traceback or "")


def test_eager_propagates_option() -> None:
    app = App("eager", eager=True, eager_propagates=True, env=False)

    @app.task
    def fail() -> None:
        raise ValueError("now")

    with pytest.raises(ValueError, match="now"):
        fail.delay()


def test_eager_context_progress_chunks_warnings_and_retries(app: App) -> None:
    @app.task(bind=True, retry_on=OSError, max_retries=2)
    def work(ctx: TaskContext, n: int) -> int:
        if ctx.attempt < 3:
            raise OSError(f"attempt {ctx.attempt}")
        for i in range(n):
            ctx.progress(i + 1, n)
            ctx.send_chunk(i)
        ctx.warn("careful")
        return ctx.attempt

    result = work.delay(3)
    assert result.get() == 3
    assert result.attempts == 3
    assert result.progress == (3, 3)
    assert list(result.stream()) == [0, 1, 2]
    assert result.warnings == ["careful"]


def test_eager_generator_and_async_tasks(app: App) -> None:
    @app.task
    def gen(n: int) -> Iterator[int]:
        yield from range(n)

    @app.task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert list(gen.delay(3).get()) == [0, 1, 2]
    assert double.delay(4).get() == 8

    async def main() -> int:
        result = await double.adelay(5)
        inner = double.delay(6).get()  # blocking call inside a loop still works
        return await result + inner

    assert asyncio.run(main()) == 22


def test_eager_background_group_chain(app: App) -> None:
    ran: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        ran.append(x + y)
        return x + y

    handle = add.send(1, 2)
    assert isinstance(handle, BackgroundResult)
    assert ran == [3]
    with pytest.raises(ResultNotKept):
        handle.get()
    assert group(add.s(1, 1), add.s(2, 2)).delay().get() == [2, 4]
    assert chain(add.s(1, 2), add.s(10)).delay().get() == 13


def test_eager_switched_on_at_runtime() -> None:
    app = App("switch", env=False, servers="127.0.0.1:1")

    @app.task
    def one() -> int:
        return 1

    app.conf.eager = True
    assert one.delay().get() == 1


def test_local_call_of_bound_task(app: App) -> None:
    @app.task(bind=True)
    def who(ctx: TaskContext, x: int) -> str:
        ctx.progress(1, 1)  # goes nowhere
        return f"{ctx.name}:{x}"

    assert who(5) == f"{who.name}:5"
