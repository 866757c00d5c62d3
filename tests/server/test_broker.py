"""The broker's job semantics, driven without sockets (fake peers, clock and timers)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gearq.protocol import Magic, PacketType
from gearq.server.broker import atoi
from gearq.server.jobs import JobState

from .harness import Harness

T = PacketType


@pytest.fixture
def h() -> Harness:
    return Harness()


# -- submit, grab, results ---------------------------------------------------------------------


def test_foreground_job_results_reach_the_client(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"rev")
    handle = client.submit(b"rev", b"hello", b"u1")
    assert handle == b"H:t:1"
    assert worker.grab().args == (handle, b"rev", b"u1", b"hello")
    worker.send(T.WORK_DATA, handle, b"d\0ata")
    worker.send(T.WORK_WARNING, handle, b"warn")
    worker.send(T.WORK_STATUS, handle, b"1", b"4")
    worker.send(T.WORK_COMPLETE, handle, b"olleh\0!")
    got = [(p.type, p.args) for p in client.take()]
    assert got == [
        (T.WORK_DATA, (handle, b"d\0ata")),
        (T.WORK_WARNING, (handle, b"warn")),
        (T.WORK_STATUS, (handle, b"1", b"4")),
        (T.WORK_COMPLETE, (handle, b"olleh\0!")),
    ]
    assert worker.take() == []
    assert h.broker.jobs == {}
    assert h.status() == {b"rev": (0, 0, 1)}


def test_handles_count_up_across_functions(h: Harness) -> None:
    client = h.endpoint()
    assert [client.submit(f) for f in (b"a", b"b", b"a")] == [b"H:t:1", b"H:t:2", b"H:t:3"]


def test_background_job_sends_nothing_after_job_created(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f", ptype=T.SUBMIT_JOB_BG)
    worker.grab()
    worker.send(T.WORK_DATA, handle, b"x").send(T.WORK_COMPLETE, handle, b"done")
    assert client.take() == []
    assert worker.take() == []


def test_grab_variants(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    plain = client.submit(b"f", b"p1", b"u1")
    assert worker.grab(T.GRAB_JOB).args == (plain, b"f", b"p1")
    uniq = client.submit(b"f", b"p2", b"u2")
    # Without a reducer GRAB_JOB_ALL answers JOB_ASSIGN_UNIQ, as gearmand does.
    packet = worker.grab(T.GRAB_JOB_ALL)
    assert (packet.type, packet.args) == (T.JOB_ASSIGN_UNIQ, (uniq, b"f", b"u2", b"p2"))
    reduce = client.send(T.SUBMIT_REDUCE_JOB, b"f", b"u3", b"red", b"", b"p\x003")
    handle = reduce.one(T.JOB_CREATED).args[0]
    packet = worker.grab(T.GRAB_JOB_ALL)
    assert (packet.type, packet.args) == (
        T.JOB_ASSIGN_ALL,
        (handle, b"f", b"u3", b"red", b"p\x003"),
    )
    client.send(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"f", b"u4", b"red", b"", b"p4").one(T.JOB_CREATED)
    assert worker.grab(T.GRAB_JOB_UNIQ).type == T.JOB_ASSIGN_UNIQ
    assert worker.grab().type == T.NO_JOB


def test_grab_without_abilities_gets_no_job(h: Harness) -> None:
    h.endpoint().submit(b"f")
    assert h.endpoint().grab().type == T.NO_JOB


def test_priorities_are_strict_and_fifo_within_a_priority(h: Harness) -> None:
    client = h.endpoint()
    for name, ptype in [
        (b"low1", T.SUBMIT_JOB_LOW_BG),
        (b"norm1", T.SUBMIT_JOB_BG),
        (b"high1", T.SUBMIT_JOB_HIGH_BG),
        (b"low2", T.SUBMIT_JOB_LOW),
        (b"norm2", T.SUBMIT_JOB),
        (b"high2", T.SUBMIT_JOB_HIGH),
    ]:
        client.submit(b"f", name, ptype=ptype)
    prio = h.endpoint().admin(b"prioritystatus")
    assert prio == b"f\t2\t2\t2\t0\n.\n"
    worker = h.worker(b"f")
    order = [worker.grab().args[3] for _ in range(6)]
    assert order == [b"high1", b"high2", b"norm1", b"norm2", b"low1", b"low2"]


def test_round_robin_across_a_workers_functions(h: Harness) -> None:
    client = h.endpoint()
    for i in range(5):
        client.submit(b"busy", b"b%d" % i, ptype=T.SUBMIT_JOB_HIGH_BG)
    client.submit(b"quiet", b"q0", ptype=T.SUBMIT_JOB_LOW_BG)
    client.submit(b"other", b"o0", ptype=T.SUBMIT_JOB_BG)
    worker = h.worker(b"busy", b"quiet", b"other")
    order = [worker.grab().args[3] for _ in range(7)]
    # The busy function's HIGH jobs do not starve the other functions.
    assert order == [b"b0", b"q0", b"o0", b"b1", b"b2", b"b3", b"b4"]


# -- unique coalescing -----------------------------------------------------------------------


def test_foreground_uniques_coalesce(h: Harness) -> None:
    a, b = h.endpoint(), h.endpoint()
    worker = h.worker(b"f")
    first = a.submit(b"f", b"first", b"same")
    assert b.submit(b"f", b"second", b"same") == first
    assert worker.grab().args == (first, b"f", b"same", b"first")
    assert worker.grab().type == T.NO_JOB
    worker.send(T.WORK_STATUS, first, b"1", b"2").send(T.WORK_COMPLETE, first, b"r")
    for client in (a, b):
        assert [p.type for p in client.take()] == [T.WORK_STATUS, T.WORK_COMPLETE]
    # Done: the unique is free again.
    assert a.submit(b"f", b"again", b"same") != first


def test_same_connection_submitting_twice_gets_every_packet_twice(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f", b"x", b"u")
    assert client.submit(b"f", b"x", b"u") == handle
    worker.grab()
    worker.send(T.WORK_COMPLETE, handle, b"r")
    assert [p.type for p in client.take()] == [T.WORK_COMPLETE, T.WORK_COMPLETE]


def test_dash_unique_coalesces_on_payload(h: Harness) -> None:
    client = h.endpoint()
    one = client.submit(b"f", b"data", b"-")
    assert client.submit(b"f", b"data", b"-") == one
    assert client.submit(b"f", b"other", b"-") != one
    # A real unique equal to the payload is a different key.
    assert client.submit(b"f", b"x", b"data") != one
    assert h.endpoint().admin(b"show unique jobs") == b"-\n-\ndata\n.\n"


def test_empty_unique_never_coalesces(h: Harness) -> None:
    client = h.endpoint()
    assert client.submit(b"f", b"d", b"") != client.submit(b"f", b"d", b"")
    assert client.submit(b"f", b"", b"-") != client.submit(b"f", b"", b"-")


def test_uniques_are_per_function(h: Harness) -> None:
    client = h.endpoint()
    assert client.submit(b"f", b"d", b"u") != client.submit(b"g", b"d", b"u")


def test_background_uniques_coalesce_and_keep_the_first_priority(h: Harness) -> None:
    client = h.endpoint()
    handle = client.submit(b"f", b"d", b"u", T.SUBMIT_JOB_LOW_BG)
    assert client.submit(b"f", b"d", b"u", T.SUBMIT_JOB_HIGH_BG) == handle
    assert h.endpoint().admin(b"prioritystatus") == b"f\t0\t0\t1\t0\n.\n"


@pytest.mark.parametrize(("size", "ok"), [(63, True), (64, False), (65, False), (500, False)])
def test_unique_length_limit(h: Harness, size: int, ok: bool) -> None:
    client = h.endpoint()
    client.send(T.SUBMIT_JOB_BG, b"f", b"u" * size, b"d")
    packet = client.one()
    if ok:
        assert packet.type == T.JOB_CREATED
    else:
        assert packet.args == (b"ARGUMENT_TOO_LARGE", b"Unique value too large")
        assert h.broker.jobs == {}


def test_foreground_client_leaving_does_not_cancel_a_coalesced_background_job(h: Harness) -> None:
    # gearmand 1.1.20 silently cancels the background job here (reference §0.5).
    submitter, waiter = h.endpoint(), h.endpoint()
    handle = submitter.submit(b"f", b"d", b"u", T.SUBMIT_JOB_BG)
    assert waiter.submit(b"f", b"d2", b"u") == handle
    waiter.disconnect()
    worker = h.worker(b"f")
    assert worker.grab().args[0] == handle


def test_background_submit_onto_a_foreground_job_keeps_it_alive(h: Harness) -> None:
    fg, bg = h.endpoint(), h.endpoint()
    handle = fg.submit(b"f", b"d", b"u")
    assert bg.submit(b"f", b"d", b"u", T.SUBMIT_JOB_BG) == handle
    fg.disconnect()
    assert h.worker(b"f").grab().args[0] == handle


# -- clients going away ----------------------------------------------------------------------


def test_foreground_client_leaving_drops_its_queued_job(h: Harness) -> None:
    client = h.endpoint()
    client.submit(b"f")
    assert h.status()[b"f"] == (1, 0, 0)
    client.disconnect()
    assert h.status()[b"f"] == (0, 0, 0)
    assert h.broker.jobs == {}
    assert h.worker(b"f").grab().type == T.NO_JOB


def test_queued_job_survives_while_another_client_waits(h: Harness) -> None:
    a, b = h.endpoint(), h.endpoint()
    handle = a.submit(b"f", b"d", b"u")
    b.submit(b"f", b"d", b"u")
    a.disconnect()
    worker = h.worker(b"f")
    assert worker.grab().args[0] == handle
    worker.send(T.WORK_COMPLETE, handle, b"r")
    assert b.one(T.WORK_COMPLETE).args == (handle, b"r")


def test_client_leaving_while_its_job_runs(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f")
    worker.grab()
    client.disconnect()
    worker.send(T.WORK_DATA, handle, b"d").send(T.WORK_COMPLETE, handle, b"r")
    assert worker.take() == []  # accepted without error
    assert h.broker.jobs == {}
    assert h.status()[b"f"] == (0, 0, 1)


def test_abandoned_running_job_is_not_requeued(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    client.submit(b"f")
    worker.grab()
    client.disconnect()
    worker.disconnect()
    assert h.broker.jobs == {}
    assert h.status()[b"f"] == (0, 0, 0)


def test_abandoned_queues_stay_small(h: Harness) -> None:
    # Submit-and-leave with no worker: dropped jobs must not pile up in the queues.
    for _ in range(1000):
        client = h.endpoint()
        client.submit(b"f")
        client.disconnect()
    keeper = h.endpoint()
    keeper.submit(b"f", b"live")
    queue_len = sum(len(q) for q in h.broker.functions[b"f"].queues)
    assert queue_len <= 130
    assert h.worker(b"f").grab().args[3] == b"live"


def test_client_that_is_also_the_worker_leaves(h: Harness) -> None:
    both = h.worker(b"f")
    both.submit(b"f")
    both.grab()
    both.disconnect()
    assert h.broker.jobs == {}
    assert h.status()[b"f"] == (0, 0, 0)


# -- workers going away, retries -------------------------------------------------------------


def test_worker_leaving_mid_job_requeues_it_at_the_tail(h: Harness) -> None:
    client = h.endpoint()
    first = client.submit(b"f", b"one")
    client.submit(b"f", b"two")
    w1 = h.worker(b"f")
    assert w1.grab().args[0] == first
    w1.send(T.WORK_STATUS, first, b"3", b"4")
    client.take()
    w1.disconnect()
    assert client.take() == []  # the client is not told
    client.send(T.GET_STATUS, first)
    assert client.one().args == (first, b"1", b"0", b"0", b"0")  # progress reset
    w2 = h.worker(b"f")
    assert w2.grab().args[3] == b"two"
    assert w2.grab().args[3] == b"one"
    assert h.endpoint().admin(b"show jobs") == b"H:t:1\t1\t0\t0\nH:t:2\t0\t0\t0\n.\n"
    w2.send(T.WORK_COMPLETE, first, b"r")
    assert client.one(T.WORK_COMPLETE).args == (first, b"r")


def test_requeue_wakes_sleeping_workers(h: Harness) -> None:
    h.endpoint().submit(b"f")
    w1 = h.worker(b"f")
    w1.grab()
    w2 = h.worker(b"f")
    w2.send(T.PRE_SLEEP)
    assert w2.take() == []
    w1.disconnect()
    w2.one(T.NOOP)


def test_job_retries_limit_fails_the_job(h: Harness) -> None:
    h = Harness(job_retries=2)
    client = h.endpoint()
    handle = client.submit(b"f")
    bg = client.submit(b"f", ptype=T.SUBMIT_JOB_BG)
    for _ in range(2):
        w = h.worker(b"f")
        assert w.grab().args[0] == handle
        assert w.grab().args[0] == bg
        w.disconnect()
    assert client.one(T.WORK_FAIL).args == (handle,)
    assert h.broker.jobs == {}
    assert h.status()[b"f"] == (0, 0, 0)


def test_job_retries_zero_means_unlimited(h: Harness) -> None:
    client = h.endpoint()
    handle = client.submit(b"f")
    for _ in range(20):
        w = h.worker(b"f")
        assert w.grab().args[0] == handle
        w.disconnect()
    assert client.take() == []
    assert h.broker.jobs[handle].retries == 20


def test_job_retries_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        Harness(job_retries=-1)


# -- abilities -------------------------------------------------------------------------------


def test_duplicate_can_do_registers_once(h: Harness) -> None:
    worker = h.worker(b"f", b"f", b"f")
    assert h.status() == {b"f": (0, 0, 1)}
    worker.send(T.CANT_DO, b"f")
    assert h.status() == {b"f": (0, 0, 0)}
    h.endpoint().submit(b"f")
    assert worker.grab().type == T.NO_JOB


def test_cant_do_requeues_held_jobs_of_that_function(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f", b"g")
    fj = client.submit(b"f")
    gj = client.submit(b"g")
    worker.grab()
    worker.grab()
    worker.send(T.CANT_DO, b"f")
    assert h.status()[b"f"] == (1, 0, 0)
    worker.send(T.WORK_COMPLETE, fj, b"late")
    assert worker.one().args == (b"JOB_NOT_FOUND", b"Job given in work result not found")
    worker.send(T.WORK_COMPLETE, gj, b"ok")
    assert client.one(T.WORK_COMPLETE).args == (gj, b"ok")


def test_reset_abilities_releases_held_jobs(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f", b"g")
    client.submit(b"f")
    client.submit(b"g")
    worker.grab()
    worker.grab()
    worker.send(T.RESET_ABILITIES)
    assert h.status() == {b"f": (1, 0, 0), b"g": (1, 0, 0)}
    assert worker.grab().type == T.NO_JOB
    other = h.worker(b"f", b"g")
    assert {other.grab().args[1], other.grab().args[1]} == {b"f", b"g"}


def test_can_do_timeout_requeues_an_overdue_job(h: Harness) -> None:
    client = h.endpoint()
    worker = h.endpoint().send(T.CAN_DO_TIMEOUT, b"f", b"500")
    handle = client.submit(b"f")
    worker.grab()
    h.advance(0.4)
    assert h.status()[b"f"] == (1, 1, 1)
    h.advance(0.2)
    assert h.status()[b"f"] == (1, 0, 1)
    worker.send(T.WORK_COMPLETE, handle, b"late").one(T.ERROR)
    assert worker.grab().args[0] == handle
    worker.send(T.WORK_COMPLETE, handle, b"ok")
    h.advance(10)
    assert client.one(T.WORK_COMPLETE).args == (handle, b"ok")
    assert h.pending_timers == 0


def test_can_do_replaces_a_timeout(h: Harness) -> None:
    worker = h.endpoint().send(T.CAN_DO_TIMEOUT, b"f", b"100").send(T.CAN_DO, b"f")
    h.endpoint().submit(b"f")
    worker.grab()
    h.advance(5)
    assert h.status()[b"f"] == (1, 1, 1)


# -- sleeping and waking ---------------------------------------------------------------------


def test_pre_sleep_gets_one_noop_per_sleep(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    worker.send(T.PRE_SLEEP)
    assert worker.take() == []
    client.submit(b"f")
    worker.one(T.NOOP)
    client.submit(b"f")
    assert worker.take() == []  # no second NOOP before a GRAB
    worker.grab()
    worker.send(T.PRE_SLEEP).one(T.NOOP)  # a job is runnable: at once


def test_all_sleepers_of_the_function_are_woken(h: Harness) -> None:
    sleepers = [h.worker(b"f").send(T.PRE_SLEEP) for _ in range(4)]
    other = h.worker(b"g").send(T.PRE_SLEEP)
    h.endpoint().submit(b"f")
    for s in sleepers:
        s.one(T.NOOP)
    assert other.take() == []


def test_sleeping_worker_gets_a_noop_when_it_adds_a_busy_function(h: Harness) -> None:
    h.endpoint().submit(b"g")
    worker = h.worker(b"f").send(T.PRE_SLEEP)
    assert worker.take() == []
    worker.send(T.CAN_DO, b"g").one(T.NOOP)


def test_grab_ends_the_sleep(h: Harness) -> None:
    worker = h.worker(b"f").send(T.PRE_SLEEP)
    assert worker.grab().type == T.NO_JOB
    h.endpoint().submit(b"f")
    assert worker.take() == []  # not asleep: no NOOP


# -- epoch jobs ------------------------------------------------------------------------------


def test_epoch_job_wakes_a_sleeping_worker_when_due(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    due = int(h.now) + 10
    handle = client.send(T.SUBMIT_JOB_EPOCH, b"f", b"u", b"%d" % due, b"d").one().args[0]
    assert h.status()[b"f"] == (1, 0, 1)
    client.send(T.GET_STATUS, handle)
    assert client.one().args == (handle, b"1", b"0", b"0", b"0")
    assert worker.grab().type == T.NO_JOB
    worker.send(T.PRE_SLEEP)
    assert worker.take() == []  # no busy loop
    h.advance(9.5)
    assert worker.take() == []
    h.advance(0.6)
    worker.one(T.NOOP)
    assert worker.grab().args == (handle, b"f", b"u", b"d")


def test_epoch_job_does_not_block_low_jobs(h: Harness) -> None:
    client = h.endpoint()
    client.send(T.SUBMIT_JOB_EPOCH, b"f", b"", b"%d" % (h.now + 60), b"later").one(T.JOB_CREATED)
    client.submit(b"f", b"low", ptype=T.SUBMIT_JOB_LOW_BG)
    worker = h.worker(b"f")
    assert worker.grab().args[3] == b"low"
    assert worker.grab().type == T.NO_JOB
    worker.send(T.PRE_SLEEP)
    assert worker.take() == []


@pytest.mark.parametrize("epoch", [b"0", b"12", b"not-a-number", b"-5"])
def test_epoch_in_the_past_runs_now(h: Harness, epoch: bytes) -> None:
    h.endpoint().send(T.SUBMIT_JOB_EPOCH, b"f", b"", epoch, b"d").one(T.JOB_CREATED)
    assert h.worker(b"f").grab().type == T.JOB_ASSIGN_UNIQ


def test_epoch_out_of_any_range_waits_forever(h: Harness) -> None:
    client = h.endpoint()
    client.send(T.SUBMIT_JOB_EPOCH, b"f", b"", b"9" * 5000, b"d").one(T.JOB_CREATED)
    worker = h.worker(b"f")
    h.advance(1e9)
    assert worker.grab().type == T.NO_JOB
    assert h.status()[b"f"] == (1, 0, 1)


def test_epoch_jobs_run_in_due_order(h: Harness) -> None:
    client = h.endpoint()
    for offset, name in [(30, b"c"), (10, b"a"), (20, b"b"), (10, b"a2")]:
        client.send(T.SUBMIT_JOB_EPOCH, b"f", b"", b"%d" % (h.now + offset), name).one()
    worker = h.worker(b"f")
    h.advance(100)
    assert [worker.grab().args[3] for _ in range(4)] == [b"a", b"a2", b"b", b"c"]


def test_cancelled_epoch_job_never_runs(h: Harness) -> None:
    client = h.endpoint()
    handle = client.send(T.SUBMIT_JOB_EPOCH, b"f", b"", b"%d" % (h.now + 5), b"d").one().args[0]
    assert h.endpoint().admin(b"cancel job " + handle) == b"OK\r\n"
    assert h.status()[b"f"] == (0, 0, 0)
    worker = h.worker(b"f").send(T.PRE_SLEEP)
    h.advance(10)
    assert worker.take() == []
    assert worker.grab().type == T.NO_JOB


def test_close_cancels_timers(h: Harness) -> None:
    h.endpoint().send(T.SUBMIT_JOB_EPOCH, b"f", b"", b"%d" % (h.now + 5), b"d").one()
    worker = h.endpoint().send(T.CAN_DO_TIMEOUT, b"g", b"1000")
    h.endpoint().submit(b"g")
    worker.grab()
    assert h.pending_timers == 2
    h.broker.close()
    assert h.pending_timers == 0


# -- status ----------------------------------------------------------------------------------


def test_get_status_through_a_jobs_life(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f")

    def status() -> tuple[bytes, ...]:
        return client.send(T.GET_STATUS, handle).one(T.STATUS_RES).args

    assert status() == (handle, b"1", b"0", b"0", b"0")
    worker.grab()
    assert status() == (handle, b"1", b"1", b"0", b"0")
    worker.send(T.WORK_STATUS, handle, b"1", b"4")
    client.take()
    assert status() == (handle, b"1", b"1", b"1", b"4")
    worker.send(T.WORK_COMPLETE, handle, b"")
    client.take()
    assert status() == (handle, b"0", b"0", b"0", b"0")
    assert client.send(T.GET_STATUS, b"nope").one().args == (b"nope", b"0", b"0", b"0", b"0")


def test_get_status_unique_counts_foreground_clients(h: Harness) -> None:
    a, b, c = h.endpoint(), h.endpoint(), h.endpoint()
    handle = a.submit(b"f", b"d", b"U1", T.SUBMIT_JOB_BG)
    b.submit(b"f", b"d", b"U1")
    c.submit(b"f", b"d", b"U1")

    def status() -> tuple[bytes, ...]:
        return a.send(T.GET_STATUS_UNIQUE, b"U1").one(T.STATUS_RES_UNIQUE).args

    assert status() == (b"U1", b"1", b"0", b"0", b"0", b"2")
    worker = h.worker(b"f")
    worker.grab()
    worker.send(T.WORK_STATUS, handle, b"1", b"4")
    assert status() == (b"U1", b"1", b"1", b"1", b"4", b"2")
    worker.send(T.WORK_COMPLETE, handle, b"")
    assert status() == (b"U1", b"0", b"0", b"0", b"0", b"0")
    assert a.send(T.GET_STATUS_UNIQUE, b"x" * 100).one().args[1] == b"0"


def test_work_status_numbers_are_read_like_atoi(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f")
    worker.grab()
    worker.send(T.WORK_STATUS, handle, b" 7abc", b"-1")
    assert client.one().args == (handle, b" 7abc", b"-1")  # forwarded verbatim
    assert client.send(T.GET_STATUS, handle).one().args[3:] == (b"7", b"4294967295")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"12", 12),
        (b"  -3x", -3),
        (b"+4", 4),
        (b"", 0),
        (b"x1", 0),
        (b"--1", 0),
        (b"9" * 5000, 2**63 - 1),
        (b"-" + b"9" * 5000, -(2**63)),
    ],
)
def test_atoi(text: bytes, value: int) -> None:
    assert atoi(text) == value


# -- exceptions and failures -----------------------------------------------------------------


def test_exceptions_go_only_to_clients_that_asked(h: Harness) -> None:
    plain, opted = h.endpoint(), h.endpoint()
    opted.send(T.OPTION_REQ, b"Exceptions")
    assert opted.one().args == (b"Exceptions",)
    handle = plain.submit(b"f", b"d", b"u")
    opted.submit(b"f", b"d", b"u")
    worker = h.worker(b"f")
    worker.grab()
    worker.send(T.WORK_EXCEPTION, handle, b"Traceback\0...")
    assert plain.one().args == (handle,)  # WORK_FAIL, clean handle
    assert opted.one(T.WORK_EXCEPTION).args == (handle, b"Traceback\0...")
    assert h.broker.jobs == {}


def test_work_fail_is_forwarded_and_ends_the_job(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f")
    worker.grab()
    worker.send(T.WORK_FAIL, handle)
    assert client.one(T.WORK_FAIL).args == (handle,)
    worker.send(T.WORK_FAIL, handle)
    assert worker.one().args == (b"JOB_NOT_FOUND", b"Job given in work result not found")


def test_unknown_option(h: Harness) -> None:
    client = h.endpoint().send(T.OPTION_REQ, b"turbo")
    assert client.one().args == (b"UNKNOWN_OPTION", b"Server does not recognize given option")
    assert client.peer.exceptions is False


@pytest.mark.parametrize(
    ("ptype", "args", "text"),
    [
        (T.WORK_COMPLETE, (b"H:t:99", b"r"), b"Job given in work result not found"),
        (T.WORK_FAIL, (b"H:t:99",), b"Job given in work result not found"),
        (T.WORK_STATUS, (b"H:t:99", b"1", b"2"), b"Job given in work result not found"),
        (T.WORK_DATA, (b"H:t:99", b"d"), b"Job does not exist on server"),
        (T.WORK_WARNING, (b"H:t:99", b"d"), b"Job does not exist on server"),
        (
            T.WORK_EXCEPTION,
            (b"H:t:99", b"e"),
            b"An exception was received for a job that does not exist",
        ),
    ],
)
def test_work_packets_for_unknown_handles(
    h: Harness, ptype: PacketType, args: tuple[bytes, ...], text: bytes
) -> None:
    worker = h.worker(b"f")
    worker.send(ptype, *args)
    assert worker.one(T.ERROR).args == (b"JOB_NOT_FOUND", text)


def test_work_packets_for_another_workers_job(h: Harness) -> None:
    client = h.endpoint()
    handle = client.submit(b"f")
    owner, thief = h.worker(b"f"), h.worker(b"f")
    owner.grab()
    thief.send(T.WORK_COMPLETE, handle, b"stolen").one(T.ERROR)
    thief.send(T.WORK_DATA, handle, b"x").one(T.ERROR)
    assert client.take() == []
    owner.send(T.WORK_COMPLETE, handle, b"real")
    assert client.one().args == (handle, b"real")


# -- odd requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ptype", "args"),
    [
        (T.SUBMIT_JOB_SCHED, (b"f", b"", b"1", b"2", b"3", b"4", b"5", b"d")),
        (T.ALL_YOURS, ()),
        (T.NOOP, ()),
        (T.JOB_CREATED, (b"h",)),
        (T.NO_JOB, ()),
        (T.ECHO_RES, (b"x",)),
        (T.OPTION_RES, (b"x",)),
        (T.STATUS_RES, (b"h", b"1", b"1", b"1", b"1")),
    ],
)
def test_commands_the_server_does_not_take(
    h: Harness, ptype: PacketType, args: tuple[bytes, ...]
) -> None:
    client = h.endpoint().send(ptype, *args)
    assert client.one(T.ERROR).args == (b"INVALID_COMMAND", b"Command not expected")
    assert h.broker.jobs == {}


def test_response_magic_is_refused(h: Harness) -> None:
    client = h.endpoint().send(T.SUBMIT_JOB, b"f", b"", b"d", magic=Magic.RES)
    assert client.one(T.ERROR).args == (b"INVALID_MAGIC", b"Request magic expected")
    assert h.broker.jobs == {}


def test_echo(h: Harness) -> None:
    assert h.endpoint().send(T.ECHO_REQ, b"a\0b").one(T.ECHO_RES).args == (b"a\0b",)


def test_set_client_id_is_truncated(h: Harness) -> None:
    worker = h.worker(b"f").send(T.SET_CLIENT_ID, b"w" * 200)
    assert worker.peer.client_id == b"w" * 127


def test_empty_function_name_is_accepted(h: Harness) -> None:
    h.endpoint().submit(b"")
    assert h.worker(b"").grab().args[1] == b""


# -- cancel and maxqueue ---------------------------------------------------------------------


def test_cancel_a_queued_job(h: Harness) -> None:
    client = h.endpoint()
    handle = client.submit(b"f")
    bg = client.submit(b"f", ptype=T.SUBMIT_JOB_BG)
    admin = h.endpoint()
    assert admin.admin(b"cancel job " + handle) == b"OK\r\n"
    assert client.one(T.WORK_FAIL).args == (handle,)
    assert admin.admin(b"cancel job " + handle) == b"ERR UNKNOWN_JOB\r\n"
    assert admin.admin(b"cancel job " + bg) == b"OK\r\n"
    assert h.status()[b"f"] == (0, 0, 0)
    assert h.worker(b"f").grab().type == T.NO_JOB


def test_cancel_a_running_job(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f", b"d", b"u")
    worker.grab()
    assert h.endpoint().admin(b"cancel job " + handle) == b"OK\r\n"
    assert client.one(T.WORK_FAIL).args == (handle,)
    # The unique is free for a new job at once.
    again = client.submit(b"f", b"d", b"u")
    assert again != handle
    worker.send(T.WORK_DATA, handle, b"x").send(T.WORK_COMPLETE, handle, b"r")
    assert worker.take() == []
    assert client.take() == []  # nothing after the WORK_FAIL
    assert worker.grab().args[0] == again


def test_cancelled_running_job_is_not_retried(h: Harness) -> None:
    client = h.endpoint()
    worker = h.worker(b"f")
    handle = client.submit(b"f", ptype=T.SUBMIT_JOB_BG)
    worker.grab()
    h.endpoint().admin(b"cancel job " + handle)
    worker.disconnect()
    assert h.status()[b"f"] == (0, 0, 0)


def test_maxqueue_refuses_new_jobs_but_not_coalesced_ones(h: Harness) -> None:
    admin = h.endpoint()
    client = h.endpoint()
    client.submit(b"f", b"a", b"u1")
    assert admin.admin(b"maxqueue f 2") == b"OK\r\n"
    running = client.submit(b"f", b"b", b"u2")
    h.worker(b"f").grab()
    client.send(T.SUBMIT_JOB_HIGH_BG, b"f", b"", b"c")
    assert client.one().args == (b"QUEUE_ERROR", b"Job queue is full")
    assert client.submit(b"f", b"b", b"u2") == running
    assert admin.admin(b"maxqueue f") == b"OK\r\n"  # back to unlimited
    client.submit(b"f", b"c")


def test_maxqueue_per_priority(h: Harness) -> None:
    client = h.endpoint()
    client.submit(b"f")
    h.endpoint().admin(b"maxqueue f 0 1 5")
    client.submit(b"f", ptype=T.SUBMIT_JOB_HIGH)
    client.send(T.SUBMIT_JOB_BG, b"f", b"", b"x").one(T.ERROR)
    client.submit(b"f", ptype=T.SUBMIT_JOB_LOW_BG)
    assert h.broker.functions[b"f"].max_queue == [0, 1, 5]
    h.endpoint().admin(b"maxqueue f 3 -1")
    assert h.broker.functions[b"f"].max_queue == [3, 0, 0]


def test_job_states_are_consistent_after_a_mixed_run(h: Harness) -> None:
    clients = [h.endpoint() for _ in range(3)]
    workers = [h.worker(b"f", b"g") for _ in range(2)]
    for i in range(30):
        clients[i % 3].submit(b"fg"[i % 2 : i % 2 + 1], b"%d" % i, b"u%d" % (i % 7))
    clients[0].disconnect()
    held = [w.grab() for w in workers]
    workers[0].disconnect()
    for packet in held[1:]:
        workers[1].send(T.WORK_COMPLETE, packet.args[0], b"")
    for job in h.broker.jobs.values():
        assert job.state in (JobState.QUEUED, JobState.RUNNING)
    for f in h.broker.functions.values():
        live = [j for q in f.queues for j in q if j.state is JobState.QUEUED]
        assert len(live) == f.waiting == sum(f.queued)


# -- random operation sequences ----------------------------------------------------------------

_SUBMITS = [T.SUBMIT_JOB, T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH, T.SUBMIT_JOB_LOW_BG]
_OPS = st.one_of(
    st.tuples(
        st.just("submit"),
        st.integers(0, 3),
        st.integers(0, 1),
        st.integers(0, 3),
        st.sampled_from(_SUBMITS),
    ),
    st.tuples(st.just("epoch"), st.integers(0, 3), st.integers(0, 1), st.integers(0, 5)),
    st.tuples(st.just("grab"), st.integers(0, 3)),
    st.tuples(st.just("finish"), st.integers(0, 3), st.sampled_from(["done", "fail", "exc"])),
    st.tuples(st.just("sleep"), st.integers(0, 3)),
    st.tuples(st.just("cant_do"), st.integers(0, 3), st.integers(0, 1)),
    st.tuples(st.just("reconnect"), st.integers(0, 3)),
    st.tuples(st.just("cancel"), st.integers(1, 30)),
    st.tuples(st.just("tick"), st.integers(1, 4)),
)


def _check_invariants(h: Harness) -> None:
    broker = h.broker
    held = [job for peer in broker.peers for job in peer.held.values()]
    for job in held:
        assert job.state is JobState.RUNNING and job.worker is not None
    for job in broker.jobs.values():
        assert job.state is not JobState.DONE
        assert all(job in client.attached for client in job.clients)
    for f in broker.functions.values():
        live = [j for q in f.queues for j in q if j.state is JobState.QUEUED]
        assert len(set(map(id, live))) == len(live) == f.waiting
        pending = [
            j
            for j in broker.jobs.values()
            if j.function is f and j.state in (JobState.QUEUED, JobState.DELAYED)
        ]
        assert sum(f.queued) == len(pending)
        assert f.running == sum(1 for j in held if j.function is f)
        for key, job in f.uniques.items():
            assert broker.jobs.get(job.handle) is job and job.key == key
        for sleeper in f.sleepers:
            assert sleeper.sleeping and sleeper in f.workers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPS, max_size=60), st.integers(0, 3))
def test_random_operations_keep_the_books_straight(
    ops: list[tuple[Any, ...]], retries: int
) -> None:
    h = Harness(job_retries=retries)
    functions = [b"f", b"g"]
    peers = [h.worker(*functions) for _ in range(4)]
    for op in ops:
        kind = op[0]
        peer = peers[op[1] % len(peers)]
        if kind == "submit":
            _, _, fn, unique, ptype = op
            peer.send(ptype, functions[fn], b"u%d" % unique if unique else b"", b"d")
        elif kind == "epoch":
            _, _, fn, delay = op
            when = b"%d" % (h.now + delay)
            peer.send(T.SUBMIT_JOB_EPOCH, functions[fn], b"", when, b"d")
        elif kind == "grab":
            peer.send(T.GRAB_JOB_UNIQ)
        elif kind == "finish" and peer.peer.held:
            handle = next(iter(peer.peer.held))
            if op[2] == "done":
                peer.send(T.WORK_COMPLETE, handle, b"r")
            elif op[2] == "fail":
                peer.send(T.WORK_FAIL, handle)
            else:
                peer.send(T.WORK_EXCEPTION, handle, b"e")
        elif kind == "sleep":
            peer.send(T.PRE_SLEEP)
        elif kind == "cant_do":
            peer.send(T.CANT_DO, functions[op[2]])
        elif kind == "reconnect":
            peer.disconnect()
            peers[op[1]] = h.worker(*functions)
        elif kind == "cancel":
            h.endpoint().admin(b"cancel job H:t:%d" % op[1])
        elif kind == "tick":
            h.advance(op[1])
        _check_invariants(h)
    # Every job still known can be finished: nothing is stuck.
    drain = h.worker(*functions)
    h.advance(10)
    for _ in range(len(h.broker.jobs) + 1):
        packet = drain.grab()
        if packet.type == T.NO_JOB:
            break
        drain.send(T.WORK_COMPLETE, packet.args[0], b"r")
    running = sum(len(p.held) for p in h.broker.peers)
    assert all(job.state is JobState.RUNNING for job in h.broker.jobs.values())
    assert len(h.broker.jobs) <= running
