"""Closing: ``close(wait)``, the warning at exit, background submits flushed at exit, and
the testing fixtures for users (``gearq.testing``, the pytest plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from gearq.client import ClientClosed
from gearq.tasks import App, TaskState
from gearq.testing import GearmandProcess, running_server, running_worker

from .helpers import StartWorker, run, wait_for

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def _python(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("GEARQ_SERVERS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=ROOT,
    )


def test_close_waits_for_pending_foreground_tasks(app: App, serve: StartWorker) -> None:
    @app.task
    def slow(x: int) -> int:
        time.sleep(0.3)
        return x

    serve()
    results = [slow.delay(i) for i in range(3)]
    wait_for(lambda: app.pending() == 3)
    started = time.monotonic()
    assert app.close(wait=10) == 0
    assert time.monotonic() - started < 5
    assert [r.get(timeout=1) for r in results] == [0, 1, 2]
    # the app can be used again after close
    assert slow.delay(9).get(timeout=10) == 9


def test_close_wait_is_bounded(app: App, serve: StartWorker) -> None:
    @app.task
    def forever() -> None:
        time.sleep(30)

    serve()
    result = forever.delay()
    wait_for(lambda: result.handle is not None)
    started = time.monotonic()
    assert app.close(wait=0.3) == 1
    assert 0.25 <= time.monotonic() - started < 3
    with pytest.raises(ClientClosed):
        result.get(timeout=5)


def test_aclose_waits_for_the_loops_tasks(app: App, serve: StartWorker) -> None:
    @app.task
    async def slow(x: int) -> int:
        import asyncio

        await asyncio.sleep(0.2)
        return x

    serve()

    async def main() -> tuple[int, int]:
        result = await slow.adelay(5)
        abandoned = await app.aclose(wait=5)
        return abandoned, result.get(timeout=0)

    assert run(main()) == (0, 5)


def test_warning_at_exit_when_foreground_tasks_are_pending(gearmand: GearmandProcess) -> None:
    done = _python(
        """
        import sys, time
        from gearq import App
        app = App("exiting", servers=sys.argv[1])

        @app.task(name="nobody.serves")
        def orphan() -> None: ...

        result = orphan.delay()
        while result.state != "QUEUED":
            time.sleep(0.01)
        print("submitted")
        """,
        gearmand.address,
    )
    assert done.returncode == 0, done.stderr
    assert "submitted" in done.stdout
    assert "PendingTasksWarning" in done.stderr
    assert "1 foreground task(s) still pending at exit" in done.stderr
    assert "gearmand drops a queued foreground job" in done.stderr


def test_no_warning_when_everything_finished_and_exit_wait(gearmand: GearmandProcess) -> None:
    done = _python(
        """
        import sys, threading, time
        from gearq import App
        from gearq.testing import WorkerThread
        app = App("exiting", servers=sys.argv[1])

        @app.task(name="quick")
        def quick(x: int) -> int:
            time.sleep(0.3)
            return x

        worker = WorkerThread(app).start()
        assert quick.delay(1).get(timeout=10) == 1
        quick.delay(2)  # pending at exit, but exit_wait lets it finish
        app.conf.exit_wait = 10
        print("done")
        """,
        gearmand.address,
    )
    assert done.returncode == 0, done.stderr
    assert "PendingTasksWarning" not in done.stderr


def test_background_submits_are_flushed_at_exit(gearmand: GearmandProcess) -> None:
    done = _python(
        """
        import sys
        from gearq import App
        app = App("exiting", servers=sys.argv[1])

        @app.task(name="durable.job")
        def durable(x: int) -> None: ...

        for i in range(200):
            durable.send(i)   # returns at once; exits right after
        """,
        gearmand.address,
    )
    assert done.returncode == 0, done.stderr
    assert "PendingTasksWarning" not in done.stderr

    async def queued() -> int:
        from gearq.client import AsyncAdminClient

        admin = AsyncAdminClient([gearmand.address])
        try:
            status = (await admin.status()).values_ok()
        finally:
            await admin.close()
        return sum(s.total for rows in status.values() for s in rows if s.function == "durable.job")

    assert run(queued()) == 200


@pytest.mark.parametrize("kind", ["gearmand", "embedded"])
def test_running_server_and_worker_helpers(kind: str) -> None:
    if kind == "gearmand":
        from tests.support import require_gearmand

        require_gearmand()
    app = App("helpers", env=False)
    ran = threading.Event()

    @app.task
    def add(x: int, y: int) -> int:
        ran.set()
        return x + y

    with running_server(kind) as address, running_worker(app, servers=address) as worker:  # type: ignore[arg-type]
        assert app.servers[0].port == int(address.rsplit(":", 1)[1])
        assert worker.tasks.keys() == {add.name}
        assert add.delay(2, 3).get(timeout=10) == 5
    assert ran.is_set()
    assert app.conf.servers is None  # restored


@pytest.mark.slow
def test_pytest_plugin_gives_a_real_worker(tmp_path: Path, gearmand: GearmandProcess) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from gearq import App

            pytest_plugins = ["gearq.testing.pytest_plugin"]

            app = App("plugin-test", env=False)

            @app.task(name="plugin.add")
            def add(x: int, y: int) -> int:
                return x + y

            @pytest.fixture
            def gearq_app():
                return app
            """
        )
    )
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            from conftest import add

            def test_add(gearq_worker, gearq_server):
                assert gearq_worker.tasks.keys() == {"plugin.add"}
                assert add.delay(2, 3).get(timeout=10) == 5
                assert add.app.servers[0].port == int(gearq_server.rsplit(":", 1)[1])

            def test_again(gearq_worker):
                assert add.delay(4, 5).get(timeout=10) == 9
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        # Only the plugin under test (startup of the others costs seconds).
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert "2 passed" in done.stdout, done.stdout + done.stderr


def test_state_while_queued_then_pending_count(app: App) -> None:
    @app.task(name="waits")
    def waits() -> None:
        return None

    results = [waits.delay() for _ in range(3)]
    wait_for(lambda: all(r.state == TaskState.QUEUED for r in results))
    assert app.pending() == 3
    app.close()
    assert app.pending() == 0


def test_close_a_left_open_loops_client(app: App, serve: StartWorker) -> None:
    import asyncio

    @app.task
    def one() -> int:
        return 1

    serve()
    loop = asyncio.new_event_loop()

    async def call() -> int:
        return await (await one.adelay())

    try:
        assert loop.run_until_complete(call()) == 1
        started = time.monotonic()
        assert app.close() == 0  # the loop is open but not running: closed here, at once
        assert time.monotonic() - started < 2
    finally:
        loop.close()


def test_worker_thread_starts_once_even_when_entered_after_start(app):
    from gearq.testing import WorkerThread

    @app.task(name="lifecycle.double")
    def double(x: int) -> int:
        return 2 * x

    thread = WorkerThread(app)
    with thread.start(timeout=10) as same:
        assert same is thread
        assert double.delay(21).get(timeout=10) == 42
        with pytest.raises(RuntimeError, match="started already"):
            thread.start()
