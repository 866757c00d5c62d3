"""``gearq worker`` as a real subprocess on a real gearmand: every pool serves, the banner
and per-task log lines, the liveness check, and the one-line start errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gearq.tasks.app import App
from gearq.testing import pick_free_port

from . import worker_tasks as t
from .worker_helpers import SIGTERM, WorkerProcess, run_gearq, wait_until

Workers = Callable[..., WorkerProcess]


@pytest.mark.parametrize("pool", ["threads", "asyncio", "prefork"])
def test_each_pool_serves_plain_and_async_tasks(pool: str, caller: App, workers: Workers) -> None:
    worker = workers("-c", "2", pool=pool).wait_ready()
    assert t.add.delay(2, 3).get(timeout=15) == 5
    assert t.aadd.delay(4, 5).get(timeout=15) == 9
    results = [t.add.delay(i, i) for i in range(20)]
    assert [r.get(timeout=15) for r in results] == [2 * i for i in range(20)]
    ran_in = t.where.delay().get(timeout=15)
    if pool == "prefork":
        assert ran_in != worker.pid
        assert ran_in in worker.children()
    else:
        assert ran_in == worker.pid
    worker.signal(SIGTERM)
    assert worker.wait() == 0
    log = worker.log
    assert f"pool:    {pool}" in log
    assert "servers: 127.0.0.1:" in log
    assert ". add" in log and ". aadd" in log
    # --log-tasks: one line per task with name, id, attempt, duration and outcome
    assert log.count("task add[") == 21
    assert "attempt 1 succeeded in" in log


def test_queues_and_tasks_select_what_is_served(caller: App, workers: Workers) -> None:
    # -A instead of the positional MODULE, as celery users type it
    worker = workers("--tasks", "add", "-Q", "fast,:default", app="--app=tests.cli.worker_tasks")
    worker.wait_ready()
    assert t.add.delay(1, 2).get(timeout=15) == 3
    assert t.add.apply_async((1, 3), queue="fast").get(timeout=15) == 4
    assert "queues:  fast, :default" in worker.log
    assert "tasks:   1" in worker.log
    assert "fast:add" in worker.log  # the functions line
    assert ". aadd" not in worker.log
    worker.signal(SIGTERM)
    assert worker.wait() == 0


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_check_reads_the_health_file(
    pool: str, tmp_path: Path, caller: App, workers: Workers
) -> None:
    health = tmp_path / "health.json"
    check = ("worker", "--check", "--health-file", str(health))
    missing = run_gearq(*check)
    assert missing.returncode == 1
    assert "no health file" in missing.stderr
    worker = workers(
        "-c", "2", "--health-file", str(health), "--health-interval", "0.2", pool=pool
    ).wait_ready()

    def serving() -> bool:
        return run_gearq(*check).returncode == 0

    wait_until(serving, what="--check says the worker serves")
    report = run_gearq(*check)
    links = len(t.app.tasks) + 1  # one per task, and the countdown/eta one
    assert f"pid {worker.pid} serving: {links}/{links} connection(s) up" in report.stdout
    if pool == "prefork":
        assert "pool prefork (2 child process(es))" in report.stdout
    worker.signal(SIGTERM)
    assert worker.wait() == 0
    assert not health.exists()
    assert run_gearq(*check).returncode == 1


def test_check_sees_a_killed_worker(tmp_path: Path, caller: App, workers: Workers) -> None:
    health = tmp_path / "health.json"
    worker = workers("--health-file", str(health), "--health-interval", "0.2").wait_ready()
    wait_until(health.exists)
    worker.kill()  # SIGKILL: the file stays behind
    assert health.exists()
    report = run_gearq("worker", "--check", "--health-file", str(health))
    assert report.returncode == 1
    assert f"worker pid {worker.pid} is not running" in report.stderr


def _one_line(result: object) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_unknown_module_is_one_line_and_exit_1() -> None:
    result = run_gearq("worker", "no_such_module_here", "--servers", "127.0.0.1:1")
    assert result.returncode == 1
    line = _one_line(result)
    assert line.startswith("gearq worker: no module named 'no_such_module_here' (searched ")
    broken = run_gearq("worker", "tests.cli.broken_module", "--servers", "127.0.0.1:1")
    assert broken.returncode == 1
    assert _one_line(broken) == (
        "gearq worker: importing 'tests.cli.broken_module' failed: ModuleNotFoundError: No"
        " module named 'a_dependency_that_is_not_installed'"
    )


def test_module_without_app_is_one_line_and_exit_1() -> None:
    result = run_gearq("worker", "tests.cli.worker_helpers", "--servers", "127.0.0.1:1")
    assert result.returncode == 1
    assert "holds no gearq App" in _one_line(result)
    named = run_gearq("worker", "tests.cli.worker_tasks:nothing", "--servers", "127.0.0.1:1")
    assert named.returncode == 1
    assert "has no attribute 'nothing'" in _one_line(named)
    wrong = run_gearq("worker", "tests.cli.worker_tasks:add", "--servers", "127.0.0.1:1")
    assert wrong.returncode == 1
    assert "not a gearq App" in _one_line(wrong)


def test_no_server_reachable_is_one_line_and_exit_1() -> None:
    port = pick_free_port()
    result = run_gearq("worker", "tests.cli.worker_tasks", "--servers", f"127.0.0.1:{port}")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"gearq worker: no job server reachable: 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


def test_unknown_task_is_one_line_and_exit_1(caller: App) -> None:
    servers = caller.conf.servers
    assert isinstance(servers, str)
    result = run_gearq("worker", "tests.cli.worker_tasks", "--servers", servers, "--tasks", "nope")
    assert result.returncode == 1
    assert "no task named 'nope'" in _one_line(result)
