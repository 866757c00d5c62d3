"""Epoch jobs on gearmand 1.1.20: nobody wakes the worker when they fall due, so the poll
interval must; and a future epoch job makes gearmand answer every PRE_SLEEP with NOOP."""

from __future__ import annotations

import asyncio
import time

from gearq.testing import GearmandProcess
from gearq.worker import Job

from .helpers import eventually, make_worker, raw_client, run, serving


def test_an_epoch_job_runs_no_earlier_than_its_time_and_at_most_2_5_s_after(
    gearmand: GearmandProcess,
) -> None:
    ran: list[float] = []

    def handler(job: Job) -> bytes:
        ran.append(time.time())
        return b""

    async def main() -> None:
        worker = make_worker(gearmand.address, poll_interval=1.0)  # the default
        worker.register("later", handler)
        async with serving(worker), raw_client(gearmand.port) as client:
            await asyncio.sleep(0.3)  # the worker is asleep (PRE_SLEEP) when the job comes
            epoch = int(time.time()) + 2
            await client.submit_epoch(b"later", epoch, unique=b"e1")
            await eventually(lambda: ran, timeout=6)
        assert epoch <= ran[0] <= epoch + 2.5, (epoch, ran[0])

    run(main())


def test_a_future_epoch_job_does_not_make_the_worker_spin(gearmand: GearmandProcess) -> None:
    """With a future epoch job at the head of NORMAL and a LOW job behind it, gearmand
    answers PRE_SLEEP with an immediate NOOP and GRAB with NO_JOB (7k round trips/s for a
    naive worker). Both jobs still run once the epoch has passed."""
    ran: dict[bytes, float] = {}

    def handler(job: Job) -> bytes:
        ran[job.unique] = time.time()
        return b""

    async def main() -> None:
        worker = make_worker(gearmand.address, poll_interval=1.0)
        worker.register("mixed", handler)
        async with serving(worker), raw_client(gearmand.port) as client:
            epoch = int(time.time()) + 3
            await client.submit_epoch(b"mixed", epoch, unique=b"epoch")
            await client.submit(b"mixed", unique=b"low", background=True, priority="low")
            grabs_before = worker.stats.grabs
            await asyncio.sleep(2.0)
            spun = worker.stats.grabs - grabs_before
            assert spun < 40, f"{spun} GRABs in 2 s: the worker spins"
            await eventually(lambda: len(ran) == 2, timeout=6)
        assert epoch <= ran[b"epoch"] <= epoch + 2.5

    run(main())
