"""Functions registered while the worker runs, and the blocking Worker serving again."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gearq.protocol import admin as adm
from gearq.testing import GearmandProcess
from gearq.worker import Job, Worker, WorkerError

from .helpers import FAST_RECOVER, admin, eventually, make_worker, raw_client, run, serving


def _workers_doing(port: int, function: str) -> int:
    return sum(1 for row in admin(port, adm.workers()) if function in row.functions)


def test_a_function_registered_while_running_gets_its_own_connections(
    gearmand: GearmandProcess,
) -> None:
    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("first", lambda job: b"1 " + job.payload, inline=True)
        async with serving(worker), raw_client(gearmand.port) as client:
            async with raw_client(gearmand.port) as early:
                # Queued before the function exists: served once it is registered.
                await early.submit(b"later", b"queued", background=True)
            assert worker.connected == 1

            async def later(job: Job) -> bytes:
                return b"L " + job.payload

            worker.register("later", later)
            await worker.wait_ready(10)
            assert worker.connected == 2 and worker.functions == (b"first", b"later")
            await eventually(lambda: worker.stats.completed == 1)
            assert (await client.call(b"later", b"x")).result == b"L x"
            assert (await client.call(b"first", b"y")).result == b"1 y"
            assert _workers_doing(gearmand.port, "later") == 1

    run(main())


def test_a_function_joining_a_live_group_is_served_now_and_after_a_restart(
    gearmand: GearmandProcess,
) -> None:
    async def main() -> None:
        worker = make_worker(gearmand.address, poll_interval=5.0)
        worker.register("a", lambda job: b"a", group="shared")
        async with serving(worker), raw_client(gearmand.port) as client:
            assert (await client.call(b"a")).result == b"a"
            await asyncio.sleep(0.1)  # let the connection go to sleep (PRE_SLEEP)
            async with raw_client(gearmand.port) as early:
                await early.submit(b"b", b"queued", background=True)
            worker.register("b", lambda job: b"b " + job.payload, group="shared")
            await worker.wait_ready(10)
            assert worker.connected == 1  # the same connection took a CAN_DO
            # The sleeping connection looked at the queue at once, not at the next poll.
            await eventually(lambda: worker.stats.completed == 2, timeout=2.0)
            assert (await client.call(b"b", b"x")).result == b"b x"
            await client.close()
            await asyncio.to_thread(gearmand.kill)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(gearmand.restart)
            await eventually(lambda: worker.connected == 1 and worker.stats.connects == 2)
            async with raw_client(gearmand.port) as again:  # re-registered both
                assert (await again.call(b"b", b"y")).result == b"b y"
                assert (await again.call(b"a")).result == b"a"

    run(main())


def test_the_blocking_worker_registers_from_any_thread_and_serves_again_after_a_stop(
    gearmand: GearmandProcess,
) -> None:
    worker = Worker(gearmand.address, recover=FAST_RECOVER, poll_interval=0.5)
    worker.register("f", lambda job: b"f1 " + job.payload, inline=True)

    async def call(function: bytes, payload: bytes) -> bytes:
        async with raw_client(gearmand.port) as client:
            out = await client.call(function, payload)
        assert out.kind == "complete", out
        return out.result

    for round_ in (1, 2):
        thread = threading.Thread(target=worker.work)
        thread.start()
        try:
            assert run(call(b"f", b"%d" % round_)) == b"f1 %d" % round_
            with pytest.raises(WorkerError, match="already working"):
                worker.work()
            if round_ == 1:
                worker.register("g", lambda job: b"g " + job.payload)  # from this thread
                with pytest.raises(WorkerError, match="already registered"):
                    worker.register("g", lambda job: b"")
            assert run(call(b"g", b"%d" % round_)) == b"g %d" % round_
            assert worker.stats.completed == 2
        finally:
            worker.stop()
            thread.join(10)
        assert not thread.is_alive()
    assert run(_no_worker_left(gearmand.port))


async def _no_worker_left(port: int) -> bool:
    await eventually(lambda: _workers_doing(port, "f") == 0)
    return True
