"""A LaneSender's submit and LaneCall.wait against a real gearmand: what the task layer's
lone calls do, without the task layer (end to end in tests/app/test_lane.py)."""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

from gearq.client import AsyncClient
from gearq.client.job import JobState, Priority
from gearq.client.lane import DONE, LATE, OTHER, LaneCall
from gearq.testing import GearmandProcess

from .helpers import ScriptedWorker, run, script, totals


def _poll(lane: LaneCall) -> Any:
    poll = select.poll()
    poll.register(lane.conn._fd, select.POLLIN)
    return poll


def test_a_sent_lane_is_read_to_its_result(
    gearmand: GearmandProcess, workers: Callable[..., ScriptedWorker]
) -> None:
    workers(gearmand, "echo")

    async def main() -> tuple[list[int], list[bytes], LaneCall, bool]:
        async with AsyncClient(gearmand.address) as client:
            await client.ping()  # connected
            sender = client.lane_sender("echo", Priority.HIGH)
            assert sender is not None
            results = []
            for payload in (b"one", b"two"):  # the same sender, call after call
                lane = sender.send(payload)
                assert lane is not None
                done: list[bytes] = []
                lane.on_done = done.append
                got = lane.wait(_poll(lane), time.monotonic() + 10)
                results.append(got)
                assert done == [payload]
            idle = all(not link.pending and not link.jobs for link in client._links)
            return results, done, lane, idle

    results, done, lane, idle = run(main())
    assert results == [DONE, DONE] and done == [b"two"]
    assert lane.handle is not None and lane.handle.startswith(b"H:")
    assert idle  # the link never knew the lanes


def test_a_lane_that_meets_another_packet_becomes_the_job(
    gearmand: GearmandProcess, workers: Callable[..., ScriptedWorker]
) -> None:
    workers(gearmand, "scripted")

    async def main() -> tuple[int, bytes, tuple[int, int], JobState]:
        async with AsyncClient(gearmand.address) as client:
            await client.ping()
            sender = client.lane_sender("scripted")
            assert sender is not None
            lane = sender.send(script(["status", 1, 2], ["sleep", 0.05], ["complete", "end"]))
            assert lane is not None
            got = lane.wait(_poll(lane), time.monotonic() + 10)
            job = lane.materialize()  # (in the loop's thread, as the driver does)
            result = await job
            return got, result, (job.numerator, job.denominator), job.state

    got, result, status, state = run(main())
    assert got == OTHER and result == b"end" and status == (1, 2)
    assert state is JobState.COMPLETE


def test_a_lane_waited_out_is_still_there_for_its_job(gearmand: GearmandProcess) -> None:
    # No worker: the JOB_CREATED comes, the result does not.
    async def main() -> tuple[int, bytes | None, JobState, list[int]]:
        async with AsyncClient(gearmand.address) as client:
            await client.ping()
            sender = client.lane_sender("nobody")
            assert sender is not None
            lane = sender.send(b"x")
            assert lane is not None
            got = lane.wait(_poll(lane), time.monotonic() + 0.2)
            job = lane.materialize()
            queued = totals([gearmand], "nobody")
            return got, lane.handle, job.state, queued

    got, handle, state, queued = run(main())
    assert got == LATE and handle is not None
    assert state is JobState.CREATED and queued == [1]


def test_what_a_lane_cannot_take_is_not_sent(gearmand: GearmandProcess) -> None:
    async def main() -> list[object]:
        out: list[object] = []
        async with AsyncClient(gearmand.address) as client:
            await client.ping()
            out.append(client.lane_sender("bad name"))  # whitespace: not a function name
            out.append(client.lane_sender(""))
            sender = client.lane_sender("refused")
            assert sender is not None
            out.append(sender.send("text"))  # type: ignore[arg-type]
        async with AsyncClient(gearmand.address, max_payload_size=4) as client:
            await client.ping()
            sender = client.lane_sender("refused")
            assert sender is not None
            out.append(sender.send(b"12345"))  # too large
        async with AsyncClient(gearmand.address, job_timeout=5) as client:
            await client.ping()
            sender = client.lane_sender("refused")
            assert sender is not None
            out.append(sender.send(b"x"))  # a job timeout needs a Job
        async with AsyncClient(gearmand.address) as client:
            sender = client.lane_sender("refused")
            assert sender is not None
            await client.ping()
            await client.close()
            out.append(sender.send(b"x"))  # closed
        return out

    assert run(main()) == [None] * 6
    assert totals([gearmand], "refused") == [0]


def test_a_payload_at_the_size_limit_goes_as_a_lane(gearmand: GearmandProcess) -> None:
    async def main() -> tuple[object, int, list[int]]:
        async with AsyncClient(gearmand.address, max_payload_size=4) as client:
            await client.ping()
            sender = client.lane_sender("limit")
            assert sender is not None
            over = sender.send(b"12345")
            lane = sender.send(b"1234")
            assert lane is not None
            got = lane.wait(_poll(lane), time.monotonic() + 0.2)  # no worker: created only
            lane.materialize()
            return over, got, totals([gearmand], "limit")

    over, got, queued = run(main())
    assert over is None and got == LATE and queued == [1]


def test_a_driver_being_stopped_sends_no_lane(gearmand: GearmandProcess) -> None:
    from gearq.client.sync import DrivenLoop

    driver = DrivenLoop("lane-stop")
    client = AsyncClient(gearmand.address)
    driver.run(client.ping(), timeout=10)
    sender = client.lane_sender("stopping")
    assert sender is not None
    sent = driver.send_lane(sender, b"one", lambda lane: lane)
    assert isinstance(sent, LaneCall)  # while it runs
    conn = sent.conn
    driver.stop()
    try:
        assert driver.send_lane(sender, b"two", lambda lane: lane) is None
        assert driver.lane is sent  # (and the first one is left as it was)
    finally:
        conn._transport.get_extra_info("socket")._sock.close()  # the loop is gone
