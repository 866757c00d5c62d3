"""Three job servers, jobs routed by key (the ``unique_hash`` strategy), one server down.

    GEARQ_SERVERS=10.0.0.1:4730,10.0.0.2:4730,10.0.0.3:4730 python examples/multi_server.py
    python examples/multi_server.py       # three embedded job servers, one of them stopped

Each job's unique (here ``sync:<account>``) picks its server, so the same account always
goes to the same server and duplicate submits coalesce there. While that server is down the
account moves to the next server of its own ranking; the other accounts stay where they
were. The client notices the dead server on first use and skips it for ``recover_time``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections import Counter

from gearq.client import Client
from gearq.net import ServerAddress
from gearq.worker import Job, Worker

ACCOUNTS = [f"acct-{n:02d}" for n in range(1, 13)]


def sync_account(job: Job) -> bytes:
    time.sleep(0.01)  # talk to the billing system
    return b"synced " + job.payload


def report_unavailable(server: ServerAddress, error: BaseException | None) -> None:
    print(f"! {server} is unavailable, skipping it: {type(error).__name__}")


def main(servers: list[str]) -> None:
    # One worker serves every server; it keeps retrying the dead one in the background.
    worker = Worker(servers, concurrency=4)
    worker.register("sync_account", sync_account)
    serving = threading.Thread(target=worker.work, name="worker", daemon=True)
    serving.start()
    try:
        with Client(servers, strategy="unique_hash", recover_time=30, connect_timeout=2) as client:
            client.on("error", report_unavailable)
            jobs = {
                account: client.submit("sync_account", account.encode(), unique=f"sync:{account}")
                for account in ACCOUNTS
            }
            taken: Counter[str] = Counter()
            for account, job in jobs.items():
                result = job.result(timeout=10)
                taken[str(job.server)] += 1
                print(f"{account} -> {job.server}: {result.decode()}")
            for server in client.servers:
                print(f"{server} took {taken[str(server)]} job(s)")
    finally:
        worker.stop()
        serving.join(10)


def configured_servers() -> list[str]:
    spec = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GEARQ_SERVERS", "")
    return [s.strip() for s in spec.split(",") if s.strip()]


if __name__ == "__main__":
    # The worker's reconnect attempts are logged as warnings; keep them short.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    servers = configured_servers()
    if servers:
        main(servers)
    else:
        from gearq.server import EmbeddedServer

        embedded = [EmbeddedServer().start() for _ in range(3)]
        addresses = [s.address for s in embedded]
        host, port = addresses[2].rsplit(":", 1)
        embedded[2].stop()  # the outage
        # Keep its port (bound, not listening) while this runs, so that no other program
        # can take it: a connect there is refused, as at a real outage.
        held = socket.socket()
        with contextlib.suppress(OSError):  # taken already: the outage may look different
            held.bind((host, int(port)))
        print(f"(no servers given: three embedded job servers; {addresses[2]} is stopped)")
        try:
            main(addresses)
        finally:
            held.close()
            for server in embedded[:2]:
                server.stop()
