"""Tasks through the whole task layer: ``.delay()`` + ``get()``, beside pygearman and raw loops.

Throughput (S2): ``--tasks`` calls of a trivial task (echo a 100-byte ``bytes`` argument),
``--in-flight`` (1,000) outstanding at any time, one worker process, until the last result
is back. Each system runs against a fresh gearmand started with the same flags (printed at
the top), in interleaved rounds; figures are medians.

* ``gearq``: ``echo.delay(payload)`` / ``result.get()`` from a plain thread (the app's loop
  thread submits and reads), served by a ``TaskWorker`` process (``--concurrency`` slots,
  ``pool="inline"``). The whole layer: call envelope, task id, result envelope, AsyncResult.
* ``gearq-async``: the same with ``await echo.adelay(payload)`` / ``await result`` from
  1,000 coroutines.
* ``raw-8``: ``benchmarks.raw``: a raw pipelined client (no envelope) and the raw echo
  worker keeping 8 GRAB_JOB_UNIQ outstanding.
* ``pygearman``: pygearman 0.2.6's client (``submit_multiple_jobs`` of ``--in-flight``) and
  worker.

Latency (S1): ``--latency-tasks`` round trips one after another (submit, wait for the
result) per caller and round, beside the raw client with the raw worker keeping 1 GRAB
outstanding (``raw-1``): ``gearq`` is ``echo.delay(p).get()`` from the main thread (which
runs the app's event loop itself while it waits), ``gearq-async`` is
``await (await echo.adelay(p))`` on an event loop of the main thread; both served by a
TaskWorker with its defaults (``app.worker()``: 8 slots), once with ``pool="threads"``
(the default: a plain task runs in a pool thread) and once with ``pool="inline"`` (the
task runs on the worker's loop, as the raw worker runs its echo); ``--latency-pools``
picks. All three callers share one gearmand per round and pool (the raw worker and the
TaskWorker serve different functions) and take turns in blocks of ``--latency-block``
round trips, so that they see the same background load; p50 and p99 in microseconds are
medians over rounds, and the ratios are printed both as the ratio of those medians and
as the median of each round's ratio.

CPU columns: microseconds of CPU per task of the client process, the worker process and
gearmand (from /proc). Targets (issue 5): gearq >= 8x pygearman and >= 0.4x raw-8;
gearq p50 <= 1.3x the raw 1-GRAB loop's.

    python -m benchmarks.bench_tasks                 # 3 rounds, 20,000 tasks
    python -m benchmarks.bench_tasks --quick         # 1 round, 5,000 tasks
    python -m benchmarks.bench_tasks --flags="-t 1" --systems gearq,raw-8
    python -m benchmarks.bench_tasks --systems= --rounds 5   # latency only
    python -m benchmarks.bench_tasks --systems= --latency-pools threads
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shlex
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._procs import ReadyProcess  # noqa: E402
from benchmarks.raw import (  # noqa: E402
    SUBMIT_JOB,
    WORK_COMPLETE,
    _packet,
    _Reader,
    connect,
    raw_foreground,
    start_raw_worker,
)
from gearq.testing import GearmandProcess  # noqa: E402

TASK = "bench.echo"
PYG_FUNCTION = b"bench_echo"
PAYLOAD = b"x" * 100
SYSTEMS = ("gearq", "gearq-async", "raw-8", "pygearman")
_CLK = os.sysconf("SC_CLK_TCK")


def make_app(address: str):  # type: ignore[no-untyped-def]
    from gearq.tasks import App

    app = App("bench", servers=address, env=False)

    @app.task(name=TASK)
    def echo(data: bytes) -> bytes:
        return data

    return app, echo


# -- worker processes (the --serve side) -----------------------------------------------------


def _serve_gearq(address: str, concurrency: int, pool: str) -> None:
    app, _ = make_app(address)

    async def main() -> None:
        if concurrency > 0:
            worker = app.worker(concurrency=concurrency, pool=pool, grab_window=concurrency)
        else:  # the TaskWorker's defaults, but for the pool
            worker = app.worker(pool=pool)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(worker.stop(False)))
        task = asyncio.ensure_future(worker.run())
        await worker.wait_ready(10)
        print("ready", flush=True)
        await task

    asyncio.run(main())


def _serve_pygearman(address: str) -> None:
    import gearman  # type: ignore[import-untyped]  # pygearman 0.2.6

    worker = gearman.GearmanWorker([address])
    worker.register_task(PYG_FUNCTION, lambda _worker, job: job.data)

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    worker.work(poll_timeout=1.0)


def _worker_process(args: list[str]) -> ReadyProcess:
    return ReadyProcess.module("benchmarks.bench_tasks", *args)


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK


# -- clients ---------------------------------------------------------------------------------


def gearq_blocking(address: str, tasks: int, in_flight: int) -> float:
    app, echo = make_app(address)
    for _ in range(100):  # warm up: connection, caches
        echo.delay(PAYLOAD).get(timeout=30)
    start = time.perf_counter()
    pending = collections.deque(echo.delay(PAYLOAD) for _ in range(min(in_flight, tasks)))
    sent = len(pending)
    done = 0
    while pending:
        if pending.popleft().get(timeout=60) != PAYLOAD:
            raise RuntimeError("wrong result")
        done += 1
        if sent < tasks:
            pending.append(echo.delay(PAYLOAD))
            sent += 1
    elapsed = time.perf_counter() - start
    app.close()
    return elapsed


def gearq_async(address: str, tasks: int, in_flight: int) -> float:
    app, echo = make_app(address)

    async def main() -> float:
        for _ in range(100):
            await (await echo.adelay(PAYLOAD))
        todo = iter(range(tasks))

        async def lane() -> None:
            for _ in todo:
                result = await echo.adelay(PAYLOAD)
                if await result != PAYLOAD:
                    raise RuntimeError("wrong result")

        start = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        await app.aclose()
        return elapsed

    return asyncio.run(main())


def raw_client(address: str, tasks: int, in_flight: int) -> float:
    done, elapsed = raw_foreground(address, PYG_FUNCTION, PAYLOAD, [b""] * tasks, in_flight)
    if done != tasks:
        raise RuntimeError("raw client lost jobs")
    return elapsed


def pygearman_client(address: str, tasks: int, in_flight: int) -> float:
    import gearman  # type: ignore[import-untyped]

    client = gearman.GearmanClient([address])
    start = time.perf_counter()
    done = 0
    for i in range(0, tasks, in_flight):
        batch = [
            {"task": PYG_FUNCTION, "data": PAYLOAD, "unique": b"u%d" % j}
            for j in range(i, min(i + in_flight, tasks))
        ]
        requests = client.submit_multiple_jobs(batch, wait_until_complete=True, poll_timeout=600)
        done += sum(1 for r in requests if r.result == PAYLOAD)
    elapsed = time.perf_counter() - start
    client.shutdown()
    if done != tasks:
        raise RuntimeError(f"pygearman: {done} of {tasks}")
    return elapsed


# -- one measurement -------------------------------------------------------------------------


@dataclass
class Row:
    rate: float
    client_us: float
    worker_us: float
    server_us: float


def _worker_args(system: str, address: str, args: argparse.Namespace) -> list[str] | None:
    if system.startswith("gearq"):
        return ["--serve", "gearq", "--address", address, "--concurrency",
                str(args.concurrency), "--pool", args.pool]  # fmt: skip
    if system == "pygearman":
        return ["--serve", "pygearman", "--address", address]
    return None


CLIENTS: dict[str, Callable[[str, int, int], float]] = {
    "gearq": gearq_blocking,
    "gearq-async": gearq_async,
    "raw-8": raw_client,
    "pygearman": pygearman_client,
}


def throughput(system: str, args: argparse.Namespace) -> Row:
    with GearmandProcess(args.flags, verbose="ERROR") as server:
        worker_args = _worker_args(system, server.address, args)
        if worker_args is not None:
            worker = _worker_process(worker_args)
            worker_pid = worker.pid
        else:
            raw = start_raw_worker(server.address, PYG_FUNCTION, grabs=8)
            worker_pid = raw.pid
        try:
            tasks = args.tasks if system != "pygearman" else max(1000, args.tasks // 4)
            c0, w0, s0 = time.process_time(), _cpu(worker_pid), _cpu(server.pid)
            elapsed = CLIENTS[system](server.address, tasks, args.in_flight)
            c1, w1, s1 = time.process_time(), _cpu(worker_pid), _cpu(server.pid)
        finally:
            if worker_args is not None:
                worker.stop()
            else:
                raw.stop()
    return Row(
        tasks / elapsed,
        (c1 - c0) / tasks * 1e6,
        (w1 - w0) / tasks * 1e6,
        (s1 - s0) / tasks * 1e6,
    )


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


class _RawRoundTrips:
    """SUBMIT_JOB and wait for WORK_COMPLETE on a bare socket (no envelope, no parsing)."""

    def __init__(self, address: str) -> None:
        self.sock = connect(address)
        self.reader = _Reader(self.sock)
        self.packet = _packet(SUBMIT_JOB, PYG_FUNCTION + b"\0\0" + PAYLOAD)

    def block(self, count: int) -> list[float]:
        sock, reader, packet = self.sock, self.reader, self.packet
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(packet)
            done = False
            while not done:
                for ptype, _body in reader.read():
                    if ptype == WORK_COMPLETE:
                        done = True
            samples.append(time.perf_counter() - start)
        return samples

    def close(self) -> None:
        self.sock.close()


class _BlockingRoundTrips:
    """``echo.delay(p).get()`` from this (plain) thread."""

    def __init__(self, address: str) -> None:
        self.app, self.echo = make_app(address)

    def block(self, count: int) -> list[float]:
        delay = self.echo.delay
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            delay(PAYLOAD).get(timeout=30)
            samples.append(time.perf_counter() - start)
        return samples

    def close(self) -> None:
        self.app.close()


class _AsyncRoundTrips:
    """``await (await echo.adelay(p))`` on an event loop of this thread (kept between
    blocks, so its client stays connected)."""

    def __init__(self, address: str) -> None:
        self.app, self.echo = make_app(address)
        self.loop = asyncio.new_event_loop()

    async def _block(self, count: int) -> list[float]:
        adelay = self.echo.adelay
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await (await adelay(PAYLOAD))
            samples.append(time.perf_counter() - start)
        return samples

    def block(self, count: int) -> list[float]:
        return self.loop.run_until_complete(self._block(count))

    def close(self) -> None:
        self.loop.run_until_complete(self.app.aclose())
        self.loop.close()


LATENCY_SYSTEMS = ("raw-1", "gearq", "gearq-async")
_ROUND_TRIPS = {"raw-1": _RawRoundTrips, "gearq": _BlockingRoundTrips,
                "gearq-async": _AsyncRoundTrips}  # fmt: skip


def latency(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """One round: one gearmand with the raw 1-GRAB worker and the TaskWorker, the three
    callers taking turns in blocks of ``--latency-block`` round trips (the order rotating),
    so that they share whatever else the machine is doing. p50 and p99 per caller."""
    samples: dict[str, list[float]] = {s: [] for s in LATENCY_SYSTEMS}
    with GearmandProcess(args.flags, verbose="ERROR") as server:
        raw = start_raw_worker(server.address, PYG_FUNCTION, grabs=1)
        worker = _worker_process(
            ["--serve", "gearq", "--address", server.address, "--concurrency", "0",
             "--pool", args.latency_pool]
        )  # fmt: skip
        callers: dict[str, Any] = {}
        try:
            for system in LATENCY_SYSTEMS:
                callers[system] = _ROUND_TRIPS[system](server.address)
                callers[system].block(100)  # warm up: connection, caches
            order = list(LATENCY_SYSTEMS)
            blocks = max(1, args.latency_tasks // args.latency_block)
            for _ in range(blocks):
                for system in order:
                    samples[system] += callers[system].block(args.latency_block)
                order.append(order.pop(0))
        finally:
            for caller in callers.values():
                caller.close()
            worker.stop()
            raw.stop()
    return {system: _percentiles(values) for system, values in samples.items()}


# -- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=["gearq", "pygearman"], help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--latency-tasks", type=int, default=2000, help="per caller and round")
    parser.add_argument("--latency-block", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32, help="gearq worker slots")
    parser.add_argument("--pool", default="inline", choices=["inline", "threads"])
    parser.add_argument(
        "--latency-pools", default="threads,inline",
        help="the latency worker's pools, each measured in every round (default: the"
        " TaskWorker's own, threads, then inline, which runs the task on the worker's"
        " loop as the raw worker does)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flags", default="", help="extra gearmand flags, e.g. '-t 1'")
    parser.add_argument("--quick", action="store_true", help="5,000 tasks, one round")
    args = parser.parse_args(argv)
    if args.serve == "gearq":
        _serve_gearq(args.address, args.concurrency, args.pool)
        return 0
    if args.serve == "pygearman":
        _serve_pygearman(args.address)
        return 0
    if args.quick:
        args.tasks, args.rounds, args.latency_tasks = 5000, 1, 1000
    args.flags = shlex.split(args.flags)
    pools = [p.strip() for p in args.latency_pools.split(",") if p.strip()]
    if any(p not in ("inline", "threads") for p in pools):
        parser.error("--latency-pools: a list of 'threads' and 'inline'")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if "pygearman" in systems:
        try:
            import gearman  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            print("pygearman is not installed (pip install pygearman==0.2.6): skipped")
            systems.remove("pygearman")

    with GearmandProcess(args.flags, verbose="ERROR") as probe:
        command = " ".join(probe.command()).replace(str(probe.port), "PORT")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"gearmand command (a fresh server per run): {command}")
    print(
        f"{args.tasks} tasks (pygearman: a quarter), {args.in_flight} in flight, payload"
        f" {len(PAYLOAD)} bytes, gearq worker: TaskWorker concurrency={args.concurrency}"
        f" pool={args.pool}, rounds {args.rounds}"
    )
    rows: dict[str, list[Row]] = {s: [] for s in systems}
    lat: dict[str, dict[str, list[tuple[float, float]]]] = {
        pool: {s: [] for s in LATENCY_SYSTEMS} for pool in pools
    }
    for _ in range(args.rounds):
        for system in systems:
            rows[system].append(throughput(system, args))
        if args.latency_tasks > 0:
            for pool in pools:
                args.latency_pool = pool
                for system, percentiles in latency(args).items():
                    lat[pool][system].append(percentiles)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print()
    print(f"{'system':<12} {'tasks/s':>9} {'client µs':>10} {'worker µs':>10} {'gearmand µs':>12}")
    medians = {}
    for system, results in rows.items():
        row = Row(
            med([r.rate for r in results]),
            med([r.client_us for r in results]),
            med([r.worker_us for r in results]),
            med([r.server_us for r in results]),
        )
        medians[system] = row
        print(
            f"{system:<12} {row.rate:>9,.0f} {row.client_us:>10.1f} {row.worker_us:>10.1f}"
            f" {row.server_us:>12.1f}"
        )
    if args.latency_tasks > 0:
        print()
        print(
            f"single round trips: {args.latency_tasks} per caller and round, in turns of"
            f" {args.latency_block}; medians over rounds of each round's p50 / p99"
        )
    for pool, by_system in lat.items():
        if not by_system["raw-1"]:
            continue
        print(f"gearq worker: TaskWorker defaults, pool={pool}")
        for system, samples in by_system.items():
            p50 = med([s[0] for s in samples])
            p99 = med([s[1] for s in samples])
            print(f"  round trip {system:<12} p50 {p50:7.0f} µs   p99 {p99:7.0f} µs")
    print()
    gearq = medians.get("gearq")
    if gearq is not None:
        if "pygearman" in medians:
            ratio = gearq.rate / medians["pygearman"].rate
            print(f"gearq / pygearman: {ratio:.1f}x (target >= 8x)")
        if "raw-8" in medians:
            ratio = gearq.rate / medians["raw-8"].rate
            print(f"gearq / raw-8:     {ratio:.2f}x (target >= 0.4x)")
    for pool, by_system in lat.items():
        raw = by_system["raw-1"]
        if not raw:
            continue
        for system in ("gearq", "gearq-async"):
            ours = by_system[system]
            p50 = med([s[0] for s in ours]) / med([s[0] for s in raw])
            p99 = med([s[1] for s in ours]) / med([s[1] for s in raw])
            paired = med([a[0] / b[0] for a, b in zip(ours, raw, strict=True)])
            print(
                f"pool={pool:<7} {system} / raw-1: p50 {p50:.2f}x (target <= 1.3x; median"
                f" of per-round ratios {paired:.2f}x), p99 {p99:.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
