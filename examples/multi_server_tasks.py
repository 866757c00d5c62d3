"""A task app on several job servers: one of them stops, and the tasks keep running.

    GEARQ_SERVERS=gm1:4730,gm2:4730,gm3:4730 python examples/multi_server_tasks.py
    python examples/multi_server_tasks.py     # three embedded job servers

The app spreads calls over the servers (``strategy="round_robin"``); the worker serves all
of them. After a first round of calls, one server goes away: with embedded servers the
example stops one itself; with ``GEARQ_SERVERS`` it asks you to stop one (``--no-stop``:
it does not ask). The second round runs on the servers that are left, and
the dead one is skipped for ``recover_time`` seconds instead of being retried per call.
See docs/multi-server.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable

from gearq import App

# checksum is idempotent, so a call whose connection breaks before it is answered may be
# submitted again to the next server (resubmit_on_failure); otherwise that call would fail
# with JobConnectionLost, since the job may or may not have reached the dead server.
app = App(
    "multi-server-example",
    strategy="round_robin",
    recover_time=30,
    connect_timeout=2,
    client_options={"resubmit_on_failure": True},
)


@app.task(name="multi.checksum")
def checksum(text: str) -> int:
    return sum(text.encode()) % 65521


def run_round(number: int, calls: int = 12) -> None:
    results = [checksum.delay(f"document {number}-{n}") for n in range(calls)]
    where: Counter[str] = Counter()
    for result in results:
        result.get(timeout=15)  # raises if a call was lost; none may be
        where[str(result.server)] += 1
    spread = ", ".join(f"{server}: {where[server]}" for server in sorted(where))
    print(f"round {number}: {calls} tasks done ({spread})", flush=True)


def main(stop_one: Callable[[], str | None]) -> None:
    worker = app.worker(concurrency=8, poll_interval=0.5)
    serving = threading.Thread(target=worker.work, name="gearq-worker", daemon=True)
    serving.start()
    try:
        run_round(1)
        stopped = stop_one()
        if stopped:
            print(f"stopped {stopped}", flush=True)
        run_round(2)
        run_round(3)
    finally:
        worker.request_stop()
        serving.join(10)
        app.close(wait=5)


def ask_operator() -> str | None:
    print("round 1 done: stop one of the servers now, then press Enter", flush=True)
    line = sys.stdin.readline()
    return line.strip() or "a server"


if __name__ == "__main__":
    # The worker logs each failed reconnect to the stopped server; keep the output short.
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-stop", action="store_true", help="run the rounds without a stop")
    args = parser.parse_args()
    if os.environ.get("GEARQ_SERVERS"):
        print(f"servers: {', '.join(map(str, app.servers))}", flush=True)
        main((lambda: None) if args.no_stop else ask_operator)
    else:
        from gearq.server import EmbeddedServer

        embedded = [EmbeddedServer().start() for _ in range(3)]
        app.configure(servers=",".join(s.address for s in embedded))
        print(f"(no GEARQ_SERVERS: three embedded job servers, {', '.join(map(str, app.servers))})")

        def stop_first() -> str:
            embedded[0].stop()
            return embedded[0].address

        try:
            main(stop_first)
        finally:
            for server in embedded:
                server.stop()
