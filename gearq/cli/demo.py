"""``gearq demo``: a job server, a worker and a client in one process, end to end.

With no servers given (argument or ``GEARQ_SERVERS``) it runs on the embedded job server,
so it needs nothing installed beyond gearq itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from ..net import ServerSpec, parse_servers

__all__ = ["register", "run_demo"]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _bar(progress: tuple[int, int] | None, width: int = 20) -> str:
    done, total = progress if progress else (0, 1)
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _show(servers: list[ServerSpec]) -> None:
    from ..tasks.canvas import group
    from ..testing.fixtures import WorkerThread
    from .demo_tasks import add, app, divide, report, resize

    app.configure(servers=",".join(str(s) for s in servers))
    with WorkerThread(app, concurrency=8, poll_interval=0.5):
        _say("1. A task, called with .delay() and answered over the caller's connection")
        _say(f"   add.delay(2, 3).get() -> {add.delay(2, 3).get(timeout=10)}")

        _say("2. Progress reported by the task while it runs")
        result = resize.delay("cat.png", 10)
        if sys.stdout.isatty():
            while not result.ready():
                print(f"\r   {_bar(result.progress)}", end="", flush=True)
                time.sleep(0.05)
        else:  # a log or a pipe gets a line per step, not a redrawn bar
            seen = None
            while not result.ready():
                if result.progress != seen and result.progress is not None:
                    seen = result.progress
                    _say(f"   {_bar(seen)}")
                time.sleep(0.02)
        value = result.get(timeout=10)
        _say(f"\r   {_bar(result.progress)}  -> {value!r}")

        _say("3. Partial results streamed as a generator task yields them")
        for chunk in report.delay(4).stream(timeout=10):
            _say(f"   {chunk}")

        _say("4. A remote error, re-raised as its own type")
        try:
            divide.delay(1, 0).get(timeout=10)
        except ZeroDivisionError as exc:
            _say(f"   divide.delay(1, 0).get() raised ZeroDivisionError({exc})")

        _say("5. A group: many tasks at once, results in order")
        started = time.perf_counter()
        sums = group(add.s(i, i) for i in range(1000)).delay().get(timeout=30)
        took = time.perf_counter() - started
        _say(f"   1000 tasks in {took:.2f} s ({1000 / took:,.0f} tasks/s); first: {sums[:5]}")

        _say("6. A background task: durable, and its status can be asked for")
        background = resize.send("dog.png", 10)
        background.created(timeout=10)
        time.sleep(0.3)
        status = background.status()
        _say(f"   state={status.state} progress={_bar(status.progress)}")
        _say("   (background results are not kept: .get() raises ResultNotKept)")
        time.sleep(0.6)  # let it finish before the worker stops
    app.close(wait=5)


def run_demo(servers: str | None = None) -> int:
    # The remote error below is on purpose; the worker's log line about it is noise here.
    for noisy in ("gearq.worker", "gearq.tasks", "gearq.tasks.worker"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    servers = servers or os.environ.get("GEARQ_SERVERS") or None
    if servers:
        addresses: list[ServerSpec] = [str(a) for a in parse_servers(servers)]
        _say(f"gearq demo on {', '.join(map(str, addresses))}")
        return _run(addresses)
    from ..server import EmbeddedServer

    with EmbeddedServer() as server:
        _say(f"gearq demo on the embedded job server at {server.address}")
        _say("(set GEARQ_SERVERS=host:port to use your gearmand instead)")
        _say()
        status = _run([server.address])
    if status == 0:
        _say()
        _say("Done: server, worker and client stopped cleanly.")
    return status


def _run(addresses: list[ServerSpec]) -> int:
    try:
        _show(addresses)
    except (asyncio.TimeoutError, TimeoutError):
        print(
            f"gearq demo: no job server answered at {', '.join(map(str, addresses))}",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # the demo reports in one line; it does not dump a traceback
        print(f"gearq demo failed: {exc!r}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="show gearq at work (embedded server unless GEARQ_SERVERS is set)",
        description="Start a job server (the embedded one unless GEARQ_SERVERS names "
        "servers), a worker and a client, and show what gearq does.",
    )
    demo.add_argument("--servers", help="comma-separated host:port list (default: embedded)")
    demo.set_defaults(run=lambda args: run_demo(args.servers))
