"""The blocking worker: :class:`AsyncWorker` on an event loop of its own.

``work()`` blocks the calling thread; ``stop()`` may be called from any other thread or
from a signal handler (it only asks the loop to stop, and never blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from typing import Any

from ..net.address import ServerAddress
from .worker import AsyncWorker, Handler, WorkerStats

__all__ = ["Worker"]


class Worker:
    """Blocking twin of :class:`AsyncWorker`; takes the same arguments."""

    def __init__(self, servers: Any = None, **options: Any) -> None:
        self._worker = AsyncWorker(servers, **options)
        # Reentrant: stop() may run in a signal handler on the thread that holds it.
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: tuple[bool, float] | None = None
        self._done = False
        self._stop_tasks: set[asyncio.Task[None]] = set()
        self._signals = 0

    @property
    def async_worker(self) -> AsyncWorker:
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
        """See :meth:`AsyncWorker.register`."""
        self._worker.register(function, handler, time_limit=time_limit, group=group, inline=inline)

    def work(self, *, handle_signals: bool = False) -> None:
        """Serve until :meth:`stop`.

        ``handle_signals`` (main thread only): SIGTERM and SIGINT stop gracefully; a second
        SIGINT stops at once.
        """
        asyncio.run(self._main(handle_signals))

    run = work

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Ask the worker to stop (see :meth:`AsyncWorker.stop`); returns at once."""
        with self._lock:
            if self._done:
                return
            loop = self._loop
            if loop is None:
                self._pending = (graceful, timeout)
                return
        # A closed loop means the worker has just stopped anyway.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._start_stop, graceful, timeout)

    async def _main(self, handle_signals: bool) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._loop = loop
            pending, self._pending = self._pending, None
        if pending is not None:
            self._start_stop(*pending)
        if handle_signals:
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
            loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
        try:
            await self._worker.run()
        finally:
            if handle_signals:
                loop.remove_signal_handler(signal.SIGTERM)
                loop.remove_signal_handler(signal.SIGINT)
            with self._lock:
                self._loop = None
                self._done = True

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        self._start_stop(graceful=self._signals == 1 or signum != signal.SIGINT, timeout=30.0)

    def _start_stop(self, graceful: bool, timeout: float) -> None:
        task = asyncio.get_running_loop().create_task(self._worker.stop(graceful, timeout))
        self._stop_tasks.add(task)
        task.add_done_callback(self._stop_tasks.discard)
