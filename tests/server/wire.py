"""A small blocking raw-socket client for poking job servers packet by packet."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

from gearq.protocol import Decoder, Magic, Packet, PacketType, encode_request

__all__ = ["Wire", "wait_until"]

T = PacketType


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds.

    For effects that the server applies asynchronously, such as a closed connection.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Wire:
    """One TCP connection that sends encoded requests and reads decoded responses.

    Binary replies and text (admin) replies may arrive interleaved on one connection, in the
    order the requests were sent: :meth:`recv` takes the next packet, :meth:`admin` the next
    text reply, and each fails if the other kind comes first.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._decoder = Decoder(expect=Magic.RES)
        self._buf = bytearray()

    # -- sending ------------------------------------------------------------------------------

    def send(self, ptype: PacketType, *args: bytes) -> Wire:
        self.sock.sendall(encode_request(ptype, *args))
        return self

    def send_raw(self, data: bytes) -> Wire:
        self.sock.sendall(data)
        return self

    # -- receiving packets --------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Packet:
        """The next packet; fails the test if none arrives in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            packet = self._take_packet()
            if packet is not None:
                return packet
            self._fill(deadline, "no packet arrived in time")

    def _take_packet(self) -> Packet | None:
        buf = self._buf
        if not buf:
            return None
        if buf[0] != 0:
            raise AssertionError(f"expected a packet, got text {bytes(buf[:80])!r}")
        if len(buf) < 12:
            return None
        end = 12 + struct.unpack_from(">I", buf, 8)[0]
        if len(buf) < end:
            return None
        packets = self._decoder.feed(bytes(buf[:end]))
        del buf[:end]
        assert len(packets) == 1, packets
        return packets[0]

    def _fill(self, deadline: float, message: str) -> None:
        remaining = deadline - time.monotonic()
        chunk = self._read(remaining) if remaining > 0 else None
        if chunk is None:
            raise AssertionError(f"{message} (buffered: {bytes(self._buf[:80])!r})")
        if not chunk:
            raise AssertionError(f"the server closed the connection ({message})")
        self._buf += chunk

    def expect(self, ptype: PacketType, *args: bytes, timeout: float | None = None) -> Packet:
        packet = self.recv(timeout)
        assert packet.type == ptype, f"expected {ptype.name}, got {packet!r}"
        if args:
            assert packet.args == args, f"expected {args!r}, got {packet.args!r}"
        return packet

    def quiet(self, timeout: float = 0.2) -> None:
        """Assert that nothing arrives for ``timeout`` seconds."""
        if not self._buf:
            chunk = self._read(timeout)
            if chunk is None:
                return
            self._buf += chunk
        raise AssertionError(f"unexpected data {bytes(self._buf[:80])!r}")

    def closed_by_server(self, timeout: float = 2.0) -> bool:
        """True if the server closes the connection (or resets it) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self._read(deadline - time.monotonic())
            except ConnectionError:
                return True
            if chunk == b"":
                return True
        return False

    def roundtrip(self, ptype: PacketType, *args: bytes) -> Packet:
        return self.send(ptype, *args).recv()

    def submit(self, ptype: PacketType, function: bytes, unique: bytes, data: bytes) -> bytes:
        """Submit and return the job handle from JOB_CREATED."""
        return self.send(ptype, function, unique, data).expect(T.JOB_CREATED).args[0]

    def sync(self) -> None:
        """Wait until the server processed everything sent so far (an ECHO round trip)."""
        self.send(T.ECHO_REQ, b"sync").expect(T.ECHO_RES, b"sync")

    # -- text protocol ------------------------------------------------------------------------

    def admin(self, command: bytes | None, *, listing: bool | None = None) -> bytes:
        """Send an admin command (None: send nothing) and return the next whole text reply.

        A listing (``status``, ``workers``, ``show ...``) ends with a ``.`` line; anything
        else is one line. Guessed from the reply when ``listing`` is None.
        """
        if command is not None:
            self.sock.sendall(command + b"\n")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._take_text(listing)
            if reply is not None:
                return reply
            self._fill(deadline, f"incomplete admin reply to {command!r}")

    def _take_text(self, listing: bool | None) -> bytes | None:
        buf = self._buf
        if not buf:
            return None
        if buf[0] == 0:
            raise AssertionError(f"expected text, got a packet {bytes(buf[:80])!r}")
        if listing is None:
            listing = not buf.startswith((b"OK", b"ERR"))
        if listing:
            if buf.startswith(b".\n"):
                end = 2
            else:
                found = buf.find(b"\n.\n")
                if found < 0:
                    return None
                end = found + 3
        else:
            found = buf.find(b"\n")
            if found < 0:
                return None
            end = found + 1
        reply = bytes(buf[:end])
        del buf[:end]
        return reply

    # -- plumbing -----------------------------------------------------------------------------

    def _read(self, timeout: float) -> bytes | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(1 << 20)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
