"""The admin protocol parser against a real gearmand (raw sockets, no gearq networking).

Jobs and workers are set up with hand-built binary packets so these tests depend only on
gearq.protocol.admin and the ``gearmand`` fixture.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from gearq.protocol.admin import (
    MAX_COMMAND_LINE,
    AdminCommand,
    AdminParser,
    AdminReply,
    FunctionStatus,
    JobInfo,
    PriorityStatus,
    ReplyKind,
    WorkerInfo,
    cancel_job,
    create_function,
    drop_function,
    getpid,
    maxqueue,
    priority_status,
    show_jobs,
    show_unique_jobs,
    status,
    verbose,
    version,
    workers,
)
from gearq.protocol.errors import AdminError, ArgumentError
from gearq.testing import GearmandProcess

TIMEOUT = 10.0

# Binary packet types used here (reference doc §1.2).
CAN_DO = 1
SUBMIT_JOB = 7
JOB_CREATED = 8
GRAB_JOB = 9
NO_JOB = 10
JOB_ASSIGN = 11
ECHO_REQ = 16
ECHO_RES = 17
SUBMIT_JOB_BG = 18
ERROR = 19
SET_CLIENT_ID = 22
SUBMIT_JOB_HIGH_BG = 32
SUBMIT_JOB_LOW_BG = 34


def _connect(server: GearmandProcess) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Admin:
    """A blocking admin connection: send commands, read until all their replies are in."""

    def __init__(self, server: GearmandProcess, recv_size: int = 65536) -> None:
        self.sock = _connect(server)
        self.parser = AdminParser()
        self.recv_size = recv_size
        self.feeds = 0

    def call_many(self, *commands: AdminCommand[Any]) -> list[AdminReply[Any]]:
        self.sock.sendall(b"".join(self.parser.send(c) for c in commands))
        replies: list[AdminReply[Any]] = []
        while len(replies) < len(commands):
            data = self.sock.recv(self.recv_size)
            if not data:
                raise ConnectionError("gearmand closed the admin connection")
            self.feeds += 1
            replies += self.parser.feed(data)
        return replies

    def __call__(self, command: AdminCommand[Any]) -> Any:
        (reply,) = self.call_many(command)
        return reply.result()

    def close(self) -> None:
        self.sock.close()


class Binary:
    """A raw binary-protocol connection (client or worker)."""

    def __init__(self, server: GearmandProcess) -> None:
        self.sock = _connect(server)

    def send(self, ptype: int, *args: bytes) -> None:
        body = b"\0".join(args)
        self.sock.sendall(b"\0REQ" + struct.pack(">II", ptype, len(body)) + body)

    def _exactly(self, size: int) -> bytes:
        buf = b""
        while len(buf) < size:
            chunk = self.sock.recv(size - len(buf))
            if not chunk:
                raise ConnectionError("gearmand closed the connection")
            buf += chunk
        return buf

    def receive(self) -> tuple[int, bytes]:
        magic, ptype, size = struct.unpack(">4sII", self._exactly(12))
        assert magic == b"\0RES"
        return ptype, self._exactly(size)

    def submit(
        self, function: str, unique: str = "", payload: bytes = b"x", ptype: int = 18
    ) -> str:
        self.send(ptype, function.encode(), unique.encode(), payload)
        kind, body = self.receive()
        assert kind == JOB_CREATED, (kind, body)
        return body.decode()

    def sync(self) -> None:
        """Wait until gearmand has handled everything sent so far (CAN_DO etc. get no reply)."""
        self.send(ECHO_REQ, b"sync")
        assert self.receive() == (ECHO_RES, b"sync")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def admin(gearmand: GearmandProcess) -> Any:
    conn = Admin(gearmand)
    yield conn
    conn.close()


@pytest.fixture
def connect(gearmand: GearmandProcess) -> Any:
    opened: list[Binary] = []

    def factory() -> Binary:
        conn = Binary(gearmand)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        conn.close()


def _by_function(rows: tuple[Any, ...]) -> dict[str, Any]:
    return {row.function: row for row in rows}


def test_version_getpid_verbose(admin: Admin, gearmand: GearmandProcess) -> None:
    server_version = admin(version())
    assert isinstance(server_version, str)
    assert server_version[:1].isdigit() and not server_version.startswith("OK")
    assert admin(getpid()) == gearmand.pid
    assert admin(verbose()) == gearmand.verbose


def test_empty_server(admin: Admin) -> None:
    assert admin(status()) == ()
    assert admin(priority_status()) == ()
    assert admin(show_jobs()) == ()
    assert admin(show_unique_jobs()) == ()


def test_status_and_prioritystatus(admin: Admin, connect: Any) -> None:
    client = connect()
    client.submit("fa", "h1", ptype=SUBMIT_JOB_HIGH_BG)
    client.submit("fa", "n1", ptype=SUBMIT_JOB_BG)
    client.submit("fa", "n2", ptype=SUBMIT_JOB_BG)
    client.submit("fa", "l1", ptype=SUBMIT_JOB_LOW_BG)
    client.submit("fb", "", ptype=SUBMIT_JOB_LOW_BG)

    rows = _by_function(admin(status()))
    assert rows == {"fa": FunctionStatus("fa", 4, 0, 0), "fb": FunctionStatus("fb", 1, 0, 0)}
    assert rows["fa"].queued == 4
    prio = _by_function(admin(priority_status()))
    assert prio == {"fa": PriorityStatus("fa", 1, 2, 1, 0), "fb": PriorityStatus("fb", 0, 0, 1, 0)}


def test_status_counts_running_jobs_and_workers(admin: Admin, connect: Any) -> None:
    client = connect()
    handle = client.submit("fr", "r1")
    client.submit("fr", "r2")
    worker = connect()
    worker.send(CAN_DO, b"fr")
    worker.send(GRAB_JOB)
    kind, body = worker.receive()
    assert kind == JOB_ASSIGN and body.split(b"\0")[0].decode() == handle

    assert _by_function(admin(status()))["fr"] == FunctionStatus("fr", 2, 1, 1)
    # prioritystatus counts queued jobs only.
    assert _by_function(admin(priority_status()))["fr"] == PriorityStatus("fr", 0, 1, 0, 1)


def test_workers(admin: Admin, connect: Any) -> None:
    spaced = connect()
    spaced.send(SET_CLIENT_ID, b"worker two with spaces")
    spaced.send(CAN_DO, b"fa")
    spaced.send(CAN_DO, b"fb")
    spaced.sync()
    plain = connect()
    plain.send(SET_CLIENT_ID, b"worker-one")
    plain.send(CAN_DO, b"fa")
    plain.sync()
    client = connect()
    client.sync()

    rows = admin(workers())
    assert all(isinstance(row, WorkerInfo) and row.ip == "127.0.0.1" for row in rows)
    by_id = {row.client_id: row for row in rows if row.client_id is not None}
    assert by_id["worker two with spaces"].functions == ("fb", "fa")  # last registered first
    assert by_id["worker-one"].functions == ("fa",)
    # The admin connection and the plain client are listed too, with no id or functions.
    anonymous = [row for row in rows if row.client_id is None]
    assert len(anonymous) == 2
    assert all(row.functions == () for row in anonymous)
    assert len({row.fd for row in rows}) == len(rows) == 4
    assert _by_function(admin(status()))["fa"].workers == 2


def test_show_jobs(admin: Admin, connect: Any) -> None:
    client = connect()
    bg = [client.submit("fj", f"u{i}") for i in range(3)]
    foreground = connect()
    foreground.send(SUBMIT_JOB, b"fj", b"fg", b"payload")
    kind, body = foreground.receive()
    assert kind == JOB_CREATED
    fg = body.decode()

    jobs = {job.handle: job for job in admin(show_jobs())}
    assert set(jobs) == {*bg, fg}
    for handle in bg:
        assert jobs[handle] == JobInfo(handle, 0, False, True)
    # JOB_QUEUED is 0 for a foreground job.
    assert jobs[fg] == JobInfo(fg, 0, False, False)


def test_show_unique_jobs(admin: Admin, connect: Any) -> None:
    client = connect()
    client.submit("fu", "u1")
    client.submit("fu", "")
    client.submit("fu", "another unique")
    assert sorted(admin(show_unique_jobs())) == ["", "another unique", "u1"]


def test_cancel_job(admin: Admin, connect: Any) -> None:
    client = connect()
    handle = client.submit("fc", "c1")
    other = client.submit("fc", "c2")

    assert admin(cancel_job(handle)) is None
    jobs = {job.handle: job for job in admin(show_jobs())}
    # gearmand 1.1.20 keeps a cancelled queued job, ignored, until a worker GRABs.
    assert jobs[handle] == JobInfo(handle, 0, True, False)
    assert jobs[other] == JobInfo(other, 0, False, True)

    with pytest.raises(AdminError) as info:
        admin(cancel_job("H:nope:99"))
    assert info.value.code == "UNKNOWN_JOB"
    assert info.value.message == ""
    # An ERR reply leaves the connection usable.
    assert admin(getpid()) > 0


def test_maxqueue(admin: Admin, connect: Any) -> None:
    client = connect()
    client.submit("fm", "m1")
    assert admin(maxqueue("fm", 1)) is None
    client.send(SUBMIT_JOB_BG, b"fm", b"m2", b"x")
    assert client.receive() == (ERROR, b"QUEUE_ERROR\0Job queue is full")

    # Without a size, the limit goes back to the default (unlimited).
    assert admin(maxqueue("fm")) is None
    client.submit("fm", "m3")

    assert admin(maxqueue("fm", (1, 0, 0))) is None
    client.send(SUBMIT_JOB_HIGH_BG, b"fm", b"m4", b"x")
    assert client.receive()[0] == ERROR
    client.submit("fm", "m5", ptype=SUBMIT_JOB_LOW_BG)

    # Unknown functions are accepted and ignored.
    assert admin(maxqueue("no-such-function", 5)) is None
    assert "no-such-function" not in _by_function(admin(status()))


def test_bare_maxqueue_is_an_error(admin: Admin) -> None:
    with pytest.raises(AdminError) as info:
        admin(AdminCommand(b"maxqueue\n", ReplyKind.OK))
    assert info.value.code == "INVALID_ARGUMENTS"
    assert info.value.message == "An incomplete set of arguments was sent to this command maxqueue"


def test_create_and_drop_function(admin: Admin, connect: Any) -> None:
    assert admin(create_function("newf")) is None
    # The CRLF line end gets the whole name created (gearmand 1.1.20 would make "new").
    assert _by_function(admin(status()))["newf"] == FunctionStatus("newf", 0, 0, 0)

    assert admin(drop_function("newf")) is None
    assert "newf" not in _by_function(admin(status()))
    with pytest.raises(AdminError) as info:
        admin(drop_function("newf"))
    assert info.value.code == "FUNCTION_NOT_FOUND"
    assert info.value.message == "function not found"

    worker = connect()
    worker.send(CAN_DO, b"busy")
    worker.sync()
    with pytest.raises(AdminError) as info:
        admin(drop_function("busy"))
    assert info.value.code == "FUNCTION_IN_USE"
    assert info.value.message == "there are still connected workers or executing clients"


def test_drop_function_orphans_queued_jobs(admin: Admin, connect: Any) -> None:
    # gearmand 1.1.20 behaviour that drop_function's docstring warns about.
    client = connect()
    handle = client.submit("Orphan", "o1")
    assert admin(drop_function("orphan")) is None  # case-insensitive match
    assert "Orphan" not in _by_function(admin(status()))
    assert [job.handle for job in admin(show_jobs())] == [handle]
    worker = connect()
    worker.send(CAN_DO, b"Orphan")
    worker.send(GRAB_JOB)
    assert worker.receive() == (NO_JOB, b"")


def test_unknown_commands(admin: Admin) -> None:
    with pytest.raises(AdminError) as info:
        admin(AdminCommand(b"shutdown\n", ReplyKind.OK))
    assert info.value.code == "UNKNOWN_COMMAND"
    assert info.value.message == "Unknown server commandshutdown"
    # ERR in place of a list reply.
    with pytest.raises(AdminError) as info:
        admin(AdminCommand(b"show foo\n", ReplyKind.JOBS))
    assert info.value.code == "UNKNOWN_SHOW_ARGUMENTS"
    with pytest.raises(AdminError) as info:
        admin(AdminCommand(b"show\n", ReplyKind.JOBS))
    assert (info.value.code, info.value.message) == (
        "UNKNOWN_COMMAND",
        "Unknown server commandshow",
    )
    assert admin(version())


def test_pipelined_commands(admin: Admin, connect: Any, gearmand: GearmandProcess) -> None:
    client = connect()
    handle = client.submit("fp", "p1", ptype=SUBMIT_JOB_HIGH_BG)
    worker = connect()
    worker.send(SET_CLIENT_ID, b"pipe-worker")
    worker.send(CAN_DO, b"fp")
    worker.sync()

    commands: list[AdminCommand[Any]] = [
        status(),
        version(),
        AdminCommand(b"shutdown\n", ReplyKind.OK),
        priority_status(),
        workers(),
        show_jobs(),
        cancel_job("H:nope:1"),
        show_unique_jobs(),
        getpid(),
        maxqueue("fp", 100),
        create_function("made"),
        verbose(),
        drop_function("made"),
        status(),
    ]
    replies = admin.call_many(*commands)
    assert [r.command for r in replies] == commands
    assert [r.ok for r in replies] == [
        True, True, False, True, True, True, False, True, True, True, True, True, True, True,
    ]  # fmt: skip
    assert _by_function(replies[0].result())["fp"] == FunctionStatus("fp", 1, 0, 1)
    assert replies[2].error is not None and replies[2].error.code == "UNKNOWN_COMMAND"
    assert _by_function(replies[3].result())["fp"] == PriorityStatus("fp", 1, 0, 0, 1)
    assert any(w.client_id == "pipe-worker" for w in replies[4].result())
    assert [j.handle for j in replies[5].result()] == [handle]
    assert replies[7].result() == ("p1",)
    assert replies[8].result() == gearmand.pid
    assert replies[11].result() == gearmand.verbose
    assert "made" not in _by_function(replies[13].result())

    # The same commands one at a time give the same answers.
    for command, reply in zip(commands[:10], replies[:10], strict=True):
        (single,) = admin.call_many(command)
        assert single.value == reply.value
        assert (single.error is None) == (reply.error is None)


def test_large_show_jobs_over_many_reads(gearmand: GearmandProcess, connect: Any) -> None:
    client = connect()
    count = 5000
    # Pipelined submits, then collect all JOB_CREATED replies.
    body = b"fbig\0\0x"
    packet = b"\0REQ" + struct.pack(">II", SUBMIT_JOB_BG, len(body)) + body
    client.sock.sendall(packet * count)
    handles = set()
    for _ in range(count):
        kind, handle = client.receive()
        assert kind == JOB_CREATED
        handles.add(handle.decode())

    admin = Admin(gearmand, recv_size=4096)
    try:
        jobs, uniques, rows = (
            r.result() for r in admin.call_many(show_jobs(), show_unique_jobs(), status())
        )
    finally:
        admin.close()
    assert admin.feeds > 10
    assert {job.handle for job in jobs} == handles
    assert uniques == ("",) * count
    assert _by_function(rows)["fbig"] == FunctionStatus("fbig", count, 0, 0)


def test_command_line_limit_matches_server(admin: Admin) -> None:
    # The longest line gearmand accepts is answered normally...
    name = "x" * (MAX_COMMAND_LINE - len("drop function \n"))
    with pytest.raises(AdminError) as info:
        admin(drop_function(name))
    assert info.value.code == "FUNCTION_NOT_FOUND"
    # ...and one byte more is refused before it could get the connection closed.
    with pytest.raises(ArgumentError):
        drop_function(name + "x")
    assert admin(version())
