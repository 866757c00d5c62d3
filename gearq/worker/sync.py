"""The blocking worker: :class:`AsyncWorker` on an event loop of its own.

``work()`` blocks the calling thread; ``stop()`` may be called from any other thread or
from a signal handler (it only asks the loop to stop, and never blocks).
"""

from __future__ import annotations

from typing import Any

from ..net.address import ServerAddress
from .blocking import BlockingDriver
from .worker import AsyncWorker, Handler, WorkerStats

__all__ = ["Worker"]


class Worker:
    """Blocking twin of :class:`AsyncWorker`; takes the same arguments."""

    def __init__(self, servers: Any = None, **options: Any) -> None:
        self._worker = AsyncWorker(servers, **options)
        self._driver = BlockingDriver(self._worker)

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
        self._driver.run(handle_signals=handle_signals)

    run = work

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Ask the worker to stop (see :meth:`AsyncWorker.stop`); returns at once."""
        self._driver.stop(graceful, timeout)
