"""A lone blocking call's lane (gearq.client.lane): its waiter reads the two packets it
expects itself, and anything else makes it an ordinary job that finishes as usual."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from gearq import TaskContext
from gearq.client.errors import JobConnectionLost
from gearq.client.job import JobState
from gearq.tasks import App, TaskTimeout
from gearq.tasks.envelope import EnvelopeError
from gearq.testing import GearmandProcess

from .helpers import StartWorker, wait_for


def _tasks(app: App) -> dict[str, Any]:
    @app.task
    def echo(value: Any) -> Any:
        return value

    @app.task
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.task
    def count(n: int) -> Iterator[int]:
        for i in range(n):
            time.sleep(0.02)
            yield i

    @app.task(bind=True)
    def halfway(ctx: TaskContext) -> str:
        ctx.progress(1, 2)
        time.sleep(0.05)
        return "done"

    @app.task
    def boom() -> None:
        raise ValueError("boom")

    return {"echo": echo, "nap": nap, "count": count, "halfway": halfway, "boom": boom}


def _links_idle(app: App) -> bool:
    return all(not link.pending and not link.jobs for link in app._thread().client._links)


def test_a_lone_call_is_read_by_its_waiter_and_never_becomes_a_job(
    app: App, serve: StartWorker, gearmand: GearmandProcess
) -> None:
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"  # connected
    result = t["echo"].delay({"x": [1, 2]})
    assert result._lane is not None
    assert result.get(timeout=10) == {"x": [1, 2]}
    assert result._job is None  # the link never knew it
    assert _links_idle(app)
    assert result.state == "SUCCESS" and result.successful()
    assert result.handle is not None and result.handle.startswith(b"H:")
    assert result.server is not None and result.server.port == gearmand.port
    job = result.job  # made on demand, complete
    assert job is not None and job.state is JobState.COMPLETE and job.handle == result.handle


def test_lane_replies_other_than_an_enveloped_value_are_decoded_as_usual(
    app: App, serve: StartWorker
) -> None:
    # The lane settles the common reply itself; a raw task's bytes and a generator
    # task's empty stream take the usual decoding.
    @app.task(name="lane.raw", serializer="raw")
    def upper(data: bytes) -> bytes:
        return data.upper()

    @app.task
    def nothing() -> Iterator[int]:
        yield from ()

    echo = _tasks(app)["echo"]
    serve()
    assert echo.delay("warm").get(timeout=10) == "warm"
    raw = upper.delay(b"abc")
    assert raw._lane is not None and raw.get(timeout=10) == b"ABC" and raw._job is None
    empty = nothing.delay()
    assert empty._lane is not None and list(empty.get(timeout=10)) == [] and empty._job is None


def test_a_raw_tasks_reply_is_its_bytes_even_when_they_look_like_an_envelope(
    app: App, serve: StartWorker
) -> None:
    from gearq.tasks.envelope import encode_plain_result
    from gearq.tasks.serializers import MSGPACK

    looks_ok = encode_plain_result(5, MSGPACK, "lane.raw")  # what reply_value would read

    @app.task(name="lane.raw_envelope", serializer="raw")
    def same(data: bytes) -> bytes:
        return data

    echo = _tasks(app)["echo"]
    serve()
    assert echo.delay("warm").get(timeout=10) == "warm"
    result = same.delay(looks_ok)
    assert result._lane is not None
    assert result.get(timeout=10) == looks_ok and result._job is None


def test_a_lane_reply_that_is_no_result_envelope_is_a_typed_error(
    app: App, gearmand: GearmandProcess
) -> None:
    # A non-gearq worker that echoes the call back: the reply is a msgpack map, but a
    # call, not a result.
    from tests.client.helpers import ScriptedWorker

    @app.task(name="lane.echoed")
    def echoed(value: str) -> str:
        return value

    with ScriptedWorker(gearmand, "lane.echoed"):
        results = [echoed.delay("x") for _ in range(2)]  # the first one connects
        for result in results:
            with pytest.raises(EnvelopeError, match="not a result envelope"):
                result.get(timeout=10)
        lone = echoed.delay("y")
        assert lone._lane is not None
        with pytest.raises(EnvelopeError, match="not a result envelope"):
            lone.get(timeout=10)
        assert lone.state == "FAILURE" and lone._job is None
    assert _links_idle(app)


def test_a_finished_lane_leaves_no_reference_cycle(app: App, serve: StartWorker) -> None:
    # A result and its lane must be freed when the caller drops the result, not left to
    # the garbage collector: a cycle per call made it run every ~200 calls (and kept the
    # memory of every call cold).
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    for materialized in (False, True):
        gc.disable()
        try:
            result = t["echo"].delay("x")
            if materialized:  # a second call makes the lane a job
                other = t["echo"].delay("y")
                assert other.get(timeout=10) == "y"
            assert result.get(timeout=10) == "x"
            lane = result._lane
            assert lane is not None and (lane.job is not None) == materialized
            refs = weakref.ref(result), weakref.ref(lane)
            del result, lane
            if materialized:
                del other
            assert [ref() for ref in refs] == [None, None]
        finally:
            gc.enable()


def test_a_second_call_makes_the_lane_a_job_and_both_finish(app: App, serve: StartWorker) -> None:
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    first = t["nap"].delay(0.2)
    assert first._lane is not None
    second = t["echo"].delay("second")  # runs the loop, which makes the lane a job first
    assert second.get(timeout=10) == "second"
    assert first._job is not None
    assert first.get(timeout=10) == 0.2
    assert _links_idle(app)


@pytest.mark.parametrize("name", ["count", "halfway", "boom"])
def test_packets_other_than_the_result_make_the_lane_a_job(
    app: App, serve: StartWorker, name: str
) -> None:
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    if name == "count":
        result = t["count"].delay(3)  # WORK_DATA chunks
        assert result._lane is not None
        assert list(result.get(timeout=10)) == [0, 1, 2]
    elif name == "halfway":
        result = t["halfway"].delay()  # a WORK_STATUS first
        assert result._lane is not None
        assert result.get(timeout=10) == "done"
        assert result.progress == (1, 2)
    else:
        result = t["boom"].delay()  # a WORK_EXCEPTION instead of the result
        assert result._lane is not None
        with pytest.raises(ValueError, match="boom"):
            result.get(timeout=10)
    assert result._job is not None
    assert _links_idle(app)


def test_a_lane_made_a_job_by_its_own_waiter_is_not_read_as_a_lane_again(
    app: App, serve: StartWorker
) -> None:
    # The waiter meets the WORK_STATUS, makes the lane a job and times out waiting for it;
    # the next get() must wait for the job, not read the connection for the old lane
    # (which would take the job's WORK_COMPLETE and leave the result without a value).
    @app.task(bind=True)
    def reported(ctx: TaskContext) -> str:
        ctx.progress(1, 2)
        time.sleep(0.5)
        return "done"

    echo = _tasks(app)["echo"]
    serve()
    assert echo.delay("warm").get(timeout=10) == "warm"
    result = reported.delay()
    assert result._lane is not None
    with pytest.raises(TaskTimeout):
        result.get(timeout=0.25)
    assert result._job is not None  # the status came first
    assert result.get(timeout=10) == "done"
    assert result.progress == (1, 2)
    assert echo.delay("after").get(timeout=10) == "after"
    assert _links_idle(app)


def test_a_lane_waited_out_goes_on_without_a_waiter(app: App, serve: StartWorker) -> None:
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    result = t["nap"].delay(0.3)
    with pytest.raises(TaskTimeout):
        result.get(timeout=0.05)
    wait_for(result.ready)  # the app's daemon thread took the loop (and the lane) over
    assert result.get(timeout=0) == 0.3
    assert result._job is not None
    assert t["echo"].delay("after").get(timeout=10) == "after"


@pytest.mark.parametrize("size", [40_000, 300_000])
def test_results_that_take_many_reads(app: App, serve: StartWorker, size: int) -> None:
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    value = os.urandom(size // 2).hex()
    for _ in range(3):
        assert t["echo"].delay(value).get(timeout=10) == value
    assert _links_idle(app)


def test_waiters_in_two_threads(app: App, serve: StartWorker) -> None:
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    result = t["nap"].delay(0.2)
    seen: list[Any] = []
    other = threading.Thread(target=lambda: seen.append(result.get(timeout=10)))
    other.start()
    assert result.get(timeout=10) == 0.2
    other.join(10)
    assert seen == [0.2]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread()
    or signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="needs the default SIGINT handler in the main thread",
)
def test_ctrl_c_during_a_lane_wait_leaves_the_call_and_the_app_usable(
    app: App, serve: StartWorker
) -> None:
    t = _tasks(app)
    serve()
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    result = t["nap"].delay(0.6)
    assert result._lane is not None
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            result.get(timeout=10)
    finally:
        timer.join()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert result.get(timeout=10) == 0.6  # nothing of it was lost on the way
    assert t["echo"].delay("after").get(timeout=10) == "after"


def test_the_server_dying_during_a_lane_wait_is_a_typed_error(
    gearmand_factory: Any, serve: StartWorker
) -> None:
    server: GearmandProcess = gearmand_factory()
    app = App("lane-loss", servers=server.address, env=False)
    try:
        t = _tasks(app)
        serve(app)
        assert t["echo"].delay("warm").get(timeout=10) == "warm"
        result = t["nap"].delay(5)
        assert result._lane is not None
        threading.Timer(0.3, server.kill).start()
        start = time.monotonic()
        with pytest.raises(JobConnectionLost):
            result.get(timeout=10)
        assert time.monotonic() - start < 5
    finally:
        app.close()


def test_threads_calling_at_once_each_get_their_own_results(app: App, serve: StartWorker) -> None:
    # Lanes, the jobs they become when another thread's call takes the loop, and queued
    # calls, all mixed: every caller still gets exactly its own values.
    t = _tasks(app)
    serve(concurrency=8)
    assert t["echo"].delay("warm").get(timeout=10) == "warm"
    errors: list[BaseException] = []
    seen: dict[int, list[str]] = {}

    def caller(n: int) -> None:
        try:
            seen[n] = [t["echo"].delay(f"{n}-{i}").get(timeout=10) for i in range(100)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert seen == {n: [f"{n}-{i}" for i in range(100)] for n in range(4)}
    wait_for(lambda: _links_idle(app))


def test_a_lane_whose_server_dies_is_resubmitted_when_the_app_asks_for_it(
    gearmand_factory: Any, serve: StartWorker
) -> None:
    first: GearmandProcess = gearmand_factory()
    second: GearmandProcess = gearmand_factory()
    app = App(
        "lane-failover",
        servers=f"{first.address},{second.address}",
        env=False,
        client_options={"resubmit_on_failure": True},
    )
    try:
        t = _tasks(app)
        serve(app)
        assert t["echo"].delay("warm").get(timeout=10) == "warm"  # on the first server
        result = t["nap"].delay(0.5)
        assert result._lane is not None
        threading.Timer(0.2, first.kill).start()
        assert result.get(timeout=15) == 0.5  # run again on the second server
        assert result.server is not None and result.server.port == second.port
    finally:
        app.close()


def test_lanes_follow_a_round_robin(gearmand_factory: Any, serve: StartWorker) -> None:
    servers = [gearmand_factory(), gearmand_factory()]
    app = App(
        "lane-rr",
        servers=",".join(s.address for s in servers),
        env=False,
        strategy="round_robin",
    )
    try:
        t = _tasks(app)
        serve(app)
        for i in range(2):  # one call per server: both connected
            assert t["echo"].delay(i).get(timeout=10) == i
        ports = []
        for i in range(6):
            result = t["echo"].delay(i)
            assert result._lane is not None
            assert result.get(timeout=10) == i
            assert result.server is not None
            ports.append(result.server.port)
        assert ports[0] != ports[1] and ports == ports[:2] * 3
        assert sorted(ports[:2]) == sorted(s.port for s in servers)
    finally:
        app.close()
