"""Which side of a task round trip costs what: raw and gearq callers against raw and gearq
workers, on one gearmand.

Four pairings take turns in blocks of ``--block`` round trips (the order rotating), so
that they share the machine's background load:

* ``raw>raw``: ``benchmarks.raw``'s blocking client and its echo worker with 1 GRAB
  outstanding (``bench_tasks``'s raw-1).
* ``raw>gq``: the raw client sending a pre-encoded msgpack call of ``bench.echo`` to a
  ``TaskWorker`` (``app.worker(pool=...)`` at its defaults): the gearq worker's share.
* ``gq>raw``: ``echo.delay(p).get()`` of a task with ``serializer="raw"`` served by the
  raw echo worker: the gearq caller's share.
* ``gq>gq``: ``echo.delay(p).get()`` served by the TaskWorker (``bench_tasks``'s gearq).

Printed per round and as medians over rounds: each pairing's p50 in µs.

    python -m benchmarks.bench_sides                    # threads pool, 3 rounds
    python -m benchmarks.bench_sides --pool inline --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.bench_tasks import (  # noqa: E402
    PAYLOAD,
    PYG_FUNCTION,
    TASK,
    _BlockingRoundTrips,
    _percentiles,
    _RawRoundTrips,
    _worker_process,
)
from benchmarks.raw import SUBMIT_JOB, _packet, start_raw_worker  # noqa: E402
from gearq.testing import GearmandProcess  # noqa: E402


class _RawToGearq(_RawRoundTrips):
    """The raw client, sending what ``echo.delay(PAYLOAD)`` sends (without a task id)."""

    def __init__(self, address: str) -> None:
        from gearq.tasks.envelope import encode_call

        super().__init__(address)
        call = encode_call(TASK, [PAYLOAD])
        self.packet = _packet(SUBMIT_JOB, TASK.encode() + b"\0\0" + call)


class _GearqToRaw(_BlockingRoundTrips):
    """``delay(p).get()`` of a raw-serializer task that the raw echo worker serves."""

    def __init__(self, address: str) -> None:  # (not the base's: another task)
        from gearq.tasks import App

        self.app = App("sides", servers=address, env=False)

        @self.app.task(name=PYG_FUNCTION.decode(), serializer="raw")
        def echo(data: bytes) -> bytes:
            return data

        self.echo = echo


PAIRS: dict[str, Any] = {
    "raw>raw": _RawRoundTrips,
    "raw>gq": _RawToGearq,
    "gq>raw": _GearqToRaw,
    "gq>gq": _BlockingRoundTrips,
}


def one_round(pool: str, turns: int, block: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in PAIRS}
    with GearmandProcess([], verbose="ERROR") as server:
        raw = start_raw_worker(server.address, PYG_FUNCTION, grabs=1)
        worker = _worker_process(
            ["--serve", "gearq", "--address", server.address, "--concurrency", "0",
             "--pool", pool]
        )  # fmt: skip
        callers: dict[str, Any] = {}
        try:
            for name, make in PAIRS.items():
                callers[name] = make(server.address)
                callers[name].block(100)  # warm up
            order = list(PAIRS)
            for _ in range(turns):
                for name in order:
                    samples[name] += callers[name].block(block)
                order.append(order.pop(0))
        finally:
            for caller in callers.values():
                caller.close()
            worker.stop()
            raw.stop()
    return {name: _percentiles(values)[0] for name, values in samples.items()}


def pairing_args(
    description: str, argv: Sequence[str] | None, *, rounds: int, turns: int, block: int
) -> argparse.Namespace:
    """The options of a benchmark that runs pairings in rounds of turns (this one and
    bench_worker_cpu), parsed, and the header line that says what was run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pool", default="threads", choices=["threads", "inline"])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--turns", type=int, default=turns, help="turns per round")
    parser.add_argument("--block", type=int, default=block, help="round trips per turn")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; TaskWorker pool={args.pool};")
    print(f"{args.rounds} rounds of {args.turns} turns of {args.block} round trips per pairing")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = pairing_args(__doc__.split("\n\n")[0], argv, rounds=3, turns=20, block=100)
    p50s: dict[str, list[float]] = {name: [] for name in PAIRS}
    for _ in range(args.rounds):
        result = one_round(args.pool, args.turns, args.block)
        for name, p50 in result.items():
            p50s[name].append(p50)
        print("  " + "  ".join(f"{name} {p50:.0f}" for name, p50 in result.items()), flush=True)
    medians = {name: statistics.median(values) for name, values in p50s.items()}
    floor = medians["raw>raw"]
    print("p50 µs, medians over rounds (and over raw>raw):")
    for name, value in medians.items():
        print(f"  {name:<8} {value:6.0f}   {value / floor:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
