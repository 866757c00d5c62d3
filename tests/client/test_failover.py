"""Servers dying, freezing and coming back: typed errors, failover, recover time."""

from __future__ import annotations

import asyncio

import pytest

from gearq.client import (
    AsyncClient,
    JobConnectionLost,
    JobState,
    NoServerAvailable,
)
from gearq.net import ConnectFailed, ConnectionLost, HeartbeatTimeout, ServerAddress
from tests.support import FaultProxy

from .helpers import run, script, totals, until

LONG = script(["sleep", 30], ["complete", "late"])


def _address(server) -> ServerAddress:
    return ServerAddress.parse(server.address)


def test_sigkill_mid_stream(three_servers, workers):
    """In-flight jobs of the killed server fail promptly naming it; the others go on; new
    submits avoid it; once restarted it is used again only after the recover time."""
    for server in three_servers:
        workers(server, "slow")
    victim = three_servers[1]

    async def main():
        addresses = [s.address for s in three_servers]
        async with AsyncClient(addresses, strategy="round_robin", recover_time=2.0) as client:
            lost = []
            client.on("disconnect", lambda server, error: lost.append((server, error)))
            jobs = [await client.submit("slow", LONG) for _ in range(9)]
            for job in jobs:
                await job.created()
            on_victim = [j for j in jobs if j.server == _address(victim)]
            others = [j for j in jobs if j.server != _address(victim)]
            assert len(on_victim) == 3
            loop = asyncio.get_running_loop()
            start = loop.time()
            victim.kill()
            for job in on_victim:
                with pytest.raises(JobConnectionLost) as info:
                    await job.result(timeout=5)
                assert info.value.server == _address(victim)
                assert info.value.handle == job.handle
                assert str(victim.port) in str(info.value)
            failed_after = loop.time() - start
            assert all(not j.done for j in others)
            assert lost and lost[0][0] == _address(victim)

            # New submits go to the two live servers only.
            new = [await client.submit("after", b"", background=True) for _ in range(10)]
            for job in new:
                await job.created()
            victim.restart()
            assert client.pool.health[1].retry_in() > 0
            during = [await client.submit("during", b"", background=True) for _ in range(6)]
            for job in during:
                await job.created()
            await until(lambda: client.pool.health[1].retry_in() == 0)
            back = [await client.submit("back", b"", background=True) for _ in range(6)]
            for job in back:
                await job.created()
            return failed_after

    failed_after = run(main(), timeout=60)
    assert failed_after < 5  # promptly: the RST/FIN of the dead server, not a timeout
    after = totals(three_servers, "after")
    assert after[1] == 0 and sum(after) == 10
    during = totals(three_servers, "during")
    assert during[1] == 0 and sum(during) == 6
    assert totals(three_servers, "back") == [2, 2, 2]


def test_all_servers_down_gives_a_typed_error_at_once(gearmand_factory):
    servers = [gearmand_factory() for _ in range(3)]
    for server in servers:
        server.kill()

    async def main():
        async with AsyncClient([s.address for s in servers], recover_time=30) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(NoServerAvailable) as first:
                await client.submit("f", b"x")
            with pytest.raises(NoServerAvailable) as second:  # all in recover time now
                await client.submit("f", b"x", background=True)
            return first.value, second.value, loop.time() - start

    first, second, took = run(main())
    assert took < 5
    assert set(first.errors) == {_address(s) for s in servers}
    assert all(isinstance(e, ConnectFailed) for e in first.errors.values())
    assert all(wait > 20 for wait in second.retry_in.values())
    assert "retry in" in str(second)


def test_frozen_server_is_detected_by_heartbeat(gearmand, workers):
    workers(gearmand, "slow")
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            async with AsyncClient(
                proxy.address, heartbeat_interval=0.3, heartbeat_timeout=0.5, recover_time=5
            ) as client:
                job = await client.submit("slow", LONG)
                await job.created()
                loop = asyncio.get_running_loop()
                start = loop.time()
                proxy.freeze()
                with pytest.raises(JobConnectionLost) as info:
                    await job.result(timeout=10)
                took = loop.time() - start
                with pytest.raises(NoServerAvailable):
                    await client.submit("slow", b"x")
                return info.value, took

        error, took = run(main())
    assert isinstance(error.__cause__, HeartbeatTimeout)
    assert error.server == ServerAddress.parse(proxy.address)
    assert took < 5  # bound: interval + timeout = 0.8 s


def test_resubmit_on_failure_moves_the_job_to_another_server(two_servers, workers):
    first, second = two_servers
    workers(first, "idem")
    workers(second, "idem")
    payload = script(["sleep", 0.5], ["complete", "done"])

    async def main():
        async with AsyncClient([s.address for s in two_servers], recover_time=30) as client:
            job = await client.submit("idem", payload, unique="idem-1", resubmit_on_failure=True)
            await job.created()
            assert job.server == _address(first)
            first.kill()
            return job, await job.result(timeout=10)

    job, result = run(main())
    assert result == b"done"
    assert job.attempts == 2 and job.server == _address(second)
    assert job.unique == b"idem-1"


def test_unacknowledged_background_submit_fails_with_the_connection_error(gearmand):
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            async with AsyncClient(proxy.address, heartbeat_interval=None) as client:
                assert await client.echo(b"up") == b"up"
                proxy.freeze()
                job = await client.submit("bg", b"x", background=True)
                await asyncio.sleep(0.1)
                assert job.state is JobState.PENDING
                proxy.reset()
                with pytest.raises(JobConnectionLost) as info:
                    await job
                return info.value

        error = run(main())
    assert error.handle is None
    assert "may or may not exist" in str(error)
    # The server is named once, not again in the connection error quoted after it.
    assert str(error).count(proxy.address) == 1, str(error)


def test_no_server_available_names_each_server_once(two_servers):
    for server in two_servers:
        server.kill()

    async def main():
        async with AsyncClient([s.address for s in two_servers]) as client:
            with pytest.raises(NoServerAvailable) as info:
                await client.submit("down", b"x")
            return info.value

    message = str(run(main()))
    for server in two_servers:
        assert message.count(server.address) == 1, message
    assert message.count("cannot connect") == 2


def test_unacknowledged_background_submit_is_resubmitted_when_opted_in(two_servers):
    first, second = two_servers
    with FaultProxy(first.host, first.port) as proxy:

        async def main():
            async with AsyncClient(
                [proxy.address, second.address], heartbeat_interval=None, recover_time=30
            ) as client:
                assert await client.echo(b"up") == b"up"
                proxy.freeze()
                job = await client.submit(
                    "bg", b"x", background=True, unique="same-unique", resubmit_on_failure=True
                )
                await asyncio.sleep(0.1)
                proxy.cut()
                await job.created()
                return job

        job = run(main())
    assert job.server == _address(second) and job.attempts == 2
    assert totals([second], "bg") == [1]


def test_connection_events(gearmand):
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main():
            events = []
            async with AsyncClient(proxy.address, recover_time=0.2) as client:
                for name in ("connect", "disconnect", "error"):
                    client.on(name, lambda s, e, name=name: events.append((name, s, type(e))))
                await client.echo(b"1")
                proxy.reset()
                await asyncio.sleep(0.1)
                proxy.refuse(True)
                await asyncio.sleep(0.25)
                with pytest.raises((NoServerAvailable, ConnectionLost, ConnectFailed)):
                    await client.echo(b"2")
                proxy.refuse(False)
                await asyncio.sleep(0.3)
                await client.echo(b"3")
            return events

        events = run(main())
    names = [e[0] for e in events]
    assert names[:2] == ["connect", "disconnect"]
    assert events[1][2] is ConnectionLost
    assert "connect" in names[2:]


def test_closing_the_client_fails_waiting_jobs(gearmand):
    from gearq.client import ClientClosed

    async def main():
        client = AsyncClient(gearmand.address)
        job = await client.submit("nobody", b"x")
        await job.created()
        await client.close()
        with pytest.raises(ClientClosed):
            await job
        with pytest.raises(ClientClosed):
            await client.submit("nobody", b"x")

    run(main())


def test_close_while_a_job_is_resubmitted_ends_the_job(gearmand):
    """close() while a resubmit is still connecting to the next server must end the job
    with ClientClosed, never leave it waiting forever."""
    import socket

    from gearq.client import ClientClosed

    # A listener whose backlog is full: a connect to it hangs (SYNs are dropped), which
    # holds the resubmit in the middle of connecting.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(stuck.getsockname())
        fillers.append(filler)
    stuck_address = f"127.0.0.1:{stuck.getsockname()[1]}"

    async def main():
        servers = [gearmand.address, stuck_address]
        async with AsyncClient(servers, recover_time=30, connect_timeout=20) as client:
            job = await client.submit("idem", b"x", unique="idem-2", resubmit_on_failure=True)
            await job.created()
            gearmand.kill()
            await until(lambda: job.attempts == 2, what="the resubmit to start")
            await asyncio.sleep(0.3)
            assert not job.done
            await client.close()
            with pytest.raises(ClientClosed):
                await asyncio.wait_for(job.result(), 5)

    try:
        run(main())
    finally:
        for sock in [*fillers, stuck]:
            sock.close()
