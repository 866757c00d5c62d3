"""The connection layer against a real gearmand (and a few fake servers for bad input)."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time

import pytest

from gearq.net import (
    ConnectFailed,
    Connection,
    ConnectionLost,
    ConnectionOptions,
    HeartbeatTimeout,
    ServerAddress,
)
from gearq.protocol import Packet, PacketType
from tests.support.faultproxy import FaultProxy


class Recorder:
    """Collects what a connection reports, and lets a test wait for it."""

    def __init__(self) -> None:
        self.packets: asyncio.Queue[Packet] = asyncio.Queue()
        self.lost: asyncio.Future[ConnectionLost | None] = (
            asyncio.get_running_loop().create_future()
        )

    def on_packet(self, packet: Packet) -> None:
        self.packets.put_nowait(packet)

    def on_lost(self, conn: Connection, error: ConnectionLost | None) -> None:
        if not self.lost.done():
            self.lost.set_result(error)

    async def open(self, address: ServerAddress, **options: object) -> Connection:
        return await Connection.open(
            address,
            ConnectionOptions(**options),
            self.on_packet,
            self.on_lost,  # type: ignore[arg-type]
        )


def addr(server) -> ServerAddress:
    return ServerAddress(server.host, server.port)


def test_echo_round_trip_with_nodelay(gearmand):
    async def main() -> None:
        rec = Recorder()
        conn = await rec.open(addr(gearmand))
        sock = conn._transport.get_extra_info("socket")  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        conn.send_packet(PacketType.ECHO_REQ, b"hello\0world")
        packet = await asyncio.wait_for(rec.packets.get(), 5)
        assert packet.type is PacketType.ECHO_RES
        assert packet.args == (b"hello\0world",)
        conn.close()
        assert await asyncio.wait_for(rec.lost, 5) is None
        with pytest.raises(ConnectionLost):
            conn.send_packet(PacketType.ECHO_REQ, b"x")

    asyncio.run(main())


def test_read_in_place_handles_what_the_socket_holds_and_leaves_the_rest_to_the_loop(gearmand):
    from gearq.net.connection import in_place_readers

    async def main() -> None:
        rec = Recorder()
        conn = await rec.open(addr(gearmand))
        loop = asyncio.get_running_loop()
        fd = conn._transport.get_extra_info("socket").fileno()  # type: ignore[union-attr]
        assert in_place_readers(loop) == {fd: conn}
        assert conn.ready_in_place()
        assert not conn.read_in_place()  # nothing there yet: no block, no error
        conn.send_packet(PacketType.ECHO_REQ, b"in place")
        # Wait on the socket, as a caller that owns the loop does, without running it.
        assert select.select([fd], [], [], 5)[0], "no ECHO_RES within 5 s"
        assert conn.read_in_place()
        packet = rec.packets.get_nowait()
        assert packet.type is PacketType.ECHO_RES and packet.args == (b"in place",)
        conn.close()
        assert await asyncio.wait_for(rec.lost, 5) is None
        assert in_place_readers(loop) == {}
        assert not conn.ready_in_place() and not conn.read_in_place()

    asyncio.run(main())


def test_send_now_writes_before_the_loop_runs_again(gearmand):
    from gearq.protocol import encode_request

    async def main() -> None:
        rec = Recorder()
        conn = await rec.open(addr(gearmand))
        fd = conn._transport.get_extra_info("socket").fileno()  # type: ignore[union-attr]
        conn.send_now(encode_request(PacketType.ECHO_REQ, b"mine"))
        # The answer comes without the loop running in between: the request was written.
        assert select.select([fd], [], [], 5)[0], "no ECHO_RES within 5 s"
        data = os.read(fd, 100)  # (behind the transport's back: the test's own read)
        assert data == b"\0RES" + (17).to_bytes(4, "big") + (4).to_bytes(4, "big") + b"mine"
        assert rec.packets.empty()
        conn.close()
        assert await asyncio.wait_for(rec.lost, 5) is None

    asyncio.run(main())


def test_send_now_of_more_than_the_socket_takes_sends_the_rest_in_order(gearmand):
    from gearq.protocol import encode_request

    async def main() -> None:
        rec = Recorder()
        conn = await rec.open(addr(gearmand))
        big = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than one write takes
        conn.send_now(encode_request(PacketType.ECHO_REQ, big))
        assert conn._transport.get_write_buffer_size()  # type: ignore[union-attr]
        conn.send_now(encode_request(PacketType.ECHO_REQ, b"after"))  # queued behind it
        first = await asyncio.wait_for(rec.packets.get(), 20)
        second = await asyncio.wait_for(rec.packets.get(), 5)
        assert first.type is PacketType.ECHO_RES and first.args == (big,)
        assert second.args == (b"after",)
        conn.close()

    asyncio.run(main())


def test_a_handler_failing_on_a_read_in_place_fails_the_connection_not_the_caller(gearmand, caplog):
    class Broken(Connection):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("handler bug")

    async def main() -> None:
        rec = Recorder()
        conn = await Broken.open(
            addr(gearmand),
            ConnectionOptions(),
            rec.on_packet,
            rec.on_lost,  # type: ignore[arg-type]
        )
        fd = conn._transport.get_extra_info("socket").fileno()  # type: ignore[union-attr]
        conn.send_packet(PacketType.ECHO_REQ, b"x")
        assert select.select([fd], [], [], 5)[0], "no ECHO_RES within 5 s"
        assert conn.read_in_place()  # handled: by failing the connection, not by raising
        lost = await asyncio.wait_for(rec.lost, 5)
        assert isinstance(lost, ConnectionLost) and "handler bug" in str(lost)
        assert not conn.is_open

    asyncio.run(main())
    assert "error while handling a read" in caplog.text


def test_refused_connect_is_typed_and_names_the_server():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()  # nothing listens there now

    async def main() -> None:
        rec = Recorder()
        with pytest.raises(ConnectFailed) as info:
            await rec.open(ServerAddress("127.0.0.1", number))
        assert f"127.0.0.1:{number}" in str(info.value)
        assert info.value.server == ServerAddress("127.0.0.1", number)

    asyncio.run(main())


def test_server_killed_reports_connection_lost(gearmand):
    async def main() -> None:
        rec = Recorder()
        await rec.open(addr(gearmand))
        gearmand.kill()
        error = await asyncio.wait_for(rec.lost, 5)
        assert isinstance(error, ConnectionLost)
        assert error.server == addr(gearmand)

    asyncio.run(main())


def test_heartbeat_detects_a_frozen_server(gearmand):
    with FaultProxy(gearmand.host, gearmand.port) as proxy:

        async def main() -> float:
            rec = Recorder()
            await rec.open(
                ServerAddress(proxy.host, proxy.port),
                heartbeat_interval=0.2,
                heartbeat_timeout=0.3,
            )
            await asyncio.sleep(0.6)  # heartbeats answered: still alive
            assert not rec.lost.done()
            proxy.freeze()
            frozen_at = time.monotonic()
            error = await asyncio.wait_for(rec.lost, 5)
            assert isinstance(error, HeartbeatTimeout)
            return time.monotonic() - frozen_at

        took = asyncio.run(main())
        # Bound: one idle interval plus the heartbeat timeout, with slack for a busy box.
        assert took < 0.2 + 0.3 + 1.0


def test_heartbeat_replies_are_not_passed_up(gearmand):
    async def main() -> None:
        rec = Recorder()
        conn = await rec.open(addr(gearmand), heartbeat_interval=0.05, heartbeat_timeout=1)
        await asyncio.sleep(0.4)
        assert rec.packets.empty()
        conn.send_packet(PacketType.ECHO_REQ, b"mine")
        packet = await asyncio.wait_for(rec.packets.get(), 5)
        assert packet.args == (b"mine",)
        conn.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
        b"\0RES\x00\x00\x00\x63\x00\x00\x00\x00",
        b"\0REQ" + bytes(8),
    ],
)
def test_garbage_from_server_closes_with_typed_error(garbage):
    async def main() -> None:
        async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(garbage)
            await writer.drain()
            await reader.read()  # keep the socket open: the client must close it
            writer.close()

        server = await asyncio.start_server(fake, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        rec = Recorder()
        await rec.open(ServerAddress("127.0.0.1", port), heartbeat_interval=None)
        error = await asyncio.wait_for(rec.lost, 5)
        assert isinstance(error, ConnectionLost)
        assert "protocol error" in str(error)
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_the_waiters_checks_see_unsent_bytes_and_a_new_first_timer_after_passing(gearmand):
    # InPlaceWaiter.prepare redoes the readers' checks only when the selector's keys change:
    # bytes left to write register a writer (a new key), so they must still be noticed.
    from gearq.net.inplace import OFF, waiter_for
    from gearq.protocol import encode_request

    loop = asyncio.new_event_loop()
    try:

        async def opened() -> tuple[Connection, Recorder]:
            rec = Recorder()
            return await rec.open(addr(gearmand), heartbeat_interval=None), rec

        conn, rec = loop.run_until_complete(opened())
        waiter = waiter_for(loop)

        def settle() -> None:  # let the loop finish what it has ready
            for _ in range(3):
                loop.run_until_complete(asyncio.sleep(0))

        settle()
        prepared = waiter.prepare()
        assert isinstance(prepared, tuple) and prepared[1] is None  # no timer
        conn.send(encode_request(PacketType.ECHO_REQ, bytes(16 << 20)))  # more than fits
        assert conn._transport.get_write_buffer_size()  # type: ignore[union-attr]
        assert waiter.prepare() == OFF
        loop.run_until_complete(asyncio.wait_for(rec.packets.get(), 20))  # written, echoed
        settle()
        assert isinstance(waiter.prepare(), tuple)
        later = loop.call_later(30, lambda: None)
        first = waiter.prepare()
        assert isinstance(first, tuple) and first[1] is not None and 29 < first[1] <= 30
        sooner = loop.call_later(5, lambda: None)
        second = waiter.prepare()
        assert isinstance(second, tuple) and second[1] is not None and 4 < second[1] <= 5
        later.cancel()
        sooner.cancel()
        conn.close()
        loop.run_until_complete(asyncio.wait_for(rec.lost, 5))
    finally:
        loop.close()
