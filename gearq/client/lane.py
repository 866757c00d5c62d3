"""The lane of a lone blocking call: its packets read and matched without the client's
bookkeeping, which is made only if something other than the expected happens.

A blocking caller that submits a foreground job on an idle connection (nothing else sent
and unanswered on it, nothing else in flight) and then waits for it needs two packets:
its JOB_CREATED and its WORK_COMPLETE. On a machine where a round trip is a few hundred
microseconds, making and feeding a :class:`~gearq.client.job.Job` through the connection's
generic handling (the link's tables, the job's state changes, done callbacks, a pass of
the event loop's machinery) is a large part of it. A :class:`LaneCall` is the submit
without that: the waiting thread reads the connection itself
(:meth:`gearq.client.sync.DrivenLoop.wait_lane`, through :meth:`LaneCall.wait`), and the
two packets, when they come as expected, go straight to ``on_done``. A
:class:`LaneSender` sends such submits of one function, its checks and the packet's fixed
parts done once.

Anything else turns the lane into an ordinary job (:meth:`LaneCall.materialize`): a
packet of another kind (WORK_DATA, WORK_STATUS, WORK_FAIL, an ERROR...) or for another
handle, the connection ending, and anyone else taking the event loop (a second call, a
timer, the driver's background thread, another thread's wait): whoever takes the loop
makes the Job first, registered as if it had been submitted the usual way (waiting for its
JOB_CREATED, or under the handle that came), and the bytes read but not yet handled go to
the connection. From then on the usual machinery has it. Nothing is sent on the connection
while a lane is open (everything that sends runs the loop, which makes the job first), so
the Job takes the place the submit had.
"""

from __future__ import annotations

import os
import select
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..protocol.packets import PacketType
from .job import Job, Priority

if TYPE_CHECKING:
    from ..net.connection import Connection
    from .client import AsyncClient
    from .link import ServerLink

__all__ = ["AWAY", "DONE", "LATE", "MORE", "OTHER", "LaneCall", "LaneSender"]

#: What :meth:`LaneCall.feed` and :meth:`LaneCall.wait` found (see there).
DONE = 1
MORE = 0
OTHER = -1
LATE = 2
AWAY = 3

_HEAD = struct.Struct(">4sII")
_pack_size = struct.Struct(">I").pack
_RES = b"\0RES"
_JOB_CREATED = int(PacketType.JOB_CREATED)
_WORK_COMPLETE = int(PacketType.WORK_COMPLETE)
#: Larger packets than this are gathered by the connection (in parts, not by copying).
_KEEP = 1 << 16
_monotonic = time.monotonic
_POLLIN = select.POLLIN


class LaneCall:
    """A foreground submit sent on an idle connection, not (yet) a :class:`Job`.

    ``on_done(result)`` gets the WORK_COMPLETE payload if it comes the expected way;
    ``on_job(job)`` gets the Job if the lane is made into one. ``owner``: whoever drives
    the lane (a :class:`~gearq.client.sync.DrivenLoop`), for the caller's convenience.
    """

    # Defaults on the class: one of these is made per call (see AsyncResult's).
    handle: bytes | None = None  # from the JOB_CREATED
    job: Job | None = None  # once made into a Job
    rest = b""  # the start of a packet not yet whole
    result: bytes | None = None  # the WORK_COMPLETE payload, once it came
    on_done: Callable[[bytes], None] | None = None
    on_job: Callable[[Job], None] | None = None
    owner: Any = None

    def __init__(
        self,
        link: ServerLink,
        conn: Connection,
        sender: LaneSender,
        payload: bytes,
        owner: Any = None,
    ) -> None:
        self.link = link
        self.conn = conn
        self.sender = sender  # the function and priority, for the Job it may become
        self.payload = payload
        self.owner = owner

    @property
    def open(self) -> bool:
        """Neither made into a Job nor finished (by :meth:`feed`)."""
        return self.job is None and self.result is None

    def feed(self, data: bytes) -> int:
        """Bytes read from the connection (in the thread that owns the loop). DONE: they
        held our WORK_COMPLETE (``on_done`` has been called; hand the connection
        :attr:`rest`, if any); MORE: wait for more; OTHER: something else came, kept in
        :attr:`rest`: :meth:`materialize` now (it hands them on). The caller hands bytes
        on with the loop set as its thread's running loop: the connection's handlers may
        need it (``on_done`` does not)."""
        if self.rest:
            data = self.rest + data
            self.rest = b""
        end = len(data)
        pos = 0
        while end - pos >= 12:
            magic, ptype, size = _HEAD.unpack_from(data, pos)
            stop = pos + 12 + size
            if magic != _RES or stop > end:
                break
            if ptype == _JOB_CREATED and self.handle is None:
                self.handle = data[pos + 12 : stop]
                pos = stop
                continue
            if ptype == _WORK_COMPLETE and self.handle is not None:
                handle, _, result = data[pos + 12 : stop].partition(b"\0")
                if handle == self.handle:
                    return self._finish(result, data[stop:])
            break
        if pos == end:
            return MORE
        rest = self.rest = data[pos:]
        left = len(rest)
        if (left < 12 and _RES.startswith(rest[:4])) or (
            left >= 12 and rest[:4] == _RES and left < 12 + _HEAD.unpack_from(rest)[2] <= _KEEP
        ):
            return MORE  # a packet not yet whole
        # Another packet, or one too large to gather here: the usual way from now on.
        return OTHER

    def wait(self, poll: Any, until: float | None) -> int:
        """Poll, read and match (in the thread that holds the loop but does not run it)
        until this call finished (DONE, as from :meth:`feed`), something else came
        (OTHER, as from :meth:`feed`), ``until`` (``time.monotonic()``; None: no limit)
        passed (LATE), or the loop has to run (AWAY: ``poll``, a ``select.poll`` of this
        call's connection and the loop's wake-up pipe, woke for something else, or the
        read met the end of the stream or an error, which the loop's own read meets too).
        One frame for all of it: the reads of a lone round trip are a large part of it."""
        conn = self.conn
        fd = conn._fd
        inbox = conn._inbox
        buffers = (inbox,)
        readable = [(fd, _POLLIN)]  # what poll() says when only our bytes came
        while True:
            if until is None:
                ready = poll.poll(-1)
            else:
                left = until - _monotonic()
                if left <= 0:
                    return LATE
                # poll() takes whole milliseconds: round up, not to wake early.
                ready = poll.poll(int(left * 1000) + 1)
            if ready != readable and (len(ready) != 1 or ready[0][0] != fd):
                if ready:
                    return AWAY  # woken from another thread, or another connection
                continue
            try:
                size = os.readv(fd, buffers)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return AWAY
            if not size:
                return AWAY
            conn._last_rx = conn._now()
            # The usual read: one whole packet, the JOB_CREATED or then the WORK_COMPLETE
            # (its body copied out of the buffer, not the whole read first).
            if size >= 12 and not self.rest:
                magic, ptype, length = _HEAD.unpack_from(inbox)
                if size == 12 + length and magic == _RES:
                    # (The reply first: what runs after its read is what the caller waits on.)
                    if ptype == _WORK_COMPLETE and self.handle is not None:
                        handle, _, result = inbox[12:size].tobytes().partition(b"\0")
                        if handle == self.handle:
                            return self._finish(result, b"")
                    elif ptype == _JOB_CREATED and self.handle is None:
                        self.handle = inbox[12:size].tobytes()
                        continue
            got = self.feed(inbox[:size].tobytes())
            if got != MORE:
                return got

    def _finish(self, result: bytes, rest: bytes) -> int:
        done = self.on_done
        # Both dropped: they are bound to whoever holds this lane, and a cycle would leave
        # the pair to the garbage collector instead of freeing it at once.
        self.on_done = self.on_job = None
        self.result = result
        if rest:  # not ours (nothing else was in flight): the usual way
            self.rest = rest
        if done is not None:  # (None only if whoever sent it failed to take it)
            done(result)
        return DONE

    def hand_over(self) -> None:
        """Give the connection what was read and not taken (after DONE)."""
        rest = self.rest
        if rest:
            self.rest = b""
            self.conn.data_received(rest)

    def materialize(self) -> Job:
        """Make the Job this call would have been, registered with the link as if
        submitted the usual way, and hand it what was read but not handled."""
        job = self.job
        if job is not None:
            return job
        job = self.job = self._job()
        link = self.link
        handle = self.handle
        if handle is None:
            link.pending.append(job)
        else:
            link.jobs[handle] = job
            job._set_created(handle, link.address)
        on_job = self.on_job
        self.on_done = self.on_job = None  # (see _finish)
        if on_job is not None:
            on_job(job)
        self.hand_over()
        return job

    def completed_job(self) -> Job | None:
        """After :meth:`feed` finished the call: the Job it would have been, complete (for
        whoever asks for it; the link never knew it). None before that."""
        job = self.job
        result = self.result
        if job is None and result is not None:
            job = self.job = self._job()
            assert self.handle is not None
            job._set_created(self.handle, self.link.address)
            job._complete(result)
        return job

    def _job(self) -> Job:
        sender = self.sender
        client = sender.client
        return Job(
            client, sender.function, self.payload, b"", False, sender.priority, None, None,
            client.resubmit_on_failure,
        )  # fmt: skip


class LaneSender:
    """:meth:`AsyncClient.send_lane <gearq.client.client.AsyncClient.send_lane>` for one
    function and priority, with the function checked and the packet's fixed parts made
    once (:meth:`AsyncClient.lane_sender <gearq.client.client.AsyncClient.lane_sender>`),
    for a caller that sends the same call again and again (a task's lone calls)."""

    __slots__ = (
        "client", "fixed", "function", "head", "limit", "links", "middle", "pool", "priority",
    )  # fmt: skip

    def __init__(
        self, client: AsyncClient, function: bytes, head: bytes, priority: Priority
    ) -> None:
        self.client = client
        self.pool = client.pool  # (both made with the client, and never replaced)
        self.links = client._links
        self.function = function
        self.priority = priority
        self.head = head  # magic and type
        self.middle = function + b"\0\0"  # the function, then an empty unique
        self.fixed = len(function) + 2
        # The client's options as they are now (they are set when it is made): a job
        # timeout needs a Job's timer, so no payload is small enough.
        limit = client.max_payload_size
        if client.job_timeout is not None:
            limit = -1
        self.limit = sys.maxsize if limit is None else limit

    def send(self, payload: bytes, owner: Any = None) -> LaneCall | None:
        """Write the submit of ``payload`` and return its lane (with this ``owner``; its
        ``on_done`` and ``on_job`` are still to be set), from the thread that owns the
        loop, if the client can (see ``send_lane``); else None, and nothing was done."""
        if payload.__class__ is not bytes or self.client._closed:
            return None
        size = len(payload)
        if size > self.limit:
            return None
        order: Sequence[int] | None = self.pool.fixed_order
        if order is None:
            # Asked only when its answer is used (a round-robin moves on when asked): so
            # every link that could be the answer must be able to take the lane.
            if not all(link.idle_for_lane() for link in self.links):
                return None
            order = self.pool.candidates(b"")
            if not order:
                return None
        link = self.links[order[0]]
        # ServerLink.idle_for_lane but the connection's part, which send_idle checks.
        if link.pending or link.jobs or link.wbuf or link._writers:
            return None
        conn = link.conn
        if conn is None or not conn.send_idle(
            b"".join((self.head, _pack_size(self.fixed + size), self.middle, payload))
        ):
            return None
        return LaneCall(link, conn, self, payload, owner)
