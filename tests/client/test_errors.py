"""ERROR packets fail only the request they answer; client-side checks keep the in-order
matching in step."""

from __future__ import annotations

import asyncio

import pytest

from gearq.client import AdminClient, AsyncClient, JobState, QueueFull, ServerRejected
from gearq.protocol import ArgumentError

from .helpers import run, totals


def test_maxqueue_gives_queue_full_and_only_that_request_fails(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            errors = []
            client.on("error", lambda server, error: errors.append((server, error)))
            first = await client.submit("q", b"1", background=True)
            await first.created()  # the function now exists, so maxqueue applies to it
            with AdminClient(gearmand.address) as admin:
                admin.maxqueue("q", 1).raise_errors()
            # Pipelined: the rejected submits sit between requests that succeed.
            full1 = await client.submit("q", b"2", background=True)
            other = await client.submit("other", b"3", background=True)
            full2 = await client.submit("q", b"4", background=True)
            echo = asyncio.ensure_future(client.echo(b"still in step"))
            other2 = await client.submit("other", b"5", background=True)
            for job in (full1, full2):
                with pytest.raises(QueueFull) as info:
                    await job
                assert info.value.code == "QUEUE_ERROR"
                assert "full" in info.value.text
                assert job.state is JobState.ERROR
            assert await other.created()
            assert await other2.created()
            assert await echo == b"still in step"
            return client.servers[0], errors, other, other2

    server, errors, other, other2 = run(main())
    assert [type(e) for _, e in errors] == [QueueFull, QueueFull]
    assert all(s == server for s, _ in errors)
    assert totals([gearmand], "q") == [1]
    assert totals([gearmand], "other") == [2]
    assert other.handle != other2.handle


def test_foreground_queue_full(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            hold = await client.submit("fq", b"1")
            await hold.created()
            with AdminClient(gearmand.address) as admin:
                admin.maxqueue("fq", 1).raise_errors()
            with pytest.raises(QueueFull):
                await (await client.submit("fq", b"2"))
            return hold

    hold = run(main())
    assert hold.state is not JobState.COMPLETE


def test_unique_over_63_bytes_is_caught_client_side(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            ok = await client.submit("u", b"", background=True, unique="x" * 63)
            with pytest.raises(ArgumentError):
                await client.submit("u", b"", background=True, unique="x" * 64)
            with pytest.raises(ArgumentError):
                await client.get_status_unique("y" * 64)
            after = await client.submit("u", b"", background=True, unique="z")
            return await ok.created(), await after.created(), await client.echo(b"e")

    h1, h2, echo = run(main())
    assert h1 != h2 and echo == b"e"


def test_server_rejected_is_typed_and_the_connection_survives():
    # An ERROR gearmand sends for a request: fake it with a tiny server speaking the
    # protocol, since a validated client cannot provoke other codes from gearmand.
    from gearq.protocol import PacketType as P
    from gearq.protocol import RequestDecoder, encode_response

    async def server(reader, writer):
        decoder = RequestDecoder()
        while data := await reader.read(65536):
            for packet in decoder.feed_mixed(data):
                if getattr(packet, "type", None) is P.SUBMIT_JOB:
                    if packet.args[2] == b"reject":
                        writer.write(encode_response(P.ERROR, b"ARGUMENT_TOO_LARGE", b"nope"))
                    else:
                        writer.write(encode_response(P.JOB_CREATED, b"H:fake:1"))
                        writer.write(encode_response(P.WORK_COMPLETE, b"H:fake:1", b"ok"))
                elif getattr(packet, "type", None) is P.OPTION_REQ:
                    writer.write(encode_response(P.OPTION_RES, packet.args[0]))
            await writer.drain()

    async def main():
        srv = await asyncio.start_server(server, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        async with srv, AsyncClient(f"127.0.0.1:{port}") as client:
            bad = await client.submit("f", b"reject")
            good = await client.submit("f", b"fine")
            with pytest.raises(ServerRejected) as info:
                await bad
            assert not isinstance(info.value, QueueFull)
            assert info.value.code == "ARGUMENT_TOO_LARGE"
            return await good

    assert run(main()) == b"ok"


async def _fake_server(handler):
    """A tiny job server: ``handler(packet, write)`` for each request packet."""
    from gearq.protocol import PacketType as P
    from gearq.protocol import RequestDecoder, encode_response

    async def serve(reader, writer):
        decoder = RequestDecoder()
        while data := await reader.read(65536):
            for packet in decoder.feed_mixed(data):
                if getattr(packet, "type", None) is P.OPTION_REQ:
                    writer.write(encode_response(P.OPTION_RES, packet.args[0]))
                elif getattr(packet, "type", None) is not None:
                    handler(packet, lambda t, *a: writer.write(encode_response(t, *a)))
            await writer.drain()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_unsolicited_packets_and_callback_errors_never_escape(caplog):
    from gearq.protocol import PacketType as P

    def handler(packet, write):
        if packet.type is P.SUBMIT_JOB:
            write(P.NOOP)  # makes no sense for a client: logged and ignored
            write(P.WORK_COMPLETE, b"H:other:9", b"not ours")  # unknown handle: ignored
            write(P.JOB_CREATED, b"H:fake:1")
            write(P.WORK_COMPLETE, b"H:fake:1", b"ok")
            write(P.WORK_COMPLETE, b"H:fake:1", b"twice")  # already finished: ignored
        elif packet.type is P.ECHO_REQ:
            write(P.ERROR, b"SOME_ERROR", b"uncorrelated")  # answers the echo
            write(P.ERROR, b"MORE", b"with nothing pending")  # reported, nothing fails

    async def main():
        srv = await _fake_server(handler)
        port = srv.sockets[0].getsockname()[1]
        async with srv, AsyncClient(f"127.0.0.1:{port}") as client:
            errors = []
            client.on("error", lambda s, e: errors.append(e.code))
            client.on("error", lambda s, e: 1 / 0)  # a broken callback
            job = await client.submit("f", b"x")
            job.on("complete", lambda j, v: 1 / 0)
            result = await job.result(5)
            with pytest.raises(ServerRejected):
                await client.echo(b"e")
            await asyncio.sleep(0.1)
            job2 = await client.submit("f", b"y")
            return result, await job2.result(5), errors

    result, second, errors = run(main())
    assert (result, second) == (b"ok", b"ok")
    assert errors == ["SOME_ERROR", "MORE"]
    assert "unexpected NOOP" in caplog.text


def test_a_reply_out_of_step_drops_the_connection_and_fails_its_jobs():
    from gearq.client import JobConnectionLost
    from gearq.protocol import PacketType as P

    def handler(packet, write):
        if packet.type is P.SUBMIT_JOB:
            write(P.ECHO_RES, b"where JOB_CREATED belongs")

    async def main():
        srv = await _fake_server(handler)
        port = srv.sockets[0].getsockname()[1]
        async with srv, AsyncClient(f"127.0.0.1:{port}") as client:
            job = await client.submit("f", b"x")
            with pytest.raises(JobConnectionLost, match="out of step"):
                await job.result(5)

    run(main())


def test_a_job_created_out_of_step_fails_the_waiting_request():
    from gearq.net import ConnectionLost
    from gearq.protocol import PacketType as P

    def handler(packet, write):
        if packet.type is P.GET_STATUS:
            write(P.JOB_CREATED, b"H:fake:1")

    async def main():
        srv = await _fake_server(handler)
        port = srv.sockets[0].getsockname()[1]
        async with srv, AsyncClient(f"127.0.0.1:{port}") as client:
            with pytest.raises(ConnectionLost, match="out of step"):
                await client.get_status(b"H:x:1", f"127.0.0.1:{port}")

    run(main())
