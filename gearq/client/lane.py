"""The lane of a lone blocking call: its packets read and matched without the client's
bookkeeping, which is made only if something other than the expected happens.

A blocking caller that submits a foreground job on an idle connection (nothing else sent
and unanswered on it, nothing else in flight) and then waits for it needs two packets:
its JOB_CREATED and its WORK_COMPLETE. On a machine where a round trip is a few hundred
microseconds, making and feeding a :class:`~gearq.client.job.Job` through the connection's
generic handling (the link's tables, the job's state changes, done callbacks, a pass of
the event loop's machinery) is a large part of it. A :class:`LaneCall` is the submit
without that: the waiting thread reads the connection itself
(:meth:`gearq.client.sync.DrivenLoop.wait_lane`), and the two packets, when they come
as expected, go straight to ``on_done``.

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

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.packets import PacketType
from .job import Job, Priority

if TYPE_CHECKING:
    from ..net.connection import Connection
    from .link import ServerLink

__all__ = ["DONE", "MORE", "OTHER", "LaneCall"]

#: What :meth:`LaneCall.feed` found (see there).
DONE = 1
MORE = 0
OTHER = -1

_HEAD = struct.Struct(">4sII")
_RES = b"\0RES"
_JOB_CREATED = int(PacketType.JOB_CREATED)
_WORK_COMPLETE = int(PacketType.WORK_COMPLETE)
#: Larger packets than this are gathered by the connection (in parts, not by copying).
_KEEP = 1 << 16


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
        function: bytes,
        payload: bytes,
        priority: Priority,
        resubmit: bool,
        on_done: Callable[[bytes], None] | None = None,
        on_job: Callable[[Job], None] | None = None,
        owner: Any = None,
    ) -> None:
        self.link = link
        self.conn = conn
        self.function = function
        self.payload = payload
        self.priority = priority
        self.resubmit = resubmit
        self.on_done = on_done
        self.on_job = on_job
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
        end = len(data)
        if self.rest:
            data = self.rest + data
            self.rest = b""
            end = len(data)
        elif end >= 12:
            # The usual read: one whole packet, the JOB_CREATED or then the WORK_COMPLETE.
            magic, ptype, size = _HEAD.unpack_from(data)
            if magic == _RES and end == 12 + size:
                if ptype == _JOB_CREATED and self.handle is None:
                    self.handle = data[12:]
                    return MORE
                if ptype == _WORK_COMPLETE and self.handle is not None:
                    handle, _, result = data[12:].partition(b"\0")
                    if handle == self.handle:
                        return self._finish(result, end, data)
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
                    return self._finish(result, stop, data)
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

    def _finish(self, result: bytes, stop: int, data: bytes) -> int:
        done = self.on_done
        # Both dropped: they are bound to whoever holds this lane, and a cycle would leave
        # the pair to the garbage collector instead of freeing it at once.
        self.on_done = self.on_job = None
        self.result = result
        if stop < len(data):  # not ours (nothing else was in flight): the usual way
            self.rest = data[stop:]
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
        return Job(
            self.link.client, self.function, self.payload, b"", False, self.priority, None, None,
            self.resubmit,
        )  # fmt: skip
