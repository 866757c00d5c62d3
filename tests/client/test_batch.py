"""submit_background_many: many background jobs as one BackgroundBatch, against real gearmand.

Every acknowledgement must land on the right job (checked against what the server holds),
and every way a job can fail must end it with its typed error, never leave it waiting.
"""

from __future__ import annotations

import asyncio

import pytest

from gearq.client import (
    AdminClient,
    AsyncClient,
    BackgroundBatch,
    BatchError,
    ClientClosed,
    JobConnectionLost,
    JobState,
    JobTimeout,
    NoServerAvailable,
    PayloadTooLarge,
    Priority,
    QueueFull,
)
from gearq.client.pool import UniqueHashStrategy
from gearq.net import ServerAddress
from gearq.protocol import ArgumentError
from tests.support import FaultProxy

from .helpers import ScriptedWorker, run, totals, wait_until


def _address(server) -> ServerAddress:
    return ServerAddress.parse(server.address)


def test_batch_is_acknowledged_in_order_with_the_given_and_random_uniques(gearmand):
    uniques = [f"u{i}" if i % 3 else None for i in range(300)]

    async def main():
        async with AsyncClient(gearmand.address) as client:
            batch = await client.submit_background_many(
                "batch_bg", [b"%d" % i for i in range(300)], uniques=uniques
            )
            assert isinstance(batch, BackgroundBatch) and len(batch) == 300
            handles = await batch
            statuses = [await client.get_status_unique(batch.uniques[i]) for i in (0, 1, 299)]
            return batch, handles, statuses

    batch, handles, statuses = run(main())
    assert batch.done and not batch.errors and batch.acknowledged == 300
    assert handles == batch.handles and len(set(handles)) == 300
    assert all(h.startswith(b"H:") for h in handles)
    assert batch.servers == [_address(gearmand)] * 300
    assert batch.uniques[1] == b"u1" and batch.uniques[2] == b"u2"
    generated = [batch.uniques[i] for i in range(0, 300, 3)]
    assert all(len(u) == 32 and int(u, 16) >= 0 for u in generated)
    assert len(set(generated)) == 100
    # The server knows each unique, so each submit reached it with its own unique.
    assert all(s.known for s in statuses)
    assert totals([gearmand], "batch_bg") == [300]


@pytest.mark.parametrize("uniform", [False, True])
def test_each_handle_belongs_to_its_own_unique_and_payload(gearmand, uniform):
    """A worker sees handle, unique and payload together: they must match the batch.
    ``uniform``: every packet the same size (the batch encodes those another way)."""
    if uniform:
        payloads = [b"payload-%03d" % i for i in range(50)]
        uniques = [f"m{i:03d}" for i in range(50)]
    else:
        payloads = [b"payload-%d" % i for i in range(50)]
        uniques = [f"m{i}" for i in range(50)]

    async def main():
        async with AsyncClient(gearmand.address) as client:
            batch = await client.submit_background_many("batch_match", payloads, uniques=uniques)
            await batch
            return batch

    batch = run(main())
    with ScriptedWorker(gearmand, "batch_match") as worker:
        wait_until(lambda: len(worker.jobs) == 50, what="the worker to get every job")
    seen = {handle: (unique, payload) for handle, _fn, unique, payload in worker.jobs}
    for i in range(50):
        assert seen[batch.handles[i]] == (uniques[i].encode(), payloads[i])


def test_a_large_batch_is_written_in_chunks_and_every_job_is_acknowledged(gearmand):
    count = 20_000

    async def main():
        async with AsyncClient(gearmand.address) as client:
            batch = await client.submit_background_many("batch_big", [b"x" * 50] * count)
            # Other requests on the same connection stay in step with the batch.
            job = await client.submit("batch_single", b"y", background=True)
            echo = await client.echo(b"in step")
            await batch
            return batch, await job.created(), echo

    batch, handle, echo = run(main())
    assert echo == b"in step" and handle not in batch.handles
    assert len(set(batch.handles)) == count
    assert totals([gearmand], "batch_big") == [count]


def test_batches_and_submits_interleave_on_one_connection(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:

            # Each batch is larger than the connection's window, so both wait for room
            # at once; uniques of several lengths take the non-uniform encoding.
            async def one_batch(k: int) -> BackgroundBatch:
                return await client.submit_background_many(
                    "batch_mix", [b"%d" % k] * 5000, uniques=[f"{k}-{i}" for i in range(5000)]
                )

            async def singles() -> list:
                jobs = []
                for i in range(200):
                    jobs.append(await client.submit("batch_mix", b"s", background=True))
                    if i % 50 == 0:
                        await asyncio.sleep(0)
                return jobs

            batches_and_jobs = await asyncio.gather(one_batch(1), singles(), one_batch(2))
            b1, jobs, b2 = batches_and_jobs
            await b1
            await b2
            for job in jobs:
                await job.created()
            statuses = [
                await client.get_status(handle, client.servers[0])
                for handle in (b1.handles[0], b2.handles[-1], jobs[-1].handle)
            ]
            return b1, b2, jobs, statuses

    b1, b2, jobs, statuses = run(main())
    handles = b1.handles + b2.handles + [j.handle for j in jobs]
    assert len(set(handles)) == 10200
    assert all(s.known for s in statuses)
    assert totals([gearmand], "batch_mix") == [10200]


def test_priority_reaches_the_right_queue(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            submit = client.submit_background_many
            high = await submit("batch_prio", [b""] * 3, priority=Priority.HIGH)
            low = await submit("batch_prio", [b""] * 2, priority=Priority.LOW)
            await high
            await low

    run(main())
    with AdminClient(gearmand.address) as admin:
        rows = next(iter(admin.priority_status().values())).result()
    (row,) = [r for r in rows if r.function == "batch_prio"]
    assert (row.high, row.normal, row.low) == (3, 0, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"uniques": ["ok", "u" * 64]}, ArgumentError, "64 bytes"),
        ({"uniques": ["ok", b"a\0b"]}, ArgumentError, "NUL"),
        ({"uniques": ["only one"]}, ArgumentError, "length"),
        ({"uniques": [b"ok", 5]}, ArgumentError, "str or bytes"),
        ({"payloads": [b"ok", "text"]}, ArgumentError, "bytes"),
        ({"payloads": [b"ok", b"x" * 11]}, PayloadTooLarge, "11 bytes"),
        ({"priority": "high"}, ArgumentError, "Priority"),
        ({"timeout": 0}, ArgumentError, "positive"),
    ],
)
def test_bad_values_are_refused_before_anything_is_sent(gearmand, kwargs, error, message):
    async def main():
        async with AsyncClient(gearmand.address, max_payload_size=10) as client:
            payloads = kwargs.pop("payloads", [b"ok", b"ok"])
            with pytest.raises(error, match=message):
                await client.submit_background_many("batch_bad", payloads, **kwargs)
            # In step afterwards: a valid batch goes through.
            return await client.submit_background_many("batch_good", [bytearray(b"ba")])

    batch = run(main())
    assert batch.payloads == [b"ba"] and batch.done
    assert totals([gearmand], "batch_bad") == [0]
    assert totals([gearmand], "batch_good") == [1]


def test_an_empty_batch_is_done_at_once(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            batch = await client.submit_background_many("batch_empty", [])
            return batch, await batch

    batch, handles = run(main())
    assert handles == [] and batch.done and len(batch) == 0


def test_queue_full_fails_only_the_rejected_jobs(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            first = await client.submit("batch_q", b"0", background=True)
            await first.created()  # the function exists now, so maxqueue applies
            with AdminClient(gearmand.address) as admin:
                admin.maxqueue("batch_q", 4).raise_errors()
            batch = await client.submit_background_many("batch_q", [b"%d" % i for i in range(6)])
            await batch.wait()  # does not raise for failed jobs
            with pytest.raises(BatchError) as info:
                await batch
            # The connection is still in step after the ERROR replies.
            after = await client.submit_background_many("batch_other", [b"a", b"b"])
            return batch, info.value, await after

    batch, error, after = run(main())
    assert sorted(batch.errors) == [3, 4, 5]
    assert all(isinstance(e, QueueFull) for e in batch.errors.values())
    assert batch.handles[:3] == error.handles[:3] and None not in batch.handles[:3]
    assert batch.handles[3:] == [None, None, None]
    assert error.errors == batch.errors and "3 of 6 jobs failed" in str(error)
    assert batch.acknowledged == 3 and len(after) == 2
    assert totals([gearmand], "batch_q") == [4]


def test_round_robin_routes_each_job_on_its_own(three_servers):
    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, strategy="round_robin") as client:
            return await (await client.submit_background_many("batch_rr", [b""] * 30))

    run(main())
    assert totals(three_servers, "batch_rr") == [10, 10, 10]


def test_unique_hash_sends_each_unique_to_its_server(three_servers):
    uniques = [f"key-{i}" for i in range(60)]
    addresses = [_address(s) for s in three_servers]

    async def main():
        async with AsyncClient(addresses, strategy="unique_hash") as client:
            batch = await client.submit_background_many(
                "batch_uh", [b""] * 60, uniques=uniques
            )
            await batch
            return batch

    batch = run(main())
    ranking = UniqueHashStrategy()
    ranking.bind(addresses)
    expected = [addresses[ranking.rank(u.encode())[0]] for u in uniques]
    assert batch.servers == expected
    assert totals(three_servers, "batch_uh") == [expected.count(a) for a in addresses]


def test_a_dead_server_is_skipped(two_servers):
    first, second = two_servers
    first.kill()

    async def main():
        addresses = [first.address, second.address]
        async with AsyncClient(addresses, recover_time=30) as client:
            batch = await client.submit_background_many("batch_fo", [b"x"] * 10)
            await batch
            return batch

    batch = run(main())
    assert batch.done and not batch.errors
    assert batch.servers == [_address(second)] * 10
    assert totals([second], "batch_fo") == [10]


def test_every_server_down_raises_and_names_each_server_once(two_servers):
    for server in two_servers:
        server.kill()

    async def main():
        addresses = [s.address for s in two_servers]
        async with AsyncClient(addresses) as client:
            with pytest.raises(NoServerAvailable) as info:
                await client.submit_background_many("batch_down", [b"x"] * 3)
            return info.value

    error = run(main())
    message = str(error)
    for server in two_servers:
        # Once as the key of its entry; not again in the connect error after it.
        assert message.count(server.address) == 1, message
        assert "cannot connect" in message


def test_lost_connection_fails_unacknowledged_jobs_naming_the_server_once(gearmand):
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            async with AsyncClient(proxy.address, heartbeat_interval=None) as client:
                assert await client.echo(b"up") == b"up"
                acked = await client.submit_background_many("batch_lost", [b"a", b"b"])
                await acked
                proxy.freeze()
                batch = await client.submit_background_many("batch_lost", [b"x"] * 5)
                await asyncio.sleep(0.1)
                assert batch.acknowledged == 0 and not batch.done
                proxy.reset()
                with pytest.raises(BatchError) as info:
                    await batch.created(timeout=5)
                return acked, batch, info.value

        acked, batch, error = run(main())
    assert sorted(batch.errors) == [0, 1, 2, 3, 4]
    assert not acked.errors
    for job_error in batch.errors.values():
        assert isinstance(job_error, JobConnectionLost)
        assert job_error.handle is None and job_error.server.port == proxy.port
        assert "may or may not exist" in str(job_error)
        assert str(job_error).count(f"127.0.0.1:{proxy.port}") == 1, str(job_error)
    assert "5 of 5 jobs failed" in str(error)


def test_lost_connection_resubmits_with_the_same_uniques_when_opted_in(two_servers):
    first, second = two_servers
    uniques = [f"same-{i}" for i in range(5)]
    with FaultProxy(first.host, first.port) as proxy:

        async def main():
            async with AsyncClient(
                [proxy.address, second.address], heartbeat_interval=None, recover_time=30
            ) as client:
                assert await client.echo(b"up") == b"up"
                proxy.freeze()
                batch = await client.submit_background_many(
                    "batch_re", [b"x"] * 5, uniques=uniques, resubmit_on_failure=True
                )
                await asyncio.sleep(0.1)
                proxy.cut()
                return batch, await batch.created(timeout=5)

        batch, handles = run(main())
    assert batch.servers == [_address(second)] * 5 and len(set(handles)) == 5
    assert totals([second], "batch_re") == [5]


def test_client_side_timeout_ends_the_waiting_jobs(gearmand):
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            async with AsyncClient(proxy.address, heartbeat_interval=None) as client:
                assert await client.echo(b"up") == b"up"
                proxy.freeze()
                batch = await client.submit_background_many(
                    "batch_to", [b"x"] * 3, timeout=0.2
                )
                with pytest.raises(JobTimeout):
                    await batch.wait(timeout=0.05)  # only the wait gives up
                assert not batch.done
                await batch.wait(timeout=5)
                proxy.thaw()
                # The late acknowledgements are ignored, and the connection stays in step.
                assert await client.echo(b"after") == b"after"
                return batch

        batch = run(main())
    assert sorted(batch.errors) == [0, 1, 2]
    assert all(isinstance(e, JobTimeout) for e in batch.errors.values())
    assert batch.handles == [None, None, None]


def test_closing_the_client_ends_waiting_jobs_and_calls_back(gearmand):
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            client = AsyncClient(proxy.address, heartbeat_interval=None)
            assert await client.echo(b"up") == b"up"
            proxy.freeze()
            batch = await client.submit_background_many("batch_close", [b"x"] * 4)
            called = []
            batch.add_done_callback(called.append)
            await client.close()
            with pytest.raises(ClientClosed):
                await client.submit_background_many("batch_close", [b"y"])
            return batch, called

        batch, called = run(main())
    assert called == [batch] and batch.done
    assert all(isinstance(e, ClientClosed) for e in batch.errors.values())
    assert len(batch.errors) == 4


def test_jobs_of_a_batch_run_like_any_background_job(gearmand):
    """The worker side sees ordinary background jobs; nothing waits on their results."""

    async def main():
        async with AsyncClient(gearmand.address) as client:
            batch = await client.submit_background_many("batch_run", [b"1", b"2", b"3"])
            await batch
            assert batch.acknowledged == 3
            job = await client.submit("batch_run", b"4", background=True)
            await job
            return job

    job = run(main())
    assert job.state is JobState.CREATED
    with ScriptedWorker(gearmand, "batch_run") as worker:
        wait_until(lambda: len(worker.jobs) == 4, what="the worker to get every job")
    assert sorted(j[3] for j in worker.jobs) == [b"1", b"2", b"3", b"4"]
    assert totals([gearmand], "batch_run") == [0]


def test_a_batch_larger_than_the_window_on_a_frozen_server_times_out(gearmand):
    """The window stops the writing while the server does not answer; the batch's
    timeout still ends every job (sent or not) and the call returns."""
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            async with AsyncClient(proxy.address, heartbeat_interval=None) as client:
                assert await client.echo(b"up") == b"up"
                proxy.freeze()
                loop = asyncio.get_running_loop()
                start = loop.time()
                batch = await client.submit_background_many(
                    "batch_window", [b"x"] * 6000, timeout=0.3
                )
                returned_after = loop.time() - start
                await batch.wait(timeout=5)
                return batch, returned_after

        batch, returned_after = run(main())
    assert returned_after < 5
    assert len(batch.errors) == 6000
    assert all(isinstance(e, JobTimeout) for e in batch.errors.values())


def test_a_batch_that_timed_out_waiting_for_room_sends_nothing_more(gearmand):
    """Its jobs were told they timed out: once the server answers again, the room it makes
    must not carry more of that batch's submits to it."""
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            async with AsyncClient(proxy.address, heartbeat_interval=None) as client:
                assert await client.echo(b"up") == b"up"
                proxy.freeze()
                sending = asyncio.ensure_future(
                    client.submit_background_many("batch_late", [b"x"] * 6000, timeout=0.3)
                )
                await asyncio.sleep(0.35)  # timed out, and still waiting for room
                proxy.thaw()  # the sent jobs are acknowledged now, making room
                batch = await sending
                await batch.wait(timeout=5)
                assert await client.echo(b"after") == b"after"
                await asyncio.sleep(0.2)
                return batch

        batch = run(main())
        queued = totals([gearmand], "batch_late")[0]
    assert len(batch.errors) == 6000
    # Only what went out before the timeout (one window's worth at most) reached gearmand.
    assert 0 < queued <= 2048, queued
