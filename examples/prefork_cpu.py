"""CPU-bound tasks, meant for a worker of several processes.

Pure-Python CPU work holds the GIL, so threads in one worker process run it one at a time.
Serve it from several processes instead:

    gearq worker examples.prefork_cpu --pool prefork --concurrency 4

(one process per slot; run it from the repository root so that ``examples`` is importable).
The same thing by hand, with the Python API, is what this file does when run:

    GEARQ_SERVERS=127.0.0.1:4730 python examples/prefork_cpu.py --processes 2
    python examples/prefork_cpu.py            # starts an embedded job server

It starts N worker processes (each a ``BlockingTaskWorker`` running one task at a time),
calls ``count_primes`` for a range of limits as a group, prints which process computed
each, and stops the workers with SIGTERM (a graceful stop).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import time
from typing import Any

from gearq import App, group

app = App("prefork-example")


@app.task(name="cpu.count_primes")
def count_primes(limit: int) -> dict[str, int]:
    """How many primes are below ``limit``, by trial division (slow on purpose)."""
    found = 0
    for n in range(2, limit):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
    return {"limit": limit, "primes": found, "pid": os.getpid()}


def serve(servers: str, ready: Any) -> None:
    """One worker process: one task at a time, so each process keeps one core busy."""
    from gearq.tasks.runner import BlockingTaskWorker

    app.configure(servers=servers)
    worker = BlockingTaskWorker(app, concurrency=1, poll_interval=0.5)
    # SIGTERM asks for a graceful stop (jobs in hand finish); installed before the parent
    # is told we are ready, so a stop can never catch the process half started.
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    ready.set()
    worker.work()


def main(processes: int, limits: list[int]) -> None:
    servers = ",".join(str(s) for s in app.servers)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker
    ready = [context.Event() for _ in range(processes)]
    workers = [
        context.Process(target=serve, args=(servers, ready[n]), name=f"worker-{n}")
        for n in range(processes)
    ]
    for process in workers:
        process.start()
    try:
        if not all(event.wait(30) for event in ready):
            raise RuntimeError("a worker process did not start")
        started = time.perf_counter()
        results = group(count_primes.s(limit) for limit in limits).delay().get(timeout=60)
        took = time.perf_counter() - started
        for answer in results:
            print(f"primes below {answer['limit']}: {answer['primes']} (process {answer['pid']})")
        pids = {answer["pid"] for answer in results}
        print(f"{len(limits)} tasks in {took:.2f} s on {len(pids)} worker process(es)")
    finally:
        app.close(wait=5)
        for process in workers:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in workers:
            process.join(15)
        print(f"worker exit codes: {[process.exitcode for process in workers]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--limits", type=int, nargs="+", default=[20000, 30000, 40000, 50000, 60000, 70000]
    )
    args = parser.parse_args()
    if os.environ.get("GEARQ_SERVERS"):
        main(args.processes, args.limits)
    else:
        from gearq.server import EmbeddedServer

        with EmbeddedServer() as server:
            app.configure(servers=server.address)
            print(f"(no GEARQ_SERVERS: using an embedded job server at {server.address})")
            main(args.processes, args.limits)
