"""Small raw-protocol clients and helpers for the worker tests.

They speak the wire protocol directly (gearq.protocol only), so a worker test depends on no
other gearq client code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gearq.protocol import Decoder, Packet, PacketType, encode_request
from gearq.protocol import admin as adm
from gearq.testing import GearmandProcess
from gearq.worker import AsyncWorker
from tests.support.aio import FAST_RECOVER
from tests.support.aio import eventually as eventually
from tests.support.aio import run as run
from tests.support.aio import serving as serving

T = TypeVar("T")
GearmandFactory = Callable[..., GearmandProcess]
P = PacketType

SUBMIT_TYPES = {
    ("normal", False): P.SUBMIT_JOB,
    ("normal", True): P.SUBMIT_JOB_BG,
    ("high", False): P.SUBMIT_JOB_HIGH,
    ("high", True): P.SUBMIT_JOB_HIGH_BG,
    ("low", False): P.SUBMIT_JOB_LOW,
    ("low", True): P.SUBMIT_JOB_LOW_BG,
}


def make_worker(*servers: Any, **kwargs: Any) -> AsyncWorker:
    kwargs.setdefault("recover", FAST_RECOVER)
    kwargs.setdefault("poll_interval", 0.5)
    return AsyncWorker([str(s) for s in servers], **kwargs)


@dataclass
class Outcome:
    """What a foreground client saw of one job."""

    handle: bytes = b""
    kind: str = ""  # complete / fail / exception
    result: bytes = b""
    data: list[bytes] = field(default_factory=list)
    warnings: list[bytes] = field(default_factory=list)
    statuses: list[tuple[int, int]] = field(default_factory=list)


class RawClient:
    """One connection speaking the client side of the protocol, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = Decoder()
        self.pending: list[Packet] = []

    @classmethod
    async def connect(cls, port: int, *, exceptions: bool = True) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = cls(reader, writer)
        if exceptions:
            writer.write(encode_request(P.OPTION_REQ, b"exceptions"))
            assert (await client.read()).type is P.OPTION_RES
        return client

    async def read(self) -> Packet:
        while not self.pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    async def submit(
        self,
        function: bytes,
        payload: bytes = b"",
        *,
        unique: bytes = b"",
        background: bool = False,
        priority: str = "normal",
    ) -> bytes:
        ptype = SUBMIT_TYPES[(priority, background)]
        self.writer.write(encode_request(ptype, function, unique, payload))
        packet = await self.read()
        assert packet.type is P.JOB_CREATED, packet
        return packet.args[0]

    async def submit_epoch(
        self, function: bytes, epoch: int, payload: bytes = b"", *, unique: bytes = b""
    ) -> bytes:
        self.writer.write(
            encode_request(P.SUBMIT_JOB_EPOCH, function, unique, b"%d" % epoch, payload)
        )
        packet = await self.read()
        assert packet.type is P.JOB_CREATED, packet
        return packet.args[0]

    async def submit_many_bg(self, function: bytes, payloads: list[bytes], prefix: bytes) -> None:
        """Pipelined background submits with distinct uniques."""
        self.writer.write(
            b"".join(
                encode_request(P.SUBMIT_JOB_BG, function, prefix + b"%d" % i, payload)
                for i, payload in enumerate(payloads)
            )
        )
        for _ in payloads:
            packet = await self.read()
            assert packet.type is P.JOB_CREATED, packet

    async def outcome(self, handle: bytes) -> Outcome:
        """Collect WORK_* packets for ``handle`` until its final one."""
        out = Outcome(handle=handle)
        while True:
            packet = await self.read()
            if packet.args[:1] != (handle,):
                raise AssertionError(f"unexpected {packet!r} while waiting for {handle!r}")
            if packet.type is P.WORK_DATA:
                out.data.append(packet.args[1])
            elif packet.type is P.WORK_WARNING:
                out.warnings.append(packet.args[1])
            elif packet.type is P.WORK_STATUS:
                out.statuses.append((int(packet.args[1]), int(packet.args[2])))
            elif packet.type is P.WORK_COMPLETE:
                out.kind, out.result = "complete", packet.args[1]
                return out
            elif packet.type is P.WORK_EXCEPTION:
                out.kind, out.result = "exception", packet.args[1]
                return out
            elif packet.type is P.WORK_FAIL:
                out.kind = "fail"
                return out
            else:
                raise AssertionError(f"unexpected {packet!r}")

    async def call(self, function: bytes, payload: bytes = b"", **kwargs: Any) -> Outcome:
        return await self.outcome(await self.submit(function, payload, **kwargs))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def raw_client(port: int, **kwargs: Any) -> AsyncIterator[RawClient]:
    client = await RawClient.connect(port, **kwargs)
    try:
        yield client
    finally:
        await client.close()


def admin(port: int, command: adm.AdminCommand[T]) -> T:
    """One admin command over a fresh blocking connection."""
    parser = adm.AdminParser()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(parser.send(command))
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("admin connection closed")
            replies = parser.feed(data)
            if replies:
                result: T = replies[0].result()
                return result


def queued(port: int, function: str) -> int:
    """Jobs of ``function`` queued or running (TOTAL of ``status``)."""
    for row in admin(port, adm.status()):
        if row.function == function:
            return row.total
    return 0
