"""LaneCall.feed and LaneCall.wait on their own: how the bytes of a lone call's replies
are matched, however they are cut into reads (a socket pair stands in for the server
here; against gearmand in tests/client/test_lane_wire.py, end to end in
tests/app/test_lane.py)."""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from gearq.client.job import Job, JobState, Priority
from gearq.client.lane import AWAY, DONE, LATE, MORE, OTHER, LaneCall, LaneSender
from gearq.client.submit import FG_HEAD
from gearq.net.address import ServerAddress


def _res(ptype: int, body: bytes) -> bytes:
    return b"\0RES" + struct.pack(">II", ptype, len(body)) + body


HANDLE = b"H:host:42"
CREATED = _res(8, HANDLE)
COMPLETE = _res(13, HANDLE + b"\0" + b"the result")


class _Conn:
    def __init__(self) -> None:
        self.handed: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.handed.append(data)


class _Client:
    resubmit_on_failure = False
    max_payload_size = None
    job_timeout = None
    pool = None  # (a LaneSender keeps these two; these lanes are never sent)
    _links: list[Any] = []


class _Link:
    def __init__(self) -> None:
        self.client: Any = _Client()
        self.address = ServerAddress("127.0.0.1", 4730)
        self.pending: deque[Any] = deque()
        self.jobs: dict[bytes, Any] = {}


def _sender(link: _Link) -> LaneSender:
    return LaneSender(link.client, b"fn", FG_HEAD, Priority.NORMAL)


def _lane() -> tuple[LaneCall, _Conn, _Link, list[bytes], list[Job]]:
    conn, link = _Conn(), _Link()
    lane = LaneCall(link, conn, _sender(link), b"payload")  # type: ignore[arg-type]
    done: list[bytes] = []
    jobs: list[Job] = []
    lane.on_done = done.append
    lane.on_job = jobs.append
    return lane, conn, link, done, jobs


@pytest.mark.parametrize("cut", range(len(CREATED + COMPLETE) + 1))
def test_the_two_replies_in_any_two_reads(cut: int) -> None:
    lane, conn, link, done, jobs = _lane()
    data = CREATED + COMPLETE
    if cut == len(data):
        assert lane.feed(data) == DONE
    else:
        assert not cut or lane.feed(data[:cut]) == MORE
        assert lane.feed(data[cut:]) == DONE
    assert done == [b"the result"]
    assert lane.handle == HANDLE and lane.result == b"the result"
    assert not jobs and not conn.handed and not link.pending and not link.jobs
    assert not lane.open
    job = lane.completed_job()
    assert job is not None and job.state is JobState.COMPLETE and job.handle == HANDLE


def test_one_byte_at_a_time() -> None:
    lane, _, _, done, jobs = _lane()
    data = CREATED + COMPLETE
    results = [lane.feed(data[i : i + 1]) for i in range(len(data))]
    assert results == [MORE] * (len(data) - 1) + [DONE]
    assert done == [b"the result"] and not jobs


def test_another_packet_makes_the_job_and_hands_it_the_rest() -> None:
    lane, conn, link, done, jobs = _lane()
    status = _res(12, HANDLE + b"\x001\x002")  # WORK_STATUS
    assert lane.feed(CREATED + status[:5]) == MORE  # a packet not yet whole is kept
    assert lane.feed(status[5:] + COMPLETE) == OTHER
    assert not jobs and not conn.handed and lane.open  # the caller materializes it
    lane.materialize()
    assert not done and not lane.open
    assert len(jobs) == 1 and link.jobs == {HANDLE: jobs[0]}
    assert jobs[0].state is JobState.CREATED and jobs[0].handle == HANDLE
    assert conn.handed == [status + COMPLETE]  # from the unexpected packet on, in order


def test_an_error_before_the_job_was_created_goes_to_a_pending_job() -> None:
    lane, conn, link, done, jobs = _lane()
    error = _res(19, b"ERR\0no")  # ERROR in place of JOB_CREATED
    assert lane.feed(error) == OTHER
    lane.materialize()
    assert len(jobs) == 1 and list(link.pending) == jobs and not link.jobs
    assert jobs[0].state is JobState.PENDING
    assert conn.handed == [error] and not done


def test_a_completion_for_another_handle_is_not_taken_as_ours() -> None:
    lane, conn, link, done, jobs = _lane()
    other = _res(13, b"H:host:7\0x")
    assert lane.feed(CREATED + other) == OTHER
    lane.materialize()
    assert not done and link.jobs == {HANDLE: jobs[0]} and conn.handed == [other]


def test_a_large_packet_is_left_to_the_connection() -> None:
    lane, conn, _link, _done, jobs = _lane()
    big = _res(13, HANDLE + b"\0" + b"x" * 200_000)
    assert lane.feed(CREATED + big[:1000]) == OTHER
    lane.materialize()
    assert len(jobs) == 1 and conn.handed == [big[:1000]]


def test_materializing_hands_over_a_partial_packet_once() -> None:
    lane, conn, link, _done, jobs = _lane()
    assert lane.feed(CREATED + COMPLETE[:7]) == MORE
    job = lane.materialize()
    assert lane.materialize() is job and jobs == [job]
    assert link.jobs == {HANDLE: job} and conn.handed == [COMPLETE[:7]]


def test_garbage_is_left_to_the_connection_to_refuse() -> None:
    lane, conn, _, done, jobs = _lane()
    assert lane.feed(b"\0REQ" + b"\0" * 8) == OTHER
    lane.materialize()
    assert len(jobs) == 1 and conn.handed == [b"\0REQ" + b"\0" * 8] and not done


def test_bytes_after_our_result_are_kept_for_the_connection() -> None:
    lane, conn, _link, done, jobs = _lane()
    echo = _res(17, b"token")  # ECHO_RES: not the lane's
    assert lane.feed(CREATED + COMPLETE + echo) == DONE
    assert done == [b"the result"] and not conn.handed and lane.rest == echo
    lane.hand_over()
    assert conn.handed == [echo] and lane.rest == b"" and not jobs


def test_a_lane_whose_sender_failed_to_take_it_is_still_kept_in_step() -> None:
    # The callbacks are set after the packet has left; if whoever sent it fails before
    # that, the lane must still finish, or become a job the link knows, not vanish.
    conn, link = _Conn(), _Link()
    lane = LaneCall(link, conn, _sender(link), b"payload")  # type: ignore[arg-type]
    assert lane.open
    assert lane.feed(CREATED + COMPLETE) == DONE
    assert lane.result == b"the result" and not lane.open
    other = LaneCall(link, conn, _sender(link), b"payload")  # type: ignore[arg-type]
    assert other.feed(CREATED) == MORE
    job = other.materialize()
    assert link.jobs == {HANDLE: job} and not other.open


# -- LaneCall.wait: poll, read and match, on a socket pair ---------------------------------


class _SocketConn(_Conn):
    """What LaneCall.wait reads of a Connection, on one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._fd = sock.fileno()
        self._inbox = memoryview(bytearray(1 << 16))
        self._now = time.monotonic
        self._last_rx = 0.0


@pytest.fixture
def wired() -> Iterator[tuple[LaneCall, socket.socket, Any, list[bytes], list[Job]]]:
    """A lane whose connection is a socket pair: (lane, the server's end, poll, done, jobs)."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    conn, link = _SocketConn(ours), _Link()
    lane = LaneCall(link, conn, _sender(link), b"payload")  # type: ignore[arg-type]
    done: list[bytes] = []
    jobs: list[Job] = []
    lane.on_done = done.append
    lane.on_job = jobs.append
    poll = select.poll()
    poll.register(ours.fileno(), select.POLLIN)
    yield lane, theirs, poll, done, jobs
    ours.close()
    theirs.close()


def test_wait_takes_the_two_replies_from_separate_reads(wired: Any) -> None:
    lane, server, poll, done, jobs = wired
    server.sendall(CREATED)
    assert lane.wait(poll, time.monotonic() + 0.05) == LATE  # the handle, then nothing
    assert lane.handle == HANDLE and lane.open and not done
    assert lane.conn._last_rx > 0  # a read counts as the connection being alive
    server.sendall(COMPLETE)
    assert lane.wait(poll, time.monotonic() + 10) == DONE
    assert done == [b"the result"] and not jobs and lane.rest == b"" and not lane.open


def test_wait_takes_both_replies_from_one_read_and_keeps_what_follows(wired: Any) -> None:
    lane, server, poll, done, _jobs = wired
    echo = _res(17, b"token")
    server.sendall(CREATED + COMPLETE + echo)
    assert lane.wait(poll, None) == DONE
    assert done == [b"the result"] and lane.rest == echo


def test_wait_gathers_a_packet_cut_across_reads(wired: Any) -> None:
    lane, server, poll, done, _jobs = wired
    server.sendall(CREATED + COMPLETE[:5])
    assert lane.wait(poll, time.monotonic() + 0.05) == LATE
    assert lane.rest == COMPLETE[:5] and not done
    server.sendall(COMPLETE[5:])
    assert lane.wait(poll, time.monotonic() + 10) == DONE
    assert done == [b"the result"] and lane.rest == b""


def test_wait_stops_at_another_packet(wired: Any) -> None:
    lane, server, poll, done, jobs = wired
    status = _res(12, HANDLE + b"\x001\x002")  # WORK_STATUS
    server.sendall(CREATED)
    server.sendall(status)
    assert lane.wait(poll, time.monotonic() + 10) == OTHER
    assert lane.rest == status and lane.open and not done
    lane.materialize()
    assert len(jobs) == 1 and lane.conn.handed == [status]


def test_wait_leaves_the_end_of_the_stream_to_the_loop(wired: Any) -> None:
    lane, server, poll, done, jobs = wired
    server.sendall(CREATED)
    server.shutdown(socket.SHUT_WR)
    assert lane.wait(poll, time.monotonic() + 10) == AWAY
    assert lane.open and lane.handle == HANDLE and not done and not jobs


def test_wait_gives_way_when_poll_wakes_for_something_else(wired: Any) -> None:
    lane, _server, poll, done, _jobs = wired
    wake_r, wake_w = os.pipe()
    try:
        poll.register(wake_r, select.POLLIN)
        os.write(wake_w, b"x")  # another thread's wake-up of the loop
        assert lane.wait(poll, time.monotonic() + 10) == AWAY
        assert lane.open and lane.handle is None and not done
    finally:
        os.close(wake_r)
        os.close(wake_w)
