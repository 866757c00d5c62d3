"""One job server as the client sees it: a lazily opened connection, the requests waiting
for their in-order replies, and the foreground jobs waiting for WORK_* packets.

gearmand answers the requests of one connection strictly in order (JOB_CREATED,
STATUS_RES, STATUS_RES_UNIQUE, OPTION_RES, ECHO_RES, or an ERROR in place of any of them),
so a deque is all the matching needs. Everything that would get no answer is refused
before sending, so the deque cannot drift; a reply of the wrong kind aborts the connection
rather than hand results to the wrong callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Union

from ..net.address import ServerAddress
from ..net.connection import Connection
from ..net.errors import ConnectFailed, ConnectionLost
from ..protocol.codec import encode_request
from ..protocol.packets import Packet, PacketType
from .errors import ClientClosed, JobException, JobFailed, QueueFull, ServerRejected
from .feed import ROOM, Span, SpanWriter
from .job import Job, JobState
from .many import BatchEntry, ForegroundBatch, ForegroundSpan
from .submit import FLUSH_AT
from .wire import ClientConnection

if TYPE_CHECKING:
    from .client import AsyncClient

__all__ = ["FLUSH_AT", "Request", "ServerLink", "Span"]

log = logging.getLogger("gearq.client")

_T = PacketType
_JOB_CREATED = _T.JOB_CREATED
_WORK_COMPLETE = _T.WORK_COMPLETE
_WORK_DATA = _T.WORK_DATA
_WORK_WARNING = _T.WORK_WARNING
_WORK_STATUS = _T.WORK_STATUS
_WORK_FAIL = _T.WORK_FAIL
_WORK_EXCEPTION = _T.WORK_EXCEPTION
_ERROR = _T.ERROR
_REPLIES = frozenset({_T.STATUS_RES, _T.STATUS_RES_UNIQUE, _T.OPTION_RES, _T.ECHO_RES})
_TERMINAL = frozenset({_WORK_COMPLETE, _WORK_FAIL, _WORK_EXCEPTION})
_PENDING = JobState.PENDING

# A batch waiting for room in its window looks this often whether it should give up.
_ROOM_POLL = 0.5


class Request:
    """A non-submit request waiting for its reply; ``future`` None: the connect handshake."""

    __slots__ = ("expect", "future")

    def __init__(self, expect: PacketType, future: asyncio.Future[tuple[bytes, ...]] | None):
        self.expect = expect
        self.future = future


class _Group:
    """Several jobs of this connection coalesced onto one handle.

    gearmand then sends every WORK_* packet once per attached submit, back to back, so
    copy k of a packet belongs to job k.
    """

    __slots__ = ("cursor", "jobs")

    def __init__(self, jobs: list[Job | BatchEntry]) -> None:
        self.jobs = jobs
        self.cursor = 0


_Pending = Union[Job, Request, Span, ForegroundSpan]  # noqa: UP007 (a runtime alias on 3.10)
_Entry = Union[Job, _Group, BatchEntry]  # noqa: UP007


def _int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


class ServerLink:
    """The client's state for one server."""

    __slots__ = (
        "_flush_handle",
        "_flush_later",
        "_loop",
        "_lost_error",
        "_open_task",
        "_writers",
        "address",
        "client",
        "conn",
        "index",
        "jobs",
        "pending",
        "unanswered",
        "wbuf",
        "wsize",
    )

    def __init__(self, client: AsyncClient, index: int, address: ServerAddress) -> None:
        self.client = client
        self.index = index
        self.address = address
        self.conn: Connection | None = None
        self.pending: deque[_Pending] = deque()
        self.jobs: dict[bytes, _Entry] = {}
        self.wbuf: list[bytes] = []
        self.wsize = 0
        self._flush_handle: asyncio.Handle | None = None
        self._flush_later = False
        self._open_task: asyncio.Task[None] | None = None
        self._lost_error: ConnectionLost | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Jobs of batch spans sent and not answered yet (the batch window).
        self.unanswered = 0
        #: Batches waiting for room in the window, refilled by each read.
        self._writers: list[tuple[SpanWriter, asyncio.Future[int]]] = []

    # -- connecting ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection unless it is open. Raises :class:`ConnectFailed`."""
        if self.conn is not None:
            return
        task = self._open_task
        if task is None:
            task = self._open_task = asyncio.get_running_loop().create_task(self._open())
            # Retrieved here too, so a failure that every waiter gave up on is not logged
            # as "never retrieved".
            task.add_done_callback(_retrieve)
        # Shielded: one caller giving up must not abort the connect the others wait for.
        await asyncio.shield(task)

    async def _open(self) -> None:
        client = self.client
        try:
            conn = await ClientConnection.open(
                self.address, client.options, self._on_packet, self._on_lost
            )
            if not conn.is_open:
                raise ConnectFailed(self.address, "closed while connecting")
        except ConnectFailed as exc:
            client._connect_failed(self, exc)
            raise
        finally:
            self._open_task = None
        if client.closed:
            conn.close()
            raise ClientClosed("the client was closed while connecting")
        self._loop = asyncio.get_running_loop()
        assert isinstance(conn, ClientConnection)
        conn.on_created = self.created
        conn.on_complete = self.complete
        conn.on_read_end = self._read_end
        self.conn = conn
        self._lost_error = None
        # Pipelined ahead of any submit: the server applies them first, no round trip.
        self.pending.append(Request(_T.OPTION_RES, None))
        self.write(client._hello)
        client._connected(self)

    # -- sending ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes; they go out together at the end of this loop iteration."""
        self.wbuf.append(data)
        self.wsize += len(data)
        if self._flush_handle is None:
            loop = self._loop
            assert loop is not None
            self._flush_handle = loop.call_soon(self._scheduled_flush)

    def send_job(self, job: Job, packet: bytes) -> None:
        self.pending.append(job)
        self.write(packet)

    def send_span(self, span: ForegroundSpan | Span, packets: bytes, in_read: bool) -> bool:
        """Queue a span's submits; returns whether they were flushed (FLUSH_AT bytes
        queued). ``in_read``: sent while a read is handled, which flushes when it ends
        (no flush is scheduled, so no extra loop iteration either)."""
        self.pending.append(span)
        self.wbuf.append(packets)
        self.wsize += len(packets)
        if self.wsize >= FLUSH_AT:
            self.flush()
            return True
        if not in_read and self._flush_handle is None:
            assert self._loop is not None
            self._flush_handle = self._loop.call_soon(self._scheduled_flush)
        return False

    def send_request(
        self, ptype: PacketType, args: tuple[bytes, ...], expect: PacketType
    ) -> asyncio.Future[tuple[bytes, ...]]:
        assert self._loop is not None
        fut: asyncio.Future[tuple[bytes, ...]] = self._loop.create_future()
        self.pending.append(Request(expect, fut))
        self.write(encode_request(ptype, *args))
        return fut

    async def wait_room(self, writer: SpanWriter) -> int:
        """Wait while this link's reads refill ``writer``; returns the state its last
        fill stopped at (DONE or DRAIN), or ROOM when the connection is lost or
        _ROOM_POLL seconds passed (so the caller can look whether to give up)."""
        assert self._loop is not None
        fut: asyncio.Future[int] = self._loop.create_future()
        entry = (writer, fut)
        self._writers.append(entry)
        timer = self._loop.call_later(_ROOM_POLL, _set_room, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            if entry in self._writers:
                self._writers.remove(entry)

    def idle_for_lane(self) -> bool:
        """Open and idle: nothing sent and unanswered, no job in flight, nothing queued or
        left to write, no batch waiting for room; and its connection can be read in
        place (see gearq.client.lane)."""
        conn = self.conn
        return (
            conn is not None
            and not (self.pending or self.jobs or self.wbuf or self._writers)
            and conn.ready_in_place()
        )

    def _refill(self) -> None:
        """Write the submits of waiting batches that the window has room for now."""
        writers = self._writers
        while writers and self.conn is not None:
            writer, fut = writers[0]
            if writer.batch.done:  # timed out or closed: nothing more of it is sent
                writers.pop(0)
                _set_room(fut)
                continue
            state = writer.fill(True)
            if state == ROOM:
                break
            writers.pop(0)
            if not fut.done():
                fut.set_result(state)

    def _wake_writers(self) -> None:
        writers = self._writers[:]
        self._writers.clear()
        for _, fut in writers:
            _set_room(fut)

    def _read_end(self) -> None:
        """The packets of one read are handled: refill the ForegroundBatches they freed
        slots of, and send what that wrote now, in this loop iteration, except on a link
        whose flush is scheduled (behind the wake-ups of single jobs that ended in this
        read, so that what their waiters submit next leaves in the same write)."""
        client = self.client
        if self._writers:
            self._refill()
            if self.wbuf and self._flush_handle is None:
                self.flush()
        if client._due:
            client._run_due()
            for link in client._links:
                if link.wbuf and link._flush_handle is None:
                    link.flush()

    def _scheduled_flush(self) -> None:
        if self._flush_later:
            # Wake-ups were queued behind this call: step behind them (once per read).
            self._flush_later = False
            self._flush_handle = self._loop.call_soon(  # type: ignore[union-attr]
                self._scheduled_flush
            )
            return
        self._flush_handle = None
        self.flush()

    def flush(self) -> None:
        self._flush_later = False
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        buf = self.wbuf
        if not buf:
            return
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        self.wsize = 0
        conn = self.conn
        if conn is not None:
            # On failure _on_lost fails what was waiting.
            with contextlib.suppress(ConnectionLost):
                conn.send(data)

    async def drain(self) -> None:
        await asyncio.sleep(0)
        conn = self.conn
        if conn is not None:
            with contextlib.suppress(ConnectionLost):
                await conn.drain()

    # -- receiving ----------------------------------------------------------------------------

    def _on_packet(self, packet: Packet) -> None:
        t = packet.type
        args = packet.args
        if t is _JOB_CREATED:
            self.created([args[0]])
        elif t is _WORK_COMPLETE:
            self.complete(args[0], args[1])
        elif t is _WORK_DATA or t is _WORK_STATUS or t is _WORK_WARNING:
            entry = self.jobs.get(args[0])
            if entry is None:
                return
            if entry.__class__ is Job:
                self._deliver(entry, t, args)
            elif entry.__class__ is _Group:
                self._group_packet(args[0], entry, t, args)
            # A job of a ForegroundBatch: progress packets are not kept.
        elif t is _WORK_FAIL or t is _WORK_EXCEPTION:
            handle = args[0]
            entry = self.jobs.get(handle)
            if entry is None:
                return
            if entry.__class__ is _Group:
                self._group_packet(handle, entry, t, args)
            else:
                del self.jobs[handle]
                self._deliver(entry, t, args)  # type: ignore[arg-type]
        elif t in _REPLIES:
            self._on_reply(t, args)
        elif t is _ERROR:
            self._on_error(args[0], args[1])
        else:
            log.warning("%s: unexpected %s packet ignored", self.address, t.name)

    def created(self, handles: list[bytes]) -> None:
        """A run of JOB_CREATED packets: the hot path. The replies to a span of a batch
        are stored a span at a time; a submit's job is updated inline."""
        pending = self.pending
        address = self.address
        done = 0
        total = len(handles)
        while done < total:
            before = done
            try:
                head = pending[0] if pending else None
                if head.__class__ is Span:
                    assert isinstance(head, Span)
                    batch = head.batch
                    pos = head.pos
                    take = min(total - done, head.count - pos)
                    indices = head.indices[pos : pos + take]
                    mine = handles[done : done + take] if done or take < total else handles
                    done += take
                    head.pos = pos + take
                    if head.pos == head.count:
                        pending.popleft()
                    self.unanswered -= take
                    errors = batch.errors
                    if not errors and indices.__class__ is range and take:
                        first = indices[0]
                        batch.handles[first : first + take] = mine
                        batch.servers[first : first + take] = [address] * take
                    else:
                        for index, handle in zip(indices, mine, strict=True):
                            # A job that already ended (client-side timeout) keeps its error.
                            if errors and index in errors:
                                take -= 1
                            else:
                                batch.handles[index] = handle
                                batch.servers[index] = address
                    batch._left -= take
                    if take and not batch._left:
                        batch._done()
                    continue
                if head.__class__ is ForegroundSpan:
                    assert isinstance(head, ForegroundSpan)
                    fbatch = head.batch
                    pos = head.pos
                    take = min(total - done, head.count - pos)
                    jobs = self.jobs
                    fhandles = fbatch.handles
                    fservers = fbatch.servers
                    for index, handle in zip(
                        head.indices[pos : pos + take], handles[done : done + take], strict=True
                    ):
                        entry = (fbatch, index)
                        # Registered even if the job ended (timed out): with coalesced
                        # submits the number attached decides which packet copy is whose.
                        if jobs.setdefault(handle, entry) is not entry:
                            self._attach(handle, entry)
                        fhandles[index] = handle
                        fservers[index] = address
                    done += take
                    head.pos = pos + take
                    if head.pos == head.count:
                        pending.popleft()
                    continue
                handle = handles[done]
                done += 1
                if head.__class__ is Job and head.state is _PENDING:
                    assert isinstance(head, Job)
                    pending.popleft()
                    if head.background or self.jobs.setdefault(handle, head) is head:
                        head._set_created(handle, address)
                    else:
                        self._on_created(handle, head)  # coalesced with a job of ours
                else:
                    self._on_created(handle)
            except Exception:
                # A bug here must not lose the replies after it (nor loop forever).
                log.exception("%s: error while handling JOB_CREATED", address)
                if done == before:
                    done += 1

    def complete(self, handle: bytes, result: bytes) -> None:
        """WORK_COMPLETE: the other packet every foreground job gets."""
        entry = self.jobs.pop(handle, None)
        if entry is None:
            return  # finished, timed out, or never ours: ignore
        if entry.__class__ is Job:
            if not entry._complete(result):
                return  # nobody wakes up to submit more: no flush to line up
        elif entry.__class__ is tuple:
            entry[0]._complete(entry[1], result)  # refilled and flushed by _read_end
            return
        else:
            self.jobs[handle] = entry
            self._group_packet(handle, entry, _WORK_COMPLETE, (handle, result))  # type: ignore[arg-type]
        # The flush goes behind the wake-ups of the waiters of the jobs completed in this
        # read, so what they submit next leaves in one write, in the same loop iteration,
        # instead of one write per job or a loop iteration later.
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(  # type: ignore[union-attr]
                self._scheduled_flush
            )
        else:
            self._flush_later = True

    def _on_created(self, handle: bytes, job: _Pending | None = None) -> None:
        if job is None:
            if not self.pending:
                self._desync(f"JOB_CREATED {handle!r} with no submit pending")
                return
            job = self.pending.popleft()
        if job.__class__ is not Job:
            self.pending.appendleft(job)  # failed with the rest when the connection drops
            self._desync(f"JOB_CREATED {handle!r} where {_describe(job)} was due")
            return
        assert isinstance(job, Job)
        if job.background:
            if job.state is _PENDING:
                job._set_created(handle, self.address)
            return
        # Registered even if the job already timed out: with coalesced submits the number
        # of attached jobs decides which copy of each packet is whose.
        jobs = self.jobs
        entry = jobs.get(handle)
        if entry is None:
            jobs[handle] = job
        elif entry is not job:
            self._attach(handle, job)
        if job.state is _PENDING:
            job._set_created(handle, self.address)
        else:
            job.handle = handle
            job.server = self.address

    def _attach(self, handle: bytes, job: Job | BatchEntry) -> None:
        """A second submit of ours coalesced onto ``handle``'s job."""
        entry = self.jobs[handle]
        if entry.__class__ is _Group:
            entry.jobs.append(job)
        else:
            self.jobs[handle] = _Group([entry, job])  # type: ignore[list-item]

    def _group_packet(
        self, handle: bytes, group: _Group, t: PacketType, args: tuple[bytes, ...]
    ) -> None:
        job = group.jobs[group.cursor]
        group.cursor = (group.cursor + 1) % len(group.jobs)
        if t in _TERMINAL and group.cursor == 0:
            del self.jobs[handle]
        self._deliver(job, t, args)

    def _deliver(self, job: Job | BatchEntry, t: PacketType, args: tuple[bytes, ...]) -> None:
        if job.__class__ is tuple:
            assert isinstance(job, tuple)
            self._deliver_batch(job[0], job[1], t, args)
            return
        assert isinstance(job, Job)
        if t is _WORK_COMPLETE:
            job._complete(args[1])
        elif t is _WORK_DATA:
            job._on_data(args[1])
        elif t is _WORK_STATUS:
            job._on_status(_int(args[1]), _int(args[2]))
        elif t is _WORK_WARNING:
            job._on_warning(args[1])
        elif t is _WORK_FAIL:
            error = JobFailed("the job failed", server=self.address, handle=args[0])
            job._finish(JobState.FAILED, error, "fail", None)
        elif t is _WORK_EXCEPTION:
            exc = JobException(args[1], server=self.address, handle=args[0])
            job._finish(JobState.EXCEPTION, exc, "exception", args[1])

    def _deliver_batch(
        self, batch: ForegroundBatch, index: int, t: PacketType, args: tuple[bytes, ...]
    ) -> None:
        if t is _WORK_COMPLETE:
            batch._complete(index, args[1])
        elif t is _WORK_FAIL:
            error = JobFailed("the job failed", server=self.address, handle=args[0])
            batch._fail(index, error, in_read=True)
        elif t is _WORK_EXCEPTION:
            exc = JobException(args[1], server=self.address, handle=args[0])
            batch._fail(index, exc, in_read=True)

    def _on_reply(self, t: PacketType, args: tuple[bytes, ...]) -> None:
        if not self.pending:
            self._desync(f"{t.name} with no request pending")
            return
        item = self.pending[0]
        if item.__class__ is not Request or item.expect is not t:
            # Left in the deque, so dropping the connection fails it with the rest.
            self._desync(f"{t.name} where {_describe(item)} was due")
            return
        self.pending.popleft()
        assert isinstance(item, Request)
        if item.future is None:
            self.client._handshake_ok(self)
        elif not item.future.done():
            item.future.set_result(args)

    def _on_error(self, code: bytes, text: bytes) -> None:
        code_s = code.decode("ascii", "replace")
        text_s = text.decode("utf-8", "replace")
        cls = QueueFull if code == b"QUEUE_ERROR" else ServerRejected
        error = cls(self.address, code_s, text_s)
        # gearmand answers in order, so the ERROR stands for the oldest request's reply.
        item = self.pending[0] if self.pending else None
        if isinstance(item, Span):
            index = item.indices[item.pos]
            item.pos += 1
            if item.pos == item.count:
                self.pending.popleft()
            self.unanswered -= 1
            item.batch._fail(index, error)
        elif isinstance(item, ForegroundSpan):
            index = item.indices[item.pos]
            item.pos += 1
            if item.pos == item.count:
                self.pending.popleft()
            item.batch._fail(index, error, in_read=True)
        elif item is not None:
            self.pending.popleft()
        if isinstance(item, Job):
            if item.state is _PENDING:
                item._finish(JobState.ERROR, error, "error", error)
        elif isinstance(item, Request) and item.future is not None and not item.future.done():
            item.future.set_exception(error)
        self.client._server_error(self, error, item)

    def _desync(self, what: str) -> None:
        log.error("%s: protocol out of step (%s); dropping the connection", self.address, what)
        self._lost_error = ConnectionLost(self.address, f"protocol out of step: {what}")
        if self.conn is not None:
            self.conn.abort()

    # -- losing the connection ----------------------------------------------------------------

    def _on_lost(self, conn: Connection, error: ConnectionLost | None) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.wbuf.clear()
        self.wsize = 0
        self.unanswered = 0
        self._wake_writers()  # a batch waiting for room sees the connection gone
        error = error or self._lost_error
        self._lost_error = None
        pending = list(self.pending)
        self.pending.clear()
        jobs: list[Job | BatchEntry] = []
        for entry in self.jobs.values():
            if isinstance(entry, _Group):
                jobs.extend(entry.jobs)
            else:
                jobs.append(entry)
        self.jobs.clear()
        self.client._link_lost(self, error, pending, jobs)

    def close(self) -> None:
        """Close on purpose, after sending what is buffered. A connect in progress is
        left to finish (its waiters then get ClientClosed, not a stray CancelledError)."""
        if self.conn is not None:
            self.flush()
            self.conn.close()


def _set_room(fut: asyncio.Future[int]) -> None:
    if not fut.done():
        fut.set_result(ROOM)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _describe(item: _Pending) -> str:
    if isinstance(item, (Job, Span, ForegroundSpan)):
        return "a JOB_CREATED"
    return f"a {item.expect.name}"
