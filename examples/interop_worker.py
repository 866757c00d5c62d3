"""gearq tasks for callers in other languages: the PHP and shell examples call these.

    python examples/interop_worker.py                          # serve until Ctrl-C
    python examples/interop_worker.py php examples/php_client.php
    python examples/interop_worker.py sh examples/shell_client.sh

With a command, it serves while the command runs (with ``GEARQ_SERVERS`` set for it), then
stops and exits with the command's status. Without ``GEARQ_SERVERS`` it starts an embedded
job server. The envelope other languages send and read is in docs/wire-format.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from gearq import App, TaskContext

app = App("interop-example")


@app.task(name="shop.add")
def add(x: int, y: int, scale: int = 1) -> int:
    return (x + y) * scale


@app.task(name="shop.count", bind=True)
def count(ctx: TaskContext, n: int) -> str:
    for i in range(1, n + 1):
        ctx.progress(i, n)
        ctx.send_chunk({"i": i})
    ctx.warn("counted")
    return "done"


@app.task(name="shop.fail")
def fail(text: str) -> None:
    raise ValueError(f"{text} input")


@app.task(name="text.upper", serializer="raw")
def upper(data: bytes) -> bytes:
    """A raw task: the payload bytes in, bytes out, no envelope (for the ``gearman`` CLI)."""
    return data.upper()


def serve(command: list[str]) -> int:
    worker = app.worker(concurrency=4)
    if not command:
        print(f"serving {', '.join(sorted(app.tasks))} on {app.conf.servers}", flush=True)
        worker.work(handle_signals=True)
        return 0
    thread = threading.Thread(target=worker.work, name="gearq-worker", daemon=True)
    thread.start()
    try:
        env = dict(os.environ, GEARQ_SERVERS=",".join(str(s) for s in app.servers))
        return subprocess.run(command, env=env, timeout=60).returncode
    finally:
        worker.request_stop()
        thread.join(10)


def main(command: list[str]) -> int:
    if os.environ.get("GEARQ_SERVERS"):
        return serve(command)
    from gearq.server import EmbeddedServer

    with EmbeddedServer() as server:
        app.configure(servers=server.address)
        print(f"(no GEARQ_SERVERS: using an embedded job server at {server.address})", flush=True)
        return serve(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
