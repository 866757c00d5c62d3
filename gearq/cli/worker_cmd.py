"""``gearq worker MODULE[:APP]``: serve an app's tasks (see docs/worker-command.md).

Only the parser is built at import; the worker runtime (:mod:`gearq.runtime`) is imported
when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._common import positive_float, positive_int

__all__ = ["register"]

POOLS = ("prefork", "threads", "asyncio")
ENV_HEALTH_FILE = "GEARQ_HEALTH_FILE"


def _names(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",")]
    return [name for name in names if name]


def run(args: argparse.Namespace) -> int:
    health = args.health_file or os.environ.get(ENV_HEALTH_FILE) or None
    if args.check:
        if health is None:
            print(
                f"gearq worker --check: give --health-file (or {ENV_HEALTH_FILE}), the file"
                " the worker keeps fresh",
                file=sys.stderr,
            )
            return 2
        from ..runtime.health import check_health

        report = check_health(Path(health))
        print(report.text, file=sys.stdout if report.ok else sys.stderr)
        return 0 if report.ok else 1
    if args.app and args.app_option and args.app != args.app_option:
        print("gearq worker: give the app once (MODULE[:APP] or -A)", file=sys.stderr)
        return 2
    app = args.app or args.app_option
    if not app:
        print("gearq worker: give the app: gearq worker MODULE[:APP]", file=sys.stderr)
        return 2
    from ..runtime.supervisor import DEFAULT_QUEUE, WorkerSettings, run_worker

    queues = _names(args.queues)
    settings = WorkerSettings(
        app=app,
        servers=args.servers,
        pool=args.pool,
        concurrency=args.concurrency,
        queues=None if queues is None else [None if q == DEFAULT_QUEUE else q for q in queues],
        tasks=_names(args.tasks),
        loglevel=args.loglevel,
        log_tasks=args.log_tasks,
        max_tasks_per_child=args.max_tasks_per_child,
        shutdown_timeout=args.shutdown_timeout,
        poll_interval=args.poll_interval,
        health_file=None if health is None else Path(health),
        health_interval=args.health_interval,
        max_stuck_threads=args.max_stuck_threads,
        connect_timeout=args.connect_timeout,
    )
    return run_worker(settings)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "worker",
        help="serve an app's tasks (pools: prefork, threads, asyncio)",
        description="Import MODULE (the current directory is on sys.path), find its gearq "
        "App (the attribute APP, else the one App in the module) and serve its tasks on "
        "every job server. SIGTERM/SIGINT stop warmly, a second one at once; SIGHUP "
        "restarts the children (prefork) or the process.",
    )
    parser.add_argument("app", nargs="?", metavar="MODULE[:APP]", help="the app to serve")
    parser.add_argument(
        "-A", "--app", dest="app_option", metavar="MODULE[:APP]",
        help="the same, as an option (as in celery -A)",
    )  # fmt: skip
    parser.add_argument(
        "--servers", help="comma-separated host:port list (default: the app's, GEARQ_SERVERS)"
    )
    parser.add_argument(
        "-P", "--pool", choices=POOLS, default="threads",
        help="prefork: child processes (CPU-bound tasks, hard time limits); threads "
        "(default): a thread pool for plain tasks; asyncio: every task on the event loop",
    )  # fmt: skip
    parser.add_argument(
        "-c", "--concurrency", type=positive_int,
        help="tasks at once: child processes (prefork, default: CPUs), threads (default 8),"
        " or tasks on the loop (asyncio, default 100)",
    )  # fmt: skip
    parser.add_argument(
        "-Q", "--queues", action="append", metavar="QUEUE[,QUEUE...]",
        help=f"serve every task on these queues ({':default'} = no queue prefix);"
        " default: each task on its own queue",
    )  # fmt: skip
    parser.add_argument(
        "--tasks", action="append", metavar="NAME[,NAME...]",
        help="serve only these tasks (default: all of the app's)",
    )  # fmt: skip
    parser.add_argument(
        "-l", "--loglevel", default="INFO", type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), help="default INFO",
    )  # fmt: skip
    parser.add_argument(
        "--log-tasks", action="store_true",
        help="one log line per task attempt: name, id, attempt, duration, outcome",
    )  # fmt: skip
    parser.add_argument(
        "--max-tasks-per-child", type=positive_int, metavar="N",
        help="prefork: replace a child after N tasks",
    )  # fmt: skip
    parser.add_argument(
        "--max-stuck-threads", type=positive_int, metavar="N",
        help="threads: restart the process once N threads run on past their time limit"
        " (default: half the concurrency, at least 1)",
    )  # fmt: skip
    parser.add_argument(
        "--shutdown-timeout", type=positive_float, default=30.0, metavar="SECONDS",
        help="warm stop: how long running tasks may take to finish (default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--poll-interval", type=positive_float, default=1.0, metavar="SECONDS",
        help="seconds between GRABs when idle; bounds how late countdown/eta jobs run"
        " (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--connect-timeout", type=positive_float, metavar="SECONDS",
        help="at start, how long to wait for a server to accept (default: the app's, 5)",
    )  # fmt: skip
    parser.add_argument(
        "--health-file", metavar="PATH",
        help=f"keep PATH fresh while serving (env {ENV_HEALTH_FILE}); read by --check",
    )  # fmt: skip
    parser.add_argument(
        "--health-interval", type=positive_float, default=5.0, metavar="SECONDS",
        help="how often the health file is rewritten (default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--check", action="store_true",
        help="liveness check: exit 0 if the worker owning --health-file serves, else 1",
    )  # fmt: skip
    parser.set_defaults(run=run)
