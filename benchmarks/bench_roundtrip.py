"""The client's own cost of one round trip, without gearmand or a worker in the way.

A stand-in server (``--serve``, its own process, plain blocking sockets) answers every
SUBMIT_JOB at once with JOB_CREATED and then WORK_COMPLETE, so a round trip measures the
client, the loopback and this small server: the noise that gearmand and a worker add on a
shared machine (their wake-ups, their share of the CPUs) is gone, and a change to the
client's hot path shows up as microseconds that repeat from run to run.

Clients, each taking turns in blocks of ``--block`` round trips, ``--rounds`` times:

* ``raw``: ``benchmarks.raw``'s style: one blocking socket, ``sendall`` and ``recv``.
* ``client``: the blocking low-level ``gearq.client.Client``: ``submit(...).result()``.
* ``task-raw``: ``task.delay(payload).get()`` of a task with ``serializer="raw"`` (the task
  layer without the envelope).
* ``task``: the same with the default msgpack envelope (the server answers with a result
  envelope).
* ``task-async``: ``await (await task.adelay(payload))`` on one event loop.

Printed per client: p50 in µs, CPU µs per round trip of this process (every thread), and
both over raw's.

    python -m benchmarks.bench_roundtrip
    python -m benchmarks.bench_roundtrip --clients raw,task --rounds 5
    python -m benchmarks.bench_roundtrip --job-us 200   # the result comes 200 µs later
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._procs import ReadyProcess  # noqa: E402

_HEAD = struct.Struct(">4sII")
PAYLOAD = b"x" * 100
FUNCTION = "rt.echo"
ENVELOPED = "rt.task"
CLIENTS = ("raw", "client", "task-raw", "task", "task-async")


# -- the stand-in server ---------------------------------------------------------------------


def _res(ptype: int, body: bytes) -> bytes:
    return b"\0RES" + struct.pack(">II", ptype, len(body)) + body


def _serve_one(conn: socket.socket, reply: bytes, delay: float) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    count = 0
    while True:
        data = conn.recv(1 << 16)
        if not data:
            return
        buf += data
        out: list[bytes] = []
        while len(buf) >= 12:
            _, ptype, size = _HEAD.unpack_from(buf)
            if len(buf) < 12 + size:
                break
            body = buf[12 : 12 + size]
            buf = buf[12 + size :]
            if ptype in (7, 21, 23):  # SUBMIT_JOB, _HIGH, _LOW
                count += 1
                handle = b"H:rt:%d" % count
                function, _, rest = body.partition(b"\0")
                payload = rest.partition(b"\0")[2]
                result = reply if function == ENVELOPED.encode() else payload
                # JOB_CREATED first, on its own, as gearmand sends it before the job runs.
                out.append(_res(8, handle))
                conn.sendall(b"".join(out))
                if delay:
                    time.sleep(delay)  # a job that takes this long, as seen by the client
                out = [_res(13, handle + b"\0" + result)]
            elif ptype == 26:  # OPTION_REQ
                out.append(_res(27, body))
            elif ptype == 16:  # ECHO_REQ
                out.append(_res(17, body))
        if out:
            conn.sendall(b"".join(out))


def serve(delay: float) -> None:
    from gearq.tasks.envelope import encode_result

    reply = encode_result(PAYLOAD)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(f"ready {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(conn, reply, delay), daemon=True).start()


# -- clients: each returns block(n) -> list of seconds, and close() ---------------------------


class _Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = FUNCTION.encode() + b"\0\0" + PAYLOAD
        self.packet = b"\0REQ" + struct.pack(">II", 7, len(body)) + body

    def block(self, n: int) -> list[float]:
        sock, packet = self.sock, self.packet
        out = []
        for _ in range(n):
            start = time.perf_counter()
            sock.sendall(packet)
            got = b""
            while True:
                got += sock.recv(1 << 16)
                # Done once the WORK_COMPLETE (type 13) is whole: it ends the stream.
                at = got.find(b"\0RES\0\0\0\x0d")
                if at >= 0 and len(got) >= at + 12 + _HEAD.unpack_from(got, at)[2]:
                    break
            out.append(time.perf_counter() - start)
        return out

    def close(self) -> None:
        self.sock.close()


class _LowLevel:
    def __init__(self, port: int) -> None:
        from gearq.client import Client

        self.client = Client(f"127.0.0.1:{port}")

    def block(self, n: int) -> list[float]:
        submit = self.client.submit
        out = []
        for _ in range(n):
            start = time.perf_counter()
            submit(FUNCTION, PAYLOAD).result(30)
            out.append(time.perf_counter() - start)
        return out

    def close(self) -> None:
        self.client.close()


def _app(port: int) -> tuple[Any, Any, Any]:
    from gearq.tasks import App

    app = App("bench", servers=f"127.0.0.1:{port}", env=False)

    @app.task(name=FUNCTION, serializer="raw")
    def echo_raw(data: bytes) -> bytes:
        return data

    @app.task(name=ENVELOPED)
    def echo(data: bytes) -> bytes:
        return data

    return app, echo_raw, echo


class _Task:
    def __init__(self, port: int, enveloped: bool) -> None:
        self.app, raw, enveloped_task = _app(port)
        self.task = enveloped_task if enveloped else raw

    def block(self, n: int) -> list[float]:
        delay = self.task.delay
        out = []
        for _ in range(n):
            start = time.perf_counter()
            delay(PAYLOAD).get(timeout=30)
            out.append(time.perf_counter() - start)
        return out

    def close(self) -> None:
        self.app.close()


class _TaskAsync:
    def __init__(self, port: int) -> None:
        self.app, _, self.task = _app(port)
        self.loop = asyncio.new_event_loop()

    async def _block(self, n: int) -> list[float]:
        adelay = self.task.adelay
        out = []
        for _ in range(n):
            start = time.perf_counter()
            await (await adelay(PAYLOAD))
            out.append(time.perf_counter() - start)
        return out

    def block(self, n: int) -> list[float]:
        return self.loop.run_until_complete(self._block(n))

    def close(self) -> None:
        self.loop.run_until_complete(self.app.aclose())
        self.loop.close()


_MAKERS: dict[str, Callable[[int], Any]] = {
    "raw": _Raw,
    "client": _LowLevel,
    "task-raw": lambda port: _Task(port, False),
    "task": lambda port: _Task(port, True),
    "task-async": _TaskAsync,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--block", type=int, default=200, help="round trips per turn")
    parser.add_argument("--turns", type=int, default=10, help="turns per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--job-us", type=float, default=0.0, help="µs between JOB_CREATED and WORK_COMPLETE"
        " (default 0: both at once)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.job_us / 1e6)
        return 0
    names = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = [n for n in names if n not in _MAKERS]
    if unknown:
        parser.error(f"unknown clients {unknown}; choose from {', '.join(CLIENTS)}")
    if "raw" not in names:
        names.insert(0, "raw")
    server = ReadyProcess.module(
        "benchmarks.bench_roundtrip", "--serve", "--job-us", str(args.job_us)
    )
    port = int(server.info)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; a stand-in server that")
    print(f"answers every submit at once (the result {args.job_us:g} µs after JOB_CREATED);")
    print("payload 100 bytes;")
    print(f"{args.rounds} rounds of {args.turns} turns of {args.block} round trips per client")
    p50s: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    try:
        clients = {name: _MAKERS[name](port) for name in names}
        try:
            for client in clients.values():
                client.block(args.block)  # warm up: connections, caches
            for _ in range(args.rounds):
                samples: dict[str, list[float]] = {n: [] for n in names}
                cpu: dict[str, float] = dict.fromkeys(names, 0.0)
                order = list(names)
                for _ in range(args.turns):
                    for name in order:
                        before = time.process_time()
                        samples[name] += clients[name].block(args.block)
                        cpu[name] += time.process_time() - before
                    order.append(order.pop(0))
                for name in names:
                    p50s[name].append(statistics.median(samples[name]))
                    cpus[name].append(cpu[name] / len(samples[name]))
        finally:
            for client in clients.values():
                client.close()
    finally:
        server.stop()
    raw_p50 = statistics.median(p50s["raw"])
    raw_cpu = statistics.median(cpus["raw"])
    print()
    print(f"{'client':<11} {'p50 µs':>8} {'/ raw':>7} {'CPU µs':>8} {'/ raw':>7}")
    for name in names:
        p50 = statistics.median(p50s[name])
        cpu_us = statistics.median(cpus[name])
        print(
            f"{name:<11} {p50 * 1e6:>8.1f} {p50 / raw_p50:>6.2f}x {cpu_us * 1e6:>8.1f}"
            f" {cpu_us / raw_cpu:>6.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
