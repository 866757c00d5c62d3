"""The job object, exception formatting and registration rules (no server needed)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from gearq.net import RecoverPolicy, ServerAddress
from gearq.protocol import ArgumentError, Decoder, Magic, PacketType
from gearq.worker import (
    AsyncWorker,
    Job,
    TimeLimitExceeded,
    WorkerError,
    default_client_id,
    format_exception,
)

from .helpers import run

P = PacketType


class CustomError(Exception):
    pass


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_format_exception_first_line_names_the_type() -> None:
    assert format_exception(ValueError("bad"), with_traceback=False) == b"ValueError: bad"
    assert format_exception(CustomError(), with_traceback=False) == (
        f"{__name__}.CustomError".encode()
    )
    assert format_exception(TimeLimitExceeded("slow"), with_traceback=False) == (
        b"gearq.TimeLimitExceeded: slow"
    )
    multi = format_exception(_raised(RuntimeError("line one\nline two")))
    first, _, rest = multi.partition(b"\n")
    assert first == b"RuntimeError: line one line two"
    assert rest.startswith(b"\nTraceback (most recent call last):")
    assert format_exception(ValueError("\udcff")).startswith(b"ValueError: \\udcff")


class FakeLink:
    """What a Job needs of its link; records the packets it would write, per thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.address = ServerAddress("127.0.0.1", 1)
        self.gen = 1
        self.loop = loop
        self.thread_id = threading.get_ident()
        self.written: list[Any] = []
        self.threads: set[int] = set()

    def _record(self, job: Job, packet: bytes) -> None:
        self.threads.add(threading.get_ident())
        self.written.extend(Decoder(expect=Magic.REQ).feed(packet))

    send_final = _record
    send_progress = _record


def _job(link: FakeLink) -> Job:
    return Job(link, b"H:t:1", b"fn", b"uniq", b"payload")  # type: ignore[arg-type]


def test_one_final_answer_and_nothing_after_it() -> None:
    async def main() -> None:
        link = FakeLink(asyncio.get_running_loop())
        job = _job(link)
        assert (job.outcome, job.answered) == (None, False)
        assert job.send_status(1, 4) and job.send_data(b"d") and job.send_warning(b"w")
        assert job.exception(_raised(KeyError("k")))
        assert not job.fail() and not job.complete(b"x") and not job.exception(b"again")
        assert not job.send_data(b"late") and not job.send_status(2, 4)
        assert (job.outcome, job.answered) == ("exception", True)
        types = [p.type for p in link.written]
        assert types == [P.WORK_STATUS, P.WORK_DATA, P.WORK_WARNING, P.WORK_EXCEPTION]
        assert link.written[0].args == (b"H:t:1", b"1", b"4")
        assert link.written[3].args[1].startswith(b"KeyError: 'k'\n")

    run(main())


def test_calls_from_a_thread_are_written_by_the_loop_in_order() -> None:
    async def main() -> None:
        link = FakeLink(asyncio.get_running_loop())
        job = _job(link)
        results: list[bool] = []

        def handler() -> None:
            for i in range(50):
                results.append(job.send_data(b"%d" % i))
            results.append(job.complete(b"result"))
            results.append(job.fail())

        await asyncio.to_thread(handler)
        await asyncio.sleep(0.05)
        assert results == [True] * 51 + [False]
        assert link.threads == {link.thread_id}
        assert [p.args[1] for p in link.written[:50]] == [b"%d" % i for i in range(50)]
        assert link.written[50].type is P.WORK_COMPLETE and len(link.written) == 51

    run(main())


def test_answers_race_between_threads_and_exactly_one_wins() -> None:
    async def main() -> None:
        link = FakeLink(asyncio.get_running_loop())
        for _ in range(50):
            job = _job(link)
            barrier = threading.Barrier(4)
            wins: list[bool] = []

            def answer(
                job: Job = job, barrier: threading.Barrier = barrier, wins: list[bool] = wins
            ) -> None:
                barrier.wait()
                wins.append(job.complete(b"a") or False)
                wins.append(job.fail() or False)

            threads = [threading.Thread(target=answer) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert wins.count(True) == 1
        await asyncio.sleep(0.05)
        assert len(link.written) == 50

    run(main())


def test_argument_checks() -> None:
    async def main() -> None:
        job = _job(FakeLink(asyncio.get_running_loop()))
        with pytest.raises(ArgumentError):
            job.send_status(-1, 2)
        with pytest.raises(ArgumentError):
            job.send_status(1, 2**32)
        with pytest.raises(ArgumentError):
            job.send_status(True, 2)
        with pytest.raises(TypeError):
            job.send_data("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            job.complete("text")  # type: ignore[arg-type]
        assert job.complete(bytearray(b"ok"))
        assert job.server == ServerAddress("127.0.0.1", 1)

    run(main())


def test_registration_rules() -> None:
    async def handler(job: Job) -> bytes:
        return b""

    worker = AsyncWorker("127.0.0.1:1")
    worker.register("f", handler)
    with pytest.raises(WorkerError):
        worker.register("f", handler)
    with pytest.raises(WorkerError):
        worker.register("g", handler, inline=True)
    with pytest.raises(ValueError):
        worker.register("g", handler, time_limit=0)
    with pytest.raises(ArgumentError):
        worker.register("has space", handler)
    with pytest.raises(TypeError):
        worker.register("g", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        AsyncWorker("127.0.0.1:1", client_id="has space")
    with pytest.raises(ValueError):
        AsyncWorker("127.0.0.1:1", concurrency=0)
    with pytest.raises(WorkerError):
        run(AsyncWorker("127.0.0.1:1").run())  # nothing registered
    assert worker.functions == (b"f",)
    client_id = default_client_id("my name")
    assert client_id.endswith("-my_name") and not any(c.isspace() for c in client_id)


def test_registration_while_running_and_an_async_worker_runs_once() -> None:
    async def main() -> None:
        worker = AsyncWorker("127.0.0.1:1", recover=RecoverPolicy(0.05))
        worker.register("f", lambda job: b"")
        task = asyncio.ensure_future(worker.run())
        await asyncio.sleep(0.05)
        worker.register("g", lambda job: b"")  # on the loop: taken
        assert worker.functions == (b"f", b"g")
        with pytest.raises(WorkerError, match="already registered"):
            worker.register("g", lambda job: b"")
        elsewhere: list[BaseException] = []

        def from_a_thread() -> None:
            try:
                worker.register("h", lambda job: b"")
            except BaseException as exc:
                elsewhere.append(exc)

        thread = threading.Thread(target=from_a_thread)
        thread.start()
        thread.join(5)
        assert len(elsewhere) == 1 and isinstance(elsewhere[0], WorkerError)
        assert "event loop" in str(elsewhere[0]) and worker.functions == (b"f", b"g")
        with pytest.raises(WorkerError, match="runs only once"):
            await worker.run()
        await worker.stop()
        await task
        with pytest.raises(WorkerError, match="stopping"):
            worker.register("late", lambda job: b"")

    run(main())


def test_default_concurrency_depends_on_where_handlers_run() -> None:
    async def on_loop(job: Job) -> bytes:
        return b""

    worker = AsyncWorker("127.0.0.1:1")
    assert (worker.concurrency, worker.grab_window) == (32, 32)
    worker.register("a", on_loop)
    worker.register("i", lambda job: b"", inline=True)
    assert (worker.concurrency, worker.grab_window) == (32, 32)
    worker.register("t", lambda job: b"")  # a plain handler: threads
    assert (worker.concurrency, worker.grab_window) == (8, 8)
    assert AsyncWorker("127.0.0.1:1", concurrency=64).grab_window == 32
    given = AsyncWorker("127.0.0.1:1", concurrency=3, grab_window=2)
    given.register("t", lambda job: b"")
    assert (given.concurrency, given.grab_window) == (3, 2)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            AsyncWorker("127.0.0.1:1", concurrency=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            AsyncWorker("127.0.0.1:1", grab_window=bad)  # type: ignore[arg-type]


def test_handler_threads_start_on_demand_up_to_their_size() -> None:
    from gearq.worker.threads import HandlerThreads

    threads = HandlerThreads(2)
    release = threading.Event()
    started: list[int] = []
    done = threading.Semaphore(0)

    def call(i: int) -> None:
        started.append(i)
        release.wait(5)
        done.release()

    threads.submit(call, 0)
    assert threads.threads == 1
    for i in range(1, 5):
        threads.submit(call, i)
    assert threads.threads == 2  # five calls, two threads: the rest wait their turn
    release.set()
    for _ in range(5):
        assert done.acquire(timeout=5)
        threads.done()
    assert sorted(started) == [0, 1, 2, 3, 4]
    threads.submit(done.release)  # an idle thread takes it; no third thread
    assert done.acquire(timeout=5) and threads.threads == 2
    threads.done()
    assert all(t.daemon for t in threads._threads)
    threads.shutdown()
    for thread in threads._threads:
        thread.join(5)
        assert not thread.is_alive()
    with pytest.raises(RuntimeError):
        threads.submit(done.release)
