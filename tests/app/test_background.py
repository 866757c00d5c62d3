"""Retries, unique coalescing, background tasks and countdown/eta, through gearmand 1.1.20
and a real TaskWorker."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from gearq.client import Priority
from gearq.protocol.errors import ArgumentError
from gearq.tasks import (
    SAME_ARGS,
    App,
    BackgroundResult,
    ResultNotKept,
    TaskState,
)
from gearq.tasks.context import TaskContext

from .helpers import StartWorker, run, wait_for

pytestmark = pytest.mark.timeout(60)


# --- retries --------------------------------------------------------------------------------


def test_retry_with_backoff_caller_sees_retry_then_result(app: App, serve: StartWorker) -> None:
    runs: list[tuple[int, float]] = []

    @app.task(bind=True, retry_on=(ConnectionError,), max_retries=3, retry_backoff=0.3)
    def flaky(ctx: TaskContext, fail_times: int) -> str:
        runs.append((ctx.attempt, time.monotonic()))
        if ctx.attempt <= fail_times:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return f"ok on {ctx.attempt}"

    serve()
    result = flaky.delay(2)
    wait_for(lambda: result.state == TaskState.RETRY, timeout=5)
    assert result.meta["attempt"] == 1 and result.meta["next_attempt"] == 2
    assert "ConnectionError" in result.meta["reason"]
    assert result.get(timeout=10) == "ok on 3"
    assert result.attempts == 3
    assert [a for a, _ in runs] == [1, 2, 3]
    # equal jitter: attempt n waits within [b * 2**(n-1) / 2, b * 2**(n-1)]
    assert runs[1][1] - runs[0][1] >= 0.15 - 0.02
    assert runs[2][1] - runs[1][1] >= 0.3 - 0.02


def test_retries_exhausted_raise_the_last_error(app: App, serve: StartWorker) -> None:
    @app.task(bind=True, retry_on=KeyError, max_retries=2, retry_backoff=0.01)
    def always(ctx: TaskContext) -> None:
        raise KeyError(f"attempt {ctx.attempt}")

    @app.task(retry_on=KeyError, max_retries=5, retry_backoff=0.01)
    def other_error() -> None:
        raise ValueError("not retried")

    serve()
    result = always.delay()
    with pytest.raises(KeyError) as info:
        result.get(timeout=10)
    assert info.value.args == ("attempt 3",)
    assert result.attempts == 3  # read after the end: the RETRY updates are taken in late
    assert result.state == TaskState.FAILURE
    assert result.meta["attempt"] == 3  # the last update: RETRY, or STARTED of attempt 3
    assert info.value.attempt == 3  # type: ignore[attr-defined]
    not_retried = other_error.delay()
    with pytest.raises(ValueError):
        not_retried.get(timeout=10)
    assert not_retried.attempts == 1


def test_explicit_retry_from_the_context(app: App, serve: StartWorker) -> None:
    @app.task(bind=True, max_retries=1)
    def once_more(ctx: TaskContext) -> int:
        if ctx.attempt == 1:
            ctx.retry(countdown=0.05)
        return ctx.attempt

    serve()
    assert once_more.delay().get(timeout=10) == 2


# --- unique ---------------------------------------------------------------------------------


def test_same_unique_runs_once_and_both_callers_get_the_result(
    app: App, serve: StartWorker
) -> None:
    runs: list[int] = []
    release = threading.Event()

    @app.task(unique=SAME_ARGS)
    def report(day: int) -> str:
        runs.append(day)
        assert release.wait(10)
        return f"report {day}"

    serve()
    first = report.delay(1)
    second = report.delay(1)  # same task and arguments: coalesces onto the first
    other = report.delay(2)  # different arguments: its own job

    wait_for(lambda: first.handle is not None and second.handle is not None)
    assert first.handle == second.handle
    wait_for(lambda: len(runs) == 2)
    release.set()
    assert first.get(timeout=10) == second.get(timeout=10) == "report 1"
    assert other.get(timeout=10) == "report 2"
    assert sorted(runs) == [1, 2]


def test_unique_key_and_callable(app: App, serve: StartWorker) -> None:
    runs: list[str] = []
    release = threading.Event()

    @app.task(unique=lambda user, note: f"user-{user}")
    def rebuild(user: int, note: str) -> str:
        runs.append(note)
        assert release.wait(10)
        return note

    serve()
    first = rebuild.delay(7, "first")
    second = rebuild.delay(7, "second")  # same key: the first call's payload runs
    third = rebuild.apply_async((7, "third"), unique="another-key")
    wait_for(lambda: len(runs) == 2)
    release.set()
    assert first.get(timeout=10) == "first"
    assert second.get(timeout=10) == "first"
    assert third.get(timeout=10) == "third"
    assert sorted(runs) == ["first", "third"]


# --- background -----------------------------------------------------------------------------


def test_background_send_status_and_get_error(app: App, serve: StartWorker) -> None:
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    @app.task(bind=True)
    def job(ctx: TaskContext, n: int) -> int:
        ctx.progress(1, n)
        started.set()
        assert release.wait(10)
        finished.set()
        return n

    handle = job.send(4)
    assert isinstance(handle, BackgroundResult)
    assert handle.created(timeout=5).startswith(b"H:")
    assert handle.unique == b"b:" + handle.id.encode()
    assert handle.status().state == TaskState.QUEUED  # no worker yet
    serve()
    assert started.wait(10)
    wait_for(lambda: handle.progress == (1, 4))
    status = handle.status()
    assert status.state == TaskState.STARTED and status.running
    with pytest.raises(ResultNotKept, match="background results are not kept"):
        handle.get()
    release.set()
    assert finished.wait(10)
    wait_for(lambda: handle.state == TaskState.UNKNOWN)
    assert handle.ready()


def test_status_right_after_send_waits_for_the_acknowledgement(app: App) -> None:
    @app.task
    def idle(x: int) -> int:
        return x

    for i in range(20):  # the first status() may come before JOB_CREATED: it must wait
        handle = idle.send(i)
        status = handle.status()
        assert status.state == TaskState.QUEUED, (i, status)
        assert handle.submitted


def test_background_survives_the_caller(app: App, serve: StartWorker) -> None:
    done = threading.Event()

    @app.task(background=True)
    def durable(x: int) -> None:
        done.set()

    handle = durable.apply_async((1,))  # the task's default: background
    assert isinstance(handle, BackgroundResult)
    handle.created(timeout=5)
    assert app.close() == 0  # the caller goes away before any worker exists
    serve()
    assert done.wait(10)


def test_asend_and_astatus(app: App, serve: StartWorker) -> None:
    done = threading.Event()

    @app.task
    def note(x: int) -> None:
        done.set()

    async def main() -> str:
        handle = await note.asend(1)
        await handle.acreated(timeout=5)
        status = await handle.astatus()
        with pytest.raises(ResultNotKept):
            await handle
        await app.aclose()
        return status.state

    assert run(main()) == TaskState.QUEUED
    serve()
    assert done.wait(10)


# --- countdown / eta ------------------------------------------------------------------------


def test_countdown_runs_no_earlier_and_at_most_2_5_s_late(app: App, serve: StartWorker) -> None:
    ran: list[float] = []
    done = threading.Event()

    @app.task
    def tick(tag: str) -> None:
        ran.append(time.time())
        done.set()

    serve(poll_interval=1.0)
    asked = time.time()
    handle = tick.apply_async(("later",), countdown=2)
    assert isinstance(handle, BackgroundResult)
    assert handle.eta is not None and handle.eta >= asked + 2
    handle.created(timeout=5)
    assert handle.status().state == TaskState.SCHEDULED
    assert done.wait(10)
    assert ran[0] >= asked + 2 - 0.001, "ran before its countdown"
    assert ran[0] <= asked + 2 + 2.5, f"ran {ran[0] - asked - 2:.2f} s late"


def test_eta_datetime(app: App, serve: StartWorker) -> None:
    ran: list[float] = []
    done = threading.Event()

    @app.task
    def tick() -> None:
        ran.append(time.time())
        done.set()

    serve(poll_interval=1.0)
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5)
    tick.apply_async(eta=when).created(timeout=5)
    assert done.wait(10)
    assert when.timestamp() - 0.001 <= ran[0] <= when.timestamp() + 2.5


def test_delayed_job_does_not_block_an_immediate_low_job(app: App, serve: StartWorker) -> None:
    ran: list[str] = []

    @app.task(priority="low")
    def work(tag: str) -> str:
        ran.append(tag)
        return tag

    serve()
    later = work.apply_async(("later",), countdown=30)
    later.created(timeout=5)
    started = time.monotonic()
    now = work.delay("now")  # LOW priority, same task
    assert now.get(timeout=10) == "now"  # blocked, it would wait for the 30 s countdown
    assert time.monotonic() - started < 5
    assert ran == ["now"]
    assert later.status().state == TaskState.SCHEDULED


def test_countdown_options_are_checked(app: App) -> None:
    @app.task
    def noop() -> None:
        return None

    with pytest.raises(ArgumentError, match="background"):
        noop.apply_async(countdown=1, background=False)
    with pytest.raises(ArgumentError, match="NORMAL"):
        noop.apply_async(countdown=1, priority=Priority.HIGH)
    with pytest.raises(ArgumentError, match="not both"):
        noop.apply_async(countdown=1, eta=time.time() + 1)
    with pytest.raises(ArgumentError, match="timezone-aware"):
        noop.apply_async(eta=dt.datetime.now())
