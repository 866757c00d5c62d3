"""Server choice of each strategy, checked through the admin ``status`` of three servers."""

from __future__ import annotations

import asyncio
from collections import Counter

from gearq.client import AsyncClient, Strategy
from gearq.client.pool import UniqueHashStrategy
from gearq.net import ServerAddress

from .helpers import run, totals, until


async def _bg(client, function, count, unique=None):
    jobs = []
    for i in range(count):
        u = None if unique is None else f"{unique}{i}"
        jobs.append(await client.submit(function, b"x", background=True, unique=u))
    for job in jobs:
        await job.created()
    return jobs


def test_sequence_uses_the_first_server_only(three_servers):
    async def main():
        async with AsyncClient([s.address for s in three_servers]) as client:
            await _bg(client, "seq", 12)

    run(main())
    assert totals(three_servers, "seq") == [12, 0, 0]


def test_sequence_fails_over_and_back_after_the_recover_time(three_servers):
    first = three_servers[0]

    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, recover_time=1.5) as client:
            await _bg(client, "a", 2)
            first.kill()
            await asyncio.sleep(0.1)  # the client sees the connection drop
            await _bg(client, "b", 2)  # first is in its recover time: the second server
            first.restart()
            # Restarted, but still within the recover time: not used yet.
            assert client.pool.health[0].retry_in() > 0
            await _bg(client, "c", 2)
            await until(lambda: client.pool.health[0].retry_in() == 0)
            await _bg(client, "d", 2)  # back to the first server (GearmaNode never did)

    run(main())
    assert totals(three_servers, "b") == [0, 2, 0]
    assert totals(three_servers, "c") == [0, 2, 0]
    assert totals(three_servers, "d") == [2, 0, 0]


def test_round_robin_spreads_evenly(three_servers):
    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, strategy="round_robin") as client:
            await _bg(client, "rr", 30)

    run(main())
    assert totals(three_servers, "rr") == [10, 10, 10]


def test_round_robin_skips_a_dead_server(three_servers):
    three_servers[1].kill()

    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, strategy="round_robin") as client:
            await _bg(client, "rr", 20)

    run(main())
    counts = totals([three_servers[0], three_servers[2]], "rr")
    assert sum(counts) == 20 and min(counts) >= 9


def test_random_uses_every_server(three_servers):
    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, strategy="random") as client:
            await _bg(client, "rnd", 60)

    run(main())
    counts = totals(three_servers, "rnd")
    # P(some server gets none of 60) = 3 * (2/3)**60 < 1e-10.
    assert sum(counts) == 60 and min(counts) > 0


def test_unique_hash_routes_each_unique_to_its_ranked_server(three_servers):
    addresses = [s.address for s in three_servers]
    uniques = [f"key-{i}" for i in range(30)]

    async def main():
        async with AsyncClient(addresses, strategy="unique_hash") as client:
            await _bg(client, "uh", 30, unique="key-")
            # A second client with the same uniques: same servers, so the jobs coalesce.
            async with AsyncClient(addresses, strategy="unique_hash") as other:
                await _bg(other, "uh", 30, unique="key-")
            strategy = client.pool.strategy
            assert isinstance(strategy, UniqueHashStrategy)
            return Counter(strategy.rank(u.encode())[0] for u in uniques)

    expected = run(main())
    counts = totals(three_servers, "uh")
    assert counts == [expected[0], expected[1], expected[2]]
    assert sum(counts) == 30  # 60 submits, 30 jobs: every pair coalesced
    assert min(counts) > 0


def test_unique_hash_fails_over_to_the_next_ranked_server(three_servers):
    addresses = [s.address for s in three_servers]
    strategy = UniqueHashStrategy()
    strategy.bind([ServerAddress.parse(a) for a in addresses])
    # A unique whose favourite server is the first one.
    unique = next(f"k{i}" for i in range(1000) if strategy.rank(f"k{i}".encode())[0] == 0)
    second = strategy.rank(unique.encode())[1]
    three_servers[0].kill()

    async def main():
        async with AsyncClient(addresses, strategy="unique_hash") as client:
            job = await client.submit("uf", b"x", background=True, unique=unique)
            await job.created()
            return job.server

    server = run(main())
    assert server is not None and server.port == three_servers[second].port
    counts = totals(three_servers[1:], "uf")
    assert counts[second - 1] == 1 and sum(counts) == 1


class LastServer(Strategy):
    """A plugged-in strategy: the last healthy server."""

    def order(self, available, unique):
        return list(reversed(available))


def test_a_custom_strategy_can_be_plugged_in(three_servers):
    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, strategy=LastServer()) as client:
            await _bg(client, "custom", 4)

    run(main())
    assert totals(three_servers, "custom") == [0, 0, 4]
