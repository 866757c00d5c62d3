"""A worker alone on its loop waits for its connections in place (gearq.net.inplace): jobs
are read without a pass of the event loop, and everything else the loop has to do still
happens on time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from gearq.client import Client
from gearq.net import Connection, ConnectionOptions
from gearq.net.inplace import InPlaceWaiter
from gearq.protocol import Packet, PacketType, encode_request, encode_response
from gearq.testing import GearmandProcess
from gearq.worker import AsyncWorker
from gearq.worker.link import _Connection

from .fakeserver import FakeConn, FakeServer, Script
from .helpers import make_worker

WORKER_THREAD = "in-place-worker"


class _Serving:
    """An AsyncWorker serving on its own loop in a thread (plus ``extra(loop)``, a
    coroutine run beside it); ``stop()`` stops it from this thread."""

    def __init__(
        self,
        worker: AsyncWorker,
        extra: Callable[[], Coroutine[Any, Any, None]] | None = None,
        debug: bool = False,
    ) -> None:
        self.worker = worker
        self.extra = extra
        self.debug = debug
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=WORKER_THREAD, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            serve = asyncio.ensure_future(self.worker.run())
            await self.worker.wait_ready(10)
            self.ready.set()
            if self.extra is not None:
                await self.extra()
            await serve

        asyncio.run(main(), debug=self.debug)

    def __enter__(self) -> _Serving:
        self.thread.start()
        assert self.ready.wait(10), "the worker was not ready within 10 s"
        return self

    def stop(self) -> float:
        """Stop the worker; the seconds that took."""
        assert self.loop is not None
        start = time.monotonic()
        asyncio.run_coroutine_threadsafe(self.worker.stop(), self.loop).result(10)
        self.thread.join(10)
        assert not self.thread.is_alive()
        return time.monotonic() - start

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()


def _record_in_place_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every read in place from now on (a worker's connections have their own)."""
    reads: list[tuple[str, bool]] = []
    for cls in (Connection, _Connection):
        real = cls.__dict__["read_in_place"]

        def recording(self: Connection, real: Callable[[Connection], bool] = real) -> bool:
            got = real(self)
            reads.append((threading.current_thread().name, got))
            return got

        monkeypatch.setattr(cls, "read_in_place", recording)
    return reads


def _record_idles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every callback of the loop that waits in place from now on: its thread's name."""
    idles: list[str] = []
    real_idle = InPlaceWaiter._idle

    def recording(self: InPlaceWaiter) -> None:
        idles.append(threading.current_thread().name)
        real_idle(self)

    monkeypatch.setattr(InPlaceWaiter, "_idle", recording)
    return idles


def test_an_idle_worker_reads_its_jobs_in_place(
    gearmand: GearmandProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _record_in_place_reads(monkeypatch)
    worker = make_worker(gearmand.address, poll_interval=10.0)
    worker.register("inplace", lambda job: b"done " + job.payload, inline=True)
    with _Serving(worker), Client(gearmand.address) as client:
        for i in range(5):  # one at a time: the worker is idle between them
            assert client.submit("inplace", b"%d" % i).result(10) == b"done %d" % i
    in_worker = [got for name, got in reads if name == WORKER_THREAD]
    # Each job: the NOOP, then the job its probe brings, read by the worker's thread
    # without a pass of its loop.
    assert in_worker.count(True) >= 2 * 5, reads


def test_timers_and_coroutines_beside_the_worker_run_on_time(
    gearmand: GearmandProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _record_in_place_reads(monkeypatch)
    ticks: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(8):
            await asyncio.sleep(0.05)
            ticks.append(loop.time() - start)

    worker = make_worker(gearmand.address, poll_interval=0.2)
    worker.register("inplace", lambda job: job.payload, inline=True)
    with _Serving(worker, ticker) as serving, Client(gearmand.address) as client:
        deadline = time.monotonic() + 10
        while len(ticks) < 8:
            assert time.monotonic() < deadline, f"the ticker stalled: {ticks}"
            assert client.submit("inplace", b"x").result(10) == b"x"
            time.sleep(0.02)
        serving.stop()
    assert (WORKER_THREAD, True) in reads  # the worker did wait in place meanwhile
    # 8 sleeps of 50 ms: late by scheduling noise at most, not by a wait in place.
    assert ticks[-1] < 0.4 + 1.0, ticks


def test_a_worker_waiting_in_place_stops_at_once(gearmand: GearmandProcess) -> None:
    worker = make_worker(gearmand.address, poll_interval=30.0)  # no timer to wake it
    worker.register("inplace", lambda job: job.payload, inline=True)
    with _Serving(worker) as serving:
        time.sleep(0.2)  # asleep at gearmand, waiting in place
        assert worker._in_place is not None and worker._in_place.idling
        assert serving.stop() < 2  # not at the next timer (the heartbeat: 5 s)


def test_no_waiting_in_place_on_a_loop_in_debug_mode(
    gearmand: GearmandProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _record_in_place_reads(monkeypatch)
    worker = make_worker(gearmand.address, poll_interval=10.0)
    worker.register("inplace", lambda job: job.payload, inline=True)
    with _Serving(worker, debug=True), Client(gearmand.address) as client:
        for i in range(3):
            assert client.submit("inplace", b"%d" % i).result(10) == b"%d" % i
    # Jobs served, each packet read by the loop (the slow-callback warnings stay true).
    assert [got for name, got in reads if name == WORKER_THREAD and got] == []


def test_two_workers_on_one_loop_wait_in_place_without_spinning(
    gearmand: GearmandProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    idles = _record_idles(monkeypatch)
    first = make_worker(gearmand.address, poll_interval=30.0)
    first.register("one", lambda job: b"1 " + job.payload, inline=True)
    second = make_worker(gearmand.address, poll_interval=30.0)
    second.register("two", lambda job: b"2 " + job.payload, inline=True)

    async def serve_second() -> None:
        await second.run()

    with _Serving(first, serve_second) as serving, Client(gearmand.address) as client:
        assert serving.loop is not None
        asyncio.run_coroutine_threadsafe(second.wait_ready(10), serving.loop).result(10)
        assert client.submit("one", b"a").result(10) == b"1 a"
        assert client.submit("two", b"b").result(10) == b"2 b"
        time.sleep(0.1)
        before = len(idles)
        time.sleep(0.5)  # both idle: one wait in place, not two callbacks taking turns
        idle_waits = len(idles) - before
        assert client.submit("two", b"c").result(10) == b"2 c"
        asyncio.run_coroutine_threadsafe(second.stop(), serving.loop).result(10)
    assert idle_waits < 20, idle_waits


def test_an_answer_too_big_to_write_at_once_hands_the_loop_back(
    gearmand: GearmandProcess,
) -> None:
    # The answer is written from a read in place; what the socket does not take at once is
    # left to the loop, which must then run to write it (with no heartbeat and no poll
    # timer due, a wait in place that went on would hold it back for a minute).
    big = b"x" * (24 << 20)
    options = ConnectionOptions(heartbeat_interval=None, connect_timeout=60.0)
    worker = make_worker(gearmand.address, poll_interval=60.0, options=options)
    worker.register("big", lambda job: big if job.payload == b"big" else job.payload, inline=True)
    with _Serving(worker), Client(gearmand.address) as client:
        time.sleep(0.1)  # asleep at gearmand, waiting in place
        assert client.submit("big", b"small").result(10) == b"small"
        got: list[bytes] = []
        waiter = threading.Thread(target=lambda: got.append(client.submit("big", b"big").result()))
        waiter.start()
        # (Within 5 s: the worker's loop holds stale timers, of the connect timeout and of
        # wait_ready, whose passes would end such a wait too.)
        waiter.join(5)
        assert got == [big]
        assert client.submit("big", b"after").result(10) == b"after"


class _ServerThread:
    """A FakeServer on its own loop in a thread, so that the worker's loop has nothing but
    its connection to wait for (and waits for it in place)."""

    def __init__(self, script: Script) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = FakeServer(script)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> _ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def write(self, conn: FakeConn, data: bytes) -> None:
        self.loop.call_soon_threadsafe(conn.writer.write, data)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within 5 s"
        time.sleep(0.005)


def _no_jobs(conn: FakeConn, packet: Packet) -> None:
    if packet.type is PacketType.GRAB_JOB_UNIQ:
        conn.send(PacketType.NO_JOB)


_NOOP = encode_response(PacketType.NOOP)
_GRAB = encode_request(PacketType.GRAB_JOB_UNIQ)


def test_a_noop_read_in_two_pieces_in_place_wakes_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not the one-NOOP read the shortcut takes: the general path, from the read in place.
    reads = _record_in_place_reads(monkeypatch)
    with _ServerThread(_no_jobs) as fake:
        worker = make_worker(fake.server.address, poll_interval=30.0)
        worker.register("f", lambda job: job.payload, inline=True)
        with _Serving(worker):
            conn = fake.server.conns[0]
            _until(lambda: conn.count(PacketType.PRE_SLEEP) == 1)
            time.sleep(0.05)  # (the worker now waits in place)
            fake.write(conn, _NOOP[:5])
            time.sleep(0.05)
            fake.write(conn, _NOOP[5:])
            _until(lambda: conn.count(PacketType.PRE_SLEEP) == 2)
            assert conn.types()[-2:] == [PacketType.GRAB_JOB_UNIQ, PacketType.PRE_SLEEP]
            assert worker.stats.noops == 1
    # The two pieces, then the probe's answer: each read in place.
    assert reads.count((WORKER_THREAD, True)) >= 3, reads


def test_garbage_read_in_place_fails_the_connection_which_reconnects(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reads = _record_in_place_reads(monkeypatch)
    with _ServerThread(_no_jobs) as fake:
        worker = make_worker(fake.server.address, poll_interval=30.0)
        worker.register("f", lambda job: job.payload, inline=True)
        with _Serving(worker):
            conn = fake.server.conns[0]
            _until(lambda: conn.count(PacketType.PRE_SLEEP) == 1)
            time.sleep(0.05)  # (the worker now waits in place)
            fake.write(conn, b"\0REX" + bytes(8))
            _until(lambda: len(fake.server.conns) == 2)  # dropped, and connected again
            again = fake.server.conns[1]
            _until(lambda: again.count(PacketType.PRE_SLEEP) == 1)
            assert worker.stats.connects == 2
    assert (WORKER_THREAD, True) in reads
    assert "protocol error" in caplog.text
