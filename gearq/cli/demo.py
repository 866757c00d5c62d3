"""``gearq demo``: a job server, a worker and a client in one process, end to end.

With no servers given (argument or ``GEARQ_SERVERS``) it runs on the embedded job server,
so it needs nothing installed beyond gearq itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from ..client import AsyncClient, JobException
from ..net import ServerSpec, parse_servers
from ..worker import AsyncWorker, Job

__all__ = ["run_demo"]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _reverse(job: Job) -> bytes:
    return job.payload[::-1]


async def _count(job: Job) -> bytes:
    total = int(job.payload or b"5")
    for n in range(1, total + 1):
        await asyncio.sleep(0.05)
        job.send_status(n, total)
        job.send_data(f"chunk {n}".encode())
    return f"counted to {total}".encode()


def _divide(job: Job) -> bytes:
    a, b = (int(x) for x in job.payload.split(b"/"))
    return str(a // b).encode()


async def _main(servers: list[ServerSpec]) -> None:
    worker = AsyncWorker(servers, concurrency=8, poll_interval=0.5)
    worker.register("demo.reverse", _reverse)
    worker.register("demo.count", _count)
    worker.register("demo.divide", _divide)
    serving = asyncio.ensure_future(worker.run())
    try:
        await worker.wait_ready(timeout=5)
        async with AsyncClient(servers) as client:
            _say("1. A foreground job and its result")
            job = await client.submit("demo.reverse", b"hello, gearman")
            _say(f"   demo.reverse('hello, gearman') -> {(await job.result(10)).decode()!r}")

            _say("2. Progress and streamed data while a job runs")
            job = await client.submit("demo.count", b"5")
            async for chunk in job.stream():
                num, den = job.numerator, job.denominator
                _say(f"   [{'#' * num}{'.' * (den - num)}] {chunk.decode()}")
            _say(f"   result: {(await job.result(10)).decode()!r}")

            _say("3. Many jobs at once")
            started = time.perf_counter()
            jobs = await client.submit_many("demo.reverse", [str(i).encode() for i in range(1000)])
            results = [await j.result(30) for j in jobs]
            took = time.perf_counter() - started
            assert results[123] == b"321"
            _say(f"   1000 jobs in {took:.2f} s ({1000 / took:,.0f} jobs/s)")

            _say("4. A remote error reaches the caller")
            job = await client.submit("demo.divide", b"1/0")
            try:
                await job.result(10)
            except JobException as exc:
                first = exc.data.decode(errors="replace").splitlines()[0]
                _say(f"   demo.divide('1/0') raised remotely: {first}")

            _say("5. A background job, then its status")
            bg = await client.submit("demo.count", b"3", background=True)
            await asyncio.sleep(0.05)
            assert bg.handle is not None and bg.server is not None
            status = await client.get_status(bg.handle, bg.server)
            _say(
                f"   {bg.handle.decode()} on {bg.server}: known={status.known} "
                f"running={status.running} progress={status.numerator}/{status.denominator}"
            )
    finally:
        await worker.stop(graceful=True, timeout=10)
        await serving


def run_demo(servers: str | None = None) -> int:
    # The remote error below is on purpose; the worker's log line about it is noise here.
    logging.getLogger("gearq.worker").setLevel(logging.ERROR)
    servers = servers or os.environ.get("GEARQ_SERVERS") or None
    if servers:
        addresses: list[ServerSpec] = [str(a) for a in parse_servers(servers)]
        _say(f"gearq demo on {', '.join(map(str, addresses))}")
        return _run(addresses)
    from ..server import EmbeddedServer

    with EmbeddedServer() as server:
        _say(f"gearq demo on the embedded job server at {server.address}")
        _say("(set GEARQ_SERVERS=host:port to use your gearmand instead)")
        _say()
        status = _run([server.address])
    if status == 0:
        _say()
        _say("Done: server, worker and client stopped cleanly.")
    return status


def _run(addresses: list[ServerSpec]) -> int:
    try:
        asyncio.run(_main(addresses))
    except (asyncio.TimeoutError, TimeoutError):
        print(
            f"gearq demo: no job server answered at {', '.join(map(str, addresses))}",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # the demo reports in one line; it does not dump a traceback
        print(f"gearq demo failed: {exc!r}", file=sys.stderr)
        return 1
    return 0
