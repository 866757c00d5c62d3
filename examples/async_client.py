"""The asyncio client: many jobs in flight, streamed output with progress, and a timeout.

    GEARQ_SERVERS=127.0.0.1:4730 python examples/async_client.py
    python examples/async_client.py                      # starts an embedded job server

An AsyncWorker serving the three functions runs on the same event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time

from gearq.client import AsyncClient, Job, JobTimeout
from gearq.worker import AsyncWorker
from gearq.worker import Job as WorkerJob


def checksum(job: WorkerJob) -> bytes:
    return hashlib.sha256(job.payload).hexdigest()[:12].encode()


async def export_report(job: WorkerJob) -> bytes:
    rows = int(job.payload)
    for row in range(1, rows + 1):
        await asyncio.sleep(0.05)  # fetch a row
        job.send_data(f"row {row}: {row * 17} units\n".encode())
        job.send_status(row, rows)
    return f"{rows} rows exported".encode()


async def slow_lookup(job: WorkerJob) -> bytes:
    await asyncio.sleep(2)
    return b"too late"


def show_progress(job: Job, progress: tuple[int, int]) -> None:
    done, total = progress
    print(f"  progress {done}/{total}")


async def run(servers: list[str]) -> None:
    worker = AsyncWorker(servers, concurrency=16)
    worker.register("checksum", checksum, inline=True)  # returns at once: run it on the loop
    worker.register("export_report", export_report)
    worker.register("slow_lookup", slow_lookup)
    serving = asyncio.ensure_future(worker.run())
    try:
        await worker.wait_ready(timeout=10)
        async with AsyncClient(servers) as client:
            # 1. Many jobs in flight: submit them all, then collect the results.
            started = time.perf_counter()
            documents = [f"document {n}".encode() for n in range(500)]
            jobs = await client.submit_many("checksum", documents)
            digests = [await job for job in jobs]
            took = time.perf_counter() - started
            print(f"checksum: {len(digests)} results in {took:.2f} s, first {digests[0].decode()}")

            # 2. Streaming: WORK_DATA chunks as they arrive, WORK_STATUS through a callback.
            job = await client.submit("export_report", b"4")
            job.on("status", show_progress)
            async for chunk in job.stream():
                print(f"  data: {chunk.decode().strip()}")
            print(f"export_report -> {(await job).decode()}")

            # 3. A client-side timeout: stop waiting for a job that takes too long.
            job = await client.submit("slow_lookup", b"user:42", timeout=0.5)
            try:
                await job
            except JobTimeout as exc:
                print(f"slow_lookup: {exc} (state {job.state.value})")
    finally:
        # Graceful: the worker finishes the lookup the client gave up on, then stops.
        await worker.stop(graceful=True, timeout=10)
        await serving


def main(servers: list[str]) -> None:
    asyncio.run(run(servers))


def configured_servers() -> list[str]:
    spec = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GEARQ_SERVERS", "")
    return [s.strip() for s in spec.split(",") if s.strip()]


if __name__ == "__main__":
    servers = configured_servers()
    if servers:
        main(servers)
    else:
        from gearq.server import EmbeddedServer

        with EmbeddedServer() as server:
            print(f"(no server given: using an embedded job server at {server.address})")
            main([server.address])
