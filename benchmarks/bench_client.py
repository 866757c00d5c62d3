"""Client benchmark: gearq vs a raw protocol loop vs pygearman 0.2.6, in the same run.

Two scenarios (see docs/../performance-anchors: S2 and S3):

* ``background``: N background jobs submitted with no worker running; submits acknowledged
  (JOB_CREATED) per second. raw: pipelined with a window, 500 packets per write; gearq:
  one coroutine awaiting ``submit`` in a loop; gearq-batch: ``submit_many`` per window;
  gearq-bulk: one ``submit_background_many`` for all N; pygearman:
  ``submit_multiple_jobs`` per window. A fresh gearmand per run.
* ``foreground``: N foreground jobs with K in flight, echoed by a raw worker process that
  keeps G GRAB_JOB_UNIQ outstanding; jobs completed per second. raw: K outstanding on one
  socket; gearq: K coroutines each doing ``await (await client.submit(...))``; gearq-many:
  one ``run_many(..., in_flight=K)`` for all N; pygearman:
  ``submit_multiple_jobs`` in batches of K. In each round one gearmand and one worker
  process serve every system.

Every system gets the same uniques and payload and gearmand with the same flags; runs are
interleaved (the order rotates from round to round) and medians of ``--rounds`` are
reported, with the ratios: of the medians, the median of the per-round ratios (robust to
load that comes and goes on a shared machine), and the client CPU time per job.

    python -m benchmarks.bench_client                 # everything, default sizes
    python -m benchmarks.bench_client --quick         # small sizes, one round
    python -m benchmarks.bench_client --scenario foreground --in-flight 1000 --grabs 1
    python -m benchmarks.bench_client --client-cpus 0 --server-cpus 1   # pinned
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from gearq.client import AsyncClient, Job, JobState
from gearq.testing import GearmandProcess

from .raw import raw_background_submit, raw_foreground, start_raw_worker

FUNCTION = b"bench_echo"
PAYLOAD = b"p" * 100

Runner = Callable[[str, Sequence[bytes], argparse.Namespace], tuple[int, float]]


# -- gearq ---------------------------------------------------------------------------------


def gearq_background(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    async def main() -> tuple[int, float]:
        async with AsyncClient(address) as client:
            await client.echo(b"connect")  # connected before the clock starts, like raw
            submit = client.submit
            start = time.perf_counter()
            jobs = [
                await submit(FUNCTION, PAYLOAD, background=True, unique=u) for u in uniques
            ]
            return await _all_created(jobs, start)

    return asyncio.run(main())


async def _all_created(jobs: list[Job], start: float) -> tuple[int, float]:
    # One connection answers in order: once the last job is acknowledged, all are.
    await jobs[-1].created()
    elapsed = time.perf_counter() - start
    return sum(1 for job in jobs if job.state is JobState.CREATED), elapsed


def gearq_background_batch(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    async def main() -> tuple[int, float]:
        async with AsyncClient(address) as client:
            await client.echo(b"connect")
            start = time.perf_counter()
            jobs: list[Job] = []
            for i in range(0, len(uniques), args.window):
                chunk = uniques[i : i + args.window]
                jobs += await client.submit_many(
                    FUNCTION, [PAYLOAD] * len(chunk), background=True, uniques=chunk
                )
            return await _all_created(jobs, start)

    return asyncio.run(main())


def gearq_background_bulk(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    async def main() -> tuple[int, float]:
        async with AsyncClient(address) as client:
            await client.echo(b"connect")
            start = time.perf_counter()
            batch = await client.submit_background_many(
                FUNCTION, [PAYLOAD] * len(uniques), uniques=uniques
            )
            await batch.wait()
            elapsed = time.perf_counter() - start
            return batch.acknowledged, elapsed

    return asyncio.run(main())


def gearq_foreground(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    async def main() -> tuple[int, float]:
        async with AsyncClient(address) as client:
            await client.echo(b"connect")
            todo = iter(uniques)
            done = 0

            async def lane() -> None:
                nonlocal done
                submit = client.submit
                for unique in todo:
                    job = await submit(FUNCTION, PAYLOAD, unique=unique)
                    await job
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(args.in_flight)))
            return done, time.perf_counter() - start

    return asyncio.run(main())


def gearq_foreground_many(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    async def main() -> tuple[int, float]:
        async with AsyncClient(address) as client:
            await client.echo(b"connect")
            start = time.perf_counter()
            batch = await client.run_many(
                FUNCTION, [PAYLOAD] * len(uniques), uniques=uniques, in_flight=args.in_flight
            )
            elapsed = time.perf_counter() - start
            return sum(1 for r in batch.results if r == PAYLOAD), elapsed

    return asyncio.run(main())


# -- raw -----------------------------------------------------------------------------------


def raw_bg(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    return raw_background_submit(address, FUNCTION, PAYLOAD, uniques, window=args.window)


def raw_fg(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    return raw_foreground(address, FUNCTION, PAYLOAD, uniques, in_flight=args.in_flight)


# -- pygearman -----------------------------------------------------------------------------


def _pygearman():
    try:
        import gearman  # type: ignore[import-untyped]
    except ImportError:
        return None
    return gearman


def pyg_background(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    gearman = _pygearman()
    client = gearman.GearmanClient([address])
    start = time.perf_counter()
    done = 0
    for i in range(0, len(uniques), args.window):
        batch = [
            {"task": FUNCTION, "data": PAYLOAD, "unique": u} for u in uniques[i : i + args.window]
        ]
        requests = client.submit_multiple_jobs(batch, background=True, wait_until_complete=False)
        done += sum(1 for r in requests if r.job.handle)
    elapsed = time.perf_counter() - start
    client.shutdown()
    return done, elapsed


def pyg_foreground(address: str, uniques: Sequence[bytes], args: argparse.Namespace):
    gearman = _pygearman()
    client = gearman.GearmanClient([address])
    start = time.perf_counter()
    done = 0
    for i in range(0, len(uniques), args.in_flight):
        batch = [
            {"task": FUNCTION, "data": PAYLOAD, "unique": u}
            for u in uniques[i : i + args.in_flight]
        ]
        # poll_timeout is needed: with None, pygearman 0.2.6 silently skips the waiting.
        requests = client.submit_multiple_jobs(batch, wait_until_complete=True, poll_timeout=600)
        done += sum(1 for r in requests if r.result == PAYLOAD)
    elapsed = time.perf_counter() - start
    client.shutdown()
    return done, elapsed


SYSTEMS: dict[str, dict[str, Runner]] = {
    "background": {
        "raw": raw_bg,
        "gearq": gearq_background,
        "gearq-batch": gearq_background_batch,
        "gearq-bulk": gearq_background_bulk,
        "pygearman": pyg_background,
    },
    "foreground": {
        "raw": raw_fg,
        "gearq": gearq_foreground,
        "gearq-many": gearq_foreground_many,
        "pygearman": pyg_foreground,
    },
}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Setup:
    """The gearmand (and, for foreground, the raw worker process) that runs are measured
    against; optionally pinned to the CPUs the client does not use."""

    def __init__(self, scenario: str, args: argparse.Namespace) -> None:
        self.server = GearmandProcess(args.flags, verbose="ERROR").start()
        self.worker = None
        try:
            _pin(self.server.pid, args.server_cpus)
            if scenario == "foreground":
                self.worker = start_raw_worker(self.server.address, FUNCTION, grabs=args.grabs_now)
                _pin(self.worker.pid, args.server_cpus)
        except BaseException:
            self.close()
            raise

    def run(
        self, scenario: str, system: str, uniques: Sequence[bytes], args: argparse.Namespace
    ) -> tuple[float, float, float]:
        """One run; returns (jobs per second, client CPU µs per job, gearmand CPU µs per
        job)."""
        server_cpu = process_cpu(self.server.pid)
        cpu = time.process_time()
        jobs, seconds = SYSTEMS[scenario][system](self.server.address, uniques, args)
        cpu = time.process_time() - cpu
        server_cpu = process_cpu(self.server.pid) - server_cpu
        if jobs != len(uniques):
            raise RuntimeError(f"{system} {scenario}: {jobs} of {len(uniques)} jobs done")
        return jobs / seconds, cpu / jobs * 1e6, server_cpu / jobs * 1e6

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.server.stop()


def _pin(pid: int, cpus: set[int] | None) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)
        for task in os.listdir(f"/proc/{pid}/task"):  # gearmand's threads too
            os.sched_setaffinity(int(task), cpus)


def probe_version(address: str) -> str:
    from gearq.client import AdminClient

    with AdminClient(address) as admin:
        return next(iter(admin.version().values())).result()


def measure(
    scenario: str, systems: list[str], uniques: Sequence[bytes], args: argparse.Namespace
) -> dict[str, list[tuple[float, float, float]]]:
    """``args.rounds`` rounds; in each, every system runs once, in an order rotated from
    round to round, so drift and warm-up hit every system alike.

    Background runs each get a fresh gearmand (the queue keeps every job, so a later run
    would face a fuller server). Foreground runs of one round share one gearmand and one
    raw worker process (every job is gone when a run ends), so the server and worker side
    is the very same for every system compared.
    """
    results: dict[str, list[tuple[float, float, float]]] = {s: [] for s in systems}
    for round_no in range(args.rounds):
        shift = round_no % len(systems)
        order = systems[shift:] + systems[:shift]
        if scenario == "foreground":
            setup = Setup(scenario, args)
            try:
                for system in order:
                    results[system].append(setup.run(scenario, system, uniques, args))
            finally:
                setup.close()
        else:
            for system in order:
                setup = Setup(scenario, args)
                try:
                    results[system].append(setup.run(scenario, system, uniques, args))
                finally:
                    setup.close()
    return results


def report(results: dict[str, list[tuple[float, float, float]]]) -> None:
    rates = {s: [r[0] for r in v] for s, v in results.items()}
    cpus = {s: [r[1] for r in v] for s, v in results.items()}
    medians = {s: statistics.median(v) for s, v in rates.items()}
    for system, runs in results.items():
        shown = ", ".join(f"{r[0]:,.0f}" for r in runs)
        print(
            f"  {system:11s} {medians[system]:>10,.0f} jobs/s  (runs: {shown}; CPU µs/job:"
            f" client {statistics.median(cpus[system]):.1f},"
            f" gearmand {statistics.median(r[2] for r in runs):.1f})"
        )
    for ours in [s for s in results if s.startswith("gearq")]:
        for peer in ("raw", "pygearman"):
            if peer not in results:
                continue
            paired = statistics.median(
                a / b for a, b in zip(rates[ours], rates[peer], strict=True)
            )
            cpu = statistics.median(cpus[peer]) / statistics.median(cpus[ours])
            print(
                f"  {ours} / {peer}: {medians[ours] / medians[peer]:.2f}x"
                f" (median of per-round ratios {paired:.2f}x;"
                f" client CPU µs/job, {peer} / {ours}: {cpu:.2f}x)"
            )


def _cpus(spec: str) -> set[int] | None:
    if not spec:
        return None
    out: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["background", "foreground", "all"], default="all")
    parser.add_argument(
        "--systems", default="raw,gearq,gearq-batch,gearq-bulk,gearq-many,pygearman"
    )
    parser.add_argument("--bg-jobs", type=int, default=50_000)
    parser.add_argument("--fg-jobs", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--window", type=int, default=2000, help="raw/pygearman bg window")
    parser.add_argument(
        "--grabs", default="8,1", help="GRAB_JOB_UNIQs the raw worker keeps out (list: one "
        "foreground scenario each)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flags", default="", help="extra gearmand flags, e.g. '-t 1'")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument(
        "--uvloop", action="store_true", help="run gearq on uvloop (if installed)"
    )
    parser.add_argument(
        "--client-cpus", default="", help="pin this process (every client) to these CPUs, "
        "e.g. '0'; --server-cpus for gearmand and the worker, e.g. '1'"
    )
    parser.add_argument("--server-cpus", default="")
    args = parser.parse_args(argv)
    if args.quick:
        args.bg_jobs, args.fg_jobs, args.rounds = 10_000, 5_000, 1
    args.flags = shlex.split(args.flags)
    args.server_cpus = _cpus(args.server_cpus)
    client_cpus = _cpus(args.client_cpus)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    if args.uvloop:
        import uvloop  # type: ignore[import-not-found]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if "pygearman" in systems and _pygearman() is None:
        print("pygearman is not installed (pip install pygearman==0.2.6): skipped")
        systems.remove("pygearman")
    systems_of = {k: [s for s in systems if s in SYSTEMS[k]] for k in SYSTEMS}
    kinds = ["background", "foreground"] if args.scenario == "all" else [args.scenario]
    grabs = [int(g) for g in str(args.grabs).split(",") if g.strip()]
    scenarios: list[tuple[str, int]] = []
    for kind in kinds:
        scenarios += [(kind, g) for g in grabs] if kind == "foreground" else [(kind, 0)]

    with GearmandProcess(args.flags, verbose="ERROR") as probe:
        command = " ".join(probe.command()).replace(str(probe.port), "PORT")
        version = probe_version(probe.address)
    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, gearmand {version},"
        f" gearq on {loop_name}"
    )
    print(f"gearmand command: {command}")
    if client_cpus or args.server_cpus:
        print(f"pinned: clients on CPUs {client_cpus}, gearmand and worker on {args.server_cpus}")
    print(f"payload {len(PAYLOAD)} bytes, distinct 32-hex-digit uniques, rounds {args.rounds}")
    for scenario, args.grabs_now in scenarios:
        count = args.bg_jobs if scenario == "background" else args.fg_jobs
        uniques = [os.urandom(16).hex().encode() for _ in range(count)]
        if scenario == "background":
            print(f"\n== background submit: {count} jobs, no worker, a fresh gearmand per run")
        else:
            print(
                f"\n== foreground: {count} jobs, {args.in_flight} in flight, 1 raw worker "
                f"process with {args.grabs_now} GRAB_JOB_UNIQ outstanding (one gearmand and "
                "worker per round, shared by every system)"
            )
        report(measure(scenario, systems_of[scenario], uniques, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
