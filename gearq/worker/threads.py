"""The threads plain handlers run in.

Not a ThreadPoolExecutor, for two reasons: its threads are joined at interpreter exit, so
one handler stuck past its time limit would keep a stopped worker process alive forever;
and a Future and a semaphore round per job are work nobody needs here. Threads start on
demand, up to ``size``: the owner (on one thread) calls :meth:`submit` and, once it has
taken the call's result, :meth:`done`, so it knows how many calls are in flight.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["HandlerThreads"]

log = logging.getLogger("gearq.worker")

_Item = tuple[Callable[..., object], tuple[Any, ...]] | None


class HandlerThreads:
    """Up to ``size`` daemon threads taking calls from one queue."""

    def __init__(self, size: int, name: str = "gearq-job") -> None:
        self.size = size
        self.name = name
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0
        self._closed = False

    def submit(self, fn: Callable[..., object], *args: Any) -> None:
        if self._closed:
            raise RuntimeError("the handler threads have been shut down")
        self._queue.put((fn, args))
        self._in_flight += 1
        # A call counts until done(): a thread about to be free may still get a twin.
        started = len(self._threads)
        if self._in_flight > started and started < self.size:
            thread = threading.Thread(target=self._run, name=f"{self.name}-{started}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # the callers catch their own; this is a last resort
                log.exception("error in a handler thread")

    def done(self) -> None:
        """One submitted call has finished (called by the submitting side)."""
        self._in_flight -= 1

    def shutdown(self) -> None:
        """Let idle threads end; busy ones end after their call (they are daemons, so a
        stuck one does not keep the process alive)."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)

    @property
    def threads(self) -> int:
        return len(self._threads)
