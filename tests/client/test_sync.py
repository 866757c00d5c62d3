"""The blocking Client: same names and semantics, several threads, and os.fork()."""

from __future__ import annotations

import os
import threading
import warnings

import pytest

from gearq.client import AdminClient, Client, JobException, JobState, JobTimeout, SyncJob

from .helpers import script


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
        read_fd, write_fd = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # the child: report and leave without running any cleanup
            status = b"fail"
            try:
                os.close(read_fd)
                result = client.submit("echo", b"child").result(10)
                with AdminClient(gearmand.address) as admin:
                    rows = next(iter(admin.workers().values())).result()
                ids = {row.client_id for row in rows}
                if result == b"child" and f"gearq-client-{os.getpid()}" in ids:
                    status = b"ok"
            except BaseException as exc:
                status = repr(exc).encode()
            finally:
                os.write(write_fd, status)
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            child_status = pipe.read()
        os.waitpid(pid, 0)
        assert child_status == b"ok"
        # The parent's connection was not disturbed by the child.
        assert client.submit("echo", b"parent again").result(10) == b"parent again"
