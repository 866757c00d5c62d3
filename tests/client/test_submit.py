"""Submitting jobs to one real gearmand: kinds, priorities, uniques, validation."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from gearq.client import (
    AsyncClient,
    JobState,
    PayloadTooLarge,
    Priority,
)
from gearq.net import ServerAddress
from gearq.protocol import ArgumentError

from .helpers import ScriptedWorker, run, totals


def test_foreground_job_returns_the_result(gearmand, workers):
    workers(gearmand, "echo")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("echo", b"hello \x00\xff binary")
            result = await job
            assert job.state is JobState.COMPLETE
            assert job.server == ServerAddress("127.0.0.1", gearmand.port)
            assert job.handle is not None and job.handle.startswith(b"H:")
            return result

    assert run(main()) == b"hello \x00\xff binary"


def test_names_and_uniques_as_str_or_bytes(gearmand, workers):
    worker = workers(gearmand, "echo")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            a = await client.submit("echo", b"1", unique="u-str")
            b = await client.submit(b"echo", b"2", unique=b"u-bytes")
            return await a, await b

    assert run(main()) == (b"1", b"2")
    assert sorted(j[2] for j in worker.jobs) == [b"u-bytes", b"u-str"]


def test_background_job_gets_a_32_hex_unique_and_is_queued(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            jobs = [await client.submit("bg", b"x", background=True) for _ in range(5)]
            handles = [await job.created() for job in jobs]
            assert [await job for job in jobs] == [b""] * 5
            return jobs, handles

    jobs, handles = run(main())
    assert len(set(handles)) == 5
    for job in jobs:
        assert len(job.unique) == 32 and int(job.unique, 16) >= 0
        assert job.state is JobState.CREATED and job.done
    assert len({job.unique for job in jobs}) == 5
    assert totals([gearmand], "bg") == [5]


def test_priorities_reach_the_right_queues(gearmand):
    from gearq.client import AdminClient

    async def main():
        async with AsyncClient(gearmand.address) as client:
            for priority, count in ((Priority.HIGH, 1), (Priority.NORMAL, 2), (Priority.LOW, 3)):
                for _ in range(count):
                    job = await client.submit("prio", b"", background=True, priority=priority)
                    await job.created()

    run(main())
    with AdminClient(gearmand.address) as admin:
        rows = admin.priority_status().raise_errors()
    (row,) = [r for r in next(iter(rows.values())).result() if r.function == "prio"]
    assert (row.high, row.normal, row.low) == (1, 2, 3)


def test_priority_order_is_kept_for_a_worker(gearmand, workers):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            jobs = []
            for priority in (Priority.LOW, Priority.NORMAL, Priority.HIGH):
                job = await client.submit("order", priority.value.encode(), priority=priority)
                await job.created()
                jobs.append(job)
            worker = workers(gearmand, "order")
            for job in jobs:
                await job.result(10)
            return worker

    worker = run(main())
    assert [j[3] for j in worker.jobs] == [b"high", b"normal", b"low"]


def test_same_unique_coalesces_on_one_connection(gearmand, workers):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            a = await client.submit("co", b"first", unique="same")
            b = await client.submit("co", b"second", unique="same")
            await a.created()
            await b.created()
            assert a.handle == b.handle
            worker = workers(gearmand, "co")
            return await a.result(10), await b.result(10), worker

    ra, rb, worker = run(main())
    # One job, run once with the first payload; both submitters get the one result.
    assert ra == rb == b"first"
    assert len(worker.jobs) == 1


def test_run_at_sends_an_epoch_job(gearmand):
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("later", b"x", background=True, run_at=when)
            await job.created()
            job2 = await client.submit("later", b"y", background=True, run_at=time.time() + 60)
            await job2.created()
            status = await client.get_status(job)
            return job, status

    job, status = run(main())
    assert job.run_at == int(when.timestamp()) + (when.timestamp() % 1 > 0)
    assert status.known and not status.running
    assert totals([gearmand], "later") == [2]


def test_reduce_job_is_accepted_and_runs(gearmand, workers):
    workers(gearmand, "mapper")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            fg = await client.submit("mapper", b"fg", reducer="reducer")
            bg = await client.submit("mapper", b"bg", reducer="reducer", background=True)
            await bg.created()
            return await fg.result(10)

    assert run(main()) == b"fg"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unique": "u" * 64}, "unique id is 64 bytes"),
        ({"unique": b"a\0b"}, "NUL"),
        ({"run_at": 10.0}, "needs background=True"),
        ({"run_at": dt.datetime(2030, 1, 1), "background": True}, "timezone-aware"),
        ({"run_at": 1e13, "background": True}, "outside"),
        ({"run_at": float("nan"), "background": True}, "finite"),
        ({"run_at": 10.0, "background": True, "priority": Priority.HIGH}, "NORMAL"),
        ({"reducer": "r" * 64}, "reducer"),
        ({"reducer": "r", "priority": Priority.LOW}, "priority"),
        ({"timeout": 0}, "positive"),
    ],
)
def test_bad_values_are_refused_before_sending(gearmand, workers, kwargs, message):
    workers(gearmand, "echo")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            with pytest.raises(ArgumentError, match=message):
                await client.submit("echo", b"x", **kwargs)
            # The connection (if any) is still in step: a normal job goes through.
            return await (await client.submit("echo", b"fine")).result(10)

    assert run(main()) == b"fine"


@pytest.mark.parametrize("name", ["", "with space", "a" * 513, "nul\0"])
def test_bad_function_names_are_refused(gearmand, name):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            with pytest.raises(ArgumentError):
                await client.submit(name, b"x")

    run(main())


def test_payload_limit_is_checked_before_sending(gearmand, workers):
    workers(gearmand, "echo")

    async def main():
        async with AsyncClient(gearmand.address, max_payload_size=10) as client:
            with pytest.raises(PayloadTooLarge, match="11 bytes"):
                await client.submit("echo", b"x" * 11)
            return await (await client.submit("echo", b"y" * 10)).result(10)

    assert run(main()) == b"y" * 10


def test_payload_must_be_bytes(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            with pytest.raises(ArgumentError, match="bytes"):
                await client.submit("echo", "text")  # type: ignore[arg-type]
            job = await client.submit("echo", bytearray(b"ba"), background=True)
            await job.created()
            return job.payload

    assert run(main()) == b"ba"


def test_many_jobs_in_flight_on_one_connection(gearmand):
    worker = ScriptedWorker(gearmand, "echo")
    try:

        async def main():
            async with AsyncClient(gearmand.address) as client:
                jobs = [await client.submit("echo", str(i).encode()) for i in range(2000)]
                return [await job for job in jobs]

        assert run(main()) == [str(i).encode() for i in range(2000)]
    finally:
        worker.stop()


def test_submit_many_background_and_foreground(gearmand, workers):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            bg = await client.submit_many(
                "many_bg", [b"%d" % i for i in range(300)], background=True,
                uniques=[f"u{i}" if i % 2 else None for i in range(300)],
            )  # fmt: skip
            for job in bg:
                await job.created()
            workers(gearmand, "many_fg")
            fg = await client.submit_many("many_fg", [b"a", bytearray(b"b"), b"c"])
            return bg, [await job.result(10) for job in fg]

    bg, results = run(main())
    assert results == [b"a", b"b", b"c"]
    assert [job.unique for job in bg[:2]] == [bg[0].unique, b"u1"]
    assert len(bg[0].unique) == 32
    assert len({job.handle for job in bg}) == 300
    assert totals([gearmand], "many_bg") == [300]


def test_submit_many_checks_everything_before_sending(gearmand):
    async def main():
        async with AsyncClient(gearmand.address, max_payload_size=5) as client:
            with pytest.raises(ArgumentError):
                await client.submit_many("sm", [b"ok", b"ok"], uniques=["a", "b" * 64])
            with pytest.raises(PayloadTooLarge):
                await client.submit_many("sm", [b"ok", b"too long"], background=True)
            with pytest.raises(ArgumentError, match="length"):
                await client.submit_many("sm", [b"ok"], uniques=["a", "b"])
            return await client.echo(b"e")

    assert run(main()) == b"e"
    assert totals([gearmand], "sm") == [0]


def test_submit_many_spreads_round_robin(three_servers):
    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, strategy="round_robin") as client:
            jobs = await client.submit_many("rrm", [b""] * 30, background=True)
            for job in jobs:
                await job.created()

    run(main())
    assert totals(three_servers, "rrm") == [10, 10, 10]


def test_submit_many_with_every_server_down(gearmand):
    from gearq.client import NoServerAvailable

    gearmand.kill()

    async def main():
        async with AsyncClient(gearmand.address) as client:
            with pytest.raises(NoServerAvailable):
                await client.submit_many("x", [b"1", b"2"], background=True)

    run(main())


def test_submit_now_queues_what_it_can_at_once_and_nothing_else(gearmand, workers):
    workers(gearmand, "echo")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            # Not connected yet, and a function not submitted before: nothing is done.
            assert client.submit_now("echo", b"early") is None
            assert await (await client.submit("echo", b"first")) == b"first"
            assert client.submit_now("never_seen", b"x") is None
            assert client.submit_now("echo", b"x", unique=b"u" * 64) is None
            assert client.submit_now("echo", b"x", timeout=0) is None
            assert client.submit_now("echo", "not bytes") is None  # type: ignore[arg-type]
            # Connected and known: a Job at once; with send=True the packet is written
            # before submit_now returns (nothing left for the end of the loop's pass).
            job = client.submit_now("echo", b"now", send=True)
            assert job is not None and job.state is JobState.PENDING
            assert all(not link.wbuf for link in client._links)
            queued = client.submit_now("bg_now", b"b", background=True)
            assert queued is None  # bg_now was never submitted: the full path takes it
            bg = await client.submit("bg_now", b"b", background=True)
            again = client.submit_now("bg_now", b"c", background=True, priority=Priority.HIGH)
            assert again is not None
            await again.created()
            return await job, bg

    result, bg = run(main())
    assert result == b"now" and bg.handle is not None
    assert totals([gearmand], "bg_now") == [2]
