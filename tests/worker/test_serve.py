"""Serving jobs from real gearmand: answers, exceptions, concurrency, fairness."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from gearq.net import ConnectionOptions
from gearq.protocol import admin as adm
from gearq.testing import GearmandProcess
from gearq.worker import Job

from .helpers import GearmandFactory, admin, eventually, make_worker, raw_client, run, serving


def test_foreground_job_sees_unique_and_gets_data_status_warning(gearmand: GearmandProcess) -> None:
    async def handler(job: Job) -> bytes:
        assert job.function == b"echo" and job.server.port == gearmand.port
        job.send_status(1, 3)
        job.send_data(b"chunk")
        job.send_warning(b"careful")
        job.send_status(3, 3)
        return job.payload[::-1] + b"|" + job.unique

    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("echo", handler)
        async with serving(worker), raw_client(gearmand.port) as client:
            out = await client.call(b"echo", b"abc", unique=b"my-unique")
        assert out.kind == "complete"
        assert out.result == b"cba|my-unique"
        assert out.data == [b"chunk"] and out.warnings == [b"careful"]
        assert out.statuses == [(1, 3), (3, 3)]

    run(main())


def test_handler_exception_reaches_the_client_with_type_message_traceback(
    gearmand: GearmandProcess,
) -> None:
    def thread_boom(job: Job) -> bytes:
        raise ValueError("bad input 42")

    async def async_boom(job: Job) -> bytes:
        await asyncio.sleep(0)
        raise KeyError("missing")

    def inline_exit(job: Job) -> bytes:
        raise SystemExit(3)  # must not take the worker down

    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("thread_boom", thread_boom)
        worker.register("async_boom", async_boom)
        worker.register("inline_exit", inline_exit, inline=True)
        worker.register("ok", lambda job: b"still here")
        async with serving(worker), raw_client(gearmand.port) as client:
            out = await client.call(b"thread_boom")
            assert out.kind == "exception"
            first, _, rest = out.result.partition(b"\n")
            assert first == b"ValueError: bad input 42"
            assert b"Traceback (most recent call last)" in rest and b"thread_boom" in rest
            out = await client.call(b"async_boom")
            assert out.kind == "exception"
            assert out.result.startswith(b"KeyError: 'missing'\n")
            out = await client.call(b"inline_exit")
            assert out.kind == "exception" and out.result.startswith(b"SystemExit: 3")
            assert (await client.call(b"ok")).result == b"still here"
        assert worker.stats.handler_errors == 3
        assert worker.stats.server_errors == 0

    run(main())


def test_exactly_one_final_answer_per_job(gearmand: GearmandProcess) -> None:
    results: dict[str, list[bool]] = {}

    def exception_then_fail(job: Job) -> None:
        results["a"] = [job.exception(b"first"), job.fail(), job.complete(b"x")]
        results["a"].append(job.send_data(b"late"))

    async def fail_then_raise(job: Job) -> bytes:
        results["b"] = [job.fail()]
        raise RuntimeError("after the answer: only logged")

    def returns_text(job: Job) -> str:
        return "not bytes"

    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("a", exception_then_fail)
        worker.register("b", fail_then_raise)
        worker.register("c", returns_text)  # type: ignore[arg-type]
        async with serving(worker), raw_client(gearmand.port) as client:
            out = await client.call(b"a")
            assert (out.kind, out.result) == ("exception", b"first")
            out = await client.call(b"b")
            assert out.kind == "fail"
            out = await client.call(b"c")
            assert out.kind == "exception"
            assert out.result.startswith(b"TypeError: handler returned str; return bytes or None")
            await asyncio.sleep(0.2)  # an ERROR for a second answer would have arrived by now
        assert results == {"a": [True, False, False, False], "b": [True]}
        assert worker.stats.server_errors == 0
        assert (worker.stats.exceptions, worker.stats.failed) == (2, 1)

    run(main())


def test_workers_list_shows_a_readable_client_id_and_each_function_once(
    gearmand: GearmandProcess,
) -> None:
    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("f1", lambda job: b"")
        worker.register("f2", lambda job: b"")
        async with serving(worker):
            rows = [r for r in admin(gearmand.port, adm.workers()) if r.functions]
        assert sorted(r.functions for r in rows) == [("f1",), ("f2",)]
        for row in rows:
            assert row.client_id is not None
            assert row.client_id.endswith(f"-{os.getpid()}-gearq"), row.client_id
            assert " " not in row.client_id

    run(main())


def test_serves_jobs_from_two_servers_at_once(gearmand_factory: GearmandFactory) -> None:
    one, two = gearmand_factory(), gearmand_factory()
    seen: list[int] = []

    async def handler(job: Job) -> bytes:
        seen.append(job.server.port)
        return b"from %d" % job.server.port

    async def main() -> None:
        worker = make_worker(one.address, two.address)
        worker.register("f", handler)
        async with serving(worker):
            assert worker.connected == 2
            async with raw_client(one.port) as c1, raw_client(two.port) as c2:
                out1, out2 = await asyncio.gather(c1.call(b"f"), c2.call(b"f"))
        assert out1.result == b"from %d" % one.port
        assert out2.result == b"from %d" % two.port
        assert sorted(seen) == sorted([one.port, two.port])

    run(main())


def test_concurrency_n_really_runs_n_at_once(gearmand: GearmandProcess) -> None:
    n = 4
    arrived = [0]
    all_in = asyncio.Event()
    thread_barrier = threading.Barrier(n, timeout=10)

    async def async_handler(job: Job) -> bytes:
        arrived[0] += 1
        if arrived[0] == n:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10)  # TimeoutError unless n run at once
        return b"a"

    def thread_handler(job: Job) -> bytes:
        thread_barrier.wait()  # BrokenBarrierError (an exception answer) unless n run at once
        return b"t"

    async def main() -> None:
        worker = make_worker(gearmand.address, concurrency=n)
        worker.register("async", async_handler)
        worker.register("thread", thread_handler)
        async with serving(worker), raw_client(gearmand.port) as client:
            for function, expected in ((b"thread", b"t"), (b"async", b"a")):
                for i in range(n):
                    await client.submit(function, unique=b"%d" % i)
                for _ in range(n):
                    packet = await client.read()
                    assert packet.type.name == "WORK_COMPLETE", packet
                    assert packet.args[1] == expected

    run(main())


def test_never_runs_more_than_concurrency_and_leaves_work_for_others(
    gearmand: GearmandProcess,
) -> None:
    def slow(job: Job) -> bytes:
        time.sleep(0.3)
        return b"slow"

    async def main() -> None:
        first = make_worker(gearmand.address, concurrency=2, client_id="first")
        second = make_worker(gearmand.address, concurrency=2, client_id="second")
        first.register("slow", slow)
        second.register("slow", slow)
        async with raw_client(gearmand.port) as client:
            for i in range(8):
                await client.submit(b"slow", unique=b"%d" % i, background=True)
            async with serving(first), serving(second):
                peak = 0
                while True:
                    rows = {r.function: r for r in admin(gearmand.port, adm.status())}
                    row = rows["slow"]
                    peak = max(peak, first.running_jobs)
                    assert first.running_jobs <= 2 and row.running <= 4
                    if row.total == 0:
                        break
                    await asyncio.sleep(0.02)
        assert peak == 2
        # Two slots each: the second worker was not starved by the first one's GRABs.
        assert first.stats.jobs_started >= 2 and second.stats.jobs_started >= 2
        assert first.stats.jobs_started + second.stats.jobs_started == 8

    run(main())


def test_a_slow_thread_handler_blocks_no_heartbeat_and_no_other_job(
    gearmand: GearmandProcess,
) -> None:
    def sleepy(job: Job) -> bytes:
        time.sleep(1.5)  # blocking the loop this long would fail the 0.5 s heartbeat
        return b"slept"

    async def main() -> None:
        options = ConnectionOptions(heartbeat_interval=0.2, heartbeat_timeout=0.5)
        worker = make_worker(gearmand.address, options=options, concurrency=2)
        worker.register("sleepy", sleepy)
        worker.register("quick", lambda job: b"quick")
        async with serving(worker), raw_client(gearmand.port) as c1:
            handle = await c1.submit(b"sleepy")
            await eventually(lambda: worker.running_jobs == 1)
            async with raw_client(gearmand.port) as c2:
                started = time.monotonic()
                for _ in range(5):
                    assert (await c2.call(b"quick")).result == b"quick"
                assert time.monotonic() - started < 1.0
            assert (await c1.outcome(handle)).result == b"slept"
        assert worker.stats.connects == 2  # no connection was dropped and made again

    run(main())


def test_fairness_two_busy_functions_are_both_served(gearmand: GearmandProcess) -> None:
    """gearmand hands a connection's functions out last-registered-first. One connection
    per function (the default) serves both; a shared connection (group=) starves one."""

    async def drain(group: str | None) -> list[bytes]:
        order: list[bytes] = []

        def handler(job: Job) -> bytes:
            order.append(job.function)
            return b""

        prefix = (group or "own").encode() + b"-"
        async with raw_client(gearmand.port) as client:
            for function in (b"fa", b"fb"):
                await client.submit_many_bg(function, [b""] * 60, prefix=prefix)
        worker = make_worker(gearmand.address, concurrency=1)
        worker.register("fa", handler, group=group, inline=True)
        worker.register("fb", handler, group=group, inline=True)
        async with serving(worker):
            await eventually(lambda: len(order) == 120)
        return order[:40]

    async def main() -> None:
        fair = await drain(None)
        assert fair.count(b"fa") >= 12 and fair.count(b"fb") >= 12, fair
        shared = await drain("shared")
        assert shared.count(b"fa") == 40, shared  # the control: one function starves the other

    run(main())


def test_a_job_can_ask_its_server_how_often_it_was_handed_out(gearmand: GearmandProcess) -> None:
    def from_thread(job: Job) -> bytes:
        return b"attempt %d" % (job.fetch_attempt_blocking() or 0)

    def on_the_loop(job: Job) -> bytes:
        job.fetch_attempt_blocking()  # RuntimeError: it would deadlock the loop
        return b""

    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("from_thread", from_thread)
        worker.register("on_the_loop", on_the_loop, inline=True)
        async with serving(worker), raw_client(gearmand.port) as client:
            assert (await client.call(b"from_thread")).result == b"attempt 1"
            out = await client.call(b"on_the_loop")
            assert out.kind == "exception" and out.result.startswith(b"RuntimeError: on the")

    run(main())
