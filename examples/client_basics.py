"""The blocking client: a foreground job and its result, then a background job and its status.

    python examples/client_basics.py 127.0.0.1:4730      # or GEARQ_SERVERS=127.0.0.1:4730
    python examples/client_basics.py                     # starts an embedded job server

A small worker runs in a thread of this process, so nothing else needs to be running.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from gearq.client import Client
from gearq.worker import Job, Worker


def word_count(job: Job) -> bytes:
    return str(len(job.payload.split())).encode()


def render_pages(job: Job) -> bytes:
    """Slow work that reports its progress; nobody waits for its result."""
    pages = int(job.payload)
    for page in range(1, pages + 1):
        time.sleep(0.2)  # render one page
        job.send_status(page, pages)
    return b""


def main(servers: list[str]) -> None:
    worker = Worker(servers, concurrency=2)
    worker.register("word_count", word_count)
    worker.register("render_pages", render_pages)
    serving = threading.Thread(target=worker.work, name="worker", daemon=True)
    serving.start()
    try:
        with Client(servers) as client:
            # Foreground: the caller blocks for the result.
            job = client.submit("word_count", b"the quick brown fox jumps over the lazy dog")
            count = job.result(timeout=10)
            print(f"word_count -> {count.decode()} (on {job.server})")

            # Background: done as soon as the server has queued it; then ask for its status.
            job = client.submit("render_pages", b"5", background=True)
            handle = job.created(timeout=10)
            print(f"render_pages queued as {handle.decode()} on {job.server}")
            last = None
            while True:
                status = client.get_status(job)
                if not status.known:  # finished (gearmand forgets finished jobs)
                    break
                line = "running" if status.running else "queued"
                line += f" {status.numerator}/{status.denominator}"
                if line != last:
                    print(f"  {line}")
                    last = line
                time.sleep(0.05)
            print("render_pages finished")
    finally:
        worker.stop()  # graceful: returns at once, the thread ends when the jobs are done
        serving.join(10)


def configured_servers() -> list[str]:
    spec = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GEARQ_SERVERS", "")
    return [s.strip() for s in spec.split(",") if s.strip()]


if __name__ == "__main__":
    servers = configured_servers()
    if servers:
        main(servers)
    else:
        from gearq.server import EmbeddedServer

        with EmbeddedServer() as server:
            print(f"(no server given: using an embedded job server at {server.address})")
            main([server.address])
