"""Correct use of the task API: must type-check under ``mypy --strict`` (tests/typing)."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from typing import Any

from typing_extensions import reveal_type

from gearq import App, AsyncResult, Task, TaskContext, chain, group
from gearq.tasks import AsyncTask, BackgroundResult, GroupResult, PartialSignature, Signature

app = App("typing", env=False)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="typing.label", queue="q", priority="high", max_retries=2, retry_on=(KeyError,))
def label(value: int, *, prefix: str = "#") -> str:
    return f"{prefix}{value}"


@app.task(bind=True)
def bound(ctx: TaskContext, n: int) -> float:
    ctx.progress(1, n)
    return n / 2


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


@app.task
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def blocking() -> None:
    result = add.delay(1, 2)
    reveal_type(result)  # R: gearq.tasks.result.AsyncResult[int]
    value = result.get(timeout=5)
    reveal_type(value)  # R: int
    reveal_type(result.get(propagate=False))  # R: int | BaseException
    reveal_type(label.delay(3, prefix="n=").get())  # R: str
    reveal_type(bound.delay(4).get())  # R: float
    reveal_type(fetch.delay("u").get())  # R: bytes
    reveal_type(numbers.delay(3).get())  # R: typing.Iterator[int]
    reveal_type(add(1, 2))  # R: int
    reveal_type(bound(3))  # R: float
    reveal_type(add.send(1, 2))  # R: gearq.tasks.result.BackgroundResult
    reveal_type(add.apply_async((1, 2), background=True))  # R: gearq.tasks.result.BackgroundResult
    reveal_type(add.apply_async((1, 2), background=False))  # R: gearq.tasks.result.AsyncResult[int]
    reveal_type(add.s(1, 2))  # R: gearq.tasks.canvas.Signature[int]
    reveal_type(label.s())  # R: gearq.tasks.canvas.PartialSignature[str]
    reveal_type(group(add.s(1, 2), add.s(3, 4)).delay())  # R: gearq.tasks.canvas.GroupResult[int]
    reveal_type(group(add.s(i, i) for i in range(3)).delay().get())  # R: list[int]
    reveal_type(chain(add.s(1, 2), label.s()).delay().get())  # R: str
    reveal_type((add.s(1, 2) | label.s()).delay().get())  # R: str
    for chunk in numbers.delay(2).stream():
        print(chunk)
    sig: Signature[int] = add.s(1, 2)
    partial: PartialSignature[int] = sig
    grouped: GroupResult[int] = group(sig).delay()
    task: Task[[int, int], int] = add
    coro_task: AsyncTask[[str], bytes] = fetch
    handle: BackgroundResult = add.send(1, 2)
    print(partial, grouped, task, coro_task, handle)


async def concurrent() -> None:
    result = await add.adelay(1, 2)
    reveal_type(result)  # R: gearq.tasks.result.AsyncResult[int]
    reveal_type(await result)  # R: int
    reveal_type(await fetch.adelay("x"))  # R: gearq.tasks.result.AsyncResult[bytes]
    coro: Coroutine[Any, Any, bytes] = fetch("x")  # calling an async task runs it here
    coro.close()
    reveal_type(await group(add.s(1, 1)).adelay())  # R: gearq.tasks.canvas.GroupResult[int]
    async for item in await numbers.adelay(3):
        print(item)
    typed: AsyncResult[int] = result
    print(typed)
