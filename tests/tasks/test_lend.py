"""The threads pool lends the worker's loop to a pool thread while the worker has nothing in
hand (gearq.tasks.threads): that thread reads a lone job and runs it itself. The loop's
thread takes the loop back from a task that holds it too long, so other jobs still run
meanwhile, and the task's outcome still reaches its caller."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from gearq.tasks import App
from gearq.testing import GearmandProcess, WorkerThread, running_worker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _app(gearmand: GearmandProcess) -> App:
    return App("lend-tests", servers=gearmand.address, env=False)


def _lent(worker: Any) -> Any:
    """Wait until ``worker``'s loop is lent. (On a loaded machine a lease that no pool
    thread took within its first check is withdrawn, and the loop's thread waits itself
    until the next one: correct, but not what these tests look at.)"""
    deadline = time.monotonic() + 10
    while not worker._threads.lent:
        assert time.monotonic() < deadline, "the worker's loop was never lent"
        time.sleep(0.002)
    return worker


def test_an_idle_workers_lone_jobs_run_in_the_thread_the_loop_is_lent_to(
    gearmand: GearmandProcess,
) -> None:
    app = _app(gearmand)
    holder: dict[str, Any] = {}

    @app.task
    def where() -> tuple[str, bool]:
        threads = holder["worker"]._threads
        return threading.current_thread().name, threads.lent

    with running_worker(app, concurrency=4) as worker:
        holder["worker"] = worker
        seen = [(_lent(worker), where.delay().get(timeout=10))[1] for _ in range(5)]
    for name, lent in seen:
        assert name.startswith("gearq-task-")
        assert lent, seen


@pytest.mark.parametrize("idle_first", [False, True], ids=["busy", "after-idle"])
@pytest.mark.parametrize("outcome", ["value", "error"])
def test_a_long_lone_task_gives_the_loop_back_and_other_jobs_run_meanwhile(
    gearmand: GearmandProcess, idle_first: bool, outcome: str
) -> None:
    # after-idle: the loop's thread has stopped checking on the lent thread (it waits
    # for a task to start first), which must not keep the loop from it.
    app = _app(gearmand)
    started = threading.Event()
    release = threading.Event()

    @app.task
    def hold(value: int) -> int:
        started.set()
        if not release.wait(10):
            raise TimeoutError("never released")
        if outcome == "error":
            raise ValueError(f"failed with {value}")
        return value

    @app.task
    def echo(value: int) -> int:
        return value

    with running_worker(app, concurrency=4) as worker:
        assert echo.delay(0).get(timeout=10) == 0
        if idle_first:
            threading.Event().wait(0.4)
        held = hold.delay(7)
        assert started.wait(10)
        # The held task still runs; the others do not wait for it.
        assert [echo.delay(i).get(timeout=5) for i in range(1, 4)] == [1, 2, 3]
        assert not held.ready()
        release.set()
        if outcome == "value":
            assert held.get(timeout=10) == 7
        else:
            with pytest.raises(ValueError, match="failed with 7"):
                held.get(timeout=10)
        # And the worker lends its loop again once idle.
        assert echo.delay(9).get(timeout=10) == 9
        assert worker.running == 0


def test_a_lent_task_can_run_an_event_loop_of_its_own(gearmand: GearmandProcess) -> None:
    app = _app(gearmand)

    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    @app.task
    def nested(value: int) -> int:
        return asyncio.run(double(value))

    with running_worker(app, concurrency=2):
        assert [nested.delay(i).get(timeout=10) for i in range(4)] == [0, 2, 4, 6]


_INTERRUPTED = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    sys.path.insert(0, {root!r})
    from gearq.tasks import App
    from gearq.tasks.runner import TaskWorker
    from gearq.tasks.threads import TaskThreads

    app = App("lend-sigint", servers={address!r}, env=False)
    lend = TaskThreads.lend

    def spy(self, waiter):
        try:
            return lend(self, waiter)
        except KeyboardInterrupt:
            print("lent-at-interrupt", self.lent, flush=True)
            raise

    TaskThreads.lend = spy

    @app.task
    def echo(value):
        return value

    worker = TaskWorker(app, concurrency=2, poll_interval=5.0)

    def interrupt():
        deadline = time.monotonic() + 20
        while not (worker._threads is not None and worker._threads.lent):
            if time.monotonic() > deadline:
                os._exit(3)
            time.sleep(0.01)
        time.sleep(0.3)  # long enough for the loop's thread to stop checking
        os.kill(os.getpid(), signal.SIGINT)

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt  # at once, where the main thread is (asyncio's own
        # handler would only cancel the main task, through the loop)

    signal.signal(signal.SIGINT, raise_interrupt)
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        worker.work()
    except KeyboardInterrupt:
        print("interrupted", worker._threads is not None and worker._threads.lent, flush=True)
    """
)


def test_an_interrupt_while_the_loop_is_lent_takes_it_back(gearmand: GearmandProcess) -> None:
    """A signal handler that raises in the loop's thread while it waits for the lent thread:
    the loop is back (the lent thread no longer serves) before the exception goes up."""
    script = _INTERRUPTED.format(root=ROOT, address=gearmand.address)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["lent-at-interrupt", "False", "interrupted", "False"], (
        proc.stdout,
        proc.stderr,
    )


def test_lending_stops_with_the_worker(gearmand: GearmandProcess) -> None:
    app = _app(gearmand)

    @app.task
    def echo(value: int) -> int:
        return value

    with running_worker(app, concurrency=2) as worker:
        assert echo.delay(1).get(timeout=10) == 1
        threads = worker._threads
        assert threads is not None
    assert not threads.lent
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_lent_loop_comes_back_when_the_server_goes_and_serves_it_again(
    gearmand: GearmandProcess,
) -> None:
    """The server dies while the worker is idle (its loop lent): the lent thread gives the
    loop back on the connection's end, the worker reconnects as usual, and lone jobs are
    read by a lent thread again."""
    app = _app(gearmand)
    holder: dict[str, Any] = {}

    @app.task
    def where(value: int) -> tuple[int, bool]:
        return value, holder["worker"]._threads.lent

    with running_worker(app, concurrency=2) as worker:
        holder["worker"] = worker
        assert [where.delay(i).get(timeout=10)[0] for i in range(3)] == [0, 1, 2]
        up = worker.worker.connected
        gearmand.kill()
        deadline = time.monotonic() + 20
        while worker.worker.connected:
            assert time.monotonic() < deadline, "the worker did not see the server go"
            time.sleep(0.01)
        gearmand.restart()
        while worker.worker.connected < up:
            assert time.monotonic() < deadline, "the worker did not reconnect"
            time.sleep(0.01)
        app.close(wait=0)  # the app's connection to the old server is gone too
        seen = [where.delay(3).get(timeout=10)]  # (may reach it before its loop is idle)
        seen += [(_lent(worker), where.delay(i).get(timeout=10))[1] for i in range(4, 7)]
    assert [value for value, _lent in seen] == [3, 4, 5, 6]
    assert all(lent for _value, lent in seen[1:]), seen


def test_a_graceful_stop_while_a_lent_task_runs_lets_it_answer(
    gearmand: GearmandProcess,
) -> None:
    app = _app(gearmand)
    started = threading.Event()
    release = threading.Event()

    @app.task
    def hold(value: int) -> int:
        started.set()
        release.wait(10)
        return value

    thread = WorkerThread(app, concurrency=2).start()
    try:
        held = hold.delay(5)
        assert started.wait(10)
        stopping = threading.Thread(target=thread.stop, kwargs={"timeout": 10})
        stopping.start()
        time.sleep(0.05)
        assert stopping.is_alive()  # waiting for the task
        release.set()
        assert held.get(timeout=10) == 5
        stopping.join(15)
        assert not stopping.is_alive()
    finally:
        release.set()
        app.close(wait=0)
        thread.stop()


def test_a_fault_answering_a_lent_job_still_ends_it(
    gearmand: GearmandProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the answer of a job run by the lent thread: the job is still answered (as
    a handler that raised), not left in hand, and the worker lends its loop again."""
    from gearq.tasks import runner

    app = _app(gearmand)
    holder: dict[str, Any] = {}
    encode = runner._Served._encode_value

    def faulty(self: Any, job: Any, call: Any, attempt: int, value: Any) -> bytes | None:
        if value == (2, True):
            raise RuntimeError("a bug in answering")
        return encode(self, job, call, attempt, value)

    monkeypatch.setattr(runner._Served, "_encode_value", faulty)

    @app.task
    def where(value: int) -> tuple[int, bool]:
        return value, holder["worker"]._threads.lent

    with running_worker(app, concurrency=2) as worker:
        holder["worker"] = worker
        assert where.delay(1).get(timeout=10)[0] == 1
        _lent(worker)
        failed = where.delay(2)
        with pytest.raises(Exception, match="a bug in answering"):
            failed.get(timeout=10)
        seen = [(_lent(worker), where.delay(i).get(timeout=10))[1] for i in (3, 4)]
        assert seen == [(3, True), (4, True)]
        assert worker.running == 0


def test_lending_under_mixed_load_loses_nothing(
    gearmand: GearmandProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lone calls, bursts and tasks long enough to be taken back from the lent thread, from
    several callers at once: every call gets its own result, and the worker ends idle.
    (The loop changes hands often here: lent, given back for a burst, taken back from a
    long task, lent again.)"""
    from gearq.tasks.threads import TaskThreads

    seen: collections.Counter[str] = collections.Counter()
    for name in ("_run_lent", "_finish_evicted"):
        original = getattr(TaskThreads, name)

        def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
            seen[_name] += 1
            return _original(*args)

        monkeypatch.setattr(TaskThreads, name, counted)
    app = _app(gearmand)

    @app.task
    def work(caller: int, n: int, nap: float) -> tuple[int, int]:
        if nap:
            time.sleep(nap)
        return caller, n

    def calls(caller: int) -> list[tuple[int, int]]:
        rng = random.Random(caller)
        got = []
        for n in range(60):
            nap = rng.choice((0.0, 0.0, 0.0, 0.001, 0.006))
            if rng.random() < 0.2:  # a burst of three
                results = [work.delay(caller, n * 10 + i, nap) for i in range(3)]
                got += [tuple(r.get(timeout=20)) for r in results]
            else:
                got.append(tuple(work.delay(caller, n * 10, nap).get(timeout=20)))
        return got

    with running_worker(app, concurrency=3) as worker:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = {c: pool.submit(calls, c) for c in range(4)}
            results = {c: f.result(timeout=120) for c, f in futures.items()}
        for caller, got in results.items():
            assert all(c == caller for c, _n in got)
            assert len(got) == len({n for _c, n in got}) >= 60
        deadline = time.monotonic() + 10
        while worker.running:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    # It did change hands: jobs run by lent threads, and some taken back from them.
    assert seen["_run_lent"] > 0 and seen["_finish_evicted"] > 0, seen
