"""A gearq worker in its own process, for tests that kill or signal a worker.

    python -m tests.worker.worker_proc PORT [--hold] [--sleep SECONDS]

Serves ``slow``: prints ``started <handle>`` and then either holds the job forever
(``--hold``) or sleeps ``--sleep`` seconds and returns ``done-by-<pid>``. Prints ``ready``
once registered. SIGTERM/SIGINT stop it gracefully (Worker.work(handle_signals=True)).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from gearq.net import RecoverPolicy
from gearq.worker import Job, Worker


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()

    def slow(job: Job) -> bytes:
        print(f"started {job.handle.decode()}", flush=True)
        if args.hold:
            threading.Event().wait()
        time.sleep(args.sleep)
        return b"done-by-%d" % os.getpid()

    worker = Worker(
        [f"127.0.0.1:{args.port}"],
        poll_interval=0.5,
        recover=RecoverPolicy(recover_time=0.1, max_recover_time=0.5),
    )
    worker.register("slow", slow)

    def announce() -> None:
        while worker.async_worker.connected == 0:
            time.sleep(0.01)
        print("ready", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    worker.work(handle_signals=True)
    print(f"stopped completed={worker.stats.completed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
