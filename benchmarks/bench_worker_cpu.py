"""The worker's share of a lone round trip: raw client to the raw worker and to a TaskWorker,
with each worker process's CPU per job.

One gearmand; the raw client of ``benchmarks.raw`` sends a round trip at a time, in turns of
``--block`` round trips, to the raw echo worker (1 GRAB outstanding: ``raw>raw``) and to a
``TaskWorker`` at its defaults but for ``--pool`` (the pre-encoded call that
``echo.delay(p)`` sends: ``raw>gq``). The round trip is CPU-serial (client, gearmand and
worker take turns), so every microsecond the worker spends on a job's path shows in its p50.

CPU per job is the worker process's CPU time (all its threads, from
``/proc/<pid>/task/*/schedstat``, in nanoseconds) over the round trips sent to it, divided
by their number. Printed per round, then the medians over rounds: p50 of each pairing (µs),
their ratio (the median of each round's ratio), and CPU per job (µs).

    python -m benchmarks.bench_worker_cpu                      # threads pool, 5 rounds
    python -m benchmarks.bench_worker_cpu --pool inline --rounds 9
"""

from __future__ import annotations

import glob
import os
import statistics
import sys
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.bench_sides import _RawToGearq, pairing_args  # noqa: E402
from benchmarks.bench_tasks import PYG_FUNCTION, _RawRoundTrips, _worker_process  # noqa: E402
from benchmarks.raw import start_raw_worker  # noqa: E402
from gearq.testing import GearmandProcess  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far (nanosecond clock, unlike /proc/stat)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            pass
    return total / 1e9


def one_round(pool: str, turns: int, block: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"raw>raw": [], "raw>gq": []}
    cpu = {"raw>raw": 0.0, "raw>gq": 0.0}
    with GearmandProcess([], verbose="ERROR") as server:
        raw = start_raw_worker(server.address, PYG_FUNCTION, grabs=1)
        worker = _worker_process(
            ["--serve", "gearq", "--address", server.address, "--concurrency", "0",
             "--pool", pool]
        )  # fmt: skip
        pids = {"raw>raw": raw.process.pid, "raw>gq": worker.process.pid}
        callers = {"raw>raw": _RawRoundTrips(server.address), "raw>gq": _RawToGearq(server.address)}
        try:
            for caller in callers.values():
                caller.block(200)  # warm up
            order = list(callers)
            for _ in range(turns):
                for name in order:
                    before = cpu_seconds(pids[name])
                    samples[name] += callers[name].block(block)
                    cpu[name] += cpu_seconds(pids[name]) - before
                order.reverse()
        finally:
            for caller in callers.values():
                caller.close()
            worker.stop()
            raw.stop()
    jobs = turns * block
    result = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    result.update({f"cpu {name}": seconds / jobs * 1e6 for name, seconds in cpu.items()})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = pairing_args(__doc__.split("\n\n")[0], argv, rounds=5, turns=10, block=200)
    rounds = []
    for _ in range(args.rounds):
        row = one_round(args.pool, args.turns, args.block)
        rounds.append(row)
        print(
            f"  p50 raw>raw {row['raw>raw']:.0f} raw>gq {row['raw>gq']:.0f} µs"
            f" ({row['raw>gq'] / row['raw>raw']:.2f}x); CPU per job: raw worker"
            f" {row['cpu raw>raw']:.1f} µs, TaskWorker {row['cpu raw>gq']:.1f} µs",
            flush=True,
        )

    def med(key: str) -> float:
        return statistics.median(row[key] for row in rounds)

    ratio = statistics.median(row["raw>gq"] / row["raw>raw"] for row in rounds)
    print("medians over rounds:")
    print(f"  p50 raw>raw {med('raw>raw'):6.0f} µs")
    print(f"  p50 raw>gq  {med('raw>gq'):6.0f} µs   {ratio:.2f}x")
    print(f"  CPU per job: raw worker {med('cpu raw>raw'):.1f} µs, TaskWorker"
          f" {med('cpu raw>gq'):.1f} µs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
