"""GET_STATUS, GET_STATUS_UNIQUE and ECHO."""

from __future__ import annotations

import pytest

from gearq.client import AsyncClient
from gearq.net import ServerAddress
from gearq.protocol import ArgumentError

from .helpers import run, script, until


def test_get_status_follows_a_job(gearmand, workers):
    payload = script(["status", 3, 7], ["sleep", 0.6], ["complete", "ok"])

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("st", payload)
            await job.created()
            queued = await client.get_status(job)
            workers(gearmand, "st")
            await until(lambda: job.numerator == 3)
            running = await client.get_status(job.handle, job.server)
            await job
            finished = await client.get_status(job)
            return job, queued, running, finished

    job, queued, running, finished = run(main())
    assert (queued.known, queued.running) == (True, False)
    assert (running.known, running.running, running.numerator, running.denominator) == (
        True, True, 3, 7,
    )  # fmt: skip
    assert running.handle == job.handle and running.server == job.server
    assert (finished.known, finished.running) == (False, False)


def test_get_status_needs_the_server_with_a_bare_handle(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            with pytest.raises(ArgumentError, match="server"):
                await client.get_status(b"H:vm:1")
            with pytest.raises(ArgumentError, match="not one of"):
                await client.get_status(b"H:vm:1", "127.0.0.1:1")

    run(main())


def test_get_status_unique_counts_waiting_clients(two_servers, workers):
    payload = script(["status", 1, 4], ["sleep", 0.6], ["complete", "ok"])
    addresses = [s.address for s in two_servers]

    async def main():
        async with AsyncClient(addresses, strategy="sequence") as a, AsyncClient(
            addresses
        ) as b:
            job_a = await a.submit("su", payload, unique="the-unique")
            job_b = await b.submit("su", payload, unique="the-unique")
            await job_a.created()
            await job_b.created()
            # Asked of every server: the second knows nothing, the first answers.
            queued = await a.get_status_unique("the-unique")
            workers(two_servers[0], "su")
            await until(lambda: job_a.numerator == 1)
            running = await a.get_status_unique(b"the-unique", server=addresses[0])
            elsewhere = await a.get_status_unique("the-unique", server=addresses[1])
            await job_a
            await job_b
            unknown = await a.get_status_unique("the-unique")
            return queued, running, elsewhere, unknown

    queued, running, elsewhere, unknown = run(main())
    first = ServerAddress.parse(addresses[0])
    assert queued.server == first
    assert (queued.known, queued.running, queued.waiting) == (True, False, 2)
    assert (running.known, running.running, running.numerator, running.denominator) == (
        True, True, 1, 4,
    )  # fmt: skip
    assert running.unique == b"the-unique"
    assert not elsewhere.known and elsewhere.server == ServerAddress.parse(addresses[1])
    assert not unknown.known


def test_echo_and_ping(two_servers):
    addresses = [s.address for s in two_servers]

    async def main():
        async with AsyncClient(addresses) as client:
            payload = bytes(range(256)) * 10
            assert await client.echo(payload) == payload
            assert await client.echo(b"second", server=addresses[1]) == b"second"
            rtt = await client.ping()
            with pytest.raises(ArgumentError):
                await client.echo(b"gearq-heartbeat")
            return rtt

    assert 0 < run(main()) < 5
