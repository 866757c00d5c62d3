"""Tests of the test infrastructure: the gearmand launcher and the fault proxy.

Raw sockets only, so that these tests do not depend on gearq's own protocol code.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import time
from collections.abc import Callable

import pytest

import gearq.testing.gearmand as launcher
from gearq.testing import (
    GearmandNotFound,
    GearmandProcess,
    GearmandStartError,
    gearmand_available,
)
from tests.support import FaultProxy

ECHO_REQ = 16
ECHO_RES = 17
SUBMIT_JOB_BG = 18
JOB_CREATED = 8

# --- raw protocol helpers -------------------------------------------------------------------


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request(ptype: int, data: bytes) -> bytes:
    return b"\0REQ" + struct.pack(">II", ptype, len(data)) + data


def recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {size} bytes")
        buf += chunk
    return buf


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    magic, ptype, size = struct.unpack(">4sII", recv_exact(sock, 12))
    assert magic == b"\0RES"
    return ptype, recv_exact(sock, size)


def echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(request(ECHO_REQ, data))
    ptype, reply = read_response(sock)
    assert ptype == ECHO_RES
    return reply


def read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError(f"EOF after {buf!r}")
        buf += chunk
    return buf.rstrip(b"\r\n")


def text(sock: socket.socket, command: str) -> bytes:
    sock.sendall(command.encode() + b"\n")
    return read_line(sock)


def server_pid(host: str, port: int) -> int:
    with connect(host, port) as sock:
        reply = text(sock, "getpid")
    assert reply.startswith(b"OK ")
    return int(reply.split()[1])


def assert_refused(host: str, port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=2).close()


def assert_closed_by_peer(sock: socket.socket) -> None:
    """The peer closed: EOF or RST, but not silence."""
    sock.settimeout(3)
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        return
    assert data == b""


def connect_and_read(host: str, port: int, payload: bytes = b"") -> bytes:
    """Connect, send ``payload``, read: b"" on EOF; ConnectionResetError on RST.

    The RST may already fail the connect() itself, when it comes before the client's
    connect() returns.
    """
    with connect(host, port) as sock:
        if payload:
            sock.sendall(payload)
        sock.settimeout(3)
        return sock.recv(100)


# --- the launcher ---------------------------------------------------------------------------


def test_server_answers_version_and_reports_itself(gearmand: GearmandProcess) -> None:
    assert gearmand.is_running()
    assert gearmand.host == "127.0.0.1"
    assert gearmand.address == f"127.0.0.1:{gearmand.port}"
    assert gearmand.port not in (0, 4730)
    with connect(gearmand.host, gearmand.port) as sock:
        assert text(sock, "version").startswith(b"OK")
        assert echo(sock, b"hello\0world") == b"hello\0world"
    assert server_pid(gearmand.host, gearmand.port) == gearmand.pid
    assert gearmand.log_path.exists()


def test_two_servers_at_once(gearmand_factory: Callable[..., GearmandProcess]) -> None:
    first = gearmand_factory()
    second = gearmand_factory()
    assert first.port != second.port
    assert first.pid != second.pid
    assert server_pid(first.host, first.port) == first.pid
    assert server_pid(second.host, second.port) == second.pid
    assert first.log_path != second.log_path


def test_extra_args_reach_gearmand(gearmand_factory: Callable[..., GearmandProcess]) -> None:
    server = gearmand_factory("--job-handle-prefix", "gqtest", "-t", "1")
    with connect(server.host, server.port) as sock:
        sock.sendall(request(SUBMIT_JOB_BG, b"fn\0uniq-1\0payload"))
        ptype, handle = read_response(sock)
    assert ptype == JOB_CREATED
    assert handle.startswith(b"gqtest:")


def test_kill_then_port_refuses(gearmand: GearmandProcess) -> None:
    pid = gearmand.pid
    assert gearmand.kill() == -signal.SIGKILL
    assert not gearmand.is_running()
    assert gearmand.pid == pid
    assert_refused(gearmand.host, gearmand.port)


def test_stop_uses_sigterm(gearmand: GearmandProcess) -> None:
    # gearmand exits 0 on SIGTERM; a SIGKILL fallback would give -9.
    assert gearmand.stop() == 0
    assert not gearmand.is_running()
    assert_refused(gearmand.host, gearmand.port)
    assert gearmand.stop() == 0  # idempotent


def test_restart_after_kill_answers_on_same_port(gearmand: GearmandProcess) -> None:
    port, old_pid = gearmand.port, gearmand.pid
    # A client connection left open across the crash must not keep the port busy.
    with connect(gearmand.host, port) as client:
        assert echo(client, b"before") == b"before"
        gearmand.kill()
        assert_closed_by_peer(client)
        gearmand.restart()
    assert gearmand.port == port
    assert gearmand.pid != old_pid
    assert server_pid(gearmand.host, port) == gearmand.pid
    with connect(gearmand.host, port) as sock:
        assert echo(sock, b"after") == b"after"


def test_restart_of_running_server(gearmand: GearmandProcess) -> None:
    port, old_pid = gearmand.port, gearmand.pid
    gearmand.restart()
    assert gearmand.port == port
    assert gearmand.pid != old_pid
    assert server_pid(gearmand.host, port) == gearmand.pid


def test_context_manager_removes_its_temporary_workdir() -> None:
    if not gearmand_available():
        pytest.skip("gearmand is not installed")
    with GearmandProcess() as server:
        workdir = server.workdir
        port = server.port
        assert server_pid(server.host, port) == server.pid
        assert workdir.is_dir()
    assert not server.is_running()
    assert not workdir.exists()
    assert_refused("127.0.0.1", port)


def test_picked_port_taken_by_another_server_moves_on(
    gearmand_factory: Callable[..., GearmandProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    squatter = gearmand_factory()
    ports = iter([squatter.port])
    real_pick = launcher.pick_free_port
    monkeypatch.setattr(launcher, "pick_free_port", lambda host: next(ports, None) or real_pick())
    with GearmandProcess(start_timeout=5) as server:
        assert server.port != squatter.port
        assert server_pid(server.host, server.port) == server.pid
    assert squatter.is_running()


def test_picked_port_bound_but_not_listening_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    if not gearmand_available():
        pytest.skip("gearmand is not installed")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))  # bound, never listening: gearmand's bind() fails
        taken = blocker.getsockname()[1]
        ports = iter([taken])
        real_pick = launcher.pick_free_port
        monkeypatch.setattr(
            launcher, "pick_free_port", lambda host: next(ports, None) or real_pick()
        )
        with GearmandProcess(start_timeout=8) as server:
            assert server.port != taken
            assert server_pid(server.host, server.port) == server.pid


def test_fixed_port_in_use_is_an_error(gearmand: GearmandProcess, tmp_path) -> None:
    clash = GearmandProcess(port=gearmand.port, workdir=tmp_path / "clash", start_timeout=3)
    with pytest.raises(GearmandStartError, match="another process"):
        clash.start()
    assert not clash.is_running()
    assert server_pid(gearmand.host, gearmand.port) == gearmand.pid


def test_bad_arguments_fail_fast_with_output(tmp_path) -> None:
    if not gearmand_available():
        pytest.skip("gearmand is not installed")
    server = GearmandProcess(["--no-such-option"], workdir=tmp_path)
    started = time.monotonic()
    with pytest.raises(GearmandStartError, match="exited with status"):
        server.start()
    assert time.monotonic() - started < 5
    assert not server.is_running()


def test_missing_binary(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("GEARQ_GEARMAND", str(tmp_path / "no-gearmand"))
    monkeypatch.delenv("CI", raising=False)
    assert gearmand_available() is False
    with pytest.raises(GearmandNotFound, match="gearman-job-server"):
        gearmand_available(strict=True)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(GearmandNotFound):
        gearmand_available()
    with pytest.raises(GearmandNotFound):
        GearmandProcess(workdir=tmp_path).start()


def test_daemon_flag_rejected() -> None:
    with pytest.raises(ValueError, match="foreground"):
        GearmandProcess(["-d"])
    with pytest.raises(TypeError):
        GearmandProcess("-j 3")  # a str is a Sequence[str]: caught at run time


# --- the fault proxy ------------------------------------------------------------------------


@pytest.fixture
def proxy(gearmand: GearmandProcess):
    with FaultProxy(gearmand.host, gearmand.port) as p:
        yield p


def test_proxy_forwards_echo(proxy: FaultProxy) -> None:
    assert proxy.address == f"127.0.0.1:{proxy.port}"
    with connect(proxy.host, proxy.port) as sock:
        assert echo(sock, b"via\0proxy") == b"via\0proxy"
        big = bytes(range(256)) * 4096  # 1 MiB, several chunks
        assert echo(sock, big) == big
        assert text(sock, "version").startswith(b"OK")
        proxy.wait_connections(1)
    proxy.wait_connections(0)


def test_freeze_stalls_and_thaw_resumes(proxy: FaultProxy) -> None:
    with connect(proxy.host, proxy.port) as sock:
        assert echo(sock, b"warm") == b"warm"
        proxy.freeze()
        assert proxy.frozen
        sock.sendall(request(ECHO_REQ, b"frozen"))
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        # New connections are still accepted and held while frozen.
        with connect(proxy.host, proxy.port) as second:
            proxy.wait_connections(2)
            proxy.thaw()
            assert not proxy.frozen
            sock.settimeout(5)
            assert read_response(sock) == (ECHO_RES, b"frozen")
            assert echo(second, b"second") == b"second"


def test_reset_aborts_connections(proxy: FaultProxy, gearmand: GearmandProcess) -> None:
    with connect(proxy.host, proxy.port) as sock:
        assert echo(sock, b"x") == b"x"
        proxy.wait_connections(1)
        assert proxy.reset() == 1
        assert proxy.connections == 0
        sock.settimeout(3)
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    # The proxy keeps serving, and so does the server.
    with connect(proxy.host, proxy.port) as sock:
        assert echo(sock, b"again") == b"again"
    assert server_pid(gearmand.host, gearmand.port) == gearmand.pid


def test_cut_closes_with_fin(proxy: FaultProxy) -> None:
    with connect(proxy.host, proxy.port) as sock:
        assert echo(sock, b"x") == b"x"
        proxy.wait_connections(1)
        assert proxy.cut() == 1
        sock.settimeout(3)
        assert sock.recv(100) == b""  # a clean EOF, not ConnectionResetError
    with connect(proxy.host, proxy.port) as sock:
        assert echo(sock, b"again") == b"again"


def test_refuse_closes_new_connections(proxy: FaultProxy) -> None:
    with connect(proxy.host, proxy.port) as held:
        assert echo(held, b"held") == b"held"
        proxy.refuse(True)
        before = proxy.accepted_total
        with contextlib.suppress(ConnectionResetError):  # RST if our data came first
            assert connect_and_read(proxy.host, proxy.port, request(ECHO_REQ, b"nope")) == b""
        assert proxy.accepted_total == before + 1
        assert proxy.connections == 1
        assert echo(held, b"still") == b"still"  # refusing leaves current connections alone
        proxy.refuse(False)
        with connect(proxy.host, proxy.port) as sock:
            assert echo(sock, b"welcome") == b"welcome"


def test_refuse_with_reset(proxy: FaultProxy) -> None:
    proxy.refuse(True, reset=True)
    with pytest.raises(ConnectionResetError):
        connect_and_read(proxy.host, proxy.port)


def test_delay_adds_latency(proxy: FaultProxy) -> None:
    delay = 0.3
    with connect(proxy.host, proxy.port) as sock:
        started = time.monotonic()
        assert echo(sock, b"fast") == b"fast"
        fast = time.monotonic() - started
        proxy.delay(delay)
        started = time.monotonic()
        assert echo(sock, b"slow") == b"slow"
        slow = time.monotonic() - started
        proxy.delay(0)
        started = time.monotonic()
        assert echo(sock, b"fast again") == b"fast again"
        fast_again = time.monotonic() - started
    # The request and the reply are each held back by `delay`; delay(0) turns it off.
    assert slow >= 2 * delay
    assert slow < 2 * delay + 10
    assert fast < slow and fast_again < slow


def test_retarget_moves_new_connections_only(
    gearmand_factory: Callable[..., GearmandProcess],
) -> None:
    first, second = gearmand_factory(), gearmand_factory()
    with FaultProxy(first.host, first.port) as proxy, connect(proxy.host, proxy.port) as old:
        assert text(old, "getpid") == f"OK {first.pid}".encode()
        proxy.retarget(second.host, second.port)
        assert proxy.target == (second.host, second.port)
        with connect(proxy.host, proxy.port) as new:
            assert text(new, "getpid") == f"OK {second.pid}".encode()
        assert text(old, "getpid") == f"OK {first.pid}".encode()


def test_target_down_closes_client(gearmand: GearmandProcess) -> None:
    with FaultProxy(gearmand.host, gearmand.port) as proxy:
        gearmand.kill()
        with pytest.raises(ConnectionResetError):
            connect_and_read(proxy.host, proxy.port)
        proxy.wait_connections(0)


def test_close_with_open_connections_is_prompt(gearmand: GearmandProcess) -> None:
    proxy = FaultProxy(gearmand.host, gearmand.port)
    with connect(proxy.host, proxy.port) as sock:
        assert echo(sock, b"x") == b"x"
        proxy.freeze()
        sock.sendall(request(ECHO_REQ, b"stuck"))
        started = time.monotonic()
        proxy.close()
        proxy.close()  # idempotent
        assert time.monotonic() - started < 3
        assert_closed_by_peer(sock)
    assert_refused(proxy.host, proxy.port)
    with pytest.raises(RuntimeError):
        proxy.freeze()
