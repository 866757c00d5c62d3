"""Worker throughput: gearq's worker beside a raw protocol loop and pygearman, same run.

Two figures per worker, each worker alone in its own process against a fresh gearmand
started with the same flags (printed at the top):

* **drain**: ``--jobs`` background jobs (100-byte payload, distinct uniques) are queued
  with no worker running; the worker process starts, and the clock runs from its "ready"
  line until gearmand's ``status`` shows the function empty.
* **fg**: a raw pipelined client (``benchmarks.raw.raw_foreground``, 100 jobs in flight)
  runs ``--fg-jobs`` foreground jobs through the worker; jobs per second until the last
  result is back.

The function is trivial (echo the payload). CPU columns are microseconds of CPU per job
spent by the worker process and by gearmand, read from /proc. Medians of ``--runs``
interleaved rounds. Peers:

* ``raw-N``: ``benchmarks.raw`` echo worker keeping N GRAB_JOB_UNIQ outstanding.
* ``pygearman``: pygearman 0.2.6's GearmanWorker (``pip install pygearman==0.2.6``).
* ``gearq-inline`` / ``gearq-async`` / ``gearq-thread``: gearq's AsyncWorker with the handler
  registered ``inline=True``, as an ``async def``, and as a plain function in the handler
  threads, at the worker's default settings (concurrency 32 for handlers on the loop, 8 for
  threads; grab window = concurrency) unless ``--concurrency`` is given. ``gearq-async@8``
  sets that worker's concurrency (and grab window) to 8. The table's ``slots`` column shows
  what each worker ran with.

    python -m benchmarks.bench_worker                      # the default peers, 3 rounds
    python -m benchmarks.bench_worker --peers raw-8,gearq-inline --runs 5
    python -m benchmarks.bench_worker --gearmand-args="-t 1"
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks._procs import ReadyProcess  # noqa: E402
from benchmarks.raw import raw_background_submit, raw_foreground  # noqa: E402
from gearq.testing import GearmandProcess  # noqa: E402

FUNCTION = b"bench_echo"
PAYLOAD = b"x" * 100
PEERS = (
    "raw-1",
    "raw-8",
    "raw-32",
    "pygearman",
    "gearq-inline",
    "gearq-async",
    "gearq-thread",
    "gearq-inline@8",
    "gearq-async@8",
)
_KINDS = ("inline", "async", "thread")
_CLK = os.sysconf("SC_CLK_TCK")


# -- worker processes (the --serve side) -----------------------------------------------------


def _serve_gearq(address: str, kind: str, concurrency: int | None) -> None:
    from gearq.worker import AsyncWorker, Job

    async def main() -> None:
        if concurrency is None:  # the worker's defaults
            worker = AsyncWorker([address])
        else:
            worker = AsyncWorker([address], concurrency=concurrency, grab_window=concurrency)

        if kind == "inline":
            worker.register(FUNCTION, lambda job: job.payload, inline=True)
        elif kind == "async":

            async def echo(job: Job) -> bytes:
                return job.payload

            worker.register(FUNCTION, echo)
        else:
            worker.register(FUNCTION, lambda job: job.payload)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGTERM, lambda: loop.create_task(worker.stop(graceful=False))
        )
        task = asyncio.ensure_future(worker.run())
        await worker.wait_ready(10)
        print(f"ready {worker.concurrency}/{worker.grab_window}", flush=True)
        await task
        print(f"done {worker.stats.completed}", flush=True)

    asyncio.run(main())


def _serve_pygearman(address: str) -> None:
    import gearman  # pygearman 0.2.6

    worker = gearman.GearmanWorker([address])
    worker.register_task(FUNCTION, lambda _worker, job: job.data)
    done = [0]

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)

    def after_job(*_: object) -> bool:
        done[0] += 1
        return True

    worker.after_job = after_job
    print("ready", flush=True)
    try:
        worker.work(poll_timeout=1.0)
    finally:
        print(f"done {done[0]}", flush=True)


# -- measuring (the parent side) -------------------------------------------------------------


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _queued(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"status\n")
        buf = b""
        while not buf.endswith(b".\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    for line in buf.decode().splitlines():
        parts = line.split("\t")
        if parts[0] == FUNCTION.decode() and len(parts) == 4:
            return int(parts[1])
    return 0


class _Peer(ReadyProcess):
    """A worker process of one kind, started and stopped the same way for every peer."""

    def __init__(self, peer: str, address: str, concurrency: int | None) -> None:
        if peer.startswith("raw-"):
            cmd = [sys.executable, "-m", "benchmarks.raw", address, FUNCTION.decode()]
            cmd += ["--grabs", peer.split("-")[1]]
        else:
            name, _, slots = peer.partition("@")
            cmd = [sys.executable, "-m", "benchmarks.bench_worker", "--serve", name]
            cmd += ["--address", address]
            if slots or concurrency is not None:
                cmd += ["--concurrency", slots or str(concurrency)]
        super().__init__(cmd, f"{peer} worker")
        # concurrency/grab window, for gearq's workers
        self.slots = self.info or (peer.split("-")[1] if peer.startswith("raw-") else "")


@dataclass
class Result:
    rate: float
    worker_us: float
    server_us: float
    rss: float
    slots: str = ""


def _drain(
    peer: str, jobs: int, gearmand_args: Sequence[str], concurrency: int | None
) -> Result:
    with GearmandProcess(gearmand_args) as server:
        uniques = [b"u-%d" % i for i in range(jobs)]
        raw_background_submit(server.address, FUNCTION, PAYLOAD, uniques)
        worker = _Peer(peer, server.address, concurrency)
        try:
            start = time.perf_counter()
            w0, s0 = _cpu(worker.pid), _cpu(server.pid)
            while _queued(server.port):
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
            w1, s1 = _cpu(worker.pid), _cpu(server.pid)
            rss = _rss_mib(worker.pid)
        finally:
            worker.stop()
    cpu_w, cpu_s = (w1 - w0) / jobs * 1e6, (s1 - s0) / jobs * 1e6
    return Result(jobs / elapsed, cpu_w, cpu_s, rss, worker.slots)


def _foreground(
    peer: str, jobs: int, gearmand_args: Sequence[str], concurrency: int | None
) -> Result:
    with GearmandProcess(gearmand_args) as server:
        worker = _Peer(peer, server.address, concurrency)
        try:
            w0, s0 = _cpu(worker.pid), _cpu(server.pid)
            uniques = [b"f-%d" % i for i in range(jobs)]
            done, elapsed = raw_foreground(server.address, FUNCTION, PAYLOAD, uniques)
            w1, s1 = _cpu(worker.pid), _cpu(server.pid)
            rss = _rss_mib(worker.pid)
        finally:
            worker.stop()
    assert done == jobs
    cpu_w, cpu_s = (w1 - w0) / jobs * 1e6, (s1 - s0) / jobs * 1e6
    return Result(jobs / elapsed, cpu_w, cpu_s, rss, worker.slots)


def _median(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rate for r in results),
        statistics.median(r.worker_us for r in results),
        statistics.median(r.server_us for r in results),
        max(r.rss for r in results),
        results[0].slots,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000, help="background jobs to drain")
    parser.add_argument(
        "--fg-jobs", type=int, default=20_000, help="foreground jobs (0: drain only)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="gearq workers' concurrency and grab window (default: the worker's defaults)",
    )
    parser.add_argument("--gearmand-args", default="", help='e.g. "-t 1"')
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        if args.serve == "pygearman":
            _serve_pygearman(args.address)
        else:
            _serve_gearq(args.address, args.serve.split("-", 1)[1], args.concurrency)
        return 0

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for peer in peers:
        name, _, slots = peer.partition("@")
        ok = (
            peer == "pygearman"
            or (name.startswith("raw-") and name[4:].isdigit() and not slots)
            or (name.startswith("gearq-") and name[6:] in _KINDS and (slots or "1").isdigit())
        )
        if not ok:
            parser.error(f"unknown peer {peer!r}; e.g. {', '.join(PEERS)}")
    gearmand_args = shlex.split(args.gearmand_args)
    probe = GearmandProcess(gearmand_args)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print("gearmand flags: " + (" ".join(gearmand_args) or "(defaults)"))
    with probe:  # one throw-away start, to show the exact command line every server gets
        print("gearmand command: " + " ".join(probe.command()))
    print(
        f"drain: {args.jobs} queued background jobs; fg: {args.fg_jobs} jobs, 100 in flight; "
        "gearq workers: "
        + (
            "the worker's default concurrency and grab window"
            if args.concurrency is None
            else f"concurrency and grab window {args.concurrency}"
        )
        + f" unless @N; median of {args.runs}"
    )
    drains: dict[str, list[Result]] = {p: [] for p in peers}
    fgs: dict[str, list[Result]] = {p: [] for p in peers}
    for run in range(args.runs):
        for peer in peers:
            drains[peer].append(_drain(peer, args.jobs, gearmand_args, args.concurrency))
            d = drains[peer][-1]
            line = f"  run {run + 1} {peer:15} drain {d.rate:9,.0f}/s"
            if args.fg_jobs:
                fgs[peer].append(
                    _foreground(peer, args.fg_jobs, gearmand_args, args.concurrency)
                )
                line += f"  fg {fgs[peer][-1].rate:9,.0f}/s"
            print(line, flush=True)
    print()
    header = (
        f"{'worker':15} {'slots':>6} {'drain jobs/s':>12} {'vs raw':>6} {'cpu us/job':>10}"
        f" {'gearmand':>9} {'fg jobs/s':>10} {'cpu us/job':>10} {'gearmand':>9} {'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    medians = {peer: _median(drains[peer]) for peer in peers}
    for peer in peers:
        d = medians[peer]
        # Beside the raw loop that keeps as many GRABs outstanding, when it ran.
        raw = medians.get(f"raw-{d.slots.rpartition('/')[2]}")
        ratio = f"{d.rate / raw.rate:6.2f}" if raw is not None else f"{'':6}"
        text = f"{peer:15} {d.slots:>6} {d.rate:12,.0f} {ratio} {d.worker_us:10.1f}"
        text += f" {d.server_us:9.1f}"
        if fgs[peer]:
            f = _median(fgs[peer])
            text += f" {f.rate:10,.0f} {f.worker_us:10.1f} {f.server_us:9.1f}"
            text += f" {max(d.rss, f.rss):8.1f}"
        else:
            text += f" {'-':>10} {'-':>10} {'-':>9} {d.rss:8.1f}"
        print(text)
    print("vs raw: drain rate / that of the raw loop keeping as many GRABs outstanding")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
