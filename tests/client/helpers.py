"""Helpers for the client tests: a scriptable raw-protocol worker and small utilities."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gearq.client import AdminClient
from gearq.net import ServerAddress
from gearq.protocol import Decoder, Magic, PacketType, encode_request
from gearq.testing import GearmandProcess

T = TypeVar("T")
P = PacketType


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """asyncio.run with an upper bound, so a hang fails the test instead of stalling it."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def script(*actions: list[Any]) -> bytes:
    """A payload telling :class:`ScriptedWorker` what to do, e.g.
    ``script(["data", "a"], ["status", 1, 2], ["complete", "done"])``."""
    return json.dumps([list(a) for a in actions]).encode()


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` in a coroutine until it holds (fail after ``timeout`` seconds)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


class ScriptedWorker:
    """A worker on a raw socket, in a thread. Each job's payload is either a JSON script
    (see :func:`script`) or anything else, which is echoed back as the result.

    Actions: ``["data", text]``, ``["warning", text]``, ``["status", num, den]``,
    ``["sleep", seconds]``, ``["complete", text]``, ``["fail"]``, ``["exception", text]``.
    """

    def __init__(self, server: GearmandProcess | str, *functions: str) -> None:
        address = server.address if isinstance(server, GearmandProcess) else server
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.decoder = Decoder(expect=Magic.RES)
        self.jobs: list[tuple[bytes, bytes, bytes, bytes]] = []  # handle, fn, unique, payload
        self.stopped = threading.Event()
        out = b"".join(encode_request(P.CAN_DO, f.encode()) for f in functions)
        out += encode_request(P.SET_CLIENT_ID, b"scripted-worker")
        self.sock.sendall(out + encode_request(P.GRAB_JOB_UNIQ))
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _send(self, ptype: PacketType, *args: bytes) -> None:
        self.sock.sendall(encode_request(ptype, *args))

    def _loop(self) -> None:
        try:
            while not self.stopped.is_set():
                readable, _, _ = select.select([self.sock], [], [], 0.2)
                if not readable:
                    continue
                data = self.sock.recv(65536)
                if not data:
                    return
                for packet in self.decoder.feed(data):
                    if packet.type is P.JOB_ASSIGN_UNIQ:
                        self.jobs.append(packet.args)  # type: ignore[arg-type]
                        self._run(packet.args[0], packet.args[3])
                        self._send(P.GRAB_JOB_UNIQ)
                    elif packet.type is P.NO_JOB:
                        self._send(P.PRE_SLEEP)
                    elif packet.type is P.NOOP:
                        self._send(P.GRAB_JOB_UNIQ)
        except OSError:
            return
        finally:
            self.stopped.set()

    def _run(self, handle: bytes, payload: bytes) -> None:
        try:
            actions = json.loads(payload)
            if not isinstance(actions, list):
                raise ValueError
        except ValueError:
            self._send(P.WORK_COMPLETE, handle, payload)
            return
        for action in actions:
            kind, args = action[0], action[1:]
            if kind == "data":
                self._send(P.WORK_DATA, handle, args[0].encode())
            elif kind == "warning":
                self._send(P.WORK_WARNING, handle, args[0].encode())
            elif kind == "status":
                self._send(P.WORK_STATUS, handle, str(args[0]).encode(), str(args[1]).encode())
            elif kind == "sleep":
                if self.stopped.wait(args[0]):
                    return
            elif kind == "complete":
                self._send(P.WORK_COMPLETE, handle, args[0].encode())
            elif kind == "fail":
                self._send(P.WORK_FAIL, handle)
            elif kind == "exception":
                self._send(P.WORK_EXCEPTION, handle, args[0].encode())

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self) -> ScriptedWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def totals(servers: list[GearmandProcess], function: str) -> list[int]:
    """TOTAL (queued + running) of ``function`` on each server, from admin ``status``."""
    with AdminClient([s.address for s in servers]) as admin:
        results = admin.status()
    out = []
    for server in servers:
        rows = results[ServerAddress.parse(server.address)].result()
        out.append(sum(row.total for row in rows if row.function == function))
    return out
