"""Admin (text protocol) replies, byte for byte as gearmand 1.1.20 formats them."""

from __future__ import annotations

import pytest

from gearq.protocol import PacketType

from .harness import Harness

T = PacketType


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_status_lists_functions_newest_first(h: Harness) -> None:
    worker = h.worker(b"fa", b"fb")
    h.worker(b"fa")
    client = h.endpoint()
    for _ in range(3):
        client.submit(b"fa")
    client.submit(b"fc", ptype=T.SUBMIT_JOB_LOW_BG)
    worker.grab()
    assert client.admin(b"status") == b"fc\t1\t0\t0\nfb\t0\t0\t1\nfa\t3\t1\t2\n.\n"
    assert client.admin(b"prioritystatus") == (
        b"fc\t0\t0\t1\t0\nfb\t0\t0\t0\t1\nfa\t0\t2\t0\t2\n.\n"
    )


def test_status_of_an_empty_server(h: Harness) -> None:
    assert h.endpoint().admin(b"status") == b".\n"
    assert h.endpoint().admin(b"prioritystatus") == b".\n"


def test_workers_lists_every_connection(h: Harness) -> None:
    worker = h.worker(b"fa", b"fb").send(T.SET_CLIENT_ID, b"worker-one")
    admin = h.endpoint()
    fd_w, fd_a = worker.peer.fd, admin.peer.fd
    assert admin.admin(b"workers") == (
        b"%d 127.0.0.1 worker-one : fb fa\n%d 127.0.0.1 - :\n.\n" % (fd_w, fd_a)
    )


def test_show_jobs_and_unique_jobs(h: Harness) -> None:
    client = h.endpoint()
    client.submit(b"f", ptype=T.SUBMIT_JOB_BG, unique=b"u1")
    client.submit(b"f", unique=b"")
    assert client.admin(b"show jobs") == b"H:t:1\t0\t0\t1\nH:t:2\t0\t0\t0\n.\n"
    assert client.admin(b"SHOW UNIQUE JOBS") == b"u1\n\n.\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"version", b"OK 9.9\n"),
        (b"Version extra", b"OK 9.9\n"),
        (b"getpid", b"OK 4242\n"),
        (b"verbose", b"OK ERROR\n"),
        (b"show", b"ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n"),
        (b"show foo", b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
        (b"show unique", b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
        (b"shutdown", b"ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"),
        (b"shutdown graceful", b"ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"),
        (b"Bogus a b", b"ERR UNKNOWN_COMMAND Unknown+server+commandBogus\r\n"),
        (b"", b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"),
        (b"   ", b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"),
        (b"cancel", b"ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"),
        (b"cancel job", b"ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"),
        (b"cancel job H:t:77", b"ERR UNKNOWN_JOB\r\n"),
        (
            b"maxqueue",
            b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this"
            b"+command+maxqueue\r\n",
        ),
        (b"maxqueue nofunc 1 2 3", b"OK\r\n"),
        (
            b"create function",
            b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this"
            b"+command+create\r\n",
        ),
        (
            b"drop function",
            b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this"
            b"+command+drop\r\n",
        ),
        (b"drop function zz", b"ERR function not found\r\n"),
    ],
)
def test_single_line_replies(h: Harness, line: bytes, reply: bytes) -> None:
    assert h.endpoint().admin(line) == reply


def test_too_many_tokens_close_the_connection(h: Harness) -> None:
    assert h.endpoint().admin(b"status a b c d") is not None
    assert h.endpoint().admin(b"status a b c d e") is None


def test_maxqueue_ignores_unknown_functions(h: Harness) -> None:
    h.endpoint().admin(b"maxqueue later 1")
    client = h.endpoint()
    client.submit(b"later")
    client.submit(b"later")


def test_create_and_drop_function(h: Harness) -> None:
    admin = h.endpoint()
    # gearmand 1.1.20 would create "new" here (it drops the last character).
    assert admin.admin(b"create function newf") == b"OK\r\n"
    assert admin.admin(b"status") == b"newf\t0\t0\t0\n.\n"
    assert admin.admin(b"drop function newf") == b"OK\r\n"
    assert admin.admin(b"status") == b".\n"


def test_drop_function_in_use(h: Harness) -> None:
    worker = h.worker(b"w")
    client = h.endpoint()
    client.submit(b"j")
    in_use = b"ERR there are still connected workers or executing clients\r\n"
    assert client.admin(b"drop function w") == in_use
    assert client.admin(b"drop function j") == in_use
    worker.disconnect()
    client.disconnect()
    assert h.endpoint().admin(b"drop function w") == b"OK\r\n"
    assert h.endpoint().admin(b"drop function j") == b"OK\r\n"
    # A dropped function comes back with its next use, with fresh settings.
    h.endpoint().submit(b"j")
    assert h.status() == {b"j": (1, 0, 0)}
