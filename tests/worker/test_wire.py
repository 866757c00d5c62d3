"""The worker's wire behaviour, against a scripted fake server (no gearmand needed)."""

from __future__ import annotations

import asyncio
import os

from gearq.protocol import Packet, PacketType
from gearq.worker import Job

from .fakeserver import FakeConn, FakeServer, Script
from .helpers import eventually, make_worker, run, serving

P = PacketType


def idle_script(conn: FakeConn, packet: Packet) -> None:
    """An empty server: every GRAB gets NO_JOB, PRE_SLEEP gets no NOOP."""
    if packet.type is P.GRAB_JOB_UNIQ:
        conn.send(P.NO_JOB)


def jobs_script(jobs: list[tuple[bytes, bytes]]) -> tuple[list[bytes], object]:
    """A server with a queue of (function, payload); records completed handles."""
    done: list[bytes] = []
    counter = iter(range(1, 10**6))

    def script(conn: FakeConn, packet: Packet) -> None:
        if packet.type is P.GRAB_JOB_UNIQ:
            if jobs:
                function, payload = jobs.pop(0)
                handle = b"H:fake:%d" % next(counter)
                conn.send(P.JOB_ASSIGN_UNIQ, handle, function, b"u-" + handle, payload)
            else:
                conn.send(P.NO_JOB)
        elif packet.type is P.WORK_COMPLETE:
            done.append(packet.args[0])

    return done, script


async def _noop_handler(job: Job) -> bytes:
    return b""


def test_registration_each_function_once_per_connection_no_can_do_timeout() -> None:
    async def main() -> None:
        server = await FakeServer(idle_script).start()
        worker = make_worker(server.address)
        worker.register("alpha", _noop_handler, time_limit=5)
        worker.register("beta", lambda job: b"")
        async with serving(worker):
            await eventually(lambda: all(c.count(P.GRAB_JOB_UNIQ) for c in server.conns))
            assert len(server.conns) == 2  # a connection per function
            seen = []
            for conn in server.conns:
                first = conn.packets[0]
                assert first.type is P.SET_CLIENT_ID
                client_id = first.args[0].decode()
                assert str(os.getpid()) in client_id and not any(c.isspace() for c in client_id)
                can_do = [p.args[0] for p in conn.packets if p.type is P.CAN_DO]
                assert len(can_do) == 1
                seen += can_do
                types = conn.types()
                assert P.CAN_DO_TIMEOUT not in types and P.GRAB_JOB not in types
            assert sorted(seen) == [b"alpha", b"beta"]
        await server.close()

    run(main())


def test_group_shares_a_connection_first_registered_served_first() -> None:
    async def main() -> None:
        server = await FakeServer(idle_script).start()
        worker = make_worker(server.address, client_id="my-worker")
        worker.register("a", _noop_handler, group="g")
        worker.register("b", _noop_handler, group="g")
        async with serving(worker):
            await eventually(lambda: server.conns and server.conns[0].count(P.GRAB_JOB_UNIQ))
            assert len(server.conns) == 1
            conn = server.conns[0]
            assert conn.packets[0].args == (b"my-worker",)
            # gearmand serves the last CAN_DO first: "a" must come last.
            assert [p.args[0] for p in conn.packets if p.type is P.CAN_DO] == [b"b", b"a"]
        await server.close()

    run(main())


def test_poll_interval_regrabs_without_noop() -> None:
    async def main() -> None:
        server = await FakeServer(idle_script).start()
        worker = make_worker(server.address, poll_interval=0.2)
        worker.register("f", _noop_handler)
        async with serving(worker):
            await asyncio.sleep(1.1)
            conn = server.conns[0]
            grabs = conn.count(P.GRAB_JOB_UNIQ)
            # One at connect, then one per poll interval: about 6.
            assert 4 <= grabs <= 9, grabs
            assert conn.count(P.PRE_SLEEP) >= grabs - 1
        await server.close()

    run(main())


def test_noop_storm_backs_off_to_the_poll_interval() -> None:
    """gearmand 1.1.20 with a future epoch job answers PRE_SLEEP with NOOP at once while
    GRAB keeps giving NO_JOB; a naive worker spins thousands of times a second."""

    def storm(conn: FakeConn, packet: Packet) -> None:
        if packet.type is P.GRAB_JOB_UNIQ:
            conn.send(P.NO_JOB)
        elif packet.type is P.PRE_SLEEP:
            conn.send(P.NOOP)

    async def main() -> None:
        server = await FakeServer(storm).start()
        worker = make_worker(server.address, poll_interval=0.5)
        worker.register("f", _noop_handler)
        async with serving(worker):
            await asyncio.sleep(2.0)
            grabs = server.conns[0].count(P.GRAB_JOB_UNIQ)
            # 3 at once, then 1, 2, 4 ... 256 ms, then one per 0.5 s: about 16 in 2 s.
            assert 6 <= grabs <= 30, grabs
        await server.close()

    run(main())


def test_error_in_place_of_a_grab_answer_does_not_leak_the_slot() -> None:
    answered_error: list[bool] = []
    done, serve_jobs = jobs_script([(b"f", b"payload")])

    def script(conn: FakeConn, packet: Packet) -> None:
        if packet.type is P.GRAB_JOB_UNIQ and not answered_error:
            answered_error.append(True)
            conn.send(P.ERROR, b"SOME_ERROR", b"an error instead of a job")
            return
        serve_jobs(conn, packet)  # type: ignore[operator]

    async def main() -> None:
        server = await FakeServer(script).start()
        worker = make_worker(server.address, concurrency=1, poll_interval=0.2)
        worker.register("f", _noop_handler)
        async with serving(worker):
            await eventually(lambda: done, timeout=5)
            assert worker.stats.server_errors == 1
            assert worker.stats.completed == 1
        await server.close()

    run(main())


def test_never_grabs_more_than_free_slots() -> None:
    release = asyncio.Event()
    running: list[bytes] = []
    jobs = [(b"f", b"%d" % i) for i in range(50)]
    done, script = jobs_script(jobs)

    async def slow(job: Job) -> bytes:
        running.append(job.handle)
        await release.wait()
        return b"ok"

    async def main() -> None:
        server = await FakeServer(script).start()  # type: ignore[arg-type]
        worker = make_worker(server.address, concurrency=3, grab_window=8)
        worker.register("f", slow)
        async with serving(worker):
            await eventually(lambda: len(running) == 3)
            await asyncio.sleep(0.3)
            conn = server.conns[0]
            assert conn.count(P.GRAB_JOB_UNIQ) == 3  # every slot is busy: no more GRABs
            assert worker.running_jobs == 3
            release.set()
            await eventually(lambda: len(done) == 50)
            assert worker.running_jobs == 0
        await server.close()

    run(main())


def test_reconnects_and_registers_again_after_a_drop() -> None:
    jobs: list[tuple[bytes, bytes]] = []
    done, serve_jobs = jobs_script(jobs)

    def script(conn: FakeConn, packet: Packet) -> None:
        if len(conn.server.conns) == 1 and packet.type is P.GRAB_JOB_UNIQ:
            conn.close()  # the first connection dies right after registering
            return
        serve_jobs(conn, packet)  # type: ignore[operator]

    async def main() -> None:
        server = await FakeServer(script).start()
        worker = make_worker(server.address)
        worker.register("f", _noop_handler)
        async with serving(worker, ready=False):
            await eventually(lambda: len(server.conns) >= 2)
            jobs.append((b"f", b"after"))
            await eventually(lambda: done)
            second = server.conns[1]
            assert second.types()[:2] == [P.SET_CLIENT_ID, P.CAN_DO]
        await server.close()

    run(main())


def test_a_job_is_never_answered_on_a_newer_connection() -> None:
    """gearmand reuses handles after a restart: an old job's answer on a new connection
    could complete somebody else's job."""
    release = asyncio.Event()
    started = asyncio.Event()
    first_done: list[bytes] = []

    def script(conn: FakeConn, packet: Packet) -> None:
        index = conn.server.conns.index(conn)
        if packet.type is P.GRAB_JOB_UNIQ:
            if index == 0 and conn.count(P.GRAB_JOB_UNIQ) == 1:
                conn.send(P.JOB_ASSIGN_UNIQ, b"H:x:1", b"f", b"u", b"slow")
            else:
                conn.send(P.NO_JOB)
        elif packet.type is P.WORK_COMPLETE:
            first_done.append(packet.args[0])

    async def handler(job: Job) -> bytes:
        started.set()
        await release.wait()
        return b"late"

    async def main() -> None:
        server = await FakeServer(script).start()
        worker = make_worker(server.address)
        worker.register("f", handler)
        async with serving(worker):
            await asyncio.wait_for(started.wait(), 5)
            server.conns[0].close()
            await eventually(lambda: len(server.conns) == 2 and worker.connected == 1)
            release.set()
            await eventually(lambda: worker.running_jobs == 0)
            await asyncio.sleep(0.2)
            assert first_done == []
            assert worker.stats.jobs_lost == 1
        await server.close()

    run(main())


def _queue_script(queue: list[bytes], crossing: list[bool]) -> Script:
    """gearmand's grab loop over ``queue`` (payloads of function f): GRAB takes the head or
    gets NO_JOB, PRE_SLEEP gets a NOOP at once while jobs wait. With ``crossing`` set, the
    next GRAB is answered after a NOOP (one sent just before the GRAB arrived)."""
    counter = iter(range(1, 10**6))

    def script(conn: FakeConn, packet: Packet) -> None:
        if packet.type is P.GRAB_JOB_UNIQ:
            if crossing and crossing.pop():
                conn.send(P.NOOP)
            if queue:
                handle = b"H:fake:%d" % next(counter)
                conn.send(P.JOB_ASSIGN_UNIQ, handle, b"f", b"", queue.pop(0))
            else:
                conn.send(P.NO_JOB)
        elif packet.type is P.PRE_SLEEP and queue:
            conn.send(P.NOOP)

    return script


async def _echo(job: Job) -> bytes:
    return b"ok " + job.payload


def test_a_noop_after_an_empty_queue_gets_a_probe_and_nothing_after_the_answer() -> None:
    """Woken after a NO_JOB, the worker sends GRAB and PRE_SLEEP: the GRAB gets the job,
    and the answer is all that follows (no GRAB to find the queue empty again). A NOOP
    crossing the probe is not answered: the probe sees the job."""
    queue: list[bytes] = []
    crossing: list[bool] = []

    async def main() -> None:
        server = await FakeServer(_queue_script(queue, crossing)).start()
        worker = make_worker(server.address, concurrency=8, poll_interval=10.0)
        worker.register("f", _echo)
        async with serving(worker):
            conn = server.conns[0]
            await eventually(lambda: conn.count(P.PRE_SLEEP) == 1)  # asleep after NO_JOB
            answers = [0]
            for i, cross in enumerate([False, False, True, False]):
                mark = len(conn.packets)
                queue.append(b"%d" % i)
                crossing[:] = [cross]
                conn.send(P.NOOP)
                answers[0] = i + 1
                await eventually(lambda: conn.count(P.WORK_COMPLETE) == answers[0])
                await asyncio.sleep(0.1)  # whatever follows the answer has been sent
                sent = conn.types()[mark:]
                assert sent == [P.GRAB_JOB_UNIQ, P.PRE_SLEEP, P.WORK_COMPLETE]
                assert conn.packets[-1].args == (b"H:fake:%d" % (i + 1), b"ok %d" % i)
            # Four wakes and the crossing NOOP; the NO_JOB before the first sleep only.
            assert worker.stats.noops == 5 and worker.stats.no_jobs == 1
        await server.close()

    run(main())


def test_a_probe_that_finds_a_queue_hands_over_to_the_grab_window() -> None:
    """More jobs wait behind the probe's: gearmand answers its PRE_SLEEP with a NOOP at
    once, right behind the job, and from that wake on the worker GRABs as usual, without a
    PRE_SLEEP per job."""
    queue: list[bytes] = []

    async def main() -> None:
        server = await FakeServer(_queue_script(queue, [])).start()
        worker = make_worker(server.address, concurrency=8, poll_interval=10.0)
        worker.register("f", _echo)
        async with serving(worker):
            conn = server.conns[0]
            await eventually(lambda: conn.count(P.PRE_SLEEP) == 1)
            mark = len(conn.packets)
            queue.extend(b"%d" % i for i in range(40))
            conn.send(P.NOOP)
            await eventually(lambda: conn.count(P.WORK_COMPLETE) == 40)
            await eventually(lambda: conn.types()[-1] is P.PRE_SLEEP)  # asleep again
            sent = conn.types()[mark:]
            # The probe's, then one after the NO_JOB that ends the queue.
            assert sent.count(P.PRE_SLEEP) == 2, sent
            assert sent[:3] == [P.GRAB_JOB_UNIQ, P.PRE_SLEEP, P.GRAB_JOB_UNIQ]
            # Up to 8 GRABs outstanding: 40 jobs and a NO_JOB or few.
            assert 41 <= sent.count(P.GRAB_JOB_UNIQ) <= 49, sent
        await server.close()

    run(main())


def test_a_probe_answered_after_the_poll_interval_leaves_the_grab_loop_going() -> None:
    """The poll timer strikes while a probe's GRAB is still unanswered (a slow server):
    the late answer is taken as any GRAB's, the job is answered, and the connection goes
    back to sleep and keeps polling."""
    withhold = [0]  # GRABs left unanswered (answered later, by the test)
    serve = _queue_script([], [])

    def script(conn: FakeConn, packet: Packet) -> None:
        if packet.type is P.GRAB_JOB_UNIQ and withhold[0]:
            withhold[0] -= 1
            return
        serve(conn, packet)

    async def main() -> None:
        server = await FakeServer(script).start()
        worker = make_worker(server.address, concurrency=8, poll_interval=0.2)
        worker.register("f", _echo)
        async with serving(worker):
            conn = server.conns[0]
            await eventually(lambda: conn.count(P.PRE_SLEEP) >= 1)
            withhold[0] = 1
            conn.send(P.NOOP)
            await eventually(lambda: withhold[0] == 0)  # the probe's GRAB
            polls = worker.stats.polls
            await asyncio.sleep(0.5)  # past the poll interval, the probe unanswered
            assert worker.stats.polls == polls  # no poll while GRABs are out
            conn.send(P.JOB_ASSIGN_UNIQ, b"H:fake:late", b"f", b"", b"late")
            await eventually(lambda: conn.count(P.WORK_COMPLETE) == 1)
            done = [p for p in conn.packets if p.type is P.WORK_COMPLETE]
            assert done[0].args == (b"H:fake:late", b"ok late")
            sleeps = conn.count(P.PRE_SLEEP)
            await eventually(lambda: worker.stats.polls >= polls + 2, timeout=3)
            assert conn.count(P.PRE_SLEEP) >= sleeps + 2  # asleep between polls again
            stats = worker.stats
            assert stats.grabs - stats.no_jobs == 1  # one job; every other GRAB answered
            assert worker.running_jobs == 0
        await server.close()

    run(main())
