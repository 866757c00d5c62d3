"""Raw Gearman protocol loops: the floor that gearq's own code is measured against.

Plain blocking sockets with TCP_NODELAY, packets built with ``struct`` and parsed inline, no
gearq imports. Three peers:

* :func:`raw_background_submit`: pipelined SUBMIT_JOB_BG with a window of requests in flight.
* :func:`raw_foreground`: SUBMIT_JOB keeping ``in_flight`` jobs outstanding until all complete.
* :func:`run_raw_worker`: an echo worker keeping ``grabs`` GRAB_JOB_UNIQ outstanding. Start it in
  its own process with :func:`start_raw_worker` so it never shares a CPU-bound interpreter
  with the client under test.

Each returns the number of jobs and the seconds taken, so callers compute rates the same way.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Protocol

__all__ = [
    "RawWorkerProcess",
    "raw_background_submit",
    "raw_foreground",
    "run_raw_worker",
    "start_raw_worker",
]

_HEADER = struct.Struct(">4sII")
_REQ = b"\0REQ"
CAN_DO = 1
PRE_SLEEP = 4
NOOP = 6
SUBMIT_JOB = 7
JOB_CREATED = 8
NO_JOB = 10
WORK_COMPLETE = 13
ECHO_REQ = 16
SUBMIT_JOB_BG = 18
ERROR = 19
GRAB_JOB_UNIQ = 30
JOB_ASSIGN_UNIQ = 31


class EventLike(Protocol):
    """What the worker loop needs of a stop or ready flag (threading, multiprocessing)."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


class _Settable(Protocol):
    def set(self) -> None: ...


def _packet(ptype: int, body: bytes) -> bytes:
    return _HEADER.pack(_REQ, ptype, len(body)) + body


def _parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(address, tuple):
        return address
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def connect(address: str | tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(_parse_address(address))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Reader:
    """Splits a byte stream into (type, body) pairs."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        # recv() into a buffer kept for the socket's life: ``recv(1 << 20)`` allocates a
        # megabyte per call, which glibc maps and unmaps each time (~25 µs a read).
        self.view = memoryview(bytearray(1 << 20))

    def read(self) -> list[tuple[int, bytes]]:
        size = self.sock.recv_into(self.view)
        if not size:
            raise ConnectionError("server closed the connection")
        data = self.view[:size].tobytes()
        buf = self.buf + data if self.buf else data
        out = []
        pos = 0
        end = len(buf)
        unpack = _HEADER.unpack_from
        while end - pos >= 12:
            _, ptype, size = unpack(buf, pos)
            stop = pos + 12 + size
            if stop > end:
                break
            out.append((ptype, buf[pos + 12 : stop]))
            pos = stop
        self.buf = buf[pos:]
        return out


def raw_background_submit(
    address: str | tuple[str, int],
    function: bytes,
    payload: bytes,
    uniques: Sequence[bytes],
    window: int = 2000,
    batch: int = 500,
) -> tuple[int, float]:
    """Submit one background job per unique, at most ``window`` unacknowledged, writing
    ``batch`` packets per send. Returns (jobs acknowledged, seconds)."""
    sock = connect(address)
    reader = _Reader(sock)
    total = len(uniques)
    head = _REQ + SUBMIT_JOB_BG.to_bytes(4, "big")
    fixed = len(function) + len(payload) + 2
    fn_nul = function + b"\0"
    sent = acked = 0
    start = time.perf_counter()
    while acked < total:
        room = min(window - (sent - acked), total - sent, batch)
        if room > 0:
            parts = []
            for unique in uniques[sent : sent + room]:
                parts.append(head + (fixed + len(unique)).to_bytes(4, "big"))
                parts.append(fn_nul + unique + b"\0" + payload)
            sock.sendall(b"".join(parts))
            sent += room
            if sent - acked < window and sent < total:
                continue
        for ptype, body in reader.read():
            if ptype == JOB_CREATED:
                acked += 1
            elif ptype == ERROR:
                raise RuntimeError(f"server error {body!r}")
    elapsed = time.perf_counter() - start
    sock.close()
    return acked, elapsed


def raw_foreground(
    address: str | tuple[str, int],
    function: bytes,
    payload: bytes,
    uniques: Sequence[bytes],
    in_flight: int = 100,
) -> tuple[int, float]:
    """Foreground jobs, one per unique, keeping ``in_flight`` outstanding; returns
    (jobs completed, seconds)."""
    sock = connect(address)
    reader = _Reader(sock)
    total = len(uniques)
    head = _REQ + SUBMIT_JOB.to_bytes(4, "big")
    fixed = len(function) + len(payload) + 2
    fn_nul = function + b"\0"

    def packets(chunk: Sequence[bytes]) -> bytes:
        parts = []
        for unique in chunk:
            parts.append(head + (fixed + len(unique)).to_bytes(4, "big"))
            parts.append(fn_nul + unique + b"\0" + payload)
        return b"".join(parts)

    start = time.perf_counter()
    sent = min(in_flight, total)
    sock.sendall(packets(uniques[:sent]))
    done = 0
    while done < total:
        finished = 0
        for ptype, body in reader.read():
            if ptype == WORK_COMPLETE:
                finished += 1
            elif ptype == ERROR:
                raise RuntimeError(f"server error {body!r}")
        if finished:
            done += finished
            more = min(finished, total - sent)
            if more:
                sock.sendall(packets(uniques[sent : sent + more]))
                sent += more
    elapsed = time.perf_counter() - start
    sock.close()
    return done, elapsed


def run_raw_worker(
    address: str | tuple[str, int],
    function: bytes,
    grabs: int = 1,
    stop_event: EventLike | None = None,
    max_jobs: int | None = None,
    ready: _Settable | None = None,
    poll: float = 0.2,
) -> int:
    """Echo worker: complete every job with its own payload, keeping ``grabs``
    GRAB_JOB_UNIQ requests outstanding. Runs until ``stop_event`` is set or ``max_jobs``
    jobs are done; returns the number of jobs done."""
    sock = connect(address)
    reader = _Reader(sock)
    grab = _packet(GRAB_JOB_UNIQ, b"")
    pre_sleep = _packet(PRE_SLEEP, b"")
    complete_head = _REQ + WORK_COMPLETE.to_bytes(4, "big")
    sock.sendall(_packet(CAN_DO, function) + grab * grabs)
    if ready is not None:
        ready.set()
    outstanding = grabs
    done = 0
    sleeping = False
    while True:
        if stop_event is not None and stop_event.is_set():
            break
        if max_jobs is not None and done >= max_jobs:
            break
        readable, _, _ = select.select([sock], [], [], poll)
        if not readable:
            if sleeping:  # a poll tick: look again, as real workers should (epoch jobs)
                sleeping = False
                outstanding = grabs
                sock.sendall(grab * grabs)
            continue
        out = []
        for ptype, body in reader.read():
            if ptype == JOB_ASSIGN_UNIQ:
                handle, _, rest = body.partition(b"\0")
                _, _, rest = rest.partition(b"\0")  # function
                _, _, workload = rest.partition(b"\0")  # unique
                body_out = handle + b"\0" + workload
                out.append(complete_head + len(body_out).to_bytes(4, "big") + body_out)
                # Its GRAB again, and those that came back NO_JOB meanwhile: the queue
                # has work again, so the window is full again (else one NO_JOB in a burst
                # would leave it short for good, down to one GRAB in the worst case).
                out.append(grab * (1 + grabs - outstanding))
                outstanding = grabs
                done += 1
            elif ptype == NO_JOB:
                outstanding -= 1
                if outstanding == 0:
                    out.append(pre_sleep)
                    sleeping = True
            elif ptype == NOOP:
                if sleeping:
                    sleeping = False
                    outstanding = grabs
                    out.append(grab * grabs)
            elif ptype == ERROR:
                raise RuntimeError(f"server error {body!r}")
        if out:
            sock.sendall(b"".join(out))
    sock.close()
    return done


class RawWorkerProcess:
    """A :func:`run_raw_worker` in its own interpreter (``python -m benchmarks.raw``).

    A subprocess rather than multiprocessing: it needs no ``__main__`` guard in the caller
    and works the same from scripts, pytest and xdist. ``stop()`` ends it (SIGTERM) and
    returns the number of jobs it did.
    """

    def __init__(
        self,
        address: str | tuple[str, int],
        function: bytes,
        grabs: int = 1,
        max_jobs: int | None = None,
    ) -> None:
        host, port = _parse_address(address)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "benchmarks.raw", f"{host}:{port}", function.decode()]
        cmd += ["--grabs", str(grabs)]
        if max_jobs is not None:
            cmd += ["--max-jobs", str(max_jobs)]
        self.process = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"raw worker did not start: {line!r}")
        self.jobs_done: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the worker; returns how many jobs it completed (None if unknown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        for line in (out or "").splitlines():
            if line.startswith("done "):
                self.jobs_done = int(line.split()[1])
        return self.jobs_done

    def __enter__(self) -> RawWorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_raw_worker(
    address: str | tuple[str, int], function: bytes, grabs: int = 1, max_jobs: int | None = None
) -> RawWorkerProcess:
    """Start :func:`run_raw_worker` in a fresh process and wait until it has registered."""
    return RawWorkerProcess(address, function, grabs, max_jobs)


class _Flag:
    def __init__(self) -> None:
        self.set_ = False

    def set(self) -> None:
        self.set_ = True

    def is_set(self) -> bool:
        return self.set_


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="raw Gearman echo worker")
    parser.add_argument("address")
    parser.add_argument("function")
    parser.add_argument("--grabs", type=int, default=1)
    parser.add_argument("--max-jobs", type=int, default=None)
    args = parser.parse_args(argv)
    stop = _Flag()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    class _Ready:
        def set(self) -> None:
            print("ready", flush=True)

    done = run_raw_worker(
        args.address, args.function.encode(), args.grabs, stop, args.max_jobs, _Ready()
    )
    print(f"done {done}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
