"""gearq from asyncio: await a task, gather many, stream a generator task, watch progress.

    GEARQ_SERVERS=127.0.0.1:4730 python examples/asyncio_app.py
    python examples/asyncio_app.py            # starts an embedded job server

The worker runs on the same event loop here so that the example is self-contained; in
production it is a separate process (``gearq worker examples.asyncio_app``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from gearq import App, TaskContext

app = App("async-example")


@app.task(name="aio.fetch_price")
async def fetch_price(symbol: str) -> float:
    await asyncio.sleep(0.05)  # an HTTP call, say
    return round(sum(map(ord, symbol)) / 10, 2)


@app.task(name="aio.tail_log")
async def tail_log(lines: int) -> AsyncIterator[str]:
    for n in range(1, lines + 1):
        await asyncio.sleep(0.02)
        yield f"line {n}"


@app.task(name="aio.train", bind=True)
async def train(ctx: TaskContext, epochs: int) -> str:
    for epoch in range(1, epochs + 1):
        await asyncio.sleep(0.1)
        ctx.progress(epoch, epochs)
    return f"trained for {epochs} epochs"


async def client_side() -> None:
    # 1. One call: adelay() submits and returns an AsyncResult; await it for the value.
    result = await fetch_price.adelay("GRQ")
    print(f"fetch_price('GRQ') = {await result}")

    # 2. Many calls at once: submit them all, then gather. They share one connection.
    symbols = [f"S{n:03d}" for n in range(200)]
    started = time.perf_counter()
    results = [await fetch_price.adelay(s) for s in symbols]
    prices = await asyncio.gather(*(r.aget(timeout=30) for r in results))
    took = time.perf_counter() - started
    print(f"gathered {len(prices)} prices in {took:.2f} s; first {prices[0]}, last {prices[-1]}")

    # 3. Streaming: a generator task's items arrive while it runs.
    async for line in await tail_log.adelay(3):
        print(f"streamed: {line}")

    # 4. Progress: the task reports it; the result keeps the latest (numerator, denominator).
    job = await train.adelay(4)
    seen = None
    while not job.ready():
        if job.progress is not None and job.progress != seen:
            seen = job.progress
            print(f"progress {seen[0]}/{seen[1]}")
        await asyncio.sleep(0.01)
    value = await job
    done, total = job.progress or (0, 0)
    print(f"train -> {value} (last progress {done}/{total})")

    # 5. A timeout of our own: stop waiting (the task itself goes on).
    slow = await train.adelay(5)
    try:
        await slow.aget(timeout=0.2)
    except TimeoutError as exc:
        print(f"gave up waiting: {type(exc).__name__}")


async def main() -> None:
    worker = app.worker(concurrency=50)
    serving = asyncio.ensure_future(worker.run())
    try:
        await worker.wait_ready(timeout=10)
        await client_side()
    finally:
        await worker.stop(graceful=True, timeout=10)  # lets the slow task finish
        await serving
        await app.aclose()


if __name__ == "__main__":
    if os.environ.get("GEARQ_SERVERS"):
        asyncio.run(main())
    else:
        from gearq.server import EmbeddedServer

        with EmbeddedServer() as server:
            app.configure(servers=server.address)
            print(f"(no GEARQ_SERVERS: using an embedded job server at {server.address})")
            asyncio.run(main())
