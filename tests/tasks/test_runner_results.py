"""TaskWorker through a real gearmand: results, failures, refusals, serializers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import msgpack
import pytest

from gearq.tasks import FailureKind, encode_call
from gearq.testing import GearmandProcess

from .test_runner_support import caller, eventually, make_app, make_worker, run, serving


class Boom(Exception):
    """A task's own exception type."""


def test_sync_and_async_tasks_answer_with_result_envelopes(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    threads: list[str] = []

    @app.task
    def add(x: int, y: int) -> int:
        threads.append(threading.current_thread().name)
        return x + y

    @app.task
    async def pair(a: Any, *, b: Any = None) -> Any:
        await asyncio.sleep(0)
        return (a, b, {1, 2})

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(add, 2, 3)
            assert (reply.packet, reply.kind, reply.value) == ("complete", "ok", 5)
            assert msgpack.unpackb(reply.raw) == {"v": 1, "s": "ok", "r": 5}
            reply = await c.call(pair, b"x", kwargs={"b": [1.5, None]})
            assert reply.value == (b"x", [1.5, None], {1, 2})  # msgpack keeps the types
            assert reply.events == []  # nothing but the answer by default
            assert worker.stats.succeeded == 2 and worker.stats.failed == 0
        assert threads and threads[0].startswith("gearq-task-")  # plain tasks run in threads

    run(main())


def test_failure_envelope_has_type_message_traceback_and_attempt(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)

    def deep(n: int) -> None:
        raise Boom(f"bad n={n}")

    @app.task
    def explode(n: int) -> None:
        deep(n)

    @app.task
    async def aexplode() -> None:
        await asyncio.sleep(0)
        raise KeyError("missing")

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(explode, 7)
            assert reply.packet == "exception"  # WORK_EXCEPTION, not WORK_COMPLETE
            failure = reply.failure
            assert failure.kind is FailureKind.ERROR
            assert failure.exc_type == f"{__name__}.Boom"
            assert failure.message == "bad n=7"
            assert failure.args == ("bad n=7",)
            assert failure.attempt == 1
            assert "Traceback (most recent call last)" in failure.traceback
            assert "in deep" in failure.traceback and "in explode" in failure.traceback
            reply = await c.call(aexplode)
            assert reply.failure.exc_type == "builtins.KeyError"
            assert reply.failure.message == "'missing'"
            assert worker.stats.failed == 2

    run(main())


def test_unknown_and_misrouted_tasks_are_refused_with_a_clear_message(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)
    ran: list[str] = []

    @app.task
    def first() -> str:
        ran.append("first")
        return "first"

    @app.task
    def second() -> str:
        ran.append("second")
        return "second"

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(first, task_name="no.such.task")
            failure = reply.failure
            assert failure.exc_type == "gearq.tasks.context.UnknownTask"
            assert "unknown task 'no.such.task'" in failure.message
            assert "'first'" in failure.message
            reply = await c.call(first, task_name="second")  # known, but not on this function
            assert "names task 'second'" in reply.failure.message
            assert "serves task 'first'" in reply.failure.message
            # Not an envelope at all: refused, answered in JSON (nothing else is known).
            reply = await c.call(first, payload=b"\x00garbage")
            assert reply.raw.startswith(b"{")
            assert reply.failure.exc_type == "gearq.tasks.envelope.EnvelopeError"
            # A msgpack map of the wrong shape: refused in msgpack.
            reply = await c.call(first, payload=msgpack.packb({"v": 1, "a": "not a list"}))
            assert reply.raw[:1] not in (b"{", b"")
            assert "'a' must be an array" in reply.failure.message
            # An envelope without a task name is taken as the function's task.
            reply = await c.call(first, payload=msgpack.packb({"v": 1}))
            assert reply.value == "first"
            assert ran == ["first"]
            assert worker.stats.rejected == 4

    run(main())


def test_json_and_raw_serializers(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task(serializer="json")
    def greet(name: str, punct: str = "!") -> dict[str, Any]:
        return {"hello": name + punct}

    @app.task(serializer="raw")
    def upper(data: bytes) -> bytes:
        if data == b"fail":
            raise ValueError("refused")
        return data.upper()

    @app.task(serializer="raw")
    def not_bytes(data: bytes) -> str:
        return data.decode()

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(greet, "bob", kwargs={"punct": "?"}, serializer="json")
            assert json.loads(reply.raw) == {"v": 1, "s": "ok", "r": {"hello": "bob?"}}
            # A msgpack call of a json task is answered in msgpack (the call's serializer).
            reply = await c.call(greet, "al")
            assert msgpack.unpackb(reply.raw)["r"] == {"hello": "al!"}
            # A hand-written JSON envelope, as from PHP or the gearman CLI.
            reply = await c.call(greet, payload=b' {"v":1,"t":"greet","a":["x"],"k":[]}')
            assert json.loads(reply.raw)["r"] == {"hello": "x!"}
            reply = await c.call(upper, b"abc", serializer="raw")
            assert (reply.raw, reply.value) == (b"ABC", b"ABC")
            reply = await c.call(upper, b"fail", serializer="raw")
            assert reply.raw.startswith(b"{")  # raw failures travel as JSON envelopes
            assert reply.failure.exc_type == "builtins.ValueError"
            reply = await c.call(not_bytes, b"abc", serializer="raw")
            assert reply.failure.exc_type == "gearq.tasks.serializers.SerializationError"
            assert "must produce bytes" in reply.failure.message
            assert worker.stats.succeeded == 4

    run(main())


def test_unserializable_result_is_a_failure_naming_the_problem(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task(serializer="json")
    def gives_bytes() -> Any:
        return {"data": b"\x00"}

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            reply = await c.call(gives_bytes, serializer="json")
            assert reply.failure.exc_type == "gearq.tasks.serializers.SerializationError"
            assert "return value" in reply.failure.message
            assert "bytes" in reply.failure.message

    run(main())


def test_expired_call_is_answered_without_running(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    ran: list[int] = []

    @app.task
    def work(n: int) -> int:
        ran.append(n)
        return n

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            reply = await c.call(work, 1, expires=time.time() - 1, task_id="t-exp")
            failure = reply.failure
            assert failure.kind is FailureKind.EXPIRED
            assert failure.exc_type == "gearq.tasks.remote_errors.TaskExpired"
            assert "t-exp" in failure.message and "did not run" in failure.message
            reply = await c.call(work, 2, expires=time.time() + 60)
            assert reply.value == 2
            assert ran == [2] and worker.stats.expired == 1

    run(main())


def test_two_tasks_on_one_worker_are_both_served_while_one_is_busy(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)
    gate = asyncio.Event()

    @app.task
    async def slow(n: int) -> int:
        await gate.wait()
        return n

    @app.task
    def quick(n: int) -> int:
        return n * 10

    async def main() -> None:
        async with serving(make_worker(app, concurrency=8)) as worker, caller(gearmand) as c:
            assert set(worker.functions) == {
                b"slow",
                b"slow@eta",
                b"quick",
                b"quick@eta",
            }  # two functions per task
            slow_calls = [await c.submit(slow, (i,)) for i in range(4)]
            await eventually(lambda: worker.running == 4)
            # slow's jobs are all running; quick is still served at once.
            replies = await asyncio.gather(*(c.call(quick, i) for i in range(20)))
            assert [r.value for r in replies] == [i * 10 for i in range(20)]
            assert not any(job.done for _, job in slow_calls)
            gate.set()
            done = [await c.finish(r, j) for r, j in slow_calls]
            assert [r.value for r in done] == [0, 1, 2, 3]

    run(main())


def test_calls_in_flight_never_exceed_concurrency(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    active = [0]
    peak = [0]
    lock = threading.Lock()

    @app.task
    def hold(n: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return n

    async def main() -> None:
        async with serving(make_worker(app, concurrency=3)), caller(gearmand) as c:
            replies = await asyncio.gather(*(c.call(hold, i) for i in range(15)))
            assert sorted(r.value for r in replies) == list(range(15))
        assert peak[0] == 3

    run(main())


@pytest.mark.parametrize("pool", ["threads", "inline"])
def test_pools_run_plain_tasks_where_asked(gearmand: GearmandProcess, pool: str) -> None:
    app = make_app(gearmand)
    where: list[str] = []

    @app.task
    def here() -> str:
        where.append(threading.current_thread().name)
        return "ok"

    async def main() -> None:
        loop_thread = threading.current_thread().name
        async with serving(make_worker(app, pool=pool)), caller(gearmand) as c:
            assert (await c.call(here)).value == "ok"
        assert (where[0] == loop_thread) is (pool == "inline")

    run(main())


def test_call_envelope_attempt_and_max_retries_are_honoured(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)
    seen: list[int] = []

    @app.task(bind=True, retry_on=(OSError,), retry_backoff=0.01, retry_jitter=False)
    def flaky(ctx: Any) -> int:
        seen.append(ctx.attempt)
        if ctx.attempt < 4:
            raise OSError("again")
        return ctx.attempt

    async def main() -> None:
        async with serving(make_worker(app)), caller(gearmand) as c:
            # max_retries 0 on the task, but the call allows 5; it starts at attempt 2.
            payload = encode_call("flaky", (), attempt=2, max_retries=5)
            reply = await c.call(flaky, payload=payload)
            assert reply.value == 4
            assert seen == [2, 3, 4]
            reply = await c.call(flaky)  # the task's own limit: no retry
            assert reply.failure.attempt == 1

    run(main())
