"""Many jobs per read: the worker's batch path (inline answers, one write per batch)."""

from __future__ import annotations

import asyncio

from gearq.protocol import PacketType, encode_request
from gearq.testing import GearmandProcess
from gearq.worker import Job

from .helpers import eventually, make_worker, queued, raw_client, run, serving

P = PacketType


def _mixed(job: Job) -> object:
    """An inline handler that answers in every way a handler can."""
    kind = job.payload.split(b"-")[0]
    if kind == b"raise":
        raise ValueError("no " + job.payload.decode())
    if kind == b"self":
        job.complete(b"self " + job.payload)
        return None
    if kind == b"array":
        return bytearray(b"array " + job.payload)
    if kind == b"bad":
        return 42  # not bytes: an exception answer
    return b"ok " + job.payload


def test_queued_jobs_answered_in_batches_each_with_its_own_answer(
    gearmand: GearmandProcess,
) -> None:
    kinds = [b"ok", b"raise", b"self", b"array", b"bad"]
    payloads = [kinds[i % len(kinds)] + b"-%d" % i for i in range(150)]

    async def main() -> None:
        async with raw_client(gearmand.port) as client:
            # Queued before the worker exists, so that reads bring many jobs at once.
            client.writer.write(
                b"".join(
                    encode_request(P.SUBMIT_JOB, b"mixed", b"u%d" % i, payload)
                    for i, payload in enumerate(payloads)
                )
            )
            handles = {}
            for payload in payloads:
                created = await client.read()
                assert created.type is P.JOB_CREATED
                handles[created.args[0]] = payload
            worker = make_worker(gearmand.address)  # the defaults: 32 GRABs outstanding
            worker.register("mixed", _mixed, inline=True)  # type: ignore[arg-type]
            async with serving(worker):
                answers = {}
                while len(answers) < len(payloads):
                    packet = await client.read()
                    answers[packet.args[0]] = packet
                await eventually(lambda: queued(gearmand.port, "mixed") == 0)
        for handle, payload in handles.items():
            packet = answers[handle]
            kind = payload.split(b"-")[0]
            if kind in (b"raise", b"bad"):
                assert packet.type is P.WORK_EXCEPTION, (payload, packet)
                expected = b"ValueError: no " if kind == b"raise" else b"TypeError: handler"
                assert packet.args[1].startswith(expected)
            else:
                assert packet.type is P.WORK_COMPLETE, (payload, packet)
                prefix = {b"ok": b"ok ", b"self": b"self ", b"array": b"array "}[kind]
                assert packet.args[1] == prefix + payload
        stats = worker.stats
        assert (stats.completed, stats.exceptions, stats.handler_errors) == (90, 60, 60)
        assert stats.jobs_started == 150 and stats.connects == 1
        assert worker.grab_window == 32  # the default window, for a worker of inline handlers

    run(main())


def test_the_default_worker_runs_32_async_handlers_at_once(gearmand: GearmandProcess) -> None:
    n = 32
    arrived = [0]
    all_in = asyncio.Event()

    async def handler(job: Job) -> bytes:
        arrived[0] += 1
        if arrived[0] == n:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10)  # TimeoutError unless n run at once
        return b"a"

    async def main() -> None:
        worker = make_worker(gearmand.address)
        worker.register("wait", handler)
        assert worker.concurrency == n
        async with serving(worker), raw_client(gearmand.port) as client:
            await client.submit_many_bg(b"wait", [b""] * (n + 1), b"u")
            await eventually(lambda: worker.stats.completed == n + 1)
        assert worker.stats.handler_errors == 0

    run(main())


def _now_or_later(job: Job) -> object:
    """An inline handler that answers at once, or returns a coroutine to finish later."""
    kind = job.payload.split(b"-")[0]
    if kind == b"now":
        return b"now " + job.payload

    async def later() -> bytes:
        await asyncio.sleep(0.01 if kind != b"slow" else 5)
        if kind == b"fail":
            raise KeyError(job.payload.decode())
        return b"later " + job.payload

    return later()


def test_an_inline_handler_may_return_a_coroutine_that_finishes_the_job(
    gearmand: GearmandProcess,
) -> None:
    payloads = [[b"now", b"later", b"fail"][i % 3] + b"-%d" % i for i in range(30)]
    payloads.append(b"slow-x")  # past the time limit: cancelled and answered with it

    async def main() -> dict[bytes, object]:
        worker = make_worker(gearmand.address)
        worker.register("nl", _now_or_later, inline=True)  # type: ignore[arg-type]
        worker.register("nl_limited", _now_or_later, inline=True, time_limit=0.3)  # type: ignore[arg-type]
        async with serving(worker), raw_client(gearmand.port) as client:
            for i, payload in enumerate(payloads):
                function = b"nl_limited" if payload.startswith(b"slow") or i % 2 else b"nl"
                client.writer.write(encode_request(P.SUBMIT_JOB, function, b"", payload))
            handles: dict[bytes, bytes] = {}
            answers: dict[bytes, object] = {}
            while len(answers) < len(payloads):
                packet = await client.read()
                if packet.type is P.JOB_CREATED:
                    handles[packet.args[0]] = payloads[len(handles)]
                else:
                    answers[handles[packet.args[0]]] = packet
            assert worker.running_jobs == 0
        return answers

    answers = run(main())
    for payload, packet in answers.items():
        kind = payload.split(b"-")[0]
        if kind == b"now":
            assert packet.type is P.WORK_COMPLETE and packet.args[1] == b"now " + payload  # type: ignore[attr-defined]
        elif kind == b"later":
            assert packet.type is P.WORK_COMPLETE and packet.args[1] == b"later " + payload  # type: ignore[attr-defined]
        elif kind == b"fail":
            assert packet.type is P.WORK_EXCEPTION  # type: ignore[attr-defined]
            assert packet.args[1].startswith(b"KeyError")  # type: ignore[attr-defined]
        else:
            assert packet.type is P.WORK_EXCEPTION  # type: ignore[attr-defined]
            assert b"TimeLimitExceeded" in packet.args[1]  # type: ignore[attr-defined]


def test_lone_jobs_on_an_idle_connection_cost_one_probe_each_and_a_burst_is_grabbed(
    gearmand: GearmandProcess,
) -> None:
    """Jobs one at a time: each NOOP is answered with a GRAB and a PRE_SLEEP (the job, and
    no NO_JOB), and no GRAB follows the job's answer; every lone job costs the same. A
    burst right after is grabbed as usual (not one probe per job), and all of it answered."""

    async def main() -> tuple[list[tuple[int, int, int]], int]:
        # A long poll interval: no timer GRAB may fall among the counted ones.
        worker = make_worker(gearmand.address, concurrency=8, poll_interval=10.0)
        worker.register("lone", lambda job: b"ok " + job.payload, inline=True)
        counts = []
        stats = worker.stats
        async with serving(worker), raw_client(gearmand.port) as client:
            await eventually(lambda: stats.no_jobs >= 1)  # asleep after a NO_JOB
            for i in range(4):
                before = (stats.grabs, stats.no_jobs, stats.noops)
                outcome = await client.call(b"lone", b"%d" % i)
                assert (outcome.kind, outcome.result) == ("complete", b"ok %d" % i)
                await asyncio.sleep(0.05)  # whatever follows the answer has happened
                counts.append(
                    (stats.grabs - before[0], stats.no_jobs - before[1], stats.noops - before[2])
                )
            # A burst right after, written at once: every job answered.
            noops = stats.noops
            burst = 100
            client.writer.write(
                b"".join(
                    encode_request(P.SUBMIT_JOB, b"lone", b"", b"b%d" % i) for i in range(burst)
                )
            )
            results: set[bytes] = set()
            while len(results) < burst:
                packet = await client.read()
                if packet.type is P.WORK_COMPLETE:
                    results.add(packet.args[1])
            assert results == {b"ok b%d" % i for i in range(burst)}
            return counts, stats.noops - noops

    counts, burst_noops = run(main())
    # (GRABs sent, NO_JOBs got, NOOPs got) per job.
    assert counts == [(1, 0, 1)] * 4, counts
    # Probing every job of the burst would take a NOOP per job; grabbing as usual once a
    # probe found a queue takes a few.
    assert burst_noops < 25, burst_noops
