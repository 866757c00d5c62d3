"""A lone job on an idle connection: what leaves, and when. The probe (a GRAB and a
PRE_SLEEP) is written before the bookkeeping that follows it, and the job's answer is all
that follows (the round trip of a lone caller waits for exactly these writes)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gearq.protocol import Packet, PacketType
from gearq.protocol.codec import encode_request
from gearq.worker import Job
from gearq.worker import link as link_module

from .fakeserver import FakeConn, FakeServer
from .helpers import eventually, make_worker, run, serving

P = PacketType

_PROBE = encode_request(P.GRAB_JOB_UNIQ) + encode_request(P.PRE_SLEEP)


def _probe_script(queue: list[bytes]) -> Any:
    """gearmand's answers to GRABs: the queued job, else NO_JOB."""

    def script(conn: FakeConn, packet: Packet) -> None:
        if packet.type is P.GRAB_JOB_UNIQ:
            if queue:
                conn.send(P.JOB_ASSIGN_UNIQ, b"H:lone:%d" % len(queue), b"f", b"", queue.pop())
            else:
                conn.send(P.NO_JOB)

    return script


class _Spy:
    """Records every write of the worker's connections."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[bytes] = []
        send = link_module._Connection.send

        def spy_send(conn: Any, data: bytes) -> None:
            self.sent.append(bytes(data))
            send(conn, data)

        def spy_send_idle(conn: Any, data: bytes) -> bool:
            spy_send(conn, data)  # the same bytes, the transport's way
            return True

        monkeypatch.setattr(link_module._Connection, "send", spy_send)
        monkeypatch.setattr(link_module._Connection, "send_now", spy_send)
        monkeypatch.setattr(link_module._Connection, "send_idle", spy_send_idle)


def test_a_probes_job_is_answered_and_nothing_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    # The probe's PRE_SLEEP was sent with its GRAB: the answer is the last write, with no
    # GRAB or PRE_SLEEP after it, and the connection stays asleep.
    spy = _Spy(monkeypatch)
    queue: list[bytes] = []

    def echo(job: Job) -> bytes:
        return b"ok " + job.payload

    async def main() -> None:
        server = await FakeServer(_probe_script(queue)).start()
        worker = make_worker(server.address, concurrency=4, poll_interval=10.0)
        worker.register("f", echo, inline=True)
        async with serving(worker):
            conn = server.conns[0]
            await eventually(lambda: conn.count(P.PRE_SLEEP) == 1)  # asleep after NO_JOB
            spy.sent.clear()
            queue.append(b"x")
            conn.send(P.NOOP)
            await eventually(lambda: conn.count(P.WORK_COMPLETE) == 1)
            await asyncio.sleep(0.1)  # whatever follows the answer has happened
            assert conn.packets[-1].args == (b"H:lone:1", b"ok x")
            assert worker._links[0].state == link_module.SLEEPING
        await server.close()

    run(main())
    assert spy.sent == [_PROBE, encode_request(P.WORK_COMPLETE, b"H:lone:1", b"ok x")]


def test_a_probes_inline_job_is_answered_before_the_bookkeeping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What had been written when the probe was seen to (Link._probed, after the handler):
    # the answer already, not queued for a write after the bookkeeping.
    spy = _Spy(monkeypatch)
    at_probed: list[list[bytes]] = []
    probed = link_module.Link._probed

    def spy_probed(link: Any) -> None:
        at_probed.append(list(spy.sent))
        probed(link)

    monkeypatch.setattr(link_module.Link, "_probed", spy_probed)
    queue: list[bytes] = []

    async def main() -> None:
        server = await FakeServer(_probe_script(queue)).start()
        worker = make_worker(server.address, concurrency=4, poll_interval=10.0)
        worker.register("f", lambda job: b"ok " + job.payload, inline=True)
        async with serving(worker):
            conn = server.conns[0]
            await eventually(lambda: conn.count(P.PRE_SLEEP) == 1)
            at_probed.clear()
            queue.append(b"x")
            conn.send(P.NOOP)
            await eventually(lambda: conn.count(P.WORK_COMPLETE) == 1)
        await server.close()

    run(main())
    assert at_probed, "the probe's job was not seen to"
    assert at_probed[0][-1] == encode_request(P.WORK_COMPLETE, b"H:lone:1", b"ok x")


def test_a_probe_is_written_before_its_timer_is_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    # When each write left, and when this sleep was then set to end (the poll timer's
    # bookkeeping): the probe's write must not wait for that bookkeeping.
    writes: list[tuple[bytes, float]] = []
    send = link_module._Connection.send

    def spy_send(conn: Any, data: bytes) -> bool:
        assert conn.link is not None
        writes.append((bytes(data), conn.link._timer_at))
        send(conn, data)
        return True

    for name in ("send", "send_now", "send_idle"):
        monkeypatch.setattr(link_module._Connection, name, spy_send)

    def echo(job: Job) -> bytes:
        return job.payload

    async def main() -> tuple[float, float]:
        server = await FakeServer(_probe_script([])).start()
        worker = make_worker(server.address, concurrency=4, poll_interval=10.0)
        worker.register("f", echo, inline=True)
        async with serving(worker):
            conn = server.conns[0]
            await eventually(lambda: conn.count(P.PRE_SLEEP) == 1)
            link = worker._links[0]
            asleep_until = link._timer_at
            writes.clear()
            conn.send(P.NOOP)  # a wake that finds nothing: a probe all the same
            await eventually(lambda: conn.count(P.PRE_SLEEP) == 2)
            woken_until = link._timer_at
        await server.close()
        return asleep_until, woken_until

    asleep_until, woken_until = run(main())
    assert [data for data, _ in writes] == [_PROBE]
    assert writes[0][1] == asleep_until < woken_until


def test_a_connection_keeps_its_loops_time() -> None:
    """Links read the clock without a Python call when the loop keeps asyncio's own, and
    through the loop when it keeps another (heartbeats and timers compare the two)."""
    import asyncio
    import time

    from gearq.net.connection import loop_clock

    class Shifted(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 1000.0 + super().time()

    plain = asyncio.new_event_loop()
    shifted = Shifted()
    try:
        assert loop_clock(plain) is time.monotonic
        now = loop_clock(shifted)
        assert now() >= 1000.0 + time.monotonic() - 1.0
    finally:
        plain.close()
        shifted.close()
