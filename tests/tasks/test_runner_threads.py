"""The task thread pool (``_Threads``) under load: no call stranded with every thread
asleep, shut-down threads end, and the lone-job hand-off answers once (also when it gives
up waiting)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

from gearq.client import AsyncClient
from gearq.tasks import encode_call
from gearq.tasks.threads import HANDOFF_WAIT
from gearq.tasks.threads import TaskThreads as _Threads
from gearq.testing import GearmandProcess

from .test_runner_support import caller, eventually, make_app, make_worker, run, serving


async def _quiet(threads: _Threads, count: int, timeout: float = 5.0) -> None:
    """Until ``count`` threads are listed idle."""
    deadline = time.monotonic() + timeout
    while len(threads._idle) < count:
        assert time.monotonic() < deadline, f"{len(threads._idle)} of {count} threads idle"
        await asyncio.sleep(0.005)


def test_two_thousand_calls_from_two_producers_all_come_back() -> None:
    """Bursts of quick calls (threads keep going idle and being woken) mixed with lone
    hand-offs, on a pool of 4: every value comes back, once, to its own caller."""

    def work(n: int) -> int:
        if n % 7 == 0:
            time.sleep(0)  # let go of the GIL mid-call now and then
        return n * 2

    async def producer(threads: _Threads, base: int, seed: int) -> list[int]:
        rng = random.Random(seed)
        got: list[int] = []
        n = 0
        while n < 1000:
            if rng.random() < 0.1:
                handoff, fut = threads.call_waiting_now(work, base + n)
                got.append(handoff.take() if handoff is not None else await fut)  # type: ignore[misc]
                n += 1
                continue
            burst = [
                threads.submit(work, base + n + i) for i in range(min(rng.randint(1, 9), 1000 - n))
            ]
            n += len(burst)
            got.extend(await asyncio.wait_for(asyncio.gather(*burst), 10))
            if rng.random() < 0.3:
                await asyncio.sleep(0.0005 * rng.random())  # threads go idle meanwhile
        return got

    async def main() -> tuple[list[int], list[int]]:
        threads = _Threads(4, asyncio.get_running_loop())
        try:
            a, b = await asyncio.gather(producer(threads, 0, 1), producer(threads, 10_000, 2))
            assert threads.threads <= 4
            await _quiet(threads, threads.threads)
            return a, b
        finally:
            threads.shutdown()

    a, b = run(main(), timeout=50)
    assert a == [2 * n for n in range(1000)]
    assert b == [2 * (10_000 + n) for n in range(1000)]


def test_shutdown_ends_idle_threads_and_runs_what_was_queued() -> None:
    async def main() -> tuple[list[threading.Thread], list[Any]]:
        threads = _Threads(4, asyncio.get_running_loop())
        barrier = threading.Barrier(4)
        # Four calls that wait for each other: four threads.
        await asyncio.wait_for(
            asyncio.gather(*(threads.submit(barrier.wait, 5) for _ in range(4))), 10
        )
        await _quiet(threads, 4)
        started = list(threads._threads)
        # Two threads busy, two idle, at the shutdown.
        gate = threading.Event()
        busy = [threads.submit(gate.wait, 5) for _ in range(2)]
        assert len(threads._idle) == 2
        threads.shutdown()
        await eventually(lambda: sum(thread.is_alive() for thread in started) <= 2, 5)
        assert sum(thread.is_alive() for thread in started) == 2  # the busy ones, still
        gate.set()
        values = await asyncio.wait_for(asyncio.gather(*busy), 10)
        # One thread, busy; calls queued behind it run before it ends.
        one = _Threads(1, asyncio.get_running_loop())
        gate.clear()
        queued = [one.submit(gate.wait, 5)] + [one.submit(lambda i=i: i) for i in range(6)]
        one.shutdown()
        gate.set()
        values += await asyncio.wait_for(asyncio.gather(*queued), 10)
        return started + one._threads, values

    started, values = run(main())
    assert len(started) == 5
    assert values == [True, True, True, 0, 1, 2, 3, 4, 5]
    for thread in started:
        thread.join(5)
        assert not thread.is_alive(), f"{thread.name} did not end"


# --- through a real gearmand ----------------------------------------------------------------------


def test_jobs_from_two_client_threads_on_four_task_threads_all_answered(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)
    ran: list[str] = []

    @app.task
    def double(n: int) -> int:
        ran.append(threading.current_thread().name)
        if n % 5 == 0:
            time.sleep(0.0005)
        return n * 2

    per_client = 300

    async def client(offset: int) -> list[int]:
        c = AsyncClient([gearmand.address], recover_time=0.1)
        try:
            got: list[bytes] = []
            for start in range(0, per_client, 30):
                jobs = [
                    await c.submit(double.function_name, encode_call("double", [offset + n]))
                    for n in range(start, start + 30)
                ]
                for job in jobs:
                    got.append(await job.result(10))
            return [_value(raw) for raw in got]
        finally:
            await c.close()

    def client_thread(offset: int) -> list[int]:
        return asyncio.run(client(offset))

    async def main() -> None:
        async with serving(make_worker(app, concurrency=4)) as worker:
            # Two client threads, each with a loop and a connection of its own.
            outs = await asyncio.gather(
                asyncio.to_thread(client_thread, 0), asyncio.to_thread(client_thread, 100_000)
            )
            assert outs[0] == [2 * n for n in range(per_client)]
            assert outs[1] == [2 * (100_000 + n) for n in range(per_client)]
            assert worker.stats.succeeded == 2 * per_client
            assert worker.worker_stats.completed == 2 * per_client

    run(main(), timeout=50)
    assert len(ran) == 2 * per_client
    assert {name for name in ran} <= {f"gearq-task-{i}" for i in range(4)}


def _value(raw: bytes) -> int:
    from gearq.tasks import decode_reply

    return decode_reply(raw).value  # type: ignore[union-attr, no-any-return]


def test_a_lone_task_longer_than_the_hand_off_wait_answers_once(gearmand: GearmandProcess) -> None:
    app = make_app(gearmand)

    @app.task
    def slow(tag: str) -> str:
        time.sleep(HANDOFF_WAIT * 20)
        return tag

    @app.task
    def quick(tag: str) -> str:
        return tag

    async def main() -> None:
        async with serving(make_worker(app)) as worker, caller(gearmand) as c:
            for i in range(3):  # one at a time: each is a lone job
                assert (await c.call(slow, f"s{i}")).value == f"s{i}"
                assert (await c.call(quick, f"q{i}")).value == f"q{i}"
            assert worker.stats.succeeded == 6 and worker.stats.failed == 0
            assert worker.worker_stats.completed == 6  # one WORK_COMPLETE each

    run(main())
