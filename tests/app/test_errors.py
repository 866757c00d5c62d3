"""Every error a caller can get back, each its own type, through gearmand and a TaskWorker."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from gearq.client import AsyncAdminClient, ClientClosed, JobFailed, JobTimeout
from gearq.tasks import (
    App,
    ExceptionRegistry,
    NoWorkerAvailable,
    RemoteError,
    TaskExpired,
    TaskFailed,
    TaskState,
    TaskTimeout,
    TimeLimitExceeded,
)
from gearq.testing import GearmandProcess

from .helpers import StartWorker, run, wait_for

pytestmark = pytest.mark.timeout(60)


class Unlisted(Exception):
    """Not allow-listed: comes back as a RemoteError subclass of the same name."""


class Listed(Exception):
    """Allow-listed in the app's registry: comes back as itself."""


def test_builtin_exception_is_reraised_with_remote_traceback(app: App, serve: StartWorker) -> None:
    @app.task
    def divide(x: int, y: int) -> float:
        return x / y

    serve()
    result = divide.delay(1, 0)
    with pytest.raises(ZeroDivisionError) as info:
        result.get(timeout=10)
    exc = info.value
    assert "division by zero" in str(exc)
    assert "return x / y" in exc.remote_traceback  # type: ignore[attr-defined]
    assert exc.task_id == result.id  # type: ignore[attr-defined]
    if sys.version_info >= (3, 11):
        assert any("Remote traceback" in note for note in exc.__notes__)
    assert result.state == TaskState.FAILURE
    assert result.failed() and not result.successful()
    assert result.traceback is not None and "ZeroDivisionError" in result.traceback
    # propagate=False returns the error instead
    assert isinstance(result.get(propagate=False), ZeroDivisionError)


def test_unknown_and_allow_listed_exception_types(gearmand: GearmandProcess) -> None:
    registry = ExceptionRegistry()
    registry.register(Listed)
    app = App("errors", servers=gearmand.address, env=False, exception_registry=registry)

    @app.task
    def fail(which: str) -> None:
        raise (Listed if which == "listed" else Unlisted)(f"{which} failed", 42)

    from gearq.testing import WorkerThread

    with WorkerThread(app):
        with pytest.raises(RemoteError) as info:
            fail.delay("unlisted").get(timeout=10)
        assert type(info.value).__name__ == "Unlisted"
        assert not isinstance(info.value, Unlisted)
        assert info.value.remote_type.endswith("test_errors.Unlisted")
        assert "unlisted failed" in str(info.value)
        with pytest.raises(Listed) as listed:
            fail.delay("listed").get(timeout=10)
        assert listed.value.args == ("listed failed", 42)
        app.close()


def test_time_limit_is_its_own_error(app: App, serve: StartWorker) -> None:
    @app.task(time_limit=0.3)
    async def sleepy() -> None:
        import asyncio

        await asyncio.sleep(5)

    serve()
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded) as info:
        sleepy.delay().get(timeout=10)
    assert time.monotonic() - started < 3
    assert isinstance(info.value, RemoteError)
    assert "time limit" in str(info.value)


def test_bare_work_fail_is_task_failed(app: App) -> None:
    """An operator's ``cancel job`` makes gearmand send WORK_FAIL: no reason given."""

    @app.task(name="cancel.me")
    def never() -> None:
        return None

    result = never.delay()
    wait_for(lambda: result.handle is not None)

    async def cancel() -> None:
        admin = AsyncAdminClient(app.servers)
        try:
            assert result.handle is not None
            await admin.cancel_job(result.handle, result.server)
        finally:
            await admin.close()

    run(cancel())
    with pytest.raises(TaskFailed) as info:
        result.get(timeout=10)
    assert isinstance(info.value, JobFailed)  # the client's type still catches it
    assert info.value.task_name == "cancel.me"
    assert info.value.task_id == result.id
    assert "without a reason" in str(info.value)
    assert result.state == TaskState.FAILURE


def test_job_retries_exhausted_on_lost_workers_is_task_failed(
    gearmand_factory: object,
) -> None:
    """gearmand -j 1: the worker holding the job vanishes, gearmand gives up: WORK_FAIL."""
    server = gearmand_factory("-j", "1")  # type: ignore[operator]
    app = App("lost", servers=server.address, env=False)
    started = threading.Event()

    @app.task(name="lost.task")
    def hang() -> None:
        started.set()
        time.sleep(30)

    from gearq.testing import WorkerThread

    thread = WorkerThread(app).start()
    result = hang.delay()
    assert started.wait(10)
    thread.stop(0.1, graceful=False)  # drops its connections: gearmand requeues... once
    with pytest.raises(TaskFailed):
        result.get(timeout=10)
    app.close()


def test_caller_timeouts(app: App, serve: StartWorker) -> None:
    @app.task
    def slow(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    serve()
    # get(timeout): the task goes on, and a later get() has the value
    result = slow.delay(0.5)
    with pytest.raises(TaskTimeout) as info:
        result.get(timeout=0.05)
    assert info.value.abandoned is False
    assert isinstance(info.value, JobTimeout) and isinstance(info.value, TimeoutError)
    assert result.get(timeout=10) == "done"
    # apply_async(timeout): the caller gives up on the job itself
    abandoned = slow.apply_async((2.0,), timeout=0.2)
    with pytest.raises(TaskTimeout) as info2:
        abandoned.get(timeout=10)
    assert info2.value.abandoned is True
    assert abandoned.state == TaskState.FAILURE


def test_default_timeout_applies_to_delay(gearmand: GearmandProcess) -> None:
    app = App("t", servers=gearmand.address, env=False, default_timeout=0.2)

    @app.task(name="unserved")
    def unserved() -> None:
        return None

    with pytest.raises(TaskTimeout) as info:
        unserved.delay().get(timeout=10)
    assert info.value.abandoned is True
    app.close()


def test_require_worker(app: App, serve: StartWorker) -> None:
    @app.task
    def served() -> int:
        return 1

    @app.task
    def unserved() -> int:
        return 2

    worker = serve(tasks=[served.name])
    assert worker.tasks.keys() == {served.name}
    with pytest.raises(NoWorkerAvailable) as info:
        unserved.apply_async(require_worker=True)
    assert info.value.task_name == unserved.name
    assert served.apply_async(require_worker=True).get(timeout=10) == 1

    async def main() -> None:
        with pytest.raises(NoWorkerAvailable):
            await unserved.aapply_async(require_worker=True)
        result = await served.aapply_async(require_worker=True)
        assert await result == 1
        await app.aclose()

    run(main())
    app.configure(require_worker=True)
    with pytest.raises(NoWorkerAvailable):
        unserved.delay()


def test_no_server_is_raised_by_get(gearmand: GearmandProcess) -> None:
    from gearq.client import NoServerAvailable
    from gearq.testing import pick_free_port

    app = App("down", servers=f"127.0.0.1:{pick_free_port()}", env=False, connect_timeout=1)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)  # returns at once: the loop thread submits
    with pytest.raises(NoServerAvailable):
        result.get(timeout=10)

    async def main() -> None:
        with pytest.raises(NoServerAvailable):
            await add.adelay(1, 2)  # asyncio: raised by the submit itself
        await app.aclose()

    run(main())
    app.close()


def test_close_fails_pending_calls_with_client_closed(app: App) -> None:
    @app.task(name="never.served")
    def never() -> None:
        return None

    result = never.delay()
    wait_for(lambda: result.state == TaskState.QUEUED)
    assert app.pending() == 1
    assert app.close(wait=0.1) == 1
    with pytest.raises(ClientClosed):
        result.get(timeout=5)
    assert app.pending() == 0


def test_expired_task_is_not_run(app: App, serve: StartWorker) -> None:
    ran: list[int] = []

    @app.task
    def late(x: int) -> int:
        ran.append(x)
        return x

    result = late.apply_async((1,), expires=0.2)
    wait_for(lambda: result.state == TaskState.QUEUED)
    time.sleep(0.3)
    serve()
    with pytest.raises(TaskExpired):
        result.get(timeout=10)
    assert result.state == TaskState.EXPIRED
    assert ran == []
    assert late.apply_async((2,), expires=30).get(timeout=10) == 2
