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
  threads; ``--concurrency`` slots (default 8) and a grab window of the same size.
  ``gearq-async@32`` sets that worker's concurrency (and window) to 32.

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
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

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
    "gearq-inline@32",
    "gearq-async@32",
)
_KINDS = ("inline", "async", "thread")
_CLK = os.sysconf("SC_CLK_TCK")


# -- worker processes (the --serve side) -----------------------------------------------------


def _serve_gearq(address: str, kind: str, concurrency: int) -> None:
    from gearq.worker import AsyncWorker, Job

    async def main() -> None:
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
        print("ready", flush=True)
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


class _Peer:
    """A worker process of one kind, started and stopped the same way for every peer."""

    def __init__(self, peer: str, address: str, concurrency: int) -> None:
        if peer.startswith("raw-"):
            cmd = [sys.executable, "-m", "benchmarks.raw", address, FUNCTION.decode()]
            cmd += ["--grabs", peer.split("-")[1]]
        else:
            name, _, slots = peer.partition("@")
            cmd = [sys.executable, "-m", "benchmarks.bench_worker", "--serve", name]
            cmd += ["--address", address, "--concurrency", slots or str(concurrency)]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"{peer} worker did not start: {line!r}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


@dataclass
class Result:
    rate: float
    worker_us: float
    server_us: float
    rss: float


def _drain(peer: str, jobs: int, gearmand_args: Sequence[str], concurrency: int) -> Result:
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
    return Result(jobs / elapsed, (w1 - w0) / jobs * 1e6, (s1 - s0) / jobs * 1e6, rss)


def _foreground(peer: str, jobs: int, gearmand_args: Sequence[str], concurrency: int) -> Result:
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
    return Result(jobs / elapsed, (w1 - w0) / jobs * 1e6, (s1 - s0) / jobs * 1e6, rss)


def _median(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rate for r in results),
        statistics.median(r.worker_us for r in results),
        statistics.median(r.server_us for r in results),
        max(r.rss for r in results),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000, help="background jobs to drain")
    parser.add_argument("--fg-jobs", type=int, default=20_000, help="foreground jobs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--concurrency", type=int, default=8)
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
        f"gearq concurrency {args.concurrency}; median of {args.runs}"
    )
    drains: dict[str, list[Result]] = {p: [] for p in peers}
    fgs: dict[str, list[Result]] = {p: [] for p in peers}
    for run in range(args.runs):
        for peer in peers:
            drains[peer].append(_drain(peer, args.jobs, gearmand_args, args.concurrency))
            fgs[peer].append(_foreground(peer, args.fg_jobs, gearmand_args, args.concurrency))
            d, f = drains[peer][-1], fgs[peer][-1]
            print(
                f"  run {run + 1} {peer:15} drain {d.rate:9,.0f}/s  fg {f.rate:9,.0f}/s",
                flush=True,
            )
    print()
    header = (
        f"{'worker':15} {'drain jobs/s':>12} {'cpu us/job':>10} {'gearmand':>9}"
        f" {'fg jobs/s':>10} {'cpu us/job':>10} {'gearmand':>9} {'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for peer in peers:
        d, f = _median(drains[peer]), _median(fgs[peer])
        print(
            f"{peer:15} {d.rate:12,.0f} {d.worker_us:10.1f} {d.server_us:9.1f}"
            f" {f.rate:10,.0f} {f.worker_us:10.1f} {f.server_us:9.1f} {max(d.rss, f.rss):8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
