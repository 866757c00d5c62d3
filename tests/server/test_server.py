"""The embedded server over real sockets: lifecycle, timers, limits and hostile input."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gearq import __version__
from gearq.protocol import PacketType, encode_request
from gearq.server import EmbeddedServer, GearmanServer, main

from .wire import Wire, wait_until

T = PacketType
ROOT = Path(__file__).resolve().parents[2]

Connect = Callable[..., Wire]


def test_job_round_trip(connect: Connect) -> None:
    client, worker = connect(), connect()
    worker.send(T.CAN_DO, b"rev").send(T.PRE_SLEEP)
    handle = client.submit(T.SUBMIT_JOB, b"rev", b"", b"hello")
    assert handle.startswith(b"H:test:")
    worker.expect(T.NOOP)
    worker.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, handle, b"rev", b"hello")
    worker.send(T.WORK_COMPLETE, handle, b"olleh")
    client.expect(T.WORK_COMPLETE, handle, b"olleh")


def test_pipelined_submits_and_admin_on_one_connection(connect: Connect) -> None:
    client = connect()
    batch = b"".join(encode_request(T.SUBMIT_JOB_BG, b"f", b"", b"%d" % i) for i in range(500))
    client.send_raw(batch + b"status\n" + encode_request(T.ECHO_REQ, b"after"))
    handles = [client.expect(T.JOB_CREATED).args[0] for _ in range(500)]
    assert len(set(handles)) == 500
    # The text reply comes between the packets, in order.
    assert client.admin(None) == b"f\t500\t0\t0\n.\n"
    client.expect(T.ECHO_RES, b"after")


def test_text_and_binary_interleave_in_order(connect: Connect) -> None:
    client = connect()
    client.send_raw(b"status\n" + encode_request(T.ECHO_REQ, b"x") + b"version\r\n")
    assert client.admin(None) == b".\n"
    client.expect(T.ECHO_RES, b"x")
    assert client.admin(None) == b"OK %s\n" % __version__.encode()


def test_large_payload_round_trip(connect: Connect) -> None:
    client, worker = connect(timeout=10), connect(timeout=10)
    payload = os.urandom(4 << 20)
    worker.send(T.CAN_DO, b"big")
    handle = client.submit(T.SUBMIT_JOB, b"big", b"", payload)
    assert worker.send(T.GRAB_JOB_UNIQ).recv().args == (handle, b"big", b"", payload)
    worker.send(T.WORK_COMPLETE, handle, payload[::-1])
    client.expect(T.WORK_COMPLETE, handle, payload[::-1])


def test_worker_disconnect_requeues_over_sockets(connect: Connect) -> None:
    client = connect()
    w1 = connect()
    w1.send(T.CAN_DO, b"f")
    handle = client.submit(T.SUBMIT_JOB, b"f", b"", b"d")
    w1.send(T.GRAB_JOB).expect(T.JOB_ASSIGN)
    w2 = connect()
    w2.send(T.CAN_DO, b"f").send(T.PRE_SLEEP)
    w2.sync()
    w1.close()
    w2.expect(T.NOOP)
    w2.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, handle, b"f", b"d")


def test_epoch_job_wakes_the_worker_on_time(connect: Connect) -> None:
    client, worker = connect(), connect()
    worker.send(T.CAN_DO, b"later").send(T.PRE_SLEEP)
    worker.sync()
    epoch = math.ceil(time.time() + 0.6)
    handle = (
        client.send(T.SUBMIT_JOB_EPOCH, b"later", b"", str(epoch).encode(), b"d")
        .expect(T.JOB_CREATED)
        .args[0]
    )
    worker.quiet(0.3)
    worker.expect(T.NOOP, timeout=3)
    woke = time.time()
    # Generous at the late end: the machine may be busy.
    assert epoch - 0.05 <= woke <= epoch + 1.0
    worker.send(T.GRAB_JOB_UNIQ).expect(T.JOB_ASSIGN_UNIQ, handle, b"later", b"", b"d")


def test_embedded_server_stop_closes_connections() -> None:
    srv = EmbeddedServer().start()
    wire = Wire(srv.host, srv.port)
    wire.sync()
    srv.stop()
    assert wire.closed_by_server()
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=1).close()
    srv.stop()  # twice is fine
    wire.close()


def test_embedded_server_call_runs_on_the_loop(server: EmbeddedServer) -> None:
    with Wire(server.host, server.port) as wire:
        wire.submit(T.SUBMIT_JOB_BG, b"f", b"", b"d")
        count = server.call(lambda s: s.broker.functions[b"f"].total)
    assert count == 1
    assert server.address == f"127.0.0.1:{server.port}"


def test_async_server_lifecycle() -> None:
    async def scenario() -> None:
        async with GearmanServer(port=0, handle_prefix="H:a:") as server:
            assert server.is_serving
            with pytest.raises(RuntimeError):
                await server.start()
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(encode_request(T.SUBMIT_JOB_EPOCH, b"f", b"", b"9999999999", b"d"))
            header = await asyncio.wait_for(reader.readexactly(12), 2)
            assert struct.unpack(">4sII", header)[1] == T.JOB_CREATED
            await reader.readexactly(struct.unpack(">4sII", header)[2])
            assert server.connection_count == 1
        assert not server.is_serving
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        # The epoch timer died with the server: nothing of it is left on the loop.
        loop = asyncio.get_running_loop()
        live = [t for t in loop._scheduled if not t.cancelled()]
        assert not [t for t in live if "_release_due" in repr(t)]
        await server.stop()

    asyncio.run(scenario())


def test_embedded_server_reports_a_busy_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        srv = EmbeddedServer(port=taken.getsockname()[1])
        with pytest.raises(OSError):
            srv.start()
        with pytest.raises(RuntimeError):
            srv.call(lambda s: s.port)


def test_port_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        _ = GearmanServer().port
    with pytest.raises(ValueError):
        GearmanServer(job_retries=-1)
    for prefix in ("x" * 44, "has space:", "nul\0"):
        with pytest.raises(ValueError):
            GearmanServer(handle_prefix=prefix)
    assert GearmanServer(handle_prefix="x" * 43).handle_prefix == "x" * 43


def test_default_handles_fit_the_handle_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 200)
    prefix = GearmanServer().handle_prefix
    assert prefix.startswith("H:hhh") and prefix.endswith(":")
    assert len(prefix) + len(str(2**64)) <= 63


def test_serve_forever_returns_after_stop() -> None:
    async def scenario() -> None:
        server = GearmanServer(port=0)
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.2)
        assert server.is_serving
        await server.stop()
        await asyncio.wait_for(task, 2)

    asyncio.run(scenario())


# -- hostile input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param(b"\0XYZ" + b"\0" * 8, id="bad-magic"),
        pytest.param(b"\0REQ" + struct.pack(">II", 99, 0), id="unknown-type"),
        pytest.param(b"\0REQ" + struct.pack(">II", 0, 0), id="type-zero"),
        pytest.param(b"\0REQ" + struct.pack(">II", 7, 0xFFFFFFF0), id="giant-size"),
        pytest.param(b"\0REQ" + struct.pack(">II", 7, 3) + b"abc", id="missing-nuls"),
        pytest.param(b"\0REQ" + struct.pack(">II", 9, 2) + b"xx", id="args-on-grab"),
        pytest.param(b"\0" + os.urandom(64), id="binary-garbage"),
        pytest.param(b"x" * 9000, id="endless-text-line"),
    ],
)
def test_hostile_input_closes_only_that_connection(
    server: EmbeddedServer, connect: Connect, junk: bytes
) -> None:
    bystander = connect()
    bystander.send(T.CAN_DO, b"f")
    bad = connect()
    bad.send_raw(junk)
    assert bad.closed_by_server()
    bystander.sync()
    client = connect()
    handle = client.submit(T.SUBMIT_JOB, b"f", b"", b"d")
    bystander.send(T.GRAB_JOB).expect(T.JOB_ASSIGN, handle, b"f", b"d")
    assert server.call(lambda s: s.connection_count) == 2


def test_packet_size_limit_is_configurable(connect: Connect) -> None:
    with EmbeddedServer(max_packet_size=1024) as small:
        ok = Wire(small.host, small.port)
        ok.send(T.ECHO_REQ, b"x" * 1000).expect(T.ECHO_RES)
        big = Wire(small.host, small.port)
        big.send_raw(encode_request(T.ECHO_REQ, b"x" * 1100)[:12])
        assert big.closed_by_server()
        ok.sync()
        ok.close()
        big.close()


def test_max_connections() -> None:
    with EmbeddedServer(max_connections=2) as srv:
        a, b = Wire(srv.host, srv.port), Wire(srv.host, srv.port)
        a.sync()
        b.sync()
        c = Wire(srv.host, srv.port)
        assert c.closed_by_server()
        a.close()
        deadline = time.monotonic() + 2
        while srv.call(lambda s: s.connection_count) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        d = Wire(srv.host, srv.port)
        d.sync()
        for wire in (b, c, d):
            wire.close()


def test_a_peer_that_does_not_read_is_throttled(server: EmbeddedServer, connect: Connect) -> None:
    # Echo requests from a peer that never reads its replies: the server must stop reading
    # from it (so its buffers stay bounded) while still serving everyone else.
    hog = connect(timeout=1.0)
    chunk = encode_request(T.ECHO_REQ, b"z" * (1 << 20))
    sent = 0
    with pytest.raises((TimeoutError, socket.timeout)):
        while sent < 512 << 20:
            hog.sock.sendall(chunk)
            sent += len(chunk)
    assert sent < 256 << 20
    connect().sync()


def test_stop_does_not_wait_for_a_peer_that_does_not_read() -> None:
    srv = EmbeddedServer().start()
    hog = Wire(srv.host, srv.port, timeout=0.5)
    chunk = encode_request(T.ECHO_REQ, b"z" * (1 << 20))
    with pytest.raises(TimeoutError):
        for _ in range(512):
            hog.sock.sendall(chunk)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 3
    assert srv.server.connection_count == 0
    hog.close()


def test_server_survives_many_clients_vanishing_mid_job(connect: Connect) -> None:
    worker = connect()
    worker.send(T.CAN_DO, b"f")
    for _ in range(20):
        client = connect()
        client.submit(T.SUBMIT_JOB, b"f", b"u", b"d")
        client.close()
    wait_until(lambda: worker.admin(b"status") == b"f\t0\t0\t1\n.\n")
    worker.send(T.GRAB_JOB).expect(T.NO_JOB)


# -- command line ------------------------------------------------------------------------------


def test_main_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--job-retries", "-1"]) == 2
    with pytest.raises(SystemExit):
        main(["--port", "nope"])
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_main_reports_a_busy_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1


def test_python_dash_m_gearq_server() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearq.server", "--port", "0", "-j", "3", "--verbose"],
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1])
        with Wire("127.0.0.1", port) as wire:
            assert wire.admin(b"verbose") == b"OK INFO\n"
            assert wire.admin(b"getpid") == b"OK %d\n" % proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
