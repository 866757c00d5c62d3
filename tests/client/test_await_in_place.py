"""``await job`` on a loop with nothing else to do reads the job's connection in place
(gearq.net.inplace): the reply ends the await without suspending the task. The loop's
other duties still come first: its timers, callbacks from other threads, other tasks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gearq.client import AsyncClient
from gearq.net import inplace
from gearq.testing import GearmandProcess
from gearq.worker import Job, Worker

from .helpers import run


@pytest.fixture
def serve(gearmand: GearmandProcess) -> Iterator[Callable[[str, Any], None]]:
    """``serve(name, handler)``: a blocking worker for ``name`` in a thread of its own."""
    worker = Worker([gearmand.address], concurrency=2)
    thread: list[threading.Thread] = []

    def start(name: str, handler: Any) -> None:
        worker.register(name, handler)
        if not thread:
            thread.append(threading.Thread(target=worker.work, daemon=True))
            thread[0].start()

    yield start
    worker.stop(graceful=False)
    for t in thread:
        t.join(10)


async def _call(gearmand: GearmandProcess, name: str, payload: bytes) -> bytes:
    async with AsyncClient([gearmand.address]) as client:
        await (await client.submit(name, b"warm-up"))  # connected, and the function known
        job = await client.submit(name, payload)
        return await job


def _spy_waits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    outcomes: list[int] = []
    wait = inplace.InPlaceWaiter.wait

    def spy(self: inplace.InPlaceWaiter, left: float | None, *, running: bool = False) -> int:
        outcome = wait(self, left, running=running)
        outcomes.append(outcome)
        return outcome

    monkeypatch.setattr(inplace.InPlaceWaiter, "wait", spy)
    return outcomes


def test_a_lone_await_reads_its_reply_in_place(
    gearmand: GearmandProcess, serve: Callable[[str, Any], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    serve("echo", lambda job: job.payload)
    outcomes = _spy_waits(monkeypatch)
    assert run(_call(gearmand, "echo", b"hello")) == b"hello"
    assert inplace.DONE in outcomes


def test_timers_still_run_while_a_job_is_awaited_in_place(
    gearmand: GearmandProcess, serve: Callable[[str, Any], None]
) -> None:
    fired = threading.Event()

    def held(job: Job) -> bytes:
        # Answers only once the caller's timer has run (or gives up: the timer starved).
        return b"after the timer" if fired.wait(5) else b"timer starved"

    serve("held", held)

    async def main() -> bytes:
        asyncio.get_running_loop().call_later(0.05, fired.set)
        return await _call(gearmand, "held", b"")

    assert run(main()) == b"after the timer"


def test_other_threads_get_the_loop_while_a_job_is_awaited_in_place(
    gearmand: GearmandProcess, serve: Callable[[str, Any], None]
) -> None:
    ran = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    def poke(job: Job) -> bytes:
        loops[0].call_soon_threadsafe(ran.set)
        return b"loop ran it" if ran.wait(5) else b"loop starved"

    serve("poke", poke)

    async def main() -> bytes:
        loops.append(asyncio.get_running_loop())
        return await _call(gearmand, "poke", b"")

    assert run(main()) == b"loop ran it"


def test_other_tasks_run_while_a_job_is_awaited(
    gearmand: GearmandProcess, serve: Callable[[str, Any], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another task ready to run: the await does not wait in place (it would hold that
    task up), and both finish."""
    serve("echo", lambda job: job.payload)
    outcomes = _spy_waits(monkeypatch)
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(20):
            ticks.append(i)
            await asyncio.sleep(0)

    async def main() -> bytes:
        async with AsyncClient([gearmand.address]) as client:
            await (await client.submit("echo", b"warm-up"))
            outcomes.clear()
            other = asyncio.ensure_future(ticker())
            job = await client.submit("echo", b"x")
            got = await job
            await other
            return got

    assert run(main()) == b"x"
    assert ticks == list(range(20))
    # With the ticker ready, the await never waited in place: it left it to the loop.
    assert outcomes == []


def test_a_loop_watching_other_sockets_awaits_the_usual_way(
    gearmand: GearmandProcess, serve: Callable[[str, Any], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop that also serves something else (a listening socket here) must keep
    watching it: the await does not wait in place, and still gets its reply."""
    serve("echo", lambda job: job.payload)
    outcomes = _spy_waits(monkeypatch)

    async def main() -> bytes:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        try:
            return await _call(gearmand, "echo", b"served")
        finally:
            server.close()
            await server.wait_closed()

    assert run(main()) == b"served"
    assert outcomes and set(outcomes) == {inplace.OFF}


def test_a_loop_the_waiter_cannot_use_is_left_alone(
    gearmand: GearmandProcess, serve: Callable[[str, Any], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loop the waiter cannot use (uvloop, the proactor), ``await job`` takes the
    usual way: no wait in place, and no early flush of the client's writes (one is
    scheduled here)."""
    serve("echo", lambda job: job.payload)
    outcomes = _spy_waits(monkeypatch)
    flushes: list[int] = []
    flush_if_alone = AsyncClient._flush_if_alone

    def spy(self: AsyncClient, ready: Any) -> bool:
        flushes.append(len(ready))
        return flush_if_alone(self, ready)

    monkeypatch.setattr(AsyncClient, "_flush_if_alone", spy)

    async def main() -> bytes:
        inplace.waiter_for(asyncio.get_running_loop()).usable = False
        return await _call(gearmand, "echo", b"usual")

    assert run(main()) == b"usual"
    assert outcomes == [] and flushes == []
