"""The prefork pool of ``gearq worker``: the parent holds the connections, so a child that
dies is replaced and its job runs once more (never zero times, never in a loop), hard time
limits kill the child without a requeue, and children are recycled."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from gearq.runtime.prefork import WorkerLost
from gearq.tasks.app import App

from . import worker_tasks as t
from .worker_helpers import WorkerProcess, alive, ends, starts, wait_until

Workers = Callable[..., WorkerProcess]


def test_a_child_killed_mid_task_is_replaced_and_the_task_runs_once_more(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks, release = tmp_path / "marks", tmp_path / "release"
    worker = workers("-c", "1", pool="prefork").wait_ready()
    result = t.wait_for_file.delay(str(marks), str(release))
    (victim,) = wait_until(lambda: starts(marks), what="the task started")
    os.kill(victim, signal.SIGKILL)
    second = wait_until(lambda: starts(marks)[1:], what="the task started again")
    assert second[0] != victim  # in the replacement child
    release.touch()
    assert result.get(timeout=15) == "released"
    assert len(starts(marks)) == 2 and len(ends(marks)) == 1
    assert "handing it to another child once" in worker.log
    assert worker.children() == [second[0]]
    # later tasks are served by the replacement
    assert t.where.delay().get(timeout=15) == second[0]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert len(starts(marks)) == 2  # and the job was not run a third time


def test_a_job_whose_child_dies_twice_fails_and_is_not_run_again(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks, release = tmp_path / "marks", tmp_path / "release"
    worker = workers("-c", "2", pool="prefork").wait_ready()
    result = t.wait_for_file.delay(str(marks), str(release))
    (first,) = wait_until(lambda: starts(marks), what="the task started")
    os.kill(first, signal.SIGKILL)
    (_, second) = wait_until(lambda: starts(marks)[1:] and starts(marks), what="2nd run")
    os.kill(second, signal.SIGKILL)
    with pytest.raises(WorkerLost, match="died twice"):
        result.get(timeout=15)
    assert t.add.delay(1, 1).get(timeout=15) == 2
    wait_until(lambda: len(worker.children()) == 2, what="two children again")
    assert len(starts(marks)) == 2 and ends(marks) == []
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_max_tasks_per_child_recycles_children(caller: App, workers: Workers) -> None:
    worker = workers("-c", "1", "--max-tasks-per-child", "2", pool="prefork").wait_ready()
    pids = [t.where.delay().get(timeout=15) for _ in range(6)]
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]
    assert worker.pid not in pids
    wait_until(lambda: not any(alive(pid) for pid in pids[:4]), what="old children gone")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_children_that_cannot_import_the_app_are_one_line_and_exit_1(
    caller: App, workers: Workers, tmp_path: Path
) -> None:
    # The parent imports fine, the children do not: a module that refuses to load in a
    # process whose parent is not the shell that started the test.
    module = tmp_path / "parent_only_tasks.py"
    module.write_text(
        "import os\n"
        f"if os.getppid() != {os.getpid()}:\n"
        "    raise RuntimeError('not in a child')\n"
        "from tests.cli.worker_tasks import app  # noqa: F401\n"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    worker = workers(pool="prefork", app="parent_only_tasks", env={"PYTHONPATH": path})
    assert worker.wait() == 1
    last = worker.log.strip().splitlines()[-1]
    assert last == (
        "gearq worker: a child process could not start: importing 'parent_only_tasks'"
        " failed: RuntimeError: not in a child"
    )


def test_children_stream_chunks_progress_and_warnings_through_the_parent(
    caller: App, workers: Workers
) -> None:
    worker = workers("-c", "2", pool="prefork").wait_ready()
    result = t.report.delay(3)
    assert list(result.stream(timeout=15)) == [0, 10, 20]
    assert result.progress == (3, 3)
    assert result.warnings == ["step 0", "step 1", "step 2"]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_retries_run_in_the_child_and_the_time_limit_is_per_attempt(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks = tmp_path / "marks"
    worker = workers("-c", "1", pool="prefork").wait_ready()
    before = worker.children()
    assert t.flaky.delay(str(marks)).get(timeout=15) == 3  # 3 x 0.6 s, limit 1 s each
    assert len(set(starts(marks))) == 1 and len(starts(marks)) == 3
    assert worker.children() == before  # no child was killed
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_countdown_jobs_run_in_a_child(tmp_path: Path, caller: App, workers: Workers) -> None:
    marks = tmp_path / "marks"
    worker = workers("-c", "1", pool="prefork").wait_ready()
    t.slow.apply_async((str(marks), 0.0), countdown=1).created(timeout=15)
    (pid,) = wait_until(lambda: ends(marks), what="the countdown job ran")
    assert pid in worker.children()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_a_killed_parent_takes_its_children_along_and_gearmand_requeues(
    tmp_path: Path, caller: App, workers: Workers
) -> None:
    marks = tmp_path / "marks"
    first = workers("-c", "1", pool="prefork").wait_ready()
    result = t.long_first.delay(str(marks))  # the first run hangs for a minute
    (child,) = wait_until(lambda: starts(marks), what="the first run started")
    first.kill()  # SIGKILL: no warm stop, no goodbye to the child
    wait_until(lambda: not alive(child), timeout=5, what="the orphaned child exited")
    workers("-c", "1", pool="prefork")
    assert result.get(timeout=30) == "second run"
    assert len(starts(marks)) == 2 and len(ends(marks)) == 1
