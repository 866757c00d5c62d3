"""Driving an asyncio worker from blocking code: a loop of its own, signals, stop requests.

Shared by the blocking :class:`~gearq.worker.Worker` and the task layer's blocking worker.
``run()`` blocks the calling thread; ``stop()`` may be called from any other thread or a
signal handler (it only asks the loop to stop, and never blocks), even before ``run()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from typing import Protocol

__all__ = ["BlockingDriver", "Runnable"]


class Runnable(Protocol):
    async def run(self) -> None: ...

    async def stop(self, graceful: bool = True, timeout: float = 30.0) -> None: ...


class BlockingDriver:
    """Runs ``target.run()`` on a new event loop until ``target.stop()`` ends it."""

    def __init__(self, target: Runnable) -> None:
        self._target = target
        # Reentrant: stop() may run in a signal handler on the thread that holds it.
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: tuple[bool, float] | None = None
        self._done = False
        self._stop_tasks: set[asyncio.Task[None]] = set()
        self._signals = 0

    def run(self, *, handle_signals: bool = False) -> None:
        """Serve until stopped. ``handle_signals`` (main thread only): SIGTERM and SIGINT
        stop gracefully; a second SIGINT stops at once."""
        asyncio.run(self._main(handle_signals))

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        with self._lock:
            if self._done:
                return
            loop = self._loop
            if loop is None:
                self._pending = (graceful, timeout)
                return
        # A closed loop means the target has just stopped anyway.
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
            await self._target.run()
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
        task = asyncio.get_running_loop().create_task(self._target.stop(graceful, timeout))
        self._stop_tasks.add(task)
        task.add_done_callback(self._stop_tasks.discard)
