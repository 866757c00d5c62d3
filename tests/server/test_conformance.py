"""Conformance: the same wire-level scenarios against the embedded server and a real gearmand.

Every test runs twice (``[gearq]`` and ``[gearmand]``). Where gearmand 1.1.20 is known to be
wrong, the test asserts the right behaviour and carries ``gearmand_fault``: a strict xfail on
gearmand, so the suite notices if a gearmand release fixes it.
"""

from __future__ import annotations

import math
import re
import struct
import time

import pytest

from gearq.protocol import Magic, PacketType, encode_request
from gearq.protocol.admin import (
    getpid,
    parse_reply,
    priority_status,
    show_jobs,
    show_unique_jobs,
    status,
    verbose,
    version,
    workers,
)

from .conftest import Backend
from .wire import Wire, wait_until

T = PacketType
HANDLE = re.compile(rb"H:[^:\s]+:\d+\Z")


def _worker(backend: Backend, *functions: bytes) -> Wire:
    wire = backend.connect()
    for f in functions:
        wire.send(T.CAN_DO, f)
    wire.sync()
    return wire


def _job_status(wire: Wire, handle: bytes) -> tuple[bytes, ...]:
    return wire.send(T.GET_STATUS, handle).expect(T.STATUS_RES).args


def _idle(wire: Wire, handle: bytes) -> bool:
    """True once the job is not running (its worker's disconnect has been processed)."""
    return _job_status(wire, handle)[2] == b"0"


def _status(wire: Wire) -> dict[str, tuple[int, int, int]]:
    return {
        s.function: (s.total, s.running, s.workers)
        for s in parse_reply(status(), wire.admin(b"status"))
    }


def test_echo(backend: Backend) -> None:
    wire = backend.connect()
    assert wire.roundtrip(T.ECHO_REQ, b"hello\0world").args == (b"hello\0world",)
    assert wire.roundtrip(T.ECHO_REQ, b"x" * 100_000).args == (b"x" * 100_000,)


def test_foreground_job_and_forwarded_work_packets(backend: Backend) -> None:
    client = backend.connect()
    worker = _worker(backend, b"rev")
    handle = client.submit(T.SUBMIT_JOB, b"rev", b"uniq-1", b"hel\0lo")
    assert HANDLE.match(handle), handle
    worker.send(T.GRAB_JOB_UNIQ).expect(T.JOB_ASSIGN_UNIQ, handle, b"rev", b"uniq-1", b"hel\0lo")
    worker.send(T.WORK_DATA, handle, b"chunk\0one")
    worker.send(T.WORK_STATUS, handle, b"1", b"3")
    worker.send(T.WORK_WARNING, handle, b"careful")
    worker.send(T.WORK_COMPLETE, handle, b"ol\0leh")
    client.expect(T.WORK_DATA, handle, b"chunk\0one")
    client.expect(T.WORK_STATUS, handle, b"1", b"3")
    client.expect(T.WORK_WARNING, handle, b"careful")
    client.expect(T.WORK_COMPLETE, handle, b"ol\0leh")
    worker.send(T.WORK_COMPLETE, handle, b"again")
    worker.expect(T.ERROR, b"JOB_NOT_FOUND", b"Job given in work result not found")


@pytest.mark.parametrize("opted", [False, True])
def test_exceptions_option(backend: Backend, opted: bool) -> None:
    client = backend.connect()
    if opted:
        client.send(T.OPTION_REQ, b"exceptions").expect(T.OPTION_RES, b"exceptions")
    worker = _worker(backend, b"f")
    handle = client.submit(T.SUBMIT_JOB, b"f", b"", b"d")
    worker.send(T.GRAB_JOB).expect(T.JOB_ASSIGN)
    worker.send(T.WORK_EXCEPTION, handle, b"Traceback: boom")
    if opted:
        client.expect(T.WORK_EXCEPTION, handle, b"Traceback: boom")
    else:
        client.expect(T.WORK_FAIL, handle)
    client.send(T.GET_STATUS, handle).expect(T.STATUS_RES, handle, b"0", b"0", b"0", b"0")


def test_background_jobs_and_status_counts(backend: Backend) -> None:
    client = backend.connect()
    handles = [client.submit(T.SUBMIT_JOB_BG, b"bgf", b"", b"%d" % i) for i in range(3)]
    client.submit(T.SUBMIT_JOB_LOW_BG, b"bgf", b"", b"low")
    assert _status(client) == {"bgf": (4, 0, 0)}
    worker = _worker(backend, b"bgf")
    worker.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, handles[0], b"bgf", b"0")
    assert _status(client) == {"bgf": (4, 1, 1)}
    prio = parse_reply(priority_status(), client.admin(b"prioritystatus"))
    assert [(p.function, p.high, p.normal, p.low, p.workers) for p in prio] == [("bgf", 0, 2, 1, 1)]
    client.send(T.GET_STATUS, handles[0]).expect(T.STATUS_RES, handles[0], b"1", b"1", b"0", b"0")
    client.send(T.GET_STATUS, handles[1]).expect(T.STATUS_RES, handles[1], b"1", b"0", b"0", b"0")
    worker.send(T.WORK_DATA, handles[0], b"ignored").send(T.WORK_COMPLETE, handles[0], b"r")
    worker.sync()
    assert _status(client) == {"bgf": (3, 0, 1)}
    client.quiet(0.1)  # nothing is forwarded for background jobs


def test_priorities(backend: Backend) -> None:
    client = backend.connect()
    for data, ptype in [
        (b"low1", T.SUBMIT_JOB_LOW_BG),
        (b"norm1", T.SUBMIT_JOB_BG),
        (b"high1", T.SUBMIT_JOB_HIGH_BG),
        (b"low2", T.SUBMIT_JOB_LOW),
        (b"norm2", T.SUBMIT_JOB),
        (b"high2", T.SUBMIT_JOB_HIGH),
    ]:
        client.submit(ptype, b"pf", b"", data)
    worker = _worker(backend, b"pf")
    order = [worker.roundtrip(T.GRAB_JOB).args[2] for _ in range(6)]
    assert order == [b"high1", b"high2", b"norm1", b"norm2", b"low1", b"low2"]
    worker.send(T.GRAB_JOB).expect(T.NO_JOB)


def test_unique_coalescing_and_status_unique(backend: Backend) -> None:
    a, b = backend.connect(), backend.connect()
    handle = a.submit(T.SUBMIT_JOB, b"cf", b"U1", b"first")
    assert b.submit(T.SUBMIT_JOB, b"cf", b"U1", b"second") == handle
    assert a.submit(T.SUBMIT_JOB_BG, b"cf", b"U2", b"x") != handle
    a.send(T.GET_STATUS_UNIQUE, b"U1").expect(
        T.STATUS_RES_UNIQUE, b"U1", b"1", b"0", b"0", b"0", b"2"
    )
    worker = _worker(backend, b"cf")
    worker.send(T.GRAB_JOB_UNIQ).expect(T.JOB_ASSIGN_UNIQ, handle, b"cf", b"U1", b"first")
    worker.send(T.WORK_STATUS, handle, b"1", b"4")
    for client in (a, b):
        client.expect(T.WORK_STATUS, handle, b"1", b"4")
    a.send(T.GET_STATUS_UNIQUE, b"U1").expect(
        T.STATUS_RES_UNIQUE, b"U1", b"1", b"1", b"1", b"4", b"2"
    )
    worker.send(T.WORK_COMPLETE, handle, b"done")
    for client in (a, b):
        client.expect(T.WORK_COMPLETE, handle, b"done")
    a.send(T.GET_STATUS_UNIQUE, b"U1").expect(
        T.STATUS_RES_UNIQUE, b"U1", b"0", b"0", b"0", b"0", b"0"
    )
    assert a.submit(T.SUBMIT_JOB_BG, b"cf", b"U1", b"new") != handle


def test_uniques_are_per_function(backend: Backend) -> None:
    client = backend.connect()
    one = client.submit(T.SUBMIT_JOB_BG, b"fn1", b"same", b"x")
    two = client.submit(T.SUBMIT_JOB_BG, b"fn2", b"same", b"x")
    assert one != two
    assert client.submit(T.SUBMIT_JOB_BG, b"fn2", b"same", b"y") == two


def test_dash_unique_coalesces_on_payload(backend: Backend) -> None:
    client = backend.connect()
    one = client.submit(T.SUBMIT_JOB_BG, b"df", b"-", b"payload")
    assert client.submit(T.SUBMIT_JOB_BG, b"df", b"-", b"payload") == one
    assert client.submit(T.SUBMIT_JOB_BG, b"df", b"-", b"other") != one
    assert client.submit(T.SUBMIT_JOB_BG, b"df", b"", b"payload") != one
    assert client.submit(T.SUBMIT_JOB_BG, b"df", b"", b"payload") != one


def test_get_status_of_unknown_handle(backend: Backend) -> None:
    wire = backend.connect()
    wire.send(T.GET_STATUS, b"H:nowhere:77").expect(
        T.STATUS_RES, b"H:nowhere:77", b"0", b"0", b"0", b"0"
    )
    wire.send(T.GET_STATUS_UNIQUE, b"nope").expect(
        T.STATUS_RES_UNIQUE, b"nope", b"0", b"0", b"0", b"0", b"0"
    )


def test_worker_disconnect_requeues_to_the_tail(backend: Backend) -> None:
    client = backend.connect()
    first = client.submit(T.SUBMIT_JOB, b"rq", b"", b"one")
    second = client.submit(T.SUBMIT_JOB, b"rq", b"", b"two")
    w1 = _worker(backend, b"rq")
    w1.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, first, b"rq", b"one")
    w1.send(T.WORK_STATUS, first, b"2", b"5")
    client.expect(T.WORK_STATUS, first, b"2", b"5")
    w1.close()
    wait_until(lambda: _idle(client, first))
    assert _job_status(client, first) == (first, b"1", b"0", b"0", b"0")
    jobs = parse_reply(show_jobs(), client.admin(b"show jobs"))
    assert {(j.handle.encode(), j.retries) for j in jobs} == {(first, 1), (second, 0)}
    w2 = _worker(backend, b"rq")
    w2.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, second, b"rq", b"two")
    w2.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, first, b"rq", b"one")
    w2.send(T.WORK_COMPLETE, first, b"r1")
    client.expect(T.WORK_COMPLETE, first, b"r1")


def test_job_retries_exhausted(backend_retries2: Backend) -> None:
    backend = backend_retries2
    client = backend.connect()
    client.send(T.OPTION_REQ, b"exceptions").expect(T.OPTION_RES)
    handle = client.submit(T.SUBMIT_JOB, b"poison", b"", b"d")
    probe = backend.connect()
    for attempt in range(2):
        worker = _worker(backend, b"poison")
        worker.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, handle, b"poison", b"d")
        worker.close()
        if attempt == 0:
            wait_until(lambda: _idle(probe, handle))
    client.expect(T.WORK_FAIL, handle)
    worker = _worker(backend, b"poison")
    worker.send(T.GRAB_JOB).expect(T.NO_JOB)


def test_foreground_client_leaving_drops_its_queued_job(backend: Backend) -> None:
    client = backend.connect()
    client.submit(T.SUBMIT_JOB, b"gone", b"gone-u", b"d")
    client.close()
    probe = backend.connect()
    # Processed once no client is attached (gearmand keeps the job, marked as ignored).
    wait_until(lambda: probe.roundtrip(T.GET_STATUS_UNIQUE, b"gone-u").args[5] == b"0")
    worker = _worker(backend, b"gone")
    worker.send(T.GRAB_JOB).expect(T.NO_JOB)


def test_cancel_job(backend: Backend) -> None:
    client = backend.connect()
    handle = client.submit(T.SUBMIT_JOB, b"cj", b"", b"d")
    admin = backend.connect()
    assert admin.admin(b"cancel job " + handle) == b"OK\r\n"
    client.expect(T.WORK_FAIL, handle)
    assert admin.admin(b"cancel job H:nowhere:1") == b"ERR UNKNOWN_JOB\r\n"
    worker = _worker(backend, b"cj")
    worker.send(T.GRAB_JOB).expect(T.NO_JOB)


def test_maxqueue(backend: Backend) -> None:
    client = backend.connect()
    client.submit(T.SUBMIT_JOB_BG, b"mq", b"", b"1")
    assert client.admin(b"maxqueue mq 2") == b"OK\r\n"
    client.submit(T.SUBMIT_JOB_BG, b"mq", b"", b"2")
    client.send(T.SUBMIT_JOB_BG, b"mq", b"", b"3")
    client.expect(T.ERROR, b"QUEUE_ERROR", b"Job queue is full")
    client.send(T.SUBMIT_JOB_HIGH, b"mq", b"", b"4")
    client.expect(T.ERROR, b"QUEUE_ERROR", b"Job queue is full")
    assert client.admin(b"maxqueue mq 0") == b"OK\r\n"
    client.submit(T.SUBMIT_JOB_BG, b"mq", b"", b"5")
    assert _status(client) == {"mq": (3, 0, 0)}


def test_admin_replies_parse_identically(backend: Backend) -> None:
    worker = backend.connect()
    worker.send(T.SET_CLIENT_ID, b"worker-one").send(T.CAN_DO, b"fa").send(T.CAN_DO, b"fb")
    worker.sync()
    client = backend.connect()
    client.submit(T.SUBMIT_JOB_BG, b"fa", b"u1", b"x")
    client.submit(T.SUBMIT_JOB_HIGH_BG, b"fa", b"u2", b"x")
    client.submit(T.SUBMIT_JOB_LOW, b"fc", b"", b"x")
    admin = backend.connect()

    assert [
        (s.function, s.total, s.running, s.workers)
        for s in parse_reply(status(), admin.admin(b"status"))
    ] == [("fc", 1, 0, 0), ("fb", 0, 0, 1), ("fa", 2, 0, 1)]
    assert [
        (p.function, p.high, p.normal, p.low, p.workers)
        for p in parse_reply(priority_status(), admin.admin(b"prioritystatus"))
    ] == [("fc", 0, 0, 1, 0), ("fb", 0, 0, 0, 1), ("fa", 1, 1, 0, 1)]
    listed = parse_reply(workers(), admin.admin(b"workers"))
    assert sorted((w.ip, w.client_id or "", w.functions) for w in listed) == [
        ("127.0.0.1", "", ()),
        ("127.0.0.1", "", ()),
        ("127.0.0.1", "worker-one", ("fb", "fa")),
    ]
    raw_workers = admin.admin(b"workers")
    assert re.fullmatch(rb"(\d+ 127\.0\.0\.1 \S+ :( \S+)*\n){3}\.\n", raw_workers), raw_workers
    jobs = parse_reply(show_jobs(), admin.admin(b"show jobs"))
    assert sorted((j.retries, j.ignored, j.queued) for j in jobs) == [
        (0, False, False),
        (0, False, True),
        (0, False, True),
    ]
    uniques = parse_reply(show_unique_jobs(), admin.admin(b"show unique jobs"))
    assert sorted(uniques) == ["", "u1", "u2"]
    assert re.fullmatch(rb"OK \S+\n", admin.admin(b"version"))
    assert parse_reply(version(), admin.admin(b"version"))
    assert parse_reply(getpid(), admin.admin(b"getpid")) > 0
    assert parse_reply(verbose(), admin.admin(b"verbose")) in {"ERROR", "WARNING", "INFO"}


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"bogus", b"ERR UNKNOWN_COMMAND Unknown+server+commandbogus\r\n"),
        (b"", b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"),
        (b"shutdown", b"ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"),
        (b"show", b"ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n"),
        (b"show foo", b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
        (b"cancel job", b"ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"),
        (
            b"maxqueue",
            b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this"
            b"+command+maxqueue\r\n",
        ),
        (b"maxqueue nofunc 1 2 3", b"OK\r\n"),
        (b"drop function nofunc", b"ERR function not found\r\n"),
        (b"STATUS", b".\n"),
        (b"show jobs", b".\n"),
    ],
)
def test_admin_exact_replies(backend: Backend, line: bytes, reply: bytes) -> None:
    assert backend.connect().admin(line) == reply


def test_drop_function_in_use(backend: Backend) -> None:
    worker = _worker(backend, b"busy")
    assert worker.admin(b"drop function busy") == (
        b"ERR there are still connected workers or executing clients\r\n"
    )


def test_too_many_admin_tokens_close_the_connection(backend: Backend) -> None:
    wire = backend.connect()
    wire.send_raw(b"a b c d e f\n")
    assert wire.closed_by_server()


@pytest.mark.parametrize(
    ("ptype", "args", "error"),
    [
        (
            T.SUBMIT_JOB_SCHED,
            (b"f", b"", b"1", b"2", b"3", b"4", b"5", b"d"),
            (b"INVALID_COMMAND", b"Command not expected"),
        ),
        (T.ALL_YOURS, (), (b"INVALID_COMMAND", b"Command not expected")),
        (T.NO_JOB, (), (b"INVALID_COMMAND", b"Command not expected")),
        (T.ECHO_RES, (b"x",), (b"INVALID_COMMAND", b"Command not expected")),
        (
            T.OPTION_REQ,
            (b"turbo",),
            (b"UNKNOWN_OPTION", b"Server does not recognize given option"),
        ),
        (
            T.SUBMIT_JOB,
            (b"f", b"u" * 65, b"d"),
            (b"ARGUMENT_TOO_LARGE", b"Unique value too large"),
        ),
        (
            T.WORK_COMPLETE,
            (b"H:x:999", b"r"),
            (b"JOB_NOT_FOUND", b"Job given in work result not found"),
        ),
        (
            T.WORK_FAIL,
            (b"H:x:999",),
            (b"JOB_NOT_FOUND", b"Job given in work result not found"),
        ),
        (
            T.WORK_STATUS,
            (b"H:x:999", b"1", b"2"),
            (b"JOB_NOT_FOUND", b"Job given in work result not found"),
        ),
        (T.WORK_DATA, (b"H:x:999", b"d"), (b"JOB_NOT_FOUND", b"Job does not exist on server")),
        (
            T.WORK_WARNING,
            (b"H:x:999", b"d"),
            (b"JOB_NOT_FOUND", b"Job does not exist on server"),
        ),
        (
            T.WORK_EXCEPTION,
            (b"H:x:999", b"e"),
            (b"JOB_NOT_FOUND", b"An exception was received for a job that does not exist"),
        ),
    ],
)
def test_error_packets(
    backend: Backend, ptype: PacketType, args: tuple[bytes, ...], error: tuple[bytes, bytes]
) -> None:
    wire = backend.connect()
    wire.send(ptype, *args).expect(T.ERROR, *error)
    wire.sync()  # the connection stays open


def test_response_magic_gets_invalid_magic(backend: Backend) -> None:
    wire = backend.connect()
    body = b"f\0\0d"
    wire.send_raw(b"\0RES" + struct.pack(">II", T.SUBMIT_JOB, len(body)) + body)
    wire.expect(T.ERROR, b"INVALID_MAGIC", b"Request magic expected")
    wire.sync()


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param(b"\0XYZ" + struct.pack(">II", 16, 0), id="bad-magic"),
        pytest.param(b"\0REQ" + struct.pack(">II", 43, 0), id="type-43"),
        pytest.param(b"\0REQ" + struct.pack(">II", 0, 0), id="type-0"),
    ],
)
def test_garbage_closes_that_connection_only(backend: Backend, junk: bytes) -> None:
    bystander = backend.connect()
    bad = backend.connect()
    bad.send_raw(junk)
    assert bad.closed_by_server()
    bystander.sync()


def test_text_and_binary_on_one_connection(backend: Backend) -> None:
    wire = backend.connect()
    wire.send_raw(
        encode_request(T.ECHO_REQ, b"a") + b"show jobs\r\n" + encode_request(T.ECHO_REQ, b"b")
    )
    wire.expect(T.ECHO_RES, b"a")
    assert wire.admin(None) == b".\n"
    wire.expect(T.ECHO_RES, b"b")


def test_noop_once_per_sleep_and_all_sleepers_woken(backend: Backend) -> None:
    sleepers = [_worker(backend, b"wake") for _ in range(3)]
    for s in sleepers:
        s.send(T.PRE_SLEEP)
        s.sync()
    client = backend.connect()
    client.submit(T.SUBMIT_JOB_BG, b"wake", b"", b"1")
    for s in sleepers:
        s.expect(T.NOOP)
    client.submit(T.SUBMIT_JOB_BG, b"wake", b"", b"2")
    for s in sleepers:
        s.quiet(0.1)  # no second NOOP before a GRAB
    first = sleepers[0]
    first.send(T.GRAB_JOB).expect(T.JOB_ASSIGN)
    first.send(T.PRE_SLEEP).expect(T.NOOP)  # a job is runnable: at once


def test_grab_job_all(backend: Backend) -> None:
    client = backend.connect()
    worker = _worker(backend, b"rf")
    plain = client.submit(T.SUBMIT_JOB_BG, b"rf", b"u1", b"p1")
    worker.send(T.GRAB_JOB_ALL).expect(T.JOB_ASSIGN_UNIQ, plain, b"rf", b"u1", b"p1")
    client.send(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"rf", b"u2", b"reducerX", b"", b"p2")
    reduced = client.expect(T.JOB_CREATED).args[0]
    worker.send(T.GRAB_JOB_ALL).expect(T.JOB_ASSIGN_ALL, reduced, b"rf", b"u2", b"reducerX", b"p2")


def test_workers_can_die_while_clients_wait_on_many_jobs(backend: Backend) -> None:
    client = backend.connect()
    handles = [client.submit(T.SUBMIT_JOB, b"many", b"", b"%d" % i) for i in range(20)]
    probe = backend.connect()
    results = {}
    for round_ in range(2):
        worker = _worker(backend, b"many")
        for _ in range(10 if round_ == 0 else 20):
            handle = worker.roundtrip(T.GRAB_JOB).args[0]
            if round_ == 1:
                worker.send(T.WORK_COMPLETE, handle, handle)
        worker.close()
        if round_ == 0:
            wait_until(lambda: _status(probe)["many"][1] == 0)
    for _ in range(20):
        packet = client.expect(T.WORK_COMPLETE)
        results[packet.args[0]] = packet.args[1]
    assert results == {h: h for h in handles}


# -- where gearmand 1.1.20 is wrong --------------------------------------------------------------


@pytest.mark.gearmand_fault("does not wake workers for epoch jobs (gearmand#101)")
def test_epoch_job_wakes_a_sleeping_worker(backend: Backend) -> None:
    client = backend.connect()
    worker = _worker(backend, b"ep")
    worker.send(T.PRE_SLEEP)
    worker.sync()
    epoch = math.ceil(time.time() + 0.5)
    handle = (
        client.send(T.SUBMIT_JOB_EPOCH, b"ep", b"", b"%d" % epoch, b"d")
        .expect(T.JOB_CREATED)
        .args[0]
    )
    # gearmand sends a NOOP at submit time already; the worker then finds nothing and sleeps.
    deadline = time.monotonic() + (epoch - time.time()) + 1.5
    while True:
        packet = worker.recv(timeout=max(0.01, deadline - time.monotonic()))
        assert packet.type == T.NOOP
        grabbed = worker.roundtrip(T.GRAB_JOB_UNIQ)
        if grabbed.type == T.JOB_ASSIGN_UNIQ:
            break
        assert time.time() < epoch + 1, "the worker was only woken after the due time"
        worker.send(T.PRE_SLEEP)
    assert grabbed.args[0] == handle
    assert time.time() >= epoch - 0.05


@pytest.mark.gearmand_fault("a future epoch job blocks LOW jobs and makes workers spin")
def test_future_epoch_job_does_not_block_low_jobs(backend: Backend) -> None:
    client = backend.connect()
    client.send(T.SUBMIT_JOB_EPOCH, b"el", b"", b"%d" % (time.time() + 60), b"later")
    client.expect(T.JOB_CREATED)
    client.submit(T.SUBMIT_JOB_LOW_BG, b"el", b"", b"low")
    worker = _worker(backend, b"el")
    worker.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, timeout=1)
    worker.send(T.GRAB_JOB).expect(T.NO_JOB)
    worker.send(T.PRE_SLEEP)
    worker.quiet(0.2)


@pytest.mark.gearmand_fault("a foreground client leaving cancels the background job it joined")
def test_foreground_client_leaving_keeps_the_background_job(backend: Backend) -> None:
    submitter = backend.connect()
    handle = submitter.submit(T.SUBMIT_JOB_BG, b"keep", b"shared", b"d")
    waiter = backend.connect()
    assert waiter.submit(T.SUBMIT_JOB, b"keep", b"shared", b"d") == handle
    waiter.close()
    wait_until(lambda: submitter.roundtrip(T.GET_STATUS_UNIQUE, b"shared").args[5] == b"0")
    worker = _worker(backend, b"keep")
    worker.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, handle, b"keep", b"d")


@pytest.mark.gearmand_fault("a repeated CAN_DO registers (and counts) the worker again")
def test_repeated_can_do_counts_once(backend: Backend) -> None:
    worker = _worker(backend, b"dup", b"dup", b"dup")
    assert _status(worker)["dup"] == (0, 0, 1)


@pytest.mark.gearmand_fault("accepts a 64-byte unique, truncates it and corrupts the payload")
def test_64_byte_unique_is_refused(backend: Backend) -> None:
    wire = backend.connect()
    wire.send(T.SUBMIT_JOB_BG, b"f", b"u" * 64, b"d")
    wire.expect(T.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large")


def test_magic_check_is_per_packet(backend: Backend) -> None:
    # A REQ packet right after a refused RES packet is still served.
    wire = backend.connect()
    raw = encode_request(T.ECHO_REQ, b"ok")
    wire.send_raw(raw.replace(Magic.REQ.value, Magic.RES.value, 1) + raw)
    wire.expect(T.ERROR, b"INVALID_MAGIC", b"Request magic expected")
    wire.expect(T.ECHO_RES, b"ok")
