"""The messages between a prefork parent and its children: length-prefixed msgpack arrays
over a socket pair (a private channel: the task's own stdout and stderr stay free).

Parent to child: ``["job", handle, function, unique, payload]``.
Child to parent: ``["ready", pid]``, ``["error", text]`` (it could not start),
``["attempt", n, limit, time_limit_answer]`` / ``["attempt_end"]`` (arm / disarm the hard
time limit), the job's packets ``["data", b]``, ``["warning", b]``, ``["status", n, d]``,
``["complete", b]``, ``["exception", b]``, ``["fail"]``, and ``["done", result]`` when the
task's handler has returned (the child is free again).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any

import msgpack

__all__ = ["BlockingChannel", "MessageError", "read_message", "write_message"]

_LENGTH = struct.Struct(">I")
MAX_MESSAGE = 1 << 30


class MessageError(Exception):
    """A message that is not a well-formed array (a bug, or a corrupted channel)."""


def pack(message: list[Any]) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return _LENGTH.pack(len(body)) + body


def unpack(body: bytes) -> list[Any]:
    message = msgpack.unpackb(body, raw=False)
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise MessageError(f"malformed message {message!r:.80}")
    return message


async def read_message(reader: asyncio.StreamReader) -> list[Any]:
    """The next message (IncompleteReadError at end of stream: the other side is gone)."""
    (length,) = _LENGTH.unpack(await reader.readexactly(4))
    if length > MAX_MESSAGE:
        raise MessageError(f"message of {length} bytes")
    return unpack(await reader.readexactly(length))


def write_message(writer: asyncio.StreamWriter, message: list[Any]) -> None:
    writer.write(pack(message))


class BlockingChannel:
    """The child's end: blocking reads, writes from any thread (a task's own threads may
    send progress while its main thread runs)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock
        self._lock = threading.Lock()

    def send(self, message: list[Any]) -> None:
        data = pack(message)
        with self._lock:
            self.sock.sendall(data)

    def _read_exactly(self, n: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self.sock.recv(n - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def receive(self) -> list[Any] | None:
        """The next message, or None when the parent has closed the channel."""
        head = self._read_exactly(4)
        if head is None:
            return None
        (length,) = _LENGTH.unpack(head)
        if length > MAX_MESSAGE:
            raise MessageError(f"message of {length} bytes")
        body = self._read_exactly(length)
        if body is None:
            return None
        return unpack(body)
