"""Run a worker for ``gearq worker``: build the pool, serve, obey signals, keep liveness.

Pools:

* ``threads``: a :class:`~gearq.tasks.runner.TaskWorker` whose plain tasks run in a pool of
  ``concurrency`` threads (``async def`` tasks on the loop). A thread cannot be killed: at
  its time limit the job is answered and the thread's late result dropped; when
  ``max_stuck_threads`` such threads pile up the process recycles itself (a warm stop,
  then it executes itself again, keeping its pid).
* ``asyncio``: every task on the event loop (``pool="inline"``): ``async def`` tasks are
  cancelled at their time limit; plain ones must never block.
* ``prefork``: :class:`~gearq.runtime.prefork.PreforkPool` children.

Signals: the first SIGTERM or SIGINT stops warmly (no new jobs; running ones get
``shutdown_timeout`` seconds, then exit 0); a second one stops at once (connections
closed, gearmand requeues what was running; exit 1). SIGHUP restarts the prefork children,
or the whole process for the other pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .health import remove_health, write_health
from .loader import AppLoadError, load_app

if TYPE_CHECKING:
    from ..net.address import ServerAddress
    from ..tasks.app import App
    from ..tasks.runner import TaskWorker
    from .prefork import PreforkPool

__all__ = ["DEFAULT_QUEUE", "PoolName", "WorkerSettings", "run_worker"]

log = logging.getLogger("gearq.runtime")

PoolName = Literal["prefork", "threads", "asyncio"]
#: In ``--queues``: the functions without a queue prefix (queue names cannot hold ':').
DEFAULT_QUEUE = ":default"
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


@dataclass
class WorkerSettings:
    """What ``gearq worker`` was asked for (see :mod:`gearq.cli.worker_cmd`)."""

    app: str
    servers: str | None = None
    pool: PoolName = "threads"
    concurrency: int | None = None
    queues: list[str | None] | None = None
    tasks: list[str] | None = None
    loglevel: str = "INFO"
    log_tasks: bool = False
    max_tasks_per_child: int | None = None
    shutdown_timeout: float = 30.0
    poll_interval: float = 1.0
    health_file: Path | None = None
    health_interval: float = 5.0
    max_stuck_threads: int | None = None
    connect_timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved_concurrency(self) -> int:
        if self.concurrency is not None:
            return self.concurrency
        if self.pool == "prefork":
            return os.cpu_count() or 2
        return 100 if self.pool == "asyncio" else 8


class StartError(Exception):
    """The worker cannot start; the message is the one line the command prints."""


def _error(text: str) -> int:
    print(f"gearq worker: {text}", file=sys.stderr, flush=True)
    return 1


def setup_logging(level: str, log_tasks: bool) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)
    if log_tasks:
        logging.getLogger("gearq.tasks.worker").setLevel(logging.INFO)


def run_worker(settings: WorkerSettings) -> int:
    """Serve until stopped; the exit status (0: a warm stop)."""
    setup_logging(settings.loglevel, settings.log_tasks)
    try:
        app, spec = load_app(settings.app)
        runner = _Runner(settings, app, spec)
    except (AppLoadError, StartError) as exc:
        return _error(str(exc))
    print(runner.banner(), file=sys.stderr, flush=True)
    try:
        code = asyncio.run(runner.main())
    except StartError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:  # Ctrl-C while starting, before the signal handlers are up
        return _error("interrupted while starting")
    if runner.reexec:
        return _reexec()
    return code


#: Exit status of a worker that must be restarted but cannot restart itself.
EXIT_RESTART = 75


def _reexec() -> int:
    """Replace this process with a fresh run of the same command (same pid): threads stuck
    in tasks vanish with the old image."""
    argv = [sys.executable, *sys.orig_argv[1:]]
    if "worker" not in argv:
        # Started from Python (gearq.cli.main([...])), not from a command line: there is
        # no command to run again; the process manager restarts it on this status.
        log.error("cannot restart in place (not started as a command); exiting %d", EXIT_RESTART)
        return EXIT_RESTART
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


class _Runner:
    def __init__(self, settings: WorkerSettings, app: App, spec: str) -> None:
        from ..protocol.errors import GearqError
        from ..tasks.runner import TaskWorker
        from ..worker.errors import WorkerError

        self.settings = settings
        self.app = app
        self.spec = spec
        self.pool_name = settings.pool
        self.concurrency = settings.resolved_concurrency()
        self.reexec = False
        self.hard = False
        self.signals = 0
        self.ready = False
        self.pool: PreforkPool | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        if self.concurrency < 1:
            raise StartError("concurrency must be at least 1")
        if settings.pool not in ("prefork", "threads", "asyncio"):
            raise StartError(f"unknown pool {settings.pool!r}: prefork, threads or asyncio")
        try:
            if settings.servers:
                app.configure(servers=settings.servers)
            servers = app.servers
        except (GearqError, ValueError) as exc:
            raise StartError(f"bad servers: {exc}") from None
        if not servers:
            raise StartError("no job server given (--servers or GEARQ_SERVERS)")
        self.servers: tuple[ServerAddress, ...] = servers
        if settings.pool == "prefork":
            from .prefork import PreforkPool

            self.pool = PreforkPool(
                spec,
                processes=self.concurrency,
                max_tasks_per_child=settings.max_tasks_per_child,
                child_config={
                    "servers": ",".join(map(str, servers)),
                    "tasks": settings.tasks,
                    "queues": settings.queues,
                    "loglevel": settings.loglevel.upper(),
                    "logformat": LOG_FORMAT,
                    "log_tasks": settings.log_tasks,
                },
            )
        elif settings.max_tasks_per_child is not None:
            log.warning("--max-tasks-per-child applies to the prefork pool only; ignored")
        try:
            self.worker: TaskWorker = TaskWorker(
                app,
                concurrency=self.concurrency,
                queues=settings.queues,
                tasks=settings.tasks,
                poll_interval=settings.poll_interval,
                pool="inline" if settings.pool == "asyncio" else "threads",
                log_tasks=settings.log_tasks,
                executor=self.pool,
                options=app.conf.connection_options(),
            )
        except (WorkerError, GearqError, ValueError) as exc:
            raise StartError(str(exc)) from None
        stuck = settings.max_stuck_threads
        self.max_stuck = stuck if stuck is not None else max(1, self.concurrency // 2)

    # -- the banner --------------------------------------------------------------------------

    def banner(self) -> str:
        from .. import __version__

        s = self.settings
        if self.pool_name == "prefork":
            per_child = s.max_tasks_per_child
            pool = f"prefork, {self.concurrency} child process(es)" + (
                f", each retired after {per_child} task(s)" if per_child else ""
            )
        elif self.pool_name == "threads":
            pool = (
                f"threads, concurrency {self.concurrency} (recycled at {self.max_stuck}"
                " thread(s) stuck past a time limit)"
            )
        else:
            pool = f"asyncio, concurrency {self.concurrency} (every task on the event loop)"
        lines = [
            f"gearq worker {__version__}: app {self.app.main!r} from {self.spec},"
            f" pid {os.getpid()}",
            f"  servers: {', '.join(map(str, self.servers))}",
            f"  pool:    {pool}",
            f"  queues:  {self._queues_text()}",
            f"  tasks:   {len(self.worker.tasks)}",
        ]
        from ..tasks.runner import _is_async

        for name, task in sorted(self.worker.tasks.items()):
            notes = []
            if task.options.time_limit is not None:
                notes.append(f"time limit {task.options.time_limit:g} s")
            if task.options.max_retries:
                notes.append(f"max retries {task.options.max_retries}")
            if self.pool_name == "asyncio" and not _is_async(task.fn):
                notes.append("plain def on the event loop: must not block")
            extra = f"  ({', '.join(notes)})" if notes else ""
            lines.append(f"    . {name}{extra}")
        functions = [f.decode(errors="replace") for f in self.worker.functions]
        lines.append(f"  functions: {', '.join(functions)}")
        lines.append(
            "  SIGTERM/SIGINT: warm stop (a second one: at once); SIGHUP: restart "
            + ("the children" if self.pool_name == "prefork" else "the process")
        )
        return "\n".join(lines)

    def _queues_text(self) -> str:
        queues = self.settings.queues
        if queues is None:
            return "each task's own"
        return ", ".join(DEFAULT_QUEUE if q is None else q for q in queues)

    # -- serving -----------------------------------------------------------------------------

    async def main(self) -> int:
        await self._probe()
        if self.pool is not None:
            from .prefork import ChildStartError

            try:
                await self.pool.start()
            except ChildStartError as exc:
                raise StartError(str(exc)) from None
            log.info("%d child process(es) ready: %s", self.pool.alive, self.pool.pids)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        serve = asyncio.ensure_future(self.worker.run())
        watchers = [
            asyncio.ensure_future(self._watch_ready()),
            asyncio.ensure_future(self._watch_health()),
        ]
        if self.pool_name == "threads":
            watchers.append(asyncio.ensure_future(self._watch_stuck()))
        try:
            await serve
        finally:
            for watcher in watchers:
                watcher.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            if self.pool is not None:
                await self.pool.close(hard=self.hard)
            if self.settings.health_file is not None:
                remove_health(self.settings.health_file)
        if self.hard:
            log.warning("stopped at once; gearmand requeues the jobs that were running")
            return 1
        log.warning("stopped" + (": restarting the process" if self.reexec else ""))
        return 0

    async def _probe(self) -> None:
        """Fail at once when no server accepts a connection (a later outage is retried)."""
        timeout = self.settings.connect_timeout or self.app.conf.connect_timeout

        async def probe(address: ServerAddress) -> str | None:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(address.host, address.port), timeout
                )
            except (OSError, asyncio.TimeoutError) as exc:
                return (
                    f"{address} ({exc.strerror or type(exc).__name__})"
                    if isinstance(exc, OSError)
                    else f"{address} (no answer in {timeout:g} s)"
                )
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return None

        failures = [f for f in await asyncio.gather(*map(probe, self.servers)) if f]
        if len(failures) == len(self.servers):
            raise StartError(f"no job server reachable: {', '.join(failures)}")
        for failure in failures:
            log.warning("job server %s is down; serving the others, retrying it", failure)

    def _on_stop_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.warning(
                "%s: warm stop; no new jobs, %d running may finish within %g s (send it"
                " again to stop at once)",
                name, self.worker.running, self.settings.shutdown_timeout,
            )  # fmt: skip
            self._spawn(self.worker.stop(True, self.settings.shutdown_timeout))
            return
        self._stop_now(f"{name} again")

    def _stop_now(self, why: str) -> None:
        if self.hard:
            return
        self.hard = True
        log.warning("%s: stopping at once, %d job(s) left to gearmand", why, self.worker.running)
        if self.pool is not None:
            self.pool.kill_all()
        self._spawn(self.worker.stop(False))

    def _on_hup(self) -> None:
        if self.pool is not None:
            log.warning("SIGHUP: restarting the child processes")
            self.pool.restart()
            return
        self._recycle("SIGHUP")

    def _recycle(self, why: str) -> None:
        if self.reexec or self.signals:
            return
        self.reexec = True
        log.warning("%s: restarting the worker process after a warm stop", why)
        self._spawn(self.worker.stop(True, self.settings.shutdown_timeout))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_ready(self) -> None:
        low = self.worker.worker
        while True:
            await asyncio.sleep(0.02)
            if low.connected:
                break
        self.ready = True
        print(
            f"gearq worker: ready, serving {len(self.worker.tasks)} task(s) on"
            f" {low.connected}/{len(self.servers) * _groups(self.worker)} connection(s)",
            file=sys.stderr,
            flush=True,
        )

    async def _watch_stuck(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            stuck = self.worker.stuck_threads
            if stuck >= self.max_stuck and not self.reexec:
                self._recycle(f"{stuck} thread(s) stuck past their time limit")

    async def _watch_health(self) -> None:
        path = self.settings.health_file
        if path is None:
            return
        interval = self.settings.health_interval
        low = self.worker.worker
        while True:
            state = "stopping" if low.stopping else "serving" if self.ready else "starting"
            facts: dict[str, Any] = {
                "state": state,
                "interval": interval,
                "pool": self.pool_name,
                "connected": low.connected,
                "connections": len(self.servers) * _groups(self.worker),
                "running": self.worker.running,
                "stuck_threads": self.worker.stuck_threads,
                "children": self.pool.alive if self.pool is not None else 0,
            }
            try:
                write_health(path, facts)
            except OSError as exc:
                log.error("cannot write the health file %s: %s", path, exc)
            await asyncio.sleep(interval)


def _groups(worker: TaskWorker) -> int:
    """Connections per server: one per call function, plus the shared countdown/eta one."""
    return len(worker.functions) // 2 + 1
