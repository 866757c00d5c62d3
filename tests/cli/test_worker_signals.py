"""Signals to a ``gearq worker`` subprocess: a warm stop finishes the running task and
exits 0; a second signal stops at once and gearmand requeues the job (another worker
finishes it); SIGHUP restarts; a terminal's Ctrl-C reaches prefork children harmlessly."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gearq.tasks.app import App

from . import worker_tasks as t
from .worker_helpers import WorkerProcess, alive, ends, starts, wait_until

Workers = Callable[..., WorkerProcess]


@pytest.mark.parametrize("pool", ["threads", "asyncio", "prefork"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_warm_stop_finishes_the_running_task_and_exits_0(
    pool: str, signum: int, tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks, release = tmp_path / "marks", tmp_path / "release"
    worker = workers("-c", "2", pool=pool).wait_ready()
    task = t.await_file if pool == "asyncio" else t.wait_for_file
    result = task.delay(str(marks), str(release))
    wait_until(lambda: starts(marks), what="the task started")
    worker.signal(signum)
    worker.wait_log(f"{signal.Signals(signum).name}: warm stop")
    time.sleep(0.3)  # the worker keeps running while its task does
    assert worker.proc.poll() is None
    release.touch()
    assert result.get(timeout=15) == "released"
    assert worker.wait() == 0
    assert len(starts(marks)) == len(ends(marks)) == 1
    assert "stopped" in worker.log


@pytest.mark.parametrize("pool", ["threads", "asyncio", "prefork"])
def test_a_second_signal_stops_at_once_and_the_job_is_requeued(
    pool: str, tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks = tmp_path / "marks"
    first = workers("-c", "2", pool=pool).wait_ready()
    task = t.along_first if pool == "asyncio" else t.long_first
    result = task.delay(str(marks))  # its first run hangs for a minute
    wait_until(lambda: starts(marks), what="the first run started")
    first.signal(signal.SIGTERM)
    first.wait_log("SIGTERM: warm stop")  # handled: the next one is not merged with it
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 1
    assert "stopping at once" in first.log
    if pool == "prefork":
        (child,) = set(starts(marks))
        wait_until(lambda: not alive(child), what="the child was killed")
    # gearmand requeued the job when the connections closed: a new worker finishes it
    workers("-c", "2", pool=pool)
    assert result.get(timeout=30) == "second run"
    assert len(starts(marks)) == 2
    assert len(ends(marks)) == 1


def test_sighup_restarts_the_prefork_children(caller: App, workers: Workers) -> None:
    worker = workers("-c", "2", pool="prefork").wait_ready()
    before = set(worker.children())
    assert len(before) == 2
    worker.signal(signal.SIGHUP)
    worker.wait_log("restarting the child processes")

    def replaced() -> bool:
        now = set(worker.children())
        return len(now) == 2 and not now & before

    wait_until(replaced, what="both children replaced")
    assert t.where.delay().get(timeout=15) in worker.children()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_sighup_restarts_a_threads_worker_in_place(caller: App, workers: Workers) -> None:
    worker = workers(pool="threads").wait_ready()
    worker.signal(signal.SIGHUP)
    worker.wait_log("gearq worker: ready", count=2)
    assert t.where.delay().get(timeout=15) == worker.pid  # the same process, run anew
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_ctrl_c_in_a_terminal_reaches_prefork_children_harmlessly(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks, release = tmp_path / "marks", tmp_path / "release"
    worker = workers("-c", "1", pool="prefork", new_session=True).wait_ready()
    result = t.wait_for_file.delay(str(marks), str(release))
    wait_until(lambda: starts(marks), what="the task started")
    os.killpg(worker.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    worker.wait_log("SIGINT: warm stop")
    release.touch()
    assert result.get(timeout=15) == "released"
    assert worker.wait() == 0
    assert starts(marks) == ends(marks)  # one run, in one child, not interrupted
