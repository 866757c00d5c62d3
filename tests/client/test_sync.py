"""The blocking Client: same names and semantics, several threads, and os.fork()."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from gearq.client import AdminClient, Client, JobException, JobState, JobTimeout, SyncJob
from gearq.protocol.errors import GearqError
from tests.support.fork import in_forked_child

from .helpers import script, wait_until


def test_blocking_submit_result_and_events(gearmand, workers):
    workers(gearmand, "ev")
    with Client(gearmand.address) as client:
        job = client.submit("ev", script(["data", "a"], ["warning", "w"], ["complete", "r"]))
        assert isinstance(job, SyncJob)
        assert job.result(10) == b"r"
        assert job.state is JobState.COMPLETE
        assert job.data == [b"a"] and job.warnings == [b"w"]
        assert job.handle is not None and job.server is not None

        streamed = client.submit("ev", script(["data", "1"], ["data", "2"], ["complete", "x"]))
        assert list(streamed.stream(timeout=10)) == [b"1", b"2"]

        bad = client.submit("ev", script(["exception", "oops"]))
        with pytest.raises(JobException):
            bad.result(10)

        bg = client.submit("ev", b"bg", background=True)
        assert bg.created(10).startswith(b"H:")
        assert client.get_status(bg).handle == bg.handle
        assert client.echo(b"hi") == b"hi"
        assert client.ping() > 0
        many = client.submit_many("ev", [b"m1", b"m2"], uniques=["x1", "x2"])
        assert [job.result(10) for job in many] == [b"m1", b"m2"]


def test_blocking_timeouts(gearmand):
    with Client(gearmand.address) as client:
        job = client.submit("nobody", b"x")
        with pytest.raises(JobTimeout):
            job.result(0.1)
        assert not job.done
        gone = client.submit("nobody", b"y", timeout=0.1)
        with pytest.raises(JobTimeout):
            gone.result(10)
        assert gone.state is JobState.TIMEOUT


def test_one_client_from_many_threads(gearmand, workers):
    workers(gearmand, "echo")
    workers(gearmand, "echo")
    results: dict[int, list[bytes]] = {}
    errors: list[BaseException] = []

    with Client(gearmand.address) as client:

        def work(n: int) -> None:
            try:
                jobs = [client.submit("echo", f"{n}-{i}".encode()) for i in range(40)]
                results[n] = [job.result(20) for job in jobs]
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert not errors
    assert results == {n: [f"{n}-{i}".encode() for i in range(40)] for n in range(8)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_client_after_fork_uses_its_own_connection(gearmand, workers):
    workers(gearmand, "echo")
    with Client(gearmand.address) as client:
        assert client.submit("echo", b"parent").result(10) == b"parent"

        def child() -> bool:
            result = client.submit("echo", b"child").result(10)
            with AdminClient(gearmand.address) as admin:
                rows = next(iter(admin.workers().values())).result()
            ids = {row.client_id for row in rows}
            return result == b"child" and f"gearq-client-{os.getpid()}" in ids

        assert in_forked_child(child) == b"ok"
        # The parent's connection was not disturbed by the child.
        assert client.submit("echo", b"parent again").result(10) == b"parent again"


# -- who runs the loop (DrivenLoop) ----------------------------------------------------------


def test_a_waiting_caller_runs_the_loop_itself(gearmand, workers):
    workers(gearmand, "slow")
    with Client(gearmand.address) as client:
        job = client.submit("slow", script(["sleep", 0.2], ["complete", "done"]))
        threads: list[threading.Thread] = []
        job.add_done_callback(lambda _job: threads.append(threading.current_thread()))
        assert job.result(10) == b"done"
        # The job ended while this thread was blocked in result(): no hand-off to another.
        assert threads == [threading.current_thread()]


def test_the_daemon_thread_runs_the_loop_when_nobody_waits(gearmand, workers):
    workers(gearmand, "slow")
    with Client(gearmand.address) as client:
        job = client.submit("slow", script(["sleep", 0.3], ["complete", "x"]))
        seen: list[str] = []
        called = threading.Event()

        def done(_job: object) -> None:
            seen.append(threading.current_thread().name)
            called.set()

        job.add_done_callback(done)
        assert called.wait(10)  # nobody blocks on the client here
        assert seen == [f"gearq-client-{os.getpid()}"]
        # Timers run too: a job timeout fires with nobody waiting.
        lost = client.submit("nobody", b"y", timeout=0.1)
        wait_until(lambda: lost.state is JobState.TIMEOUT, 10, "the job timeout")


def test_a_waiter_is_not_held_up_by_the_thread_running_the_loop(gearmand, workers):
    workers(gearmand, "slow")
    workers(gearmand, "echo")
    with Client(gearmand.address) as client:
        slow = client.submit("slow", script(["sleep", 3], ["complete", "slow"]))
        driving = threading.Thread(target=slow.result, args=(20,))
        driving.start()  # runs the loop until the slow job ends
        try:
            wait_until(lambda: slow.handle is not None, 10, "the slow job")
            time.sleep(0.05)
            fast = [client.submit("echo", f"f{i}".encode()) for i in range(5)]
            assert [job.result(10) for job in fast] == [f"f{i}".encode() for i in range(5)]
            assert not slow.done  # answered while the other thread still ran the loop
        finally:
            driving.join(20)
        assert slow.result(0) == b"slow"


def test_blocking_call_from_inside_another_event_loop(gearmand, workers):
    workers(gearmand, "echo")
    with Client(gearmand.address) as client:

        async def main() -> bytes:
            # Blocks this loop (its owner's choice); the daemon thread runs the client's.
            return client.submit("echo", b"inner").result(10)

        assert asyncio.run(main()) == b"inner"


def test_blocking_call_from_a_callback_raises_instead_of_deadlocking(gearmand, workers):
    workers(gearmand, "echo")
    with Client(gearmand.address) as client:
        errors: list[BaseException] = []

        def nested(_job: object) -> None:
            try:
                client.echo(b"nested")
            except RuntimeError as exc:
                errors.append(exc)

        job = client.submit("echo", b"x")
        job.add_done_callback(nested)
        assert job.result(10) == b"x"
        wait_until(lambda: bool(errors), 10, "the callback")
        assert "deadlock" in str(errors[0])


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread()
    or signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="needs the default SIGINT handler in the main thread",
)
def test_ctrl_c_while_waiting_leaves_the_client_usable(gearmand, workers):
    workers(gearmand, "slow")
    workers(gearmand, "echo")
    with Client(gearmand.address) as client:
        slow = client.submit("slow", script(["sleep", 2], ["complete", "late"]))
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                slow.result(10)
        finally:
            timer.join()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert not slow.done
        assert slow.result(10) == b"late"  # the connection was not left half-read
        assert client.submit("echo", b"after").result(10) == b"after"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_parent_job_cannot_be_waited_for_in_the_child(gearmand, workers):
    workers(gearmand, "slow")
    with Client(gearmand.address) as client:
        job = client.submit("slow", script(["sleep", 0.5], ["complete", "p"]))

        def child() -> bool:
            try:
                job.result(0.2)
            except GearqError as exc:
                return "parent" in str(exc)
            return False

        child_status = in_forked_child(child)
        assert child_status == b"ok"
        assert job.result(10) == b"p"


def test_each_wait_keeps_its_own_timeout(gearmand, workers):
    workers(gearmand, "echo")
    with Client(gearmand.address) as client:
        assert client.submit("echo", b"a").result(10) == b"a"  # a wake-up armed for +10 s
        queued = client.submit("nobody", b"x")
        start = time.monotonic()
        with pytest.raises(JobTimeout):
            queued.result(0.2)  # earlier than the armed wake-up: not held to it
        assert time.monotonic() - start < 5
        assert client.submit("echo", b"b").result(0.4) == b"b"  # leaves a wake-up at +0.4 s
        start = time.monotonic()
        with pytest.raises(JobTimeout):
            queued.result(0.8)  # that wake-up rings first: it must not end this wait
        assert time.monotonic() - start >= 0.75


# -- waiting in place: a lone caller reads its connection itself --------------------------------


def _count_in_place_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    from gearq.net import Connection

    reads: list[bool] = []
    real = Connection.read_in_place

    def counting(self: Connection) -> bool:
        got = real(self)
        reads.append(got)
        return got

    monkeypatch.setattr(Connection, "read_in_place", counting)
    return reads


def test_a_lone_blocking_wait_reads_the_connection_in_place(gearmand, workers, monkeypatch):
    workers(gearmand, "ev")
    reads = _count_in_place_reads(monkeypatch)
    with Client(gearmand.address) as client:
        job = client.submit("ev", script(["data", "a"], ["status", 1, 2], ["complete", "r"]))
        assert job.result(10) == b"r"
        assert job.data == [b"a"] and (job.numerator, job.denominator) == (1, 2)
    # The packets were read by this thread, without a pass of the event loop.
    assert True in reads


def test_in_place_waits_over_several_servers(two_servers, workers, monkeypatch):
    for server in two_servers:
        workers(server, "echo")
    reads = _count_in_place_reads(monkeypatch)
    with Client([s.address for s in two_servers], strategy="round_robin") as client:
        jobs = []
        for i in range(6):  # one at a time, each server in turn
            job = client.submit("echo", f"e{i}".encode())
            assert job.result(10) == f"e{i}".encode()
            jobs.append(job)
        assert {str(job.server) for job in jobs} == {s.address for s in two_servers}
    assert reads.count(True) >= 6


@pytest.mark.parametrize("event", ["timer", "thread"])
def test_the_loop_is_served_while_a_caller_waits_in_place(gearmand, workers, event):
    workers(gearmand, "slow")
    with Client(gearmand.address) as client:
        client.echo(b"connect")
        runner = client._runner
        assert runner is not None
        loop = runner.loop
        seen: list[bool] = []
        jobs: list[SyncJob] = []

        def note() -> None:
            seen.append(jobs[0].done)

        # While this thread waits for a job in place, a timer of the loop comes due, or
        # another thread hands the loop work: it must run during the wait, not after.
        if event == "timer":
            runner.call(loop.call_later, 0.2, note)
        other = threading.Timer(0.2, loop.call_soon_threadsafe, (note,))
        jobs.append(client.submit("slow", script(["sleep", 0.8], ["complete", "x"])))
        if event == "thread":
            other.start()
        try:
            assert jobs[0].result(10) == b"x"
        finally:
            if event == "thread":
                other.join(5)
    assert seen == [False]


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_connection_lost_during_an_in_place_wait_fails_the_job(how):
    import socket
    import struct

    from gearq.client import JobConnectionLost

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            got = b""
            while len(got) < 12 or len(got) < 12 + struct.unpack(">I", got[8:12])[0]:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                got += chunk
            handle = b"H:fake:1"
            conn.sendall(b"\0RES" + struct.pack(">II", 8, len(handle)) + handle)
            time.sleep(0.2)
            if how == "reset":  # RST instead of FIN: the read itself fails
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with Client(f"127.0.0.1:{port}") as client:
            job = client.submit("f", b"x")
            start = time.monotonic()
            with pytest.raises(JobConnectionLost):
                job.result(10)
            assert time.monotonic() - start < 5  # told, not left to its timeout
    finally:
        thread.join(5)
        listener.close()


def test_a_finished_job_and_its_listeners_leave_no_reference_cycle(gearmand, workers):
    # A job's listeners are often bound to whoever holds the job (a SyncJob, a task's
    # result): kept after the final event, they made every call a reference cycle, freed
    # only by the garbage collector.
    import gc

    workers(gearmand, "echo")
    workers(gearmand, "ev")
    with Client(gearmand.address) as client:
        assert client.submit("echo", b"warm").result(10) == b"warm"
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.disable()
        try:
            for _ in range(20):
                assert client.submit("echo", b"ok").result(10) == b"ok"
                failed = client.submit("ev", script(["fail"]))
                wait_until(lambda job=failed: job.done, 10)
                assert failed.state is JobState.FAILED
                del failed
            gc.collect()
            left = [type(o).__name__ for o in gc.garbage if type(o).__name__ in ("Job", "SyncJob")]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert left == []
