"""gearmand dies, restarts, refuses, or sends ERROR: the worker goes on serving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gearq.protocol import PacketType, encode_request
from gearq.testing import GearmandProcess, pick_free_port
from gearq.worker import Job

from .helpers import eventually, make_worker, raw_client, run, serving


async def _restart(server: GearmandProcess) -> None:
    await asyncio.to_thread(server.kill)  # SIGKILL: no goodbye to anyone
    await asyncio.sleep(0.2)
    await asyncio.to_thread(server.restart)  # same port


def test_gearmand_killed_and_restarted_while_the_worker_is_idle(gearmand: GearmandProcess) -> None:
    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("f", lambda job: b"ok " + job.payload)
        async with serving(worker), raw_client(gearmand.port) as client:
            assert (await client.call(b"f", b"1")).result == b"ok 1"
            await client.close()
            old_pid = gearmand.pid
            await _restart(gearmand)
            assert gearmand.pid != old_pid
            await eventually(lambda: worker.connected == 1 and worker.stats.connects == 2)
            async with raw_client(gearmand.port) as again:
                assert (await again.call(b"f", b"2")).result == b"ok 2"

    run(main())


def test_gearmand_killed_and_restarted_while_the_worker_is_busy(gearmand: GearmandProcess) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handler(job: Job) -> bytes:
        if job.payload == b"busy":
            started.set()
            await release.wait()
        return b"done " + job.payload

    async def main() -> None:
        worker = make_worker(gearmand.address, concurrency=2)
        worker.register("f", handler)
        async with serving(worker):
            async with raw_client(gearmand.port) as client:
                await client.submit(b"f", b"busy", background=True)
                await asyncio.wait_for(started.wait(), 5)
            await _restart(gearmand)
            await eventually(lambda: worker.connected == 1 and worker.stats.connects == 2)
            release.set()  # the old job's answer has nowhere to go: dropped, no crash
            await eventually(lambda: worker.running_jobs == 0)
            async with raw_client(gearmand.port) as again:
                for i in range(5):
                    assert (await again.call(b"f", b"n%d" % i)).result == b"done n%d" % i
        assert worker.stats.jobs_lost == 1
        assert worker.stats.server_errors == 0

    run(main())


def test_a_refused_server_is_retried_until_it_comes_up(tmp_path: Path) -> None:
    port = pick_free_port()

    async def main() -> None:
        worker = make_worker(f"127.0.0.1:{port}")
        worker.register("f", lambda job: b"late but here")
        async with serving(worker, ready=False):
            await asyncio.sleep(0.5)  # a few refused connects, with backoff
            assert worker.connected == 0
            server = GearmandProcess(port=port, workdir=tmp_path / "late")
            await asyncio.to_thread(server.start)
            try:
                await worker.wait_ready(5)
                async with raw_client(port) as client:
                    assert (await client.call(b"f")).result == b"late but here"
            finally:
                await asyncio.to_thread(server.stop)

    run(main())


def test_an_error_packet_is_logged_and_survived(
    gearmand: GearmandProcess, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(job: Job) -> bytes:
        if job.payload == b"provoke":
            # A WORK_COMPLETE for a handle gearmand does not know: it answers ERROR.
            job._link.write(encode_request(PacketType.WORK_COMPLETE, b"H:nosuch:999", b""))
        return b"fine"

    async def main() -> None:
        worker = make_worker(gearmand.address, concurrency=1)
        worker.register("f", handler, inline=True)
        async with serving(worker), raw_client(gearmand.port) as client:
            assert (await client.call(b"f", b"provoke")).result == b"fine"
            await eventually(lambda: worker.stats.server_errors == 1)
            for _ in range(3):
                assert (await client.call(b"f", b"again")).result == b"fine"
        assert worker.stats.connects == 1

    with caplog.at_level("WARNING", logger="gearq.worker"):
        run(main())
    assert "JOB_NOT_FOUND" in caplog.text
