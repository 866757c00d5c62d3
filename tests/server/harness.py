"""Drive a :class:`Broker` without sockets: fake peers, a fake clock and fake timers."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from gearq.protocol import Decoder, Magic, Packet, PacketType
from gearq.server.admin import AdminInfo, execute
from gearq.server.broker import Broker
from gearq.server.peer import Peer

__all__ = ["Endpoint", "Harness"]

T = PacketType


class _Timer:
    def __init__(self, harness: Harness, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Endpoint:
    """A connection as the broker sees it, plus what it has received."""

    def __init__(self, harness: Harness, fd: int) -> None:
        self.harness = harness
        self._decoder = Decoder(expect=Magic.RES)
        self.received: list[Packet] = []
        self.closed = False
        self.peer = Peer(
            fd=fd,
            ip="127.0.0.1",
            write=self._write,
            close=self._close,
            dirty=harness.broker.dirty,
        )
        harness.broker.connect(self.peer)

    def _write(self, data: bytes) -> None:
        self.received.extend(self._decoder.feed(data))

    def _close(self) -> None:
        self.closed = True

    def send(self, ptype: PacketType, *args: bytes, magic: Magic = Magic.REQ) -> Endpoint:
        self.harness.broker.handle(self.peer, Packet(magic, ptype, args))
        self.harness.broker.flush()
        return self

    def take(self) -> list[Packet]:
        out, self.received = self.received, []
        return out

    def one(self, ptype: PacketType | None = None) -> Packet:
        packets = self.take()
        assert len(packets) == 1, f"expected one packet, got {packets!r}"
        if ptype is not None:
            assert packets[0].type == ptype, f"expected {ptype.name}, got {packets[0]!r}"
        return packets[0]

    def submit(
        self,
        function: bytes,
        data: bytes = b"x",
        unique: bytes = b"",
        ptype: PacketType = T.SUBMIT_JOB,
    ) -> bytes:
        return self.send(ptype, function, unique, data).one(T.JOB_CREATED).args[0]

    def grab(self, ptype: PacketType = T.GRAB_JOB_UNIQ) -> Packet:
        return self.send(ptype).one()

    def disconnect(self) -> None:
        self.harness.broker.disconnect(self.peer)
        self.harness.broker.flush()

    def admin(self, line: bytes) -> bytes | None:
        reply = execute(self.harness.broker, self.harness.info, line)
        self.harness.broker.flush()
        return reply


class Harness:
    def __init__(self, **options: int) -> None:
        self.now = 1_000_000.0
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self.broker = Broker(
            handle_prefix=b"H:t:", call_later=self._call_later, clock=self._clock, **options
        )
        self.info = AdminInfo(version=b"9.9", verbose=b"ERROR", pid=4242)
        self._fds = itertools.count(10)

    def _clock(self) -> float:
        return self.now

    def _call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self, self.now + delay, callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing due timers in order."""
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = end

    def endpoint(self) -> Endpoint:
        return Endpoint(self, next(self._fds))

    def worker(self, *functions: bytes) -> Endpoint:
        ep = self.endpoint()
        for f in functions:
            ep.send(T.CAN_DO, f)
        return ep

    def status(self) -> dict[bytes, tuple[int, ...]]:
        reply = self.endpoint().admin(b"status")
        assert reply is not None and reply.endswith(b".\n")
        out = {}
        for line in reply.splitlines()[:-1]:
            name, *counts = line.split(b"\t")
            out[name] = tuple(int(c) for c in counts)
        return out
