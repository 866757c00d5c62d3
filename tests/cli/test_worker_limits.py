"""Hard time limits in every pool of ``gearq worker``: the caller gets the time-limit error
at once, the job is never requeued, and what ran past the limit is dealt with: an asyncio
task is cancelled, a prefork child is killed and replaced, a threads worker whose threads
are stuck restarts its process."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gearq.tasks.app import App
from gearq.tasks.remote_errors import TimeLimitExceeded

from . import worker_tasks as t
from .worker_helpers import WorkerProcess, alive, starts, wait_until

Workers = Callable[..., WorkerProcess]


def _time_limited(task: object, marks: Path) -> float:
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match=r"ran past its time limit of 0\.5 s"):
        task.delay(str(marks)).get(timeout=15)  # type: ignore[attr-defined]
    return time.monotonic() - started


def test_asyncio_pool_cancels_a_runaway_task(tmp_path: Path, caller: App, workers: Workers) -> None:
    marks = tmp_path / "marks"
    worker = workers(pool="asyncio").wait_ready()
    assert _time_limited(t.arunaway, marks) < 5
    assert t.aadd.delay(1, 2).get(timeout=15) == 3  # the loop is free again
    assert len(starts(marks)) == 1  # answered, not requeued
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_prefork_kills_the_child_of_a_runaway_task(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks = tmp_path / "marks"
    worker = workers("-c", "1", pool="prefork").wait_ready()
    assert _time_limited(t.runaway, marks) < 5
    (victim,) = starts(marks)
    wait_until(lambda: not alive(victim), what="the runaway's child was killed")
    replacement = t.where.delay().get(timeout=15)
    assert replacement != victim and replacement in worker.children()
    assert len(starts(marks)) == 1
    assert "killing child process" in worker.log
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_prefork_async_task_is_cancelled_by_its_child(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks = tmp_path / "marks"
    worker = workers("-c", "1", pool="prefork").wait_ready()
    before = worker.children()
    assert _time_limited(t.arunaway, marks) < 5
    assert t.where.delay().get(timeout=15) == before[0]  # the same child: no kill needed
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_threads_pool_answers_and_recycles_when_threads_are_stuck(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks = tmp_path / "marks"
    worker = workers("-c", "2", "--max-stuck-threads", "1", pool="threads").wait_ready()
    assert _time_limited(t.runaway, marks) < 5
    worker.wait_log("thread(s) stuck past their time limit: restarting")
    worker.wait_log("gearq worker: ready", count=2)  # the same pid, run anew
    assert t.where.delay().get(timeout=15) == worker.pid
    assert len(starts(marks)) == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_threads_pool_keeps_serving_below_the_stuck_limit(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks = tmp_path / "marks"
    worker = workers("-c", "4", "--max-stuck-threads", "2", pool="threads").wait_ready()
    assert _time_limited(t.runaway, marks) < 5
    assert t.add.delay(2, 2).get(timeout=15) == 4
    assert "restarting" not in worker.log
    assert "its thread runs on past the time limit (1 stuck)" in worker.log
    worker.signal(signal.SIGTERM)
    # the stuck thread's job is answered: the warm stop does not wait for it
    assert worker.wait(timeout=10) == 0
