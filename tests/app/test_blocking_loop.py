"""Blocking calls run the app's event loop in the waiting thread (no thread hand-off),
and the app's daemon thread runs it whenever nobody waits."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from gearq.tasks import App

from .helpers import StartWorker, wait_for


def _tasks(app: App) -> tuple[Any, Any]:
    @app.task
    def echo(value: str) -> str:
        return value

    @app.task
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    return echo, nap


def test_get_runs_the_loop_in_the_calling_thread(app: App, serve: StartWorker) -> None:
    _, nap = _tasks(app)
    serve()
    result = nap.delay(0.2)
    threads: list[threading.Thread] = []
    result.add_done_callback(lambda _r: threads.append(threading.current_thread()))
    assert result.get(timeout=10) == 0.2
    assert threads == [threading.current_thread()]


def test_a_result_nobody_waits_for_still_arrives(app: App, serve: StartWorker) -> None:
    echo, nap = _tasks(app)
    serve()
    assert echo.delay("warm").get(timeout=10) == "warm"
    result = nap.delay(0.1)  # submitted and followed by the daemon thread alone
    names: list[str] = []
    result.add_done_callback(lambda _r: names.append(threading.current_thread().name))
    wait_for(result.ready)
    assert result.get(timeout=0) == 0.1
    assert names == [f"gearq-app-{app.main}"]


def test_threads_waiting_at_once_each_get_their_own_result(
    app: App, serve: StartWorker
) -> None:
    echo, nap = _tasks(app)
    serve(concurrency=8)
    slow = nap.delay(2.0)
    blocked = threading.Thread(target=slow.get, kwargs={"timeout": 20})
    blocked.start()  # runs the loop until the slow task ends
    got: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            got[n] = [echo.delay(f"{n}-{i}").get(timeout=10) for i in range(20)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        callers = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join(30)
        assert not errors
        assert got == {n: [f"{n}-{i}" for i in range(20)] for n in range(4)}
        assert not slow.ready()  # none of them waited for the thread running the loop
    finally:
        blocked.join(20)
    assert slow.get(timeout=0) == 2.0


def test_get_inside_another_running_loop(app: App, serve: StartWorker) -> None:
    echo, _ = _tasks(app)
    serve()

    async def main() -> str:
        # Blocks this loop, as any blocking call would; the app's loop runs elsewhere.
        return str(echo.delay("nested").get(timeout=10))

    assert asyncio.run(main()) == "nested"


def test_background_created_and_stream(app: App, serve: StartWorker) -> None:
    @app.task
    def count(n: int) -> Any:
        yield from range(n)

    echo, _ = _tasks(app)
    serve()
    handle = echo.send("bg")
    assert handle.created(timeout=10).startswith(b"H:")
    assert list(count.delay(3).stream(timeout=10)) == [0, 1, 2]


def test_a_call_from_an_idle_thread_leaves_before_delay_returns(
    app: App, serve: StartWorker
) -> None:
    echo, _ = _tasks(app)
    serve()
    assert echo.delay("warm").get(timeout=10) == "warm"  # connected
    result = echo.delay("now")
    # Submitted and flushed in this thread: nothing waits for a pass of the loop (a lone
    # call goes as a lane, which its waiter reads: see gearq.client.lane).
    assert result._job is not None or result._lane is not None
    assert not any(link.wbuf for link in app._thread().client._links)
    assert not app._thread().queue
    assert result.get(timeout=10) == "now"


def test_a_call_from_a_callback_of_the_loop_is_queued_and_still_runs(
    app: App, serve: StartWorker
) -> None:
    echo, _ = _tasks(app)
    serve()
    inner: list[Any] = []
    first = echo.delay("first")
    first.add_done_callback(lambda _r: inner.append(echo.delay("second")))
    assert first.get(timeout=10) == "first"
    wait_for(lambda: bool(inner))
    assert inner[0].get(timeout=10) == "second"


def test_calls_made_while_another_is_in_flight_are_queued_and_sent_together(
    app: App, serve: StartWorker
) -> None:
    echo, nap = _tasks(app)
    serve()
    assert echo.delay("warm").get(timeout=10) == "warm"
    home = app._thread()
    direct: list[Any] = []
    submit_here = home._submit_here

    def spy(result: Any, request: Any) -> bool:
        direct.append(result)
        return submit_here(result, request)

    home._submit_here = spy  # type: ignore[method-assign]
    slow = nap.delay(0.5)  # the lone call: sent at once (a lane), and in flight for a while
    burst = [echo.delay(f"b{i}") for i in range(5)]
    assert slow._lane is not None and not direct  # the burst was queued, not sent one by one
    assert [r.get(timeout=10) for r in burst] == ["b0", "b1", "b2", "b3", "b4"]
    assert slow._job is not None  # whoever ran the loop for the burst made the lane a job
    assert slow.get(timeout=10) == 0.5


def test_a_forked_child_calls_tasks_on_its_own_loop_and_connection(
    app: App, serve: StartWorker
) -> None:
    from tests.support.fork import in_forked_child

    echo, _ = _tasks(app)
    serve()
    assert echo.delay("parent").get(timeout=10) == "parent"
    parent_loop = app._thread().loop

    def child() -> bool:
        return echo.delay("child").get(timeout=10) == "child" and (
            app._thread().loop is not parent_loop
        )

    assert in_forked_child(child) == b"ok"
    assert echo.delay("parent again").get(timeout=10) == "parent again"
