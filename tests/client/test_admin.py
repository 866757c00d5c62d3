"""The admin client: every command, per-server results, a down server, cancel by server."""

from __future__ import annotations

import pytest

from gearq.client import AdminClient, AsyncAdminClient, AsyncClient, JobFailed
from gearq.net import ConnectFailed, ServerAddress
from gearq.protocol import AdminError

from .helpers import run


def test_every_command_on_two_servers_with_one_down(two_servers):
    up, down = two_servers
    up_a, down_a = ServerAddress.parse(up.address), ServerAddress.parse(down.address)

    async def fill():
        async with AsyncClient(up.address) as client:
            job = await client.submit("adm", b"x", background=True, unique="adm-unique")
            await job.created()
            return job.handle

    handle = run(fill())
    down.kill()
    with AdminClient([up.address, down.address], timeout=5) as admin:
        status = admin.status()
        assert list(status) == [up_a, down_a]
        assert isinstance(status[down_a].error, ConnectFailed)
        assert status.errors().keys() == {down_a}
        (row,) = [r for r in status[up_a].result() if r.function == "adm"]
        assert (row.total, row.running, row.workers) == (1, 0, 0)

        prio = admin.priority_status()[up_a].result()
        assert [(r.normal, r.high, r.low) for r in prio if r.function == "adm"] == [(1, 0, 0)]

        jobs = admin.show_jobs()[up_a].result()
        assert [j.handle for j in jobs] == [handle.decode()]
        assert admin.show_unique_jobs()[up_a].result() == ("adm-unique",)
        assert admin.version()[up_a].result().startswith("1.")
        assert admin.getpid()[up_a].result() == up.pid
        assert admin.getpid().values_ok() == {up_a: up.pid}
        workers = admin.workers()[up_a].result()
        assert workers  # at least the admin connection itself
        assert admin.maxqueue("adm", 5)[up_a].ok
        with pytest.raises(ConnectFailed):
            admin.version().raise_errors()


def test_cancel_job_needs_its_server(two_servers):
    a, b = two_servers

    async def main():
        async with AsyncClient([a.address, b.address], strategy="round_robin") as client:
            ja = await client.submit("cx", b"1")
            jb = await client.submit("cx", b"2")
            await ja.created()
            await jb.created()
            assert ja.handle == jb.handle  # each server numbers from 1
            async with AsyncAdminClient([a.address, b.address]) as admin:
                with pytest.raises(Exception, match="needs the server"):
                    await admin.cancel_job(ja.handle)
                await admin.cancel_job(ja)  # the Job carries its server
                with pytest.raises(JobFailed):
                    await ja.result(5)
                assert not jb.done
                with pytest.raises(AdminError) as info:
                    await admin.cancel_job(b"H:nope:99", server=b.address)
                assert info.value.code == "UNKNOWN_JOB"
                await admin.cancel_job(jb.handle, server=b.address)
                with pytest.raises(JobFailed):
                    await jb.result(5)

    run(main())


def test_admin_errors_are_per_command(gearmand):
    with AdminClient(gearmand.address) as admin:
        from gearq.protocol.admin import AdminCommand, ReplyKind

        results = admin.command(AdminCommand(b"shutdown\n", ReplyKind.OK))
        error = next(iter(results.values())).error
        assert isinstance(error, AdminError) and error.code == "UNKNOWN_COMMAND"
        # The connection stays in step for the next command.
        assert next(iter(admin.version().values())).ok
