"""Job events seen by the caller, driven by a raw worker: data, warning, status, complete,
fail, exception; streaming; callbacks; client-side timeouts."""

from __future__ import annotations

import asyncio

import pytest

from gearq.client import (
    AsyncClient,
    JobException,
    JobFailed,
    JobState,
    JobTimeout,
)

from .helpers import run, script


def _record(job):
    seen = []
    for event in ("created", "data", "warning", "status", "complete", "fail", "exception"):
        job.on(event, lambda j, value, event=event: seen.append((event, value)))
    return seen


def test_data_warning_status_complete_in_order(gearmand, workers):
    workers(gearmand, "ev")
    payload = script(
        ["data", "d1"], ["warning", "w1"], ["status", 1, 4], ["data", "d2"],
        ["status", 4, 4], ["complete", "done"],
    )  # fmt: skip

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", payload)
            seen = _record(job)
            result = await job.result(10)
            return job, seen, result

    job, seen, result = run(main())
    assert result == b"done"
    assert seen == [
        ("created", job.handle),
        ("data", b"d1"),
        ("warning", b"w1"),
        ("status", (1, 4)),
        ("data", b"d2"),
        ("status", (4, 4)),
        ("complete", b"done"),
    ]
    assert job.data == [b"d1", b"d2"]
    assert job.warnings == [b"w1"]
    assert (job.numerator, job.denominator) == (4, 4)


def test_work_fail_raises_job_failed(gearmand, workers):
    workers(gearmand, "ev")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", script(["fail"]))
            seen = _record(job)
            with pytest.raises(JobFailed) as info:
                await job
            return job, seen, info.value

    job, seen, error = run(main())
    assert job.state is JobState.FAILED
    assert seen[-1] == ("fail", None)
    assert error.server == job.server and error.handle == job.handle


def test_work_exception_raises_job_exception_with_the_data(gearmand, workers):
    workers(gearmand, "ev")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", script(["data", "partial"], ["exception", "boom!"]))
            seen = _record(job)
            with pytest.raises(JobException) as info:
                await job
            return job, seen, info.value

    job, seen, error = run(main())
    # OPTION_REQ "exceptions" was sent: WORK_EXCEPTION arrives as such, not as WORK_FAIL.
    assert error.data == b"boom!"
    assert job.state is JobState.EXCEPTION
    assert seen[-2:] == [("data", b"partial"), ("exception", b"boom!")]


def test_stream_yields_chunks_as_they_arrive(gearmand, workers):
    workers(gearmand, "ev")
    payload = script(
        ["data", "a"], ["sleep", 0.2], ["data", "b"], ["sleep", 0.2], ["data", "c"],
        ["complete", "end"],
    )  # fmt: skip

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", payload)
            got = []
            async for chunk in job.stream():
                got.append((chunk, job.done))
            return got, await job

    got, result = run(main())
    assert [c for c, _ in got] == [b"a", b"b", b"c"]
    # The chunks sent before the worker's pauses were seen while the job still ran.
    assert [done for _, done in got[:2]] == [False, False]
    assert result == b"end"


def test_stream_raises_the_jobs_error_at_the_end(gearmand, workers):
    workers(gearmand, "ev")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", script(["data", "a"], ["exception", "bad"]))
            await asyncio.sleep(0.3)  # chunks that arrived before iterating are not lost
            got = []
            with pytest.raises(JobException):
                async for chunk in job.stream():
                    got.append(chunk)
            return got

    assert run(main()) == [b"a"]


def test_done_callback_and_callback_errors_do_not_break_anything(gearmand, workers):
    workers(gearmand, "ev")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", script(["data", "x"], ["complete", "ok"]))
            done = []
            job.on("data", lambda j, v: 1 / 0)
            job.add_done_callback(lambda j: done.append(j.state))
            result = await job
            job.add_done_callback(lambda j: done.append("late"))
            return result, done

    assert run(main()) == (b"ok", [JobState.COMPLETE, "late"])


def test_submit_timeout_fires_without_a_worker(gearmand):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("nobody", b"x", timeout=0.3)
            timeouts = []
            job.on("timeout", lambda j, v: timeouts.append(j.state))
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(JobTimeout):
                await job
            return job, timeouts, loop.time() - start

    job, timeouts, waited = run(main())
    assert job.state is JobState.TIMEOUT
    assert timeouts == [JobState.TIMEOUT]
    assert waited < 5


def test_result_timeout_leaves_the_job_running(gearmand, workers):
    workers(gearmand, "ev")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", script(["sleep", 0.5], ["complete", "late"]))
            with pytest.raises(JobTimeout):
                await job.result(timeout=0.05)
            assert not job.done
            return await job.result(timeout=10)

    assert run(main()) == b"late"


def test_packets_after_a_timeout_are_ignored(gearmand, workers):
    workers(gearmand, "ev")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            slow = await client.submit("ev", script(["sleep", 0.4], ["complete", "x"]), timeout=0.1)
            with pytest.raises(JobTimeout):
                await slow
            # The late WORK_COMPLETE for the timed-out job must not disturb others.
            later = await client.submit("ev", b"after")
            result = await later.result(10)
            await asyncio.sleep(0.5)
            return slow, result

    slow, result = run(main())
    assert result == b"after"
    assert slow.state is JobState.TIMEOUT


def test_coalesced_jobs_on_one_connection_each_see_every_event_once(gearmand, workers):
    payload = script(["data", "d"], ["status", 1, 2], ["warning", "w"], ["complete", "r"])

    async def main():
        async with AsyncClient(gearmand.address) as client:
            jobs = [await client.submit("co", payload, unique="one") for _ in range(3)]
            for job in jobs:
                await job.created()
            workers(gearmand, "co")
            results = [await job.result(10) for job in jobs]
            return jobs, results

    jobs, results = run(main())
    assert results == [b"r"] * 3
    assert len({job.handle for job in jobs}) == 1
    for job in jobs:
        assert job.data == [b"d"]
        assert job.warnings == [b"w"]


def test_cancelled_waiter_does_not_cancel_the_job(gearmand, workers):
    workers(gearmand, "ev")

    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("ev", script(["sleep", 0.3], ["complete", "ok"]))
            waiter = asyncio.ensure_future(job.result())
            await asyncio.sleep(0.05)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            return await job

    assert run(main()) == b"ok"
