"""run_many: many foreground jobs with a fixed number in flight, against real gearmand.

Every result must land at its own index (checked against what the worker saw), and every
way a job can end badly must end that job alone, with its typed error, never a hang.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gearq.client import (
    AdminClient,
    AsyncClient,
    BatchFailed,
    ClientClosed,
    ForegroundBatch,
    JobConnectionLost,
    JobException,
    JobFailed,
    JobTimeout,
    NoServerAvailable,
    PayloadTooLarge,
    QueueFull,
)
from gearq.net import ServerAddress
from gearq.protocol import ArgumentError
from tests.support import FaultProxy

from .helpers import ScriptedWorker, run, script, totals, until


def _address(server) -> ServerAddress:
    return ServerAddress.parse(server.address)


def test_results_come_back_in_input_order_matching_what_the_worker_saw(gearmand, workers):
    worker = workers(gearmand, "many_echo")
    payloads = [b"payload-%d" % i for i in range(300)]
    uniques = [f"u{i}" if i % 2 else None for i in range(300)]

    async def main() -> ForegroundBatch:
        async with AsyncClient(gearmand.address) as client:
            return await client.run_many("many_echo", payloads, uniques=uniques, in_flight=17)

    batch = run(main())
    assert batch.done and not batch.errors and len(batch) == 300
    assert batch.result_nowait() == payloads == batch.results
    assert batch.servers == [_address(gearmand)] * 300
    seen = {handle: (unique, payload) for handle, _fn, unique, payload in worker.jobs}
    assert len(seen) == 300
    for i, handle in enumerate(batch.handles):
        assert handle is not None
        # The worker ran job i under the handle the batch recorded for it.
        assert seen[handle] == ((f"u{i}".encode() if i % 2 else b""), payloads[i])


def test_never_more_than_in_flight_jobs_at_the_server(gearmand):
    peaks: list[int] = []

    async def main() -> ForegroundBatch:
        async with AsyncClient(gearmand.address) as client:
            task = asyncio.ensure_future(client.run_many("many_win", [b"x"] * 50, in_flight=7))
            await asyncio.sleep(0.3)  # no worker: everything sent waits in the queue
            peaks.append(totals([gearmand], "many_win")[0])
            worker = ScriptedWorker(gearmand, "many_win")
            try:
                return await task
            finally:
                worker.stop()

    batch = run(main())
    assert peaks == [7]
    assert batch.results == [b"x"] * 50


def test_mixed_with_single_submits_on_the_same_connection(gearmand, workers):
    worker = workers(gearmand, "many_mix")

    async def main():
        async with AsyncClient(gearmand.address) as client:

            async def single(i: int) -> bytes:
                return await (await client.submit("many_mix", b"single-%d" % i))

            many = client.run_many("many_mix", [b"many-%d" % i for i in range(200)], in_flight=20)
            return await asyncio.gather(many, *(single(i) for i in range(60)))

    batch, *singles = run(main())
    assert batch.results == [b"many-%d" % i for i in range(200)] and not batch.errors
    assert singles == [b"single-%d" % i for i in range(60)]
    assert len(worker.jobs) == 260


def test_a_failing_item_keeps_the_others_results(gearmand, workers):
    workers(gearmand, "many_err")
    payloads = [
        b"a",
        script(["exception", "boom"]),
        b"b",
        script(["fail"]),
        script(["data", "chunk"], ["status", 1, 2], ["warning", "w"], ["complete", "c"]),
    ]

    async def main() -> ForegroundBatch:
        async with AsyncClient(gearmand.address) as client:
            return await client.run_many("many_err", payloads, in_flight=2)

    batch = run(main())
    assert batch.results == [b"a", None, b"b", None, b"c"]
    assert sorted(batch.errors) == [1, 3]
    exc = batch.errors[1]
    assert isinstance(exc, JobException) and exc.data == b"boom"
    assert exc.server == _address(gearmand) and exc.handle == batch.handles[1]
    assert isinstance(batch.errors[3], JobFailed)
    with pytest.raises(BatchFailed) as info:
        batch.result_nowait()
    assert info.value.results == batch.results and "2 of 5 jobs failed" in str(info.value)


def test_coalesced_uniques_each_get_the_result(gearmand, workers):
    workers(gearmand, "many_co")

    async def main() -> tuple[ForegroundBatch, bytes]:
        async with AsyncClient(gearmand.address) as client:
            slow = script(["sleep", 0.3], ["complete", "shared"])
            single = await client.submit("many_co", slow, unique="same")
            batch = await client.run_many(
                "many_co", [b"x", b"y", b"z"], uniques=["same", "same", "other"]
            )
            return batch, await single

    batch, single = run(main())
    # Coalesced onto the single submit's job: every attached submit gets its result.
    assert batch.results == [b"shared", b"shared", b"z"] and single == b"shared"
    assert batch.handles[0] == batch.handles[1] != batch.handles[2]


def test_a_server_killed_mid_run_fails_its_jobs_and_the_rest_go_elsewhere(two_servers, workers):
    first, second = two_servers
    hold = workers(first, "many_kill")
    workers(second, "many_kill")
    payloads = [script(["sleep", 20], ["complete", "late"])] * 4 + [b"%d" % i for i in range(20)]

    async def main() -> tuple[ForegroundBatch, float]:
        async with AsyncClient(
            [first.address, second.address], heartbeat_interval=None, recover_time=30
        ) as client:
            task = asyncio.ensure_future(client.run_many("many_kill", payloads, in_flight=4))
            await until(lambda: bool(hold.jobs), what="the worker to take a job")
            start = time.monotonic()
            first.kill()
            return await task, time.monotonic() - start

    batch, elapsed = run(main())
    assert elapsed < 5
    assert sorted(batch.errors) == [0, 1, 2, 3]
    for i in range(4):
        error = batch.errors[i]
        assert isinstance(error, JobConnectionLost) and error.server == _address(first)
        assert first.address in str(error)
    assert batch.handles[0] is not None and batch.errors[0].handle == batch.handles[0]
    assert batch.results[4:] == [b"%d" % i for i in range(20)]
    assert batch.servers[4:] == [_address(second)] * 20


def test_lost_jobs_are_resubmitted_elsewhere_when_opted_in(two_servers, workers):
    first, second = two_servers
    hold = workers(first, "many_re")
    workers(second, "many_re")
    payloads = [script(["sleep", 0.2], ["complete", "done"])] * 3

    async def main() -> ForegroundBatch:
        async with AsyncClient(
            [first.address, second.address], heartbeat_interval=None, recover_time=30
        ) as client:
            task = asyncio.ensure_future(
                client.run_many("many_re", payloads, uniques=["r0", "r1", "r2"],
                                resubmit_on_failure=True)
            )  # fmt: skip
            await until(lambda: bool(hold.jobs), what="the worker to take a job")
            first.kill()
            return await task

    batch = run(main())
    assert not batch.errors and batch.results == [b"done"] * 3
    assert batch.servers == [_address(second)] * 3


def test_timeout_ends_the_unfinished_jobs_only(gearmand, workers):
    workers(gearmand, "many_slow")
    payloads = [b"a", b"b", script(["sleep", 10], ["complete", "late"]), b"queued"]

    async def main() -> tuple[ForegroundBatch, float]:
        async with AsyncClient(gearmand.address) as client:
            start = time.monotonic()
            batch = await client.run_many("many_slow", payloads, in_flight=3, timeout=0.5)
            return batch, time.monotonic() - start

    batch, elapsed = run(main())
    assert 0.4 < elapsed < 3
    assert batch.results[:2] == [b"a", b"b"]
    assert sorted(batch.errors) == [2, 3]
    assert all(isinstance(e, JobTimeout) for e in batch.errors.values())
    # Both reached the server (the second waits behind the sleeping job there).
    assert batch.errors[2].handle == batch.handles[2] is not None  # type: ignore[attr-defined]
    assert batch.errors[3].handle == batch.handles[3] is not None  # type: ignore[attr-defined]


def test_every_server_down_fails_every_job_at_once(two_servers):
    for server in two_servers:
        server.kill()

    async def main() -> tuple[ForegroundBatch, float]:
        async with AsyncClient([s.address for s in two_servers]) as client:
            start = time.monotonic()
            batch = await client.run_many("many_down", [b"x"] * 30, in_flight=10)
            return batch, time.monotonic() - start

    batch, elapsed = run(main())
    assert elapsed < 5 and batch.results == [None] * 30
    assert sorted(batch.errors) == list(range(30))
    error = batch.errors[0]
    assert isinstance(error, NoServerAvailable)
    assert all(s.address in str(error) for s in two_servers)


def test_queue_full_fails_only_the_rejected_jobs(gearmand):
    async def main() -> ForegroundBatch:
        async with AsyncClient(gearmand.address) as client:
            first = await client.submit("many_q", b"0", background=True)
            await first.created()  # the function exists now, so maxqueue applies
            with AdminClient(gearmand.address) as admin:
                admin.maxqueue("many_q", 3).raise_errors()
            batch = await client.run_many("many_q", [b"%d" % i for i in range(6)], timeout=1)
            # The connection is still in step after the ERROR replies.
            assert await client.echo(b"still") == b"still"
            return batch

    batch = run(main())
    assert sorted(batch.errors) == [0, 1, 2, 3, 4, 5]
    rejected = sorted(i for i, e in batch.errors.items() if isinstance(e, QueueFull))
    assert rejected == [2, 3, 4, 5]
    assert all(isinstance(batch.errors[i], JobTimeout) for i in (0, 1))


def test_closing_the_client_ends_the_run(gearmand):
    async def main() -> ForegroundBatch:
        async with AsyncClient(gearmand.address) as client:
            task = asyncio.ensure_future(client.run_many("many_close", [b"x"] * 10, in_flight=4))
            await asyncio.sleep(0.2)  # no worker: the jobs wait
            await client.close()
            return await task

    batch = run(main())
    assert sorted(batch.errors) == list(range(10))
    assert all(isinstance(e, ClientClosed) for e in batch.errors.values())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"uniques": ["x" * 64]}, ArgumentError, "unique"),
        ({"uniques": ["a\0b"]}, ArgumentError, "unique"),
        ({"uniques": ["a", "b"]}, ArgumentError, "differ in length"),
        ({"in_flight": 0}, ArgumentError, "in_flight"),
        ({"timeout": 0}, ArgumentError, "timeout"),
        ({"payloads": ["text"]}, ArgumentError, "payload must be bytes"),
        ({"payloads": [b"x" * 11]}, PayloadTooLarge, "max_payload_size"),
    ],
)
def test_bad_values_are_refused_before_anything_is_sent(gearmand, kwargs, error, message):
    payloads = kwargs.pop("payloads", [b"p"])

    async def main() -> None:
        async with AsyncClient(gearmand.address, max_payload_size=10) as client:
            with pytest.raises(error, match=message):
                await client.run_many("many_bad", payloads, **kwargs)
            assert await client.echo(b"ok") == b"ok"

    run(main())
    assert totals([gearmand], "many_bad") == [0]


def test_an_empty_run_is_done_at_once(gearmand):
    async def main() -> ForegroundBatch:
        async with AsyncClient(gearmand.address) as client:
            return await client.run_many("many_none", [])

    batch = run(main())
    assert batch.done and batch.result_nowait() == []


def test_round_robin_spreads_the_jobs(three_servers, workers):
    for server in three_servers:
        workers(server, "many_rr")

    async def main() -> ForegroundBatch:
        async with AsyncClient([s.address for s in three_servers], strategy="round_robin") as c:
            return await c.run_many("many_rr", [b"%d" % i for i in range(60)], in_flight=9)

    batch = run(main())
    assert batch.results == [b"%d" % i for i in range(60)]
    counts = [batch.servers.count(_address(s)) for s in three_servers]
    assert sum(counts) == 60 and all(c >= 10 for c in counts), counts


def test_a_frozen_server_fails_its_jobs_within_the_heartbeat_bound(gearmand, workers):
    workers(gearmand, "many_frozen")
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main() -> tuple[ForegroundBatch, float]:
            async with AsyncClient(
                proxy.address, heartbeat_interval=0.2, heartbeat_timeout=0.3
            ) as client:
                assert await client.echo(b"up") == b"up"
                proxy.freeze()
                start = time.monotonic()
                batch = await client.run_many("many_frozen", [b"x"] * 5)
                return batch, time.monotonic() - start

        batch, elapsed = run(main())
    assert elapsed < 3
    assert sorted(batch.errors) == [0, 1, 2, 3, 4]
    for error in batch.errors.values():
        assert isinstance(error, JobConnectionLost) and error.server.port == proxy.port
