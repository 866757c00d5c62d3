"""Stopping: graceful (finish what is in hand, lose nothing), hard (gearmand requeues), the
blocking twin, signals, and a worker killed with SIGKILL mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gearq.protocol import admin as adm
from gearq.testing import GearmandProcess
from gearq.worker import Job, Worker

from .helpers import admin, eventually, make_worker, queued, raw_client, run, serving

ROOT = str(Path(__file__).resolve().parents[2])


def _retries(port: int) -> dict[str, int]:
    return {row.handle: row.retries for row in admin(port, adm.show_jobs())}


def test_graceful_stop_finishes_jobs_in_hand_and_loses_none(gearmand: GearmandProcess) -> None:
    finished: list[bytes] = []

    async def handler(job: Job) -> bytes:
        await asyncio.sleep(0.4)
        finished.append(job.unique)
        return b""

    async def main() -> None:
        worker = make_worker(gearmand.address, concurrency=3)
        worker.register("work", handler)
        async with raw_client(gearmand.port) as client:
            await client.submit_many_bg(b"work", [b""] * 10, prefix=b"job-")
        task = asyncio.ensure_future(worker.run())
        await eventually(lambda: worker.running_jobs == 3)
        started = worker.stats.jobs_started
        await worker.stop(graceful=True, timeout=10)
        await task
        assert worker.stats.jobs_started == started == 3  # nothing new taken while stopping
        assert len(finished) == 3 and worker.stats.completed == 3
        # The rest is still queued, none was requeued (gearmand counts a retry for that).
        # (gearmand serves each connection on its own I/O thread: give it a moment to read
        # the worker's last packets before asking it on another connection.)
        await eventually(lambda: queued(gearmand.port, "work") == 7, timeout=3)
        assert set(_retries(gearmand.port).values()) == {0}
        workers = admin(gearmand.port, adm.workers())
        assert not any("work" in row.functions for row in workers)

    run(main())


def test_graceful_stop_deadline_hands_unfinished_jobs_back(gearmand: GearmandProcess) -> None:
    async def stubborn(job: Job) -> bytes:
        await asyncio.sleep(30)
        return b"never"

    async def main() -> None:
        first = make_worker(gearmand.address)
        first.register("stubborn", stubborn)
        async with raw_client(gearmand.port) as client:
            handle = await client.submit(b"stubborn")
            task = asyncio.ensure_future(first.run())
            await eventually(lambda: first.running_jobs == 1)
            started = time.monotonic()
            await first.stop(graceful=True, timeout=0.5)
            await task
            assert 0.4 < time.monotonic() - started < 3
            # Requeued, not lost (gearmand notices the closed connection on its own thread).
            await eventually(lambda: _retries(gearmand.port) == {handle.decode(): 1}, timeout=3)
            second = make_worker(gearmand.address)
            second.register("stubborn", lambda job: b"finished by the second worker")
            async with serving(second):
                out = await client.outcome(handle)
        assert out.result == b"finished by the second worker"

    run(main())


def test_hard_stop_lets_gearmand_requeue_the_jobs_in_hand(gearmand: GearmandProcess) -> None:
    """... and the next worker can learn that it is the job's second hand-out."""

    async def hold(job: Job) -> bytes:
        assert await job.fetch_attempt() == 1
        await asyncio.sleep(30)
        return b""

    async def async_attempt(job: Job) -> bytes:
        return b"attempt %d" % (await job.fetch_attempt() or 0)

    async def main() -> None:
        worker = make_worker(gearmand.address, concurrency=2)
        worker.register("hold", hold)
        async with raw_client(gearmand.port) as client:
            handles = [await client.submit(b"hold", unique=b"%d" % i) for i in range(2)]
            task = asyncio.ensure_future(worker.run())
            await eventually(lambda: worker.running_jobs == 2)
            await worker.stop(graceful=False)
            await task
            expected = {h.decode(): 1 for h in handles}
            await eventually(lambda: _retries(gearmand.port) == expected, timeout=3)
            second = make_worker(gearmand.address, concurrency=2)
            second.register("hold", async_attempt)
            async with serving(second):
                packets = [await client.read() for _ in handles]
        assert sorted(p.args for p in packets) == [(h, b"attempt 2") for h in sorted(handles)]

    run(main())


def test_blocking_worker_stops_from_another_thread(gearmand: GearmandProcess) -> None:
    worker = Worker([gearmand.address], poll_interval=0.2)
    worker.register("f", lambda job: b"sync " + job.payload)
    thread = threading.Thread(target=worker.work)
    thread.start()
    try:

        async def call() -> bytes:
            await eventually(lambda: worker.async_worker.connected == 1)
            async with raw_client(gearmand.port) as client:
                return (await client.call(b"f", b"ok")).result

        assert run(call()) == b"sync ok"
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    worker.stop()  # after the end: a no-op


def test_blocking_worker_stop_before_work_returns_at_once(gearmand: GearmandProcess) -> None:
    worker = Worker([gearmand.address])
    worker.register("f", lambda job: b"")
    worker.stop()
    started = time.monotonic()
    worker.work()
    assert time.monotonic() - started < 2


def _spawn(port: int, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.worker.worker_proc", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        pytest.fail(f"worker process did not start: {line!r}")
    return proc


def _await_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith(prefix), line
    return line


def test_sigterm_stops_a_worker_process_gracefully(gearmand: GearmandProcess) -> None:
    proc = _spawn(gearmand.port, "--sleep", "0.5")
    try:

        async def main() -> bytes:
            async with raw_client(gearmand.port) as client:
                handle = await client.submit(b"slow")
                await asyncio.to_thread(_await_line, proc, "started")
                proc.send_signal(signal.SIGTERM)  # while the job runs
                return (await client.outcome(handle)).result

        assert run(main()) == b"done-by-%d" % proc.pid
        assert proc.wait(10) == 0
        assert _await_line(proc, "stopped") == "stopped completed=1"
    finally:
        proc.kill()
        proc.wait()


def test_a_worker_killed_mid_job_lets_another_worker_finish_it(gearmand: GearmandProcess) -> None:
    proc = _spawn(gearmand.port, "--hold")
    try:

        async def main() -> None:
            async with raw_client(gearmand.port) as client:
                handle = await client.submit(b"slow", b"precious")
                line = await asyncio.to_thread(_await_line, proc, "started")
                assert line == f"started {handle.decode()}"
                os.kill(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 10)
                await eventually(lambda: _retries(gearmand.port).get(handle.decode()) == 1)
                second = make_worker(gearmand.address)
                second.register("slow", lambda job: b"rescued " + job.payload)
                async with serving(second):
                    out = await client.outcome(handle)
            assert out.result == b"rescued precious"

        run(main())
    finally:
        proc.kill()
        proc.wait()
