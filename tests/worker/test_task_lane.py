"""A plain task run on the loop (``pool="inline"``) takes TaskWorker's one-step path
(_Served.lane in handle_now); what comes back must be what the threads pool answers: values,
a generator object returned by a plain function (streamed), a retry, a coroutine returned
by a plain function, an error, a result the serializer cannot carry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from gearq.testing import GearmandProcess
from tests.tasks.test_runner_support import caller, make_app, make_worker, run, serving


def _outcomes(gearmand: GearmandProcess, pool: str) -> list[tuple[Any, ...]]:
    app = make_app(gearmand)
    tries: list[int] = []

    @app.task
    def echo(value: Any) -> Any:
        return value

    streamed: list[int] = []

    def squares(n: int) -> Iterator[int]:
        for i in range(n):
            streamed.append(i * i)
            yield i * i

    @app.task
    def items(n: int) -> Iterator[int]:
        return squares(n)  # a generator object, from a plain function: streamed

    @app.task(retry_on=(OSError,), retry_backoff=0.01, retry_jitter=False, max_retries=2)
    def flaky() -> str:
        tries.append(1)
        if len(tries) < 2:
            raise OSError("once")
        return "second time"

    @app.task
    def later(value: int) -> Any:
        async def add() -> int:
            await asyncio.sleep(0)
            return value + 1

        return add()

    @app.task
    def broken() -> None:
        raise ValueError("no good")

    @app.task(serializer="json")
    def gives_bytes() -> Any:
        return {"data": b"\x00"}

    outcomes: list[tuple[Any, ...]] = []

    async def main() -> None:
        async with serving(make_worker(app, pool=pool)), caller(gearmand) as c:
            for _ in range(2):  # an idle worker's lone job, twice over
                reply = await c.call(echo, {"a": [1, 2]})
                outcomes.append(("echo", reply.kind, reply.value))
            reply = await c.call(items, 4)
            # (Its chunks may come before the caller listens: what the task streamed.)
            outcomes.append(("items", reply.kind, reply.value, streamed))
            reply = await c.call(flaky)
            outcomes.append(("flaky", reply.kind, reply.value, len(reply.retries)))
            reply = await c.call(later, 41)
            outcomes.append(("later", reply.kind, reply.value))
            reply = await c.call(broken)
            failure = reply.failure
            outcomes.append(("broken", reply.kind, failure.exc_type, failure.message))
            reply = await c.call(gives_bytes, serializer="json")
            failure = reply.failure
            outcomes.append(("gives_bytes", reply.kind, failure.exc_type))

    run(main())
    return outcomes


def test_the_inline_pools_one_step_path_answers_as_the_threads_pool_does(
    gearmand: GearmandProcess,
) -> None:
    inline = _outcomes(gearmand, "inline")
    assert inline == _outcomes(gearmand, "threads")
    assert inline == [
        ("echo", "ok", {"a": [1, 2]}),
        ("echo", "ok", {"a": [1, 2]}),
        ("items", "ok", None, [0, 1, 4, 9]),
        ("flaky", "ok", "second time", 1),
        ("later", "ok", 42),
        ("broken", "err", "builtins.ValueError", "no good"),
        ("gives_bytes", "err", "gearq.tasks.serializers.SerializationError"),
    ]
