"""The lone job's shortcuts in a worker connection (Link.woken for a read that is one NOOP,
Link.lone_job for a read that is one job) take the same steps as the
general path (Link.receive): the same packets leave, in the same order, and the link and
the worker end in the same state; a NOOP the shortcut does not cover goes the general way."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gearq.protocol import Packet, PacketType
from gearq.worker import AsyncWorker, Job
from gearq.worker import link as link_module

from .fakeserver import FakeConn, FakeServer
from .helpers import eventually, make_worker, run, serving

P = PacketType


def _script(queue: list[bytes]) -> Any:
    """gearmand's answers: a queued job or NO_JOB for each GRAB (all the answers to one
    write of the worker's go out together, so a probe's come back in one read)."""

    def script(conn: FakeConn, packet: Packet) -> None:
        if packet.type is P.GRAB_JOB_UNIQ:
            if queue:
                payload = queue.pop(0)
                conn.send(P.JOB_ASSIGN_UNIQ, b"H:" + payload, b"f", b"", payload)
            else:
                conn.send(P.NO_JOB)

    return script


def _state(worker: AsyncWorker) -> dict[str, Any]:
    link = worker._links[0]
    return {
        "state": link.state,
        "grabs": link.grabs,
        "limit": link.limit,
        "queued": link.queued,
        "streak": link._streak,
        "quiet": link._quiet,
        "probe": link._probe,
        "probe_found": link._probe_found,
        "sent_grabs": link._sent_grabs,
        "woken_by_noop": link._woken_by_noop,
        "timer_noop": link._timer_noop,
        "out": list(link._out),
        "free": worker._free,
        "hungry": len(worker._hungry),
        "stats": dataclasses.asdict(worker.stats),
    }


def _serve_wakes(monkeypatch: pytest.MonkeyPatch, shortcuts: bool) -> dict[str, Any]:
    """Wake an idle connection five times with a NOOP, for a job, for nothing (three
    times: the streak of vain wakes grows, and the first one past SPIN_FREE waits), and
    for a job again; what the server saw, the link's state after each wake, whether each
    wake took the NOOP shortcut, and the jobs that took the probe shortcut."""
    took: list[bool] = []
    real_wake = link_module.Link._wake

    def spy_wake(link: Any, *, noop: bool) -> None:
        took.append(False)
        real_wake(link, noop=noop)

    monkeypatch.setattr(link_module.Link, "_wake", spy_wake)
    answered: list[list[bytes]] = []
    real_answered = link_module.Link.lone_job

    def spy_answered(link: Any, job: list[bytes]) -> None:
        answered.append(job)
        real_answered(link, job)

    if shortcuts:
        monkeypatch.setattr(link_module.Link, "lone_job", spy_answered)
    else:
        monkeypatch.setattr(
            link_module.Link, "woken", lambda link: link.receive([link_module._NOOP_PACKET])
        )
        monkeypatch.setattr(link_module.Link, "lone_job", lambda link, job: link.receive([job]))
    queue: list[bytes] = []
    states: list[dict[str, Any]] = []

    def echo(job: Job) -> bytes:
        return b"ok " + job.payload

    async def main() -> list[PacketType]:
        server = await FakeServer(_script(queue)).start()
        worker = make_worker(server.address, concurrency=4, poll_interval=30.0)
        worker.register("f", echo, inline=True)
        async with serving(worker):
            conn = server.conns[0]
            link = worker._links[0]
            await eventually(lambda: conn.count(P.PRE_SLEEP) == 1)  # asleep
            for wake, job in enumerate([b"a", None, None, None, b"b"]):
                if job is not None:
                    queue.append(job)
                took.append(True)
                conn.send(P.NOOP)  # (the last, past SPIN_FREE, waits for a 1 ms timer)
                sleeps = 2 + wake
                await eventually(
                    lambda sleeps=sleeps: conn.count(P.PRE_SLEEP) == sleeps and not link.grabs
                )
                states.append(_state(worker))
            seen = conn.types()
        await server.close()
        return seen

    seen = run(main())
    # Each wake: True if it went no further than the shortcut (no _wake call after it).
    wakes = [took[i] and (i + 1 == len(took) or took[i + 1]) for i, t in enumerate(took) if t]
    return {"seen": seen, "states": states, "shortcut": wakes, "answered": answered}


def test_the_noop_and_probe_shortcuts_end_where_the_general_path_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as patch:
        general = _serve_wakes(patch, shortcuts=False)
    with monkeypatch.context() as patch:
        shortcut = _serve_wakes(patch, shortcuts=True)
    assert general["shortcut"] == [False] * 5
    assert shortcut["seen"] == general["seen"]
    assert shortcut["states"] == general["states"]
    assert general["states"][0]["stats"]["completed"] == 1
    assert general["states"][-1]["stats"]["completed"] == 2
    # The wakes with no vain wake before them took the NOOP shortcut; those after one that
    # found nothing (a streak) went the general way. Each job came back alone (the job
    # shortcut).
    assert shortcut["shortcut"] == [True, True, False, False, False]
    assert shortcut["answered"] == [[b"H:a", b"f", b"", b"a"], [b"H:b", b"f", b"", b"b"]]


def test_every_probe_is_one_grab(monkeypatch: pytest.MonkeyPatch) -> None:
    # A probe is one GRAB and a PRE_SLEEP, whether the shortcut sends it (a NOOP) or the
    # general path (the wakes after one that found nothing).
    result = _serve_wakes(monkeypatch, shortcuts=True)
    seen = result["seen"]
    probes: list[int] = []
    grabs = 0
    for ptype in seen:
        if ptype is P.GRAB_JOB_UNIQ:
            grabs += 1
        elif ptype is P.PRE_SLEEP:
            probes.append(grabs)
            grabs = 0
    # The first sleep (after the first GRAB), then the five wakes' probes.
    assert probes == [1, 1, 1, 1, 1, 1], seen
