"""Time limits: answered on the job's own connection with a typed exception, never requeued."""

from __future__ import annotations

import asyncio
import threading
import time

from gearq.protocol import admin as adm
from gearq.testing import GearmandProcess
from gearq.worker import TIME_LIMIT_EXCEEDED, Job

from .helpers import GearmandFactory, admin, eventually, make_worker, raw_client, run, serving


def _assert_time_limit(result: bytes, limit: str) -> None:
    first = result.split(b"\n", 1)[0].decode()
    kind, _, message = first.partition(": ")
    assert kind == TIME_LIMIT_EXCEEDED == "gearq.TimeLimitExceeded"
    assert f"time limit of {limit} s" in message


def test_async_handler_over_its_limit_is_cancelled_and_answered(gearmand: GearmandProcess) -> None:
    cancelled = asyncio.Event()

    async def slow(job: Job) -> bytes:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b"too late"

    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("slow", slow, time_limit=0.3)
        worker.register("quick", lambda job: b"quick", time_limit=5)
        async with serving(worker), raw_client(gearmand.port) as client:
            started = time.monotonic()
            out = await client.call(b"slow")
            elapsed = time.monotonic() - started
            assert out.kind == "exception"
            _assert_time_limit(out.result, "0.3")
            assert 0.25 < elapsed < 2.0
            await asyncio.wait_for(cancelled.wait(), 2)
            assert admin(gearmand.port, adm.show_jobs()) == ()  # gone, not requeued
            assert (await client.call(b"quick")).result == b"quick"
        assert worker.stats.time_limited == 1
        assert worker.stats.server_errors == 0 and worker.stats.connects == 2

    run(main())


def test_thread_handler_over_its_limit_is_answered_and_its_result_dropped(
    gearmand: GearmandProcess,
) -> None:
    release = threading.Event()
    returned = threading.Event()

    def stuck(job: Job) -> bytes:
        release.wait(10)
        returned.set()
        return b"too late"

    async def main() -> None:
        worker = make_worker(gearmand.address, concurrency=2)
        worker.register("stuck", stuck, time_limit=0.3)
        async with serving(worker), raw_client(gearmand.port) as client:
            out = await client.call(b"stuck")
            _assert_time_limit(out.result, "0.3")
            assert worker.running_jobs == 1  # the thread still runs and holds its slot
            release.set()
            await asyncio.to_thread(returned.wait, 5)
            await eventually(lambda: worker.running_jobs == 0)
            await asyncio.sleep(0.2)  # an answer sent now would draw an ERROR from gearmand
            assert admin(gearmand.port, adm.show_jobs()) == ()
        assert worker.stats.server_errors == 0
        assert (worker.stats.completed, worker.stats.exceptions) == (0, 1)

    run(main())


def test_inline_handler_over_its_limit_is_answered_with_the_exception(
    gearmand: GearmandProcess,
) -> None:
    def blocking(job: Job) -> bytes:
        time.sleep(0.3)
        return b"late"

    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("blocking", blocking, time_limit=0.1, inline=True)
        async with serving(worker), raw_client(gearmand.port) as client:
            out = await client.call(b"blocking")
        _assert_time_limit(out.result, "0.1")

    run(main())


def test_the_time_limit_is_answered_on_the_jobs_own_server(
    gearmand_factory: GearmandFactory,
) -> None:
    one, two = gearmand_factory(), gearmand_factory()

    async def slow(job: Job) -> bytes:
        await asyncio.sleep(30)
        return b""

    async def main() -> None:
        worker = make_worker(one.address, two.address)
        worker.register("slow", slow, time_limit=0.2)
        async with serving(worker):
            async with raw_client(two.port) as c2, raw_client(one.port) as c1:
                out2, out1 = await asyncio.gather(c2.call(b"slow"), c1.call(b"slow"))
            _assert_time_limit(out2.result, "0.2")
            _assert_time_limit(out1.result, "0.2")
            for server in (one, two):
                assert admin(server.port, adm.show_jobs()) == ()
        assert worker.stats.server_errors == 0

    run(main())
