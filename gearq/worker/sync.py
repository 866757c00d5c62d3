"""The blocking worker: :class:`AsyncWorker` on an event loop of its own.

``work()`` blocks the calling thread; ``stop()`` may be called from any other thread or
from a signal handler (it only asks the loop to stop, and never blocks).
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass
from typing import Any

from ..net.address import ServerAddress
from .blocking import BlockingDriver
from .errors import WorkerError
from .worker import AsyncWorker, Handler, WorkerStats, _NotOnLoop

__all__ = ["Worker"]


@dataclass(frozen=True)
class _Registration:
    function: str | bytes
    handler: Handler
    time_limit: float | None
    group: str | None
    inline: bool


class Worker:
    """Blocking twin of :class:`AsyncWorker`; takes the same arguments.

    It may serve again after a stop: each ``work()`` runs a fresh :class:`AsyncWorker` with
    the same settings and functions (``stats`` then counts from the start of that run).
    """

    def __init__(self, servers: Any = None, **options: Any) -> None:
        self._servers = servers
        self._options = options
        self._registrations: list[_Registration] = []
        # Reentrant: stop() may run in a signal handler on a thread that holds it.
        self._lock = threading.RLock()
        self._working = False
        # The AsyncWorker of the current run (or of the next one), and the driver of the
        # current run (or of the last one, or of the first one before it starts).
        self._worker = AsyncWorker(servers, **options)
        self._driver = BlockingDriver(self._worker)
        self._driven = self._worker

    def _next_worker(self) -> AsyncWorker:
        """The AsyncWorker that registrations go to: a fresh one once a run is over."""
        worker = self._worker
        if worker._started and not self._working:
            worker = AsyncWorker(self._servers, **self._options)
            for entry in self._registrations:
                self._add(worker, entry)
            self._worker = worker
        return worker

    @property
    def async_worker(self) -> AsyncWorker:
        """The AsyncWorker of the current (or last, or next) run."""
        return self._worker

    @property
    def servers(self) -> tuple[ServerAddress, ...]:
        return self._worker.servers

    @property
    def stats(self) -> WorkerStats:
        return self._worker.stats

    def register(
        self,
        function: str | bytes,
        handler: Handler,
        *,
        time_limit: float | None = None,
        group: str | None = None,
        inline: bool = False,
    ) -> None:
        """See :meth:`AsyncWorker.register`. From any thread, before or during ``work()``."""
        entry = _Registration(function, handler, time_limit, group, inline)
        with self._lock:
            worker = self._next_worker()
            try:
                self._add(worker, entry)
            except _NotOnLoop:
                pass
            else:
                self._registrations.append(entry)
                return
        # Running: the loop's thread registers it, and this thread waits for the verdict.
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def on_loop() -> None:
            try:
                self._add(worker, entry)
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

        try:
            worker.loop.call_soon_threadsafe(on_loop)
        except RuntimeError:  # the loop closed: that run is over
            raise WorkerError("the worker stopped while registering; register again") from None
        done.result(timeout=30.0)
        with self._lock:
            self._registrations.append(entry)

    @staticmethod
    def _add(worker: AsyncWorker, entry: _Registration) -> None:
        worker.register(
            entry.function,
            entry.handler,
            time_limit=entry.time_limit,
            group=entry.group,
            inline=entry.inline,
        )

    def work(self, *, handle_signals: bool = False) -> None:
        """Serve until :meth:`stop`; may be called again after it returns.

        ``handle_signals`` (main thread only): SIGTERM and SIGINT stop gracefully; a second
        SIGINT stops at once.
        """
        with self._lock:
            if self._working:
                raise WorkerError("this Worker is already working (in another thread)")
            worker = self._next_worker()
            self._working = True
            if self._driven is not worker:
                self._driver = BlockingDriver(worker)
                self._driven = worker
            driver = self._driver
        try:
            driver.run(handle_signals=handle_signals)
        finally:
            with self._lock:
                self._working = False

    run = work

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Ask the worker to stop (see :meth:`AsyncWorker.stop`); returns at once.

        Called before the first ``work()``, that run stops as soon as it starts; once a run
        has ended, it does nothing (the next ``work()`` serves until the next stop)."""
        with self._lock:
            driver = self._driver
        driver.stop(graceful, timeout)
