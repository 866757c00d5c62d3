"""A scripted stand-in for gearmand, for worker behaviour that real gearmand cannot be made
to show on demand (an ERROR in place of a GRAB's answer, a NOOP storm, a dropped link)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from gearq.protocol import Decoder, Magic, Packet, PacketType, encode_response


@dataclass
class FakeConn:
    server: FakeServer
    writer: asyncio.StreamWriter
    packets: list[Packet] = field(default_factory=list)

    def send(self, ptype: PacketType, *args: bytes) -> None:
        self.writer.write(encode_response(ptype, *args))

    def types(self) -> list[PacketType]:
        return [p.type for p in self.packets]

    def count(self, ptype: PacketType) -> int:
        return sum(1 for p in self.packets if p.type is ptype)

    def close(self) -> None:
        self.writer.close()


Script = Callable[[FakeConn, Packet], None]


class FakeServer:
    """Accepts connections on a free loopback port and calls ``script(conn, packet)`` for
    every request packet (after recording it)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.conns: list[FakeConn] = []
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConn(self, writer)
        self.conns.append(conn)
        decoder = Decoder(expect=Magic.REQ)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for packet in decoder.feed(data):
                    conn.packets.append(packet)
                    if packet.type is PacketType.ECHO_REQ:
                        conn.send(PacketType.ECHO_RES, packet.args[0])
                        continue
                    self.script(conn, packet)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in self.conns:
                conn.close()
            await self._server.wait_closed()
