"""A worker process: three handlers, served until SIGTERM or Ctrl-C.

    python examples/worker_basics.py 127.0.0.1:4730      # or GEARQ_SERVERS=127.0.0.1:4730

* ``checksum``: a plain function, run in a thread: the SHA-256 of the payload, in hex.
* ``export_csv``: an ``async def`` that streams CSV rows (WORK_DATA) and reports its
  progress (WORK_STATUS); the payload is ``<table> <rows>``, e.g. ``b"orders 4"``.
* ``slow_lookup``: waits as many seconds as the payload says, but has a time limit of
  one second: past it the client gets a ``gearq.TimeLimitExceeded`` exception.

SIGTERM or SIGINT stops it gracefully: the jobs in hand finish, then it exits 0. A second
SIGINT stops it at once (gearmand hands the unfinished jobs to another worker).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import threading

from gearq.worker import Job, Worker

MAX_ROWS = 10_000
LOOKUP_TIME_LIMIT = 1.0


def checksum(job: Job) -> bytes:
    """Blocking work belongs in a plain function: it runs in the worker's threads."""
    return hashlib.sha256(job.payload).hexdigest().encode()


async def export_csv(job: Job) -> bytes:
    """Streams its rows to the client as they are made, with progress."""
    table, _, count = job.payload.decode().partition(" ")
    rows = int(count or "0")
    if rows > MAX_ROWS:
        job.send_warning(f"{rows} rows asked for; exporting the first {MAX_ROWS}".encode())
        rows = MAX_ROWS
    for n in range(1, rows + 1):
        await asyncio.sleep(0.05)  # stands for a database query
        job.send_data(f"{table},{n},{n * 17}\n".encode())
        job.send_status(n, rows)
    return f"exported {rows} rows of {table}".encode()


async def slow_lookup(job: Job) -> bytes:
    """A call to a slow service; at the time limit the worker answers and cancels it."""
    delay = float(job.payload)
    await asyncio.sleep(delay)
    return f"looked up in {delay:g} s".encode()


def build_worker(servers: list[str]) -> Worker:
    worker = Worker(servers, concurrency=8, poll_interval=1.0)
    worker.register("checksum", checksum)
    worker.register("export_csv", export_csv)
    worker.register("slow_lookup", slow_lookup, time_limit=LOOKUP_TIME_LIMIT)
    return worker


def main(servers: list[str], *, max_seconds: float | None = None) -> Worker:
    """Serve until a signal (main thread only) or ``max_seconds``; return the stopped worker."""
    worker = build_worker(servers)
    timer = None
    if max_seconds is not None:
        timer = threading.Timer(max_seconds, worker.stop)
        timer.daemon = True
        timer.start()
    names = ", ".join(name.decode() for name in worker.async_worker.functions)
    print(f"serving {names} on {', '.join(map(str, worker.servers))}", flush=True)
    try:
        worker.work(handle_signals=threading.current_thread() is threading.main_thread())
    finally:
        if timer is not None:
            timer.cancel()
    stats = worker.stats
    print(
        f"stopped: {stats.jobs_started} started, {stats.completed} completed, "
        f"{stats.exceptions} exceptions, {stats.time_limited} past their time limit",
        flush=True,
    )
    return worker


def configured_servers(argv: list[str]) -> list[str]:
    spec = argv[1] if len(argv) > 1 else os.environ.get("GEARQ_SERVERS", "")
    return [s.strip() for s in spec.split(",") if s.strip()]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    servers = configured_servers(sys.argv)
    if not servers:
        sys.exit("usage: worker_basics.py HOST:PORT[,HOST:PORT...]  (or set GEARQ_SERVERS)")
    main(servers)
