"""Waiting for a loop's connections without running the loop: a pass of the event loop,
done in place by a thread that owns the loop.

When an event loop has nothing to do but wait for its connections (no callback ready, no
timer due, no file descriptor but theirs and its own wake-up pipe, nothing left to
write), the thread that owns it can wait on their sockets itself and read them in place
(:meth:`~gearq.net.Connection.read_in_place`), which handles what arrives exactly as the
loop would. That skips a pass of the loop per wake-up: its selector bookkeeping, its
timer heap, its callback queue and the transport's read path, ~15 µs of CPython per
wake-up on the machines gearq is measured on. As soon as anything else needs the loop (a
callback was scheduled, a timer comes due, another thread wakes it, a connection ends),
:meth:`InPlaceWaiter.wait` says so and the loop runs as usual.

It reads the CPython selector loop's internals (its ready queue, timer heap, selector and
wake-up pipe), so it works only there: :attr:`InPlaceWaiter.usable` is False for other
loops (uvloop, the proactor). It also stands aside while a loop is in debug mode (a wait in
place would read as one long callback to asyncio's slow-callback warnings).
"""

from __future__ import annotations

import asyncio
import select
import weakref
from collections.abc import Callable
from typing import Any

from .connection import Connection, in_place_readers, loop_clock

__all__ = ["BUSY", "DONE", "LEFT", "OFF", "InPlaceWaiter", "waiter_for"]

#: What :meth:`InPlaceWaiter.wait` returns. DONE: it handled what arrived, or the caller's
#: time is up. BUSY: the loop must run now (callbacks ready, a timer due, another thread
#: woke it, a connection ended); waiting in place may work again after one pass of it.
#: OFF: not while the loop watches other file descriptors or has bytes left to write.
#: LEFT (from :meth:`InPlaceWaiter.serve` only): the loop was taken back meanwhile.
DONE = 1
BUSY = 0
OFF = -1
LEFT = -2

_LOOP_PARTS = ("_debug", "_ready", "_scheduled", "_selector", "_ssock", "_stopping")


_WAITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InPlaceWaiter] = (
    weakref.WeakKeyDictionary()
)


def waiter_for(loop: asyncio.AbstractEventLoop) -> InPlaceWaiter:
    """The one :class:`InPlaceWaiter` of ``loop`` (one per loop, so that everything on the
    loop that waits in place shares one :meth:`~InPlaceWaiter.idle_soon`)."""
    waiter = _WAITERS.get(loop)
    if waiter is None:
        waiter = _WAITERS[loop] = InPlaceWaiter(loop)
    return waiter


def _all_cancelled(ready: Any) -> bool:
    """Whether every callback in a loop's ready queue was cancelled (the loop only drops
    them): nothing the loop would run."""
    return all(handle._cancelled for handle in ready)


class InPlaceWaiter:
    """Waits in place for the connections of ``loop`` (see the module docstring). Get it
    with :func:`waiter_for`."""

    __slots__ = (
        "_head",
        "_head_when",
        "_keys",
        "_now",
        "_pending",
        "_poll_obj",
        "_polled",
        "lender",
        "loop",
        "readers",
        "usable",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.readers = in_place_readers(loop)
        #: Whether :meth:`wait` can ever stand in for a pass of ``loop``.
        self.usable = (
            isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
            and hasattr(select, "poll")
            and all(hasattr(loop, name) for name in _LOOP_PARTS)
            and hasattr(getattr(loop, "_selector", None), "_fd_to_key")
        )
        self._poll_obj: Any = None  # a select.poll of the readers and the loop's wake-up pipe
        self._polled: dict[int, Connection] = {}  # the readers in self._poll_obj
        self._pending = False  # idle() is scheduled or running
        # prepare()'s memory: the selector's keys when its checks last passed, and the
        # first timer and its time. A transport with bytes left to write has the loop wait
        # for its socket to be writable (a new key in the selector), so while the keys and
        # the readers stay the same, so does what the readers' checks would find.
        self._keys: list[Any] | None = None
        self._head: Any = None
        self._head_when = 0.0
        self._now = loop_clock(loop)
        #: Called by the loop's thread, instead of waiting itself, when the loop has
        #: nothing to do but wait for the connections (see :meth:`idle_soon`): it may
        #: have another thread :meth:`serve` meanwhile (while this one blocks) and return
        #: what serve returned (BUSY, OFF), or return None to have this thread wait.
        self.lender: Callable[[], int | None] | None = None

    @property
    def idling(self) -> bool:
        """True while :meth:`idle_soon`'s callback is scheduled or waiting in place."""
        return self._pending

    def idle_soon(self) -> None:
        """Wait in place whenever the (running) loop is idle, from a callback of its own,
        from the next pass of the loop on: the connections' packets are then read and
        handled without a pass of the loop each. The loop gets control back as soon as
        it has anything else to do, and the waiting resumes after that pass; it ends
        when waiting in place cannot work (other file descriptors, unwritten bytes, no
        connections left) until the next call. Call it when the loop may soon have
        nothing to do but wait for the connections (a worker's connection went to sleep)."""
        if not self._pending and self.usable:
            self._pending = True
            self.loop.call_soon(self._idle)

    def _idle(self) -> None:
        outcome = OFF
        try:
            lender = self.lender
            if lender is not None:
                # Only a wait that would block is lent (lending costs two thread wake-ups).
                prepared = self.prepare()
                if prepared.__class__ is int:
                    outcome = prepared
                    return
                wait = prepared[1]  # type: ignore[index]
                if wait is not None and wait <= 0:
                    outcome = BUSY  # a timer is due
                    return
                lent = lender()
                if lent is not None:
                    outcome = lent
                    return
            outcome = self.serve()
        finally:
            if outcome == BUSY:
                # After the pass of the loop it needs. No spin: this then either waits
                # in place or finds the loop busy with other work (and there is one such
                # callback per loop, so two users of it cannot keep each other busy).
                self.loop.call_soon(self._idle)
            else:
                self._pending = False

    def serve(self, pending: Any = None, after_read: Callable[[], bool] | None = None) -> int:
        """Wait in place and read what comes, until the loop is needed: BUSY or OFF (see
        their comment). ``after_read``: called after a poll's reads whenever ``pending``
        (a collection) is not empty; if it returns True, stop at once with LEFT (the
        loop has been taken back meanwhile: nothing here may touch it any more).

        The waits of :meth:`idle_soon`, in a loop, the poll inlined (a worker's lone job
        takes two waits, and every call counts on its path); prepare() redoes the checks
        before every poll, as whatever was handled since the last one may change what
        they find. The caller must own the loop (see :meth:`wait`), as a callback of its
        running loop or lent it by the thread that runs it (see :attr:`lender`).
        """
        readers = self.readers
        while True:
            prepared = self.prepare()
            if prepared.__class__ is int:
                return prepared
            poll, wait = prepared  # type: ignore[misc]
            if wait is None:
                ready = poll.poll(-1)
            elif wait <= 0:
                return BUSY  # a timer is due
            else:
                # poll() takes whole milliseconds: round up, not to come back early.
                ready = poll.poll(int(wait * 1000) + 1)
            if not ready:
                return BUSY  # the timer is due
            for fd, _events in ready:
                conn = readers.get(fd)
                if conn is None or not conn.read_in_place():
                    return BUSY  # the wake-up pipe, an EOF
            if pending and after_read is not None and after_read():
                return LEFT

    def wait(self, left: float | None, *, running: bool = False) -> int:
        """Wait up to ``left`` seconds (None: no limit) for the connections to be
        readable, and read them in this thread: DONE, BUSY or OFF (see their comment).

        ``running``: called from a callback of the running loop (else the loop is set as
        this thread's running loop while what arrives is handled). The caller must own
        the loop: its thread runs it, or holds it while nobody does.
        """
        ready = self._poll(left)
        if isinstance(ready, int):
            return ready
        loop = self.loop
        readers = self.readers
        handled = False
        if not running:
            asyncio.events._set_running_loop(loop)
        try:
            for fd, _events in ready:
                conn = readers.get(fd)
                if conn is None or not conn.read_in_place():
                    return DONE if handled else BUSY  # the wake-up pipe, an EOF
                handled = True
        finally:
            if not running:
                asyncio.events._set_running_loop(None)
        return DONE

    def prepare(self) -> tuple[Any, float | None] | int:
        """The checks of a wait: BUSY or OFF (see their comment), or a ``select.poll`` of
        the connections and the loop's wake-up pipe, with how long until the loop's next
        timer (None: none). For a caller that polls and reads itself (see
        :meth:`gearq.client.sync.DrivenLoop.wait_lane`): until it gives the loop back,
        only another thread (through the wake-up pipe) or the caller itself can change
        what these checks found."""
        loop: Any = self.loop
        ready = loop._ready
        if (ready and not _all_cancelled(ready)) or loop._stopping:
            return BUSY
        readers = self.readers
        # (The selector's own fd map, not get_map(): two Python calls fewer a wait.)
        fd_to_key = loop._selector._fd_to_key
        if len(fd_to_key) != len(readers) + 1:
            # Other file descriptors than the connections and the wake-up pipe: checked
            # first, so that a loop with many (a server's) costs no list of them per wait.
            self._keys = None
            return OFF
        keys = [*fd_to_key.values()]
        poll = self._poll_obj
        if keys != self._keys or readers != self._polled or loop._debug:
            self._keys = None
            if not readers or loop._debug:
                return OFF
            for reader in readers.values():
                if not reader.ready_in_place():
                    return OFF
            if poll is None or readers != self._polled:
                poll = self._pollable()
            self._keys = keys
        scheduled = loop._scheduled
        if not scheduled:
            return poll, None
        first = scheduled[0]
        if first is not self._head:  # (a timer's time never changes)
            self._head, self._head_when = first, first.when()
        return poll, self._head_when - self._now()

    def _pollable(self) -> Any:
        """A new ``select.poll`` of the readers and the loop's wake-up pipe (they changed)."""
        loop: Any = self.loop
        poll = self._poll_obj = select.poll()
        self._polled = dict(self.readers)
        for fd in self._polled:
            poll.register(fd, select.POLLIN)
        poll.register(loop._ssock.fileno(), select.POLLIN)
        return poll

    def _poll(self, left: float | None) -> int | list[tuple[int, int]]:
        """The checks of a wait, then the poll: an outcome, or what poll() found."""
        prepared = self.prepare()
        if isinstance(prepared, int):
            return prepared
        poll, wait = prepared
        timer = False
        if wait is not None:
            if wait <= 0:
                return BUSY
            if left is None or wait < left:
                left, timer = wait, True
        # poll() takes whole milliseconds: round up, so that nothing comes due early.
        ready: list[tuple[int, int]] = poll.poll(-1 if left is None else int(left * 1000) + 1)
        if not ready:
            return BUSY if timer else DONE  # DONE: the caller's own time is up
        return ready
