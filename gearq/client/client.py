"""The asyncio client: submit jobs to a pool of job servers, with failover.

One connection per server, opened on first use and kept. Submits are pipelined: ``submit``
returns the :class:`Job` as soon as the request is queued for the socket, and many jobs
share one connection and one write per loop iteration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as _ssl
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

from ..net.address import ServerAddress, ServerSpec, parse_servers
from ..net.connection import ConnectionOptions
from ..net.errors import ConnectFailed, ConnectionLost
from ..net.recover import RecoverPolicy
from ..protocol.codec import encode_request
from ..protocol.errors import ArgumentError, GearqError
from ..protocol.limits import (
    MAX_UNIQUE,
    check_client_id,
    check_function,
    check_handle,
    check_unique,
)
from ..protocol.packets import PacketType
from .errors import ClientClosed, JobConnectionLost, NoServerAvailable, detail
from .feed import DONE, DRAIN, ROOM, Span, SpanWriter
from .job import BackgroundBatch, Job, JobState, JobStatus, Priority, UniqueStatus
from .lane import LaneCall, LaneSender
from .link import FLUSH_AT, Request, ServerLink
from .many import BatchEntry, ForegroundBatch, ForegroundSpan, check_payloads, check_uniques
from .pool import ServerPool, Strategy, make_strategy
from .submit import (
    BG_HEAD,
    FG_HEAD,
    HEARTBEAT_TOKEN,
    MAX_FUNCTION_CACHE,
    NORMAL,
    NUL,
    SUBMIT_HEADS,
    encode_submit,
    make_job,
    new_unique,
    new_uniques,
    to_bytes,
)

__all__ = ["AsyncClient", "ClientEvent"]

log = logging.getLogger("gearq.client")

_T = PacketType
ClientEvent = Literal["connect", "disconnect", "error"]
#: ``callback(server, error)``: error is None for ``connect`` and for a ``disconnect``
#: the client asked for.
ClientCallback = Callable[[ServerAddress, "BaseException | None"], object]


class AsyncClient:
    """Submit jobs to one or more gearmand servers.

    :param servers: ``"host:port"`` strings (comma-separated allowed), ``(host, port)``
        tuples, dicts with ``host``/``port`` (defaults localhost, 4730), or ServerAddress.
    :param strategy: ``"sequence"`` (first healthy server, back to it once it recovers),
        ``"round_robin"``, ``"random"``, ``"unique_hash"`` or a :class:`Strategy`.
    :param recover_time: seconds a server that failed (refused, dropped, stopped answering
        heartbeats) is skipped; ``recover_backoff`` multiplies it per failure in a row, up
        to ``max_recover_time``. ``recover_policy`` overrides all three.
    :param heartbeat_interval: idle seconds before an ECHO checks the server;
        ``heartbeat_timeout``: seconds it may take to answer. A frozen server is noticed,
        and its jobs failed, within their sum.
    :param max_payload_size: refuse larger payloads with :class:`PayloadTooLarge`.
    :param resubmit_on_failure: default for ``submit``: resubmit jobs whose connection was
        lost with the same unique to another server (only for idempotent work).
    :param job_timeout: default client-side timeout of ``submit``.
    """

    def __init__(
        self,
        servers: str | ServerSpec | Iterable[ServerSpec] | None = None,
        *,
        strategy: str | Strategy = "sequence",
        recover_time: float = 30.0,
        recover_backoff: float = 1.0,
        max_recover_time: float | None = None,
        recover_policy: RecoverPolicy | None = None,
        connect_timeout: float = 5.0,
        heartbeat_interval: float | None = 5.0,
        heartbeat_timeout: float = 5.0,
        keepalive: bool = True,
        ssl: _ssl.SSLContext | None = None,
        ssl_server_hostname: str | None = None,
        client_id: str | bytes | None = None,
        max_payload_size: int | None = None,
        resubmit_on_failure: bool = False,
        job_timeout: float | None = None,
        options: ConnectionOptions | None = None,
    ) -> None:
        addresses = parse_servers(servers)
        if recover_policy is None:
            recover_policy = RecoverPolicy(
                recover_time=recover_time,
                backoff=recover_backoff,
                max_recover_time=max(max_recover_time or 300.0, recover_time),
            )
        self.options = options or ConnectionOptions(
            connect_timeout=connect_timeout,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            keepalive=keepalive,
            ssl=ssl,
            ssl_server_hostname=ssl_server_hostname,
        )
        self.pool = ServerPool(addresses, make_strategy(strategy), recover_policy)
        if client_id is None:
            client_id = f"gearq-client-{os.getpid()}"
        self.client_id = check_client_id(to_bytes(client_id, "client_id"))
        if max_payload_size is not None and max_payload_size < 0:
            raise ArgumentError("max_payload_size must be >= 0")
        self.max_payload_size = max_payload_size
        self.resubmit_on_failure = resubmit_on_failure
        if job_timeout is not None and job_timeout <= 0:
            raise ArgumentError("job_timeout must be positive")
        self.job_timeout = job_timeout
        self._links = [ServerLink(self, i, a) for i, a in enumerate(addresses)]
        self._by_address = {link.address: link for link in self._links}
        self._hello = encode_request(_T.OPTION_REQ, b"exceptions") + encode_request(
            _T.SET_CLIENT_ID, self.client_id
        )
        self._fast: dict[str | bytes, tuple[bytes, bytes, int]] = {}
        self._listeners: dict[str, list[ClientCallback]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        #: ForegroundBatches with slots freed by the read being handled.
        self._due: list[ForegroundBatch] = []

    @property
    def servers(self) -> tuple[ServerAddress, ...]:
        return self.pool.servers

    @property
    def closed(self) -> bool:
        return self._closed

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    # -- events -------------------------------------------------------------------------------

    def on(self, event: ClientEvent, callback: ClientCallback) -> ClientCallback:
        """Call ``callback(server, error)`` on ``connect`` (a connection opened),
        ``disconnect`` (a connection ended: error is the ConnectionLost, or None when the
        client closed it) or ``error`` (a failed connect, or an ERROR packet from the
        server). A lost connection is a ``disconnect``, not an ``error``. Returns the
        callback. Exceptions in callbacks are logged, never raised."""
        if event not in ("connect", "disconnect", "error"):
            raise ArgumentError(f"unknown client event {event!r}")
        self._listeners.setdefault(event, []).append(callback)
        return callback

    def off(self, event: ClientEvent, callback: ClientCallback) -> None:
        if callback in self._listeners.get(event, ()):
            self._listeners[event].remove(callback)

    def _emit(self, event: str, server: ServerAddress, error: BaseException | None) -> None:
        for callback in tuple(self._listeners.get(event, ())):
            try:
                callback(server, error)
            except Exception:
                log.exception("error in client %s callback %r", event, callback)

    # -- submitting ---------------------------------------------------------------------------

    def _function(self, function: str | bytes) -> bytes:
        cached = self._fast.get(function)
        if cached is not None:
            return cached[0]
        name = check_function(to_bytes(function, "function name"))
        if len(self._fast) < MAX_FUNCTION_CACHE:
            # name, name + NUL, and the fixed part of a submit's size (two NULs)
            self._fast[function] = (name, name + NUL, len(name) + 2)
        return name

    def _make_job(
        self,
        function: str | bytes,
        payload: bytes = b"",
        *,
        background: bool = False,
        priority: Priority = Priority.NORMAL,
        unique: str | bytes | None = None,
        run_at: datetime | float | None = None,
        reducer: str | bytes | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> Job:
        """Validate a submit and build its (unsent) Job; raises ArgumentError subclasses."""
        if resubmit_on_failure is None:
            resubmit_on_failure = self.resubmit_on_failure
        return make_job(
            self, self._function(function), payload, background, priority, unique, run_at,
            reducer, resubmit_on_failure, self.max_payload_size,
        )  # fmt: skip

    def submit_now(
        self,
        function: str | bytes,
        payload: bytes = b"",
        *,
        background: bool = False,
        priority: Priority = Priority.NORMAL,
        unique: str | bytes | None = None,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
        send: bool = False,
    ) -> Job | None:
        """:meth:`submit` without waiting, from the loop's thread: the Job if the submit
        could be queued at once (a function submitted before, a bytes payload, a valid
        unique, the chosen server's connection open), else None and nothing was done:
        ``await submit(...)`` then connects, fails over or raises as needed.

        ``send``: write the packet now if nothing else waits to be written on that
        connection (one call in flight), instead of at the end of the loop iteration.
        """
        queued = self._queue_now(
            function, payload, background, priority, unique, timeout, resubmit_on_failure, send
        )
        return None if queued is None else queued[0]

    def lane_sender(
        self, function: str | bytes, priority: Priority = Priority.NORMAL
    ) -> LaneSender | None:
        """A :class:`~gearq.client.lane.LaneSender` of foreground submits of ``function``
        at ``priority``, or None if the name is not a valid function name. (From any
        thread: it reads the client's options, and changes nothing.)"""
        try:
            name = check_function(to_bytes(function, "function name"))
        except ArgumentError:
            return None
        head = FG_HEAD if priority is NORMAL else SUBMIT_HEADS.get((False, priority))
        return None if head is None else LaneSender(self, name, head, priority)

    def send_lane(
        self,
        function: str | bytes,
        payload: bytes,
        priority: Priority = Priority.NORMAL,
        on_done: Callable[[bytes], None] | None = None,
        on_job: Callable[[Job], None] | None = None,
        owner: Any = None,
    ) -> LaneCall | None:
        """Send a foreground submit as a :class:`~gearq.client.lane.LaneCall` (with these
        ``on_done``, ``on_job`` and ``owner``), from the thread that owns the loop, if the
        chosen server's connection is idle (nothing sent and unanswered, no job in flight,
        nothing left to write) and can be read in place, and no job timeout applies; else
        None and nothing was done. The lane needs its ``on_done`` before anything reads
        the connection, and whoever takes the loop next must materialize it first (see
        the lane's module). A caller that sends the same function again and again keeps
        a :meth:`lane_sender` instead."""
        sender = self.lane_sender(function, priority)
        lane = None if sender is None else sender.send(payload, owner)
        if lane is not None:
            lane.on_done = on_done
            lane.on_job = on_job
        return lane

    def _queue_now(
        self,
        function: str | bytes,
        payload: bytes,
        background: bool,
        priority: Priority,
        unique: str | bytes | None,
        timeout: float | None,
        resubmit_on_failure: bool | None,
        send: bool,
    ) -> tuple[Job, ServerLink] | None:
        # The hot path of every submit: each call avoided here is a measurable part of
        # a round trip.
        fast = self._fast.get(function)
        if (
            fast is None
            or payload.__class__ is not bytes
            or self._closed
            or (self.max_payload_size is not None and len(payload) > self.max_payload_size)
        ):
            return None
        if unique is None:
            unique_b = new_unique() if background else b""
        # ``0 not in``: an int needle is ~10x faster than b"\0" for bytes.__contains__.
        elif unique.__class__ is bytes and len(unique) <= MAX_UNIQUE and 0 not in unique:
            unique_b = unique
        else:
            return None
        head: bytes | None
        if priority is NORMAL:  # hashing an Enum member runs Python code: avoid it
            head = BG_HEAD if background else FG_HEAD
        else:
            head = SUBMIT_HEADS.get((background is True, priority))
        if head is None:
            return None
        if timeout is None:
            timeout = self.job_timeout
        elif timeout <= 0:
            return None
        order: Sequence[int] | None = self.pool.fixed_order
        if order is None:
            # Asked only when its answer is used: a round-robin moves on when asked.
            if not all(link.conn is not None for link in self._links):
                return None
            order = self.pool.candidates(unique_b)
        link = self._links[order[0]] if order else None
        if link is None or (conn := link.conn) is None:
            return None
        fn, fn_nul, fixed = fast
        packet = b"".join(
            (head, (fixed + len(unique_b) + len(payload)).to_bytes(4, "big"), fn_nul,
             unique_b, NUL, payload)
        )  # fmt: skip
        if send and not link.wbuf:
            # The packet first, the bookkeeping after: no reply is read before this
            # returns, and the server starts on the job meanwhile.
            try:
                conn.send_now(packet)
            except ConnectionLost:
                return None  # nothing sent: the caller's submit routes it elsewhere
            packet = b""
        job = Job(
            self, fn, payload, unique_b, background, priority, None, None,
            self.resubmit_on_failure if resubmit_on_failure is None else resubmit_on_failure,
        )  # fmt: skip
        link.pending.append(job)
        if packet:
            link.write(packet)
        if timeout is not None:
            job._start_timer(self._get_loop(), timeout)
        return job, link

    async def submit(
        self,
        function: str | bytes,
        payload: bytes = b"",
        *,
        background: bool = False,
        priority: Priority = Priority.NORMAL,
        unique: str | bytes | None = None,
        run_at: datetime | float | None = None,
        reducer: str | bytes | None = None,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> Job:
        """Submit a job; returns once it is queued for sending to a server.

        Await the returned :class:`Job` (or ``job.result(timeout)``) for the result;
        ``await job.created()`` for the server's acknowledgement. Background jobs get a
        random 32-hex-digit unique unless one is given; foreground jobs get none (so they
        never coalesce) unless one is given. ``run_at`` (background only) sends
        SUBMIT_JOB_EPOCH; note that gearmand 1.1.x wakes no worker when the time comes.
        ``timeout``: give up on the job after this many seconds (:class:`JobTimeout`).

        Raises :class:`NoServerAvailable` when no server can be reached, and
        ``ArgumentError`` subclasses for values gearmand would mishandle. Errors after
        sending (QueueFull, connection lost, ...) are raised by awaiting the job.
        """
        if run_at is None and reducer is None:
            queued = self._queue_now(
                function, payload, background, priority, unique, timeout, resubmit_on_failure,
                False,
            )  # fmt: skip
            if queued is not None:
                job, link = queued
                if link.wsize >= FLUSH_AT:
                    link.flush()
                    await link.drain()
                return job
        if self._closed:
            raise ClientClosed("the client is closed")
        job = self._make_job(
            function,
            payload,
            background=background,
            priority=priority,
            unique=unique,
            run_at=run_at,
            reducer=reducer,
            resubmit_on_failure=resubmit_on_failure,
        )
        timeout = self._timeout(timeout)
        await self._send_job(job)
        if timeout is not None:
            job._start_timer(self._get_loop(), timeout)
        return job

    async def submit_many(
        self,
        function: str | bytes,
        payloads: Iterable[bytes],
        *,
        background: bool = False,
        priority: Priority = Priority.NORMAL,
        uniques: Iterable[str | bytes | None] | None = None,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> list[Job]:
        """Submit one job per payload (with ``uniques[i]`` if given), as :meth:`submit`
        would, but validated and encoded in one pass: the bulk path for many small jobs.

        Each job is routed on its own (so ``unique_hash`` still spreads them). An invalid
        value raises before anything is sent; :class:`NoServerAvailable` is raised when no
        server can take the first job, and set as the error of the remaining jobs if the
        servers are lost part way through.
        """
        if self._closed:
            raise ClientClosed("the client is closed")
        payload_list = list(payloads)
        unique_list = [None] * len(payload_list) if uniques is None else list(uniques)
        if len(unique_list) != len(payload_list):
            raise ArgumentError("uniques and payloads differ in length")
        timeout = self._timeout(timeout)
        fn = self._function(function)
        fn_nul, fixed = fn + NUL, len(fn) + 2
        head = SUBMIT_HEADS.get((background is True, priority))
        if head is None:
            raise ArgumentError(f"priority must be a Priority, got {priority!r}")
        resubmit = self.resubmit_on_failure if resubmit_on_failure is None else resubmit_on_failure
        limit = self.max_payload_size
        # First pass: check everything, so that an invalid value sends nothing at all.
        jobs: list[Job] = []
        packets: list[bytes | None] = []
        for payload, unique in zip(payload_list, unique_list, strict=True):
            if (
                payload.__class__ is bytes
                and (limit is None or len(payload) <= limit)
                and (
                    unique is None
                    or (unique.__class__ is bytes and len(unique) <= MAX_UNIQUE and 0 not in unique)
                )
            ):
                if unique is None:
                    unique = new_unique() if background else b""
                u: bytes = unique
                jobs.append(Job(self, fn, payload, u, background, priority, None, None, resubmit))
                packets.append(
                    b"".join(
                        (head, (fixed + len(u) + len(payload)).to_bytes(4, "big"), fn_nul, u,
                         NUL, payload)
                    )
                )  # fmt: skip
            else:
                jobs.append(
                    self._make_job(
                        function, payload, background=background, priority=priority,
                        unique=unique, resubmit_on_failure=resubmit,
                    )
                )  # fmt: skip
                packets.append(None)
        candidates = self.pool.candidates
        links = self._links
        loop = self._get_loop()
        for job, packet in zip(jobs, packets, strict=True):
            if packet is None:
                packet = encode_submit(job)
            order = candidates(job.unique)
            link = links[order[0]] if order else None
            if link is not None and link.conn is not None:
                link.pending.append(job)
                link.write(packet)
                if link.wsize >= FLUSH_AT:
                    link.flush()
                    await link.drain()
            else:
                try:
                    await self._send_job(job, packet, order)
                except NoServerAvailable as exc:
                    if job is jobs[0]:
                        raise
                    # Some are on their way already: the rest fail through their handles.
                    for rest in jobs[jobs.index(job) :]:
                        rest._finish(JobState.ERROR, exc, "error", exc)
                    return jobs
            if timeout is not None:
                job._start_timer(loop, timeout)
        return jobs

    async def submit_background_many(
        self,
        function: str | bytes,
        payloads: Iterable[bytes],
        *,
        uniques: Iterable[str | bytes | None] | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> BackgroundBatch:
        """Submit one background job per payload (with ``uniques[i]`` if given, else a
        random unique) and return them as one :class:`BackgroundBatch`.

        The bulk path: no :class:`Job` per job, the packets encoded and written in large
        chunks, and the acknowledgements matched in order. ``await batch`` returns the
        handles once every job is acknowledged, or raises :class:`BatchError` naming the
        jobs that failed; ``batch.wait()`` waits without raising. Each job is routed on
        its own, with failover, as ``submit`` would route it; ``timeout`` and
        ``resubmit_on_failure`` mean what they mean for ``submit``.

        An invalid value raises before anything is sent, and :class:`NoServerAvailable`
        is raised when no job could be sent at all. Returns once every packet is queued
        for its socket (waiting only while a socket is backed up).
        """
        if self._closed:
            raise ClientClosed("the client is closed")
        payload_list = list(payloads)
        # The distinct lengths tell whether every packet will have the same size (which
        # _write_span turns into a much faster encoding).
        payload_lengths = check_payloads(payload_list, self.max_payload_size)
        count = len(payload_list)
        unique_list: list[bytes]
        if uniques is None:
            unique_list = new_uniques(count)
        else:
            given = list(uniques)
            if len(given) != count:
                raise ArgumentError("uniques and payloads differ in length")
            unique_list = check_uniques(given, new_uniques)
        unique_lengths = set(map(len, unique_list))
        timeout = self._timeout(timeout)
        fn = self._function(function)
        if SUBMIT_HEADS.get((True, priority)) is None:
            raise ArgumentError(f"priority must be a Priority, got {priority!r}")
        resubmit = self.resubmit_on_failure if resubmit_on_failure is None else resubmit_on_failure
        batch = BackgroundBatch(self, fn, payload_list, unique_list, priority, resubmit)
        if not count:
            return batch
        if len(unique_lengths) == 1 and len(payload_lengths) == 1:
            batch._packet_size = 14 + len(fn) + min(unique_lengths) + min(payload_lengths)
        if timeout is not None:
            # Running while the batch is sent: a server that stops answering must not
            # hold a batch waiting for room in its window past its deadline.
            batch._start_timer(self._get_loop(), timeout)
        unsent, error = await self._send_batch(batch, range(count), 1)
        if unsent:
            if len(unsent) == count:
                batch._cancel_timer()
                raise error
            for i in unsent:
                batch._fail(i, error)
        return batch

    def _timeout(self, timeout: float | None) -> float | None:
        """A submit's client-side timeout: the given one, else the client's default."""
        if timeout is None:
            return self.job_timeout
        if timeout <= 0:
            raise ArgumentError("timeout must be positive")
        return timeout

    def flush(self) -> None:
        """Send now what submits queued for the end of this loop iteration (call it from
        the loop's thread, e.g. before blocking it)."""
        for link in self._links:
            if link.wbuf and link.conn is not None:
                link.flush()

    def _flush_if_alone(self, ready: Any) -> bool:
        """If the loop's ready callbacks (``ready``) are none but this client's scheduled
        flushes (or cancelled ones), do those flushes now and return True: the loop then
        has nothing to run (see :meth:`Job.__await__ <gearq.client.job.Job.__await__>`)."""
        links = self._links
        for handle in ready:
            if not handle._cancelled and not any(link._flush_handle is handle for link in links):
                return False
        for link in links:
            if link._flush_handle is not None:
                link.flush()
        return True

    async def run_many(
        self,
        function: str | bytes,
        payloads: Iterable[bytes],
        *,
        in_flight: int = 100,
        uniques: Iterable[str | bytes | None] | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> ForegroundBatch:
        """Run one foreground job per payload, ``in_flight`` at a time, and return the
        :class:`ForegroundBatch` once every job has ended: ``batch.results[i]`` is job
        i's result or None, ``batch.errors[i]`` its typed error; ``batch.result_nowait()``
        gives the results list or raises :class:`BatchFailed`. A failed job never costs
        the others their results, and nothing is raised for one.

        The bulk path of foreground work (libgearman's ``gearman_client_run_tasks``): the
        submits are pipelined on the servers' connections and each ending job's slot is
        refilled at once, with no :class:`Job`, Future or coroutine per job. Each job is
        routed on its own, with failover, as ``submit`` would route it. ``uniques``
        (default: none, so jobs never coalesce) are validated before anything is sent.
        ``timeout``: seconds for the whole run; jobs not done by then end with
        :class:`JobTimeout` (they may still run on the servers). ``resubmit_on_failure``
        as for ``submit``. WORK_DATA, WORK_WARNING and WORK_STATUS are ignored.

        Invalid arguments raise before anything is sent; a client closed meanwhile ends
        the jobs with :class:`ClientClosed`. Every other failure (no server, a lost
        connection, an ERROR packet, QueueFull) ends only the jobs it concerns.
        """
        if self._closed:
            raise ClientClosed("the client is closed")
        if in_flight.__class__ is not int or in_flight < 1:
            raise ArgumentError(f"in_flight must be a positive int, got {in_flight!r}")
        payload_list = list(payloads)
        check_payloads(payload_list, self.max_payload_size)
        count = len(payload_list)
        if uniques is None:
            unique_list = [b""] * count
        else:
            given = list(uniques)
            if len(given) != count:
                raise ArgumentError("uniques and payloads differ in length")
            unique_list = check_uniques(given, lambda n: [b""] * n)
        timeout = self._timeout(timeout)
        fn = self._function(function)
        if SUBMIT_HEADS.get((False, priority)) is None:
            raise ArgumentError(f"priority must be a Priority, got {priority!r}")
        resubmit = self.resubmit_on_failure if resubmit_on_failure is None else resubmit_on_failure
        batch = ForegroundBatch(self, fn, payload_list, unique_list, priority, in_flight, resubmit)
        await batch.run(timeout)
        return batch

    def _run_due(self) -> None:
        """Refill the ForegroundBatches that jobs ended for in the read just handled."""
        due = self._due
        self._due = []
        for batch in due:
            if batch._queued:
                try:
                    batch._refill(True)
                except Exception:
                    # Called from a connection's read: a bug here must not end it.
                    log.exception("error while refilling %r", batch)

    async def _send_batch(
        self, batch: BackgroundBatch, indices: Sequence[int], attempt: int
    ) -> tuple[list[int], BaseException]:
        """Send jobs of ``batch``, each to the first server that can take it. Returns those
        that none could take, and why."""
        links = self._links
        pool = self.pool
        todo = indices
        unsent: list[int] = []
        errors: dict[int, BaseException] = {}
        # Every failure below takes a server out of the pool, so this ends; the bound is a
        # guard against a custom strategy that names servers in their recover time.
        for _ in range(len(links) + 2):
            if not todo:
                break
            if self._closed:
                return [*unsent, *todo], ClientClosed("the client was closed")
            groups, nowhere = pool.route(batch.uniques, todo)
            unsent += nowhere
            retry: list[int] = []
            for index, group in groups.items():
                link = links[index]
                if link.conn is None:
                    try:
                        await link.connect()
                    except ConnectFailed as exc:
                        errors[index] = exc
                        retry += group
                        continue
                    except ClientClosed:
                        retry += group
                        continue
                    if link.conn is None:  # lost again while we were resumed
                        retry += group
                        continue
                retry += await self._write_span(link, batch, group, attempt)
            todo = retry
        else:
            unsent += todo
        if self._closed:
            return unsent, ClientClosed("the client was closed")
        return unsent, pool.no_server_error(errors)

    async def _write_span(
        self, link: ServerLink, batch: BackgroundBatch, indices: Sequence[int], attempt: int
    ) -> Sequence[int]:
        """Write jobs of a batch on ``link`` within its window (see :mod:`.feed`); returns
        those not sent because the connection was lost meanwhile."""
        writer = SpanWriter(link, batch, indices, attempt)
        state = writer.fill(False)
        while state != DONE:
            if link.conn is None:
                return writer.unsent()
            if state == DRAIN:
                await link.drain()
                state = ROOM
            else:
                state = await link.wait_room(writer)
                if batch.done:
                    return ()  # timed out or closed meanwhile: every job has its error
            if state == ROOM and link.conn is not None:
                state = writer.fill(False)
        return ()

    async def _send_job(
        self, job: Job, packet: bytes | None = None, order: Sequence[int] | None = None
    ) -> None:
        """Hand the job to the first server that can take it; raise if none can.

        ``order``: the strategy's choice if already made (asking again would move a
        round-robin on twice)."""
        if packet is None:
            packet = encode_submit(job)
        if order is None:
            order = self.pool.candidates(job.unique)
        errors: dict[int, BaseException] = {}
        links = self._links
        for index in order:
            link = links[index]
            if link.conn is None:
                try:
                    await link.connect()
                except ConnectFailed as exc:
                    errors[index] = exc
                    continue
                if self._closed:
                    raise ClientClosed("the client is closed")
                if link.conn is None:  # lost again while we were resumed
                    continue
            link.send_job(job, packet)
            if link.wsize >= FLUSH_AT:
                link.flush()
                await link.drain()
            return
        raise self.pool.no_server_error(errors)

    # -- other requests -----------------------------------------------------------------------

    def _link(self, server: ServerSpec) -> ServerLink:
        address = ServerAddress.parse(server)
        link = self._by_address.get(address)
        if link is None:
            raise ArgumentError(f"{address} is not one of this client's servers")
        return link

    async def _request(
        self, link: ServerLink, ptype: PacketType, args: tuple[bytes, ...], expect: PacketType
    ) -> tuple[bytes, ...]:
        if self._closed:
            raise ClientClosed("the client is closed")
        if link.conn is None:
            health = self.pool.health[link.index]
            if not health.available():
                raise self.pool.no_server_error(only=link.index)
            await link.connect()
            if link.conn is None:
                raise ConnectionLost(link.address, "connection lost right after connecting")
        return await link.send_request(ptype, args, expect)

    async def get_status(
        self, handle: Job | str | bytes, server: ServerSpec | None = None
    ) -> JobStatus:
        """GET_STATUS: ask ``server`` about ``handle`` (or pass the Job itself).

        Handles repeat across servers, so the server is required with a bare handle.
        """
        if isinstance(handle, Job):
            if handle.handle is None or handle.server is None:
                raise ArgumentError("the job has no handle yet (not acknowledged)")
            server = server or handle.server
            handle_b = handle.handle
        else:
            handle_b = check_handle(to_bytes(handle, "handle"))
        if server is None:
            raise ArgumentError("get_status needs the server the handle belongs to")
        link = self._link(server)
        reply = await self._request(link, _T.GET_STATUS, (handle_b,), _T.STATUS_RES)
        return JobStatus(
            reply[0], link.address, reply[1] == b"1", reply[2] == b"1",
            _int(reply[3]), _int(reply[4]),
        )  # fmt: skip

    async def get_status_unique(
        self, unique: str | bytes, server: ServerSpec | None = None
    ) -> UniqueStatus:
        """GET_STATUS_UNIQUE. Without ``server``, every reachable server is asked and the
        first that knows the unique (in the order the strategy would route it) answers."""
        unique_b = check_unique(to_bytes(unique, "unique"))
        if not unique_b:
            raise ArgumentError("unique is empty")
        if server is not None:
            link = self._link(server)
            links = [link]
        else:
            links = [self._links[i] for i in self.pool.candidates(unique_b)]
            if not links:
                raise self.pool.no_server_error()
        replies = await asyncio.gather(
            *(self._request(ln, _T.GET_STATUS_UNIQUE, (unique_b,), _T.STATUS_RES_UNIQUE)
              for ln in links),
            return_exceptions=True,
        )  # fmt: skip
        errors: dict[int, BaseException] = {}
        answered: list[tuple[ServerLink, tuple[bytes, ...]]] = []
        for link, reply in zip(links, replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, GearqError):
                    raise reply
                errors[link.index] = reply
            else:
                answered.append((link, reply))
        if not answered:
            if server is not None:
                raise next(iter(errors.values()))
            raise self.pool.no_server_error(errors)
        for link, reply in answered:
            if reply[1] == b"1":
                return _unique_status(link.address, reply)
        return _unique_status(answered[0][0].address, answered[0][1])

    async def echo(self, data: bytes = b"", server: ServerSpec | None = None) -> bytes:
        """ECHO_REQ: the server sends ``data`` back (default: the first available server)."""
        if data == HEARTBEAT_TOKEN:
            raise ArgumentError("that payload is reserved for heartbeats")
        link = self._pick(server)
        reply = await self._request(link, _T.ECHO_REQ, (bytes(data),), _T.ECHO_RES)
        return reply[0]

    async def ping(self, server: ServerSpec | None = None) -> float:
        """Round-trip time of an ECHO in seconds (connecting first if needed)."""
        link = self._pick(server)
        if link.conn is None:
            await self.echo(b"ping", link.address)
        loop = self._get_loop()
        start = loop.time()
        await self.echo(b"ping", link.address)
        return loop.time() - start

    def _pick(self, server: ServerSpec | None) -> ServerLink:
        if server is not None:
            return self._link(server)
        candidates = self.pool.candidates()
        if not candidates:
            raise self.pool.no_server_error()
        return self._links[candidates[0]]

    # -- connection events (called by the links) ----------------------------------------------

    def _connected(self, link: ServerLink) -> None:
        log.info("connected to %s", link.address)
        self._emit("connect", link.address, None)

    def _handshake_ok(self, link: ServerLink) -> None:
        # The server answered: only now does it count as healthy again.
        self.pool.mark_ok(link.index)

    def _connect_failed(self, link: ServerLink, error: ConnectFailed) -> None:
        pause = self.pool.mark_failed(link.index, error)
        log.warning("%s; skipping it for %.1f s", error, pause)
        self._emit("error", link.address, error)

    def _server_error(
        self,
        link: ServerLink,
        error: BaseException,
        request: Job | Request | Span | ForegroundSpan | None,
    ) -> None:
        log.warning("%s: request failed: %s", link.address, detail(error, link.address))
        self._emit("error", link.address, error)

    def _link_lost(
        self,
        link: ServerLink,
        error: ConnectionLost | None,
        pending: Sequence[Job | Request | Span | ForegroundSpan],
        jobs: Sequence[Job | BatchEntry],
    ) -> None:
        if error is None and self._closed:
            reason: BaseException = ClientClosed("the client was closed")
            log.debug("closed connection to %s", link.address)
        else:
            reason = error or ConnectionLost(link.address, "connection closed")
            pause = self.pool.mark_failed(link.index, reason)
            log.warning(
                "lost %s: %s; skipping it for %.1f s",
                link.address, detail(reason, link.address), pause,
            )  # fmt: skip
        self._emit("disconnect", link.address, error)
        for item in pending:
            if isinstance(item, Request):
                if item.future is not None and not item.future.done():
                    item.future.set_exception(reason)
            elif isinstance(item, Span):
                self._span_lost(item, link, reason)
            elif isinstance(item, ForegroundSpan):
                lost = item.batch._lost
                for index in item.indices[item.pos :]:
                    lost(index, link, reason)
            else:
                self._job_lost(item, link, reason)
        for job in jobs:
            if isinstance(job, tuple):
                job[0]._lost(job[1], link, reason)
            else:
                self._job_lost(job, link, reason)

    def _job_lost(self, job: Job, link: ServerLink, reason: BaseException) -> None:
        if job.done:
            return
        if isinstance(reason, ClientClosed):
            closed = ClientClosed(str(reason), handle=job.handle)
            job._finish(JobState.ERROR, closed, "error", closed)
            return
        if job.resubmit and job.attempts <= len(self._links):
            job._restart()
            task = self._get_loop().create_task(self._resubmit(job, link, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._fail_lost(job, link, reason)

    def _span_lost(self, span: Span, link: ServerLink, reason: BaseException) -> None:
        batch = span.batch
        indices = span.unanswered()
        if not indices:
            return
        if isinstance(reason, ClientClosed):
            for i in indices:
                batch._fail(i, ClientClosed(str(reason)))
            return
        if batch.resubmit and span.attempt <= len(self._links):
            task = self._get_loop().create_task(
                self._resubmit_batch(batch, indices, span.attempt + 1, link, reason)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        for i in indices:
            batch._fail(i, _lost_unacknowledged(link, reason))

    async def _resubmit_batch(
        self,
        batch: BackgroundBatch,
        indices: list[int],
        attempt: int,
        link: ServerLink,
        reason: BaseException,
    ) -> None:
        log.info(
            "resubmitting %d jobs of %r (attempt %d) after losing %s",
            len(indices), batch, attempt, link.address,
        )  # fmt: skip
        try:
            unsent, error = await self._send_batch(batch, indices, attempt)
        except asyncio.CancelledError:
            # close() cancels resubmits; the caller must still learn how the jobs ended.
            for i in indices:
                batch._fail(i, ClientClosed("the client was closed while resubmitting"))
            raise
        for i in unsent:
            if isinstance(error, ClientClosed):
                batch._fail(i, error)
            else:
                batch._fail(i, _lost_unacknowledged(link, error))

    def _fail_lost(self, job: Job, link: ServerLink, reason: BaseException) -> None:
        if job.handle is None:
            what = "the connection was lost before the server acknowledged the job"
            if job.background:
                what += "; it may or may not exist there"
        else:
            what = f"the connection was lost while job {job.handle.decode(errors='replace')} ran"
        error = JobConnectionLost(
            link.address, f"{what} ({detail(reason, link.address)})", handle=job.handle
        )
        error.__cause__ = reason
        job._finish(JobState.ERROR, error, "error", error)

    async def _resubmit(self, job: Job, link: ServerLink, reason: BaseException) -> None:
        log.info("resubmitting %r (attempt %d) after losing %s", job, job.attempts, link.address)
        try:
            await self._send_job(job)
        except (GearqError, OSError) as exc:
            self._fail_lost(job, link, exc if isinstance(exc, NoServerAvailable) else reason)
        except asyncio.CancelledError:
            # close() cancels resubmits; the caller must still learn the job's end.
            if not job.done:
                error = ClientClosed("the client was closed while the job was being resubmitted")
                job._finish(JobState.ERROR, error, "error", error)
            raise

    # -- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every connection; jobs still waiting fail with :class:`ClientClosed`."""
        if self._closed:
            return
        self._closed = True
        for link in self._links:
            link.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        servers = ",".join(str(s) for s in self.servers)
        return f"<AsyncClient {servers} {type(self.pool.strategy).__name__}>"


def _lost_unacknowledged(link: ServerLink, reason: BaseException) -> JobConnectionLost:
    error = JobConnectionLost(
        link.address,
        "the connection was lost before the server acknowledged the job; it may or may"
        f" not exist there ({detail(reason, link.address)})",
    )
    error.__cause__ = reason
    return error


def _int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _unique_status(server: ServerAddress, reply: tuple[bytes, ...]) -> UniqueStatus:
    return UniqueStatus(
        reply[0], server, reply[1] == b"1", reply[2] == b"1",
        _int(reply[3]), _int(reply[4]), _int(reply[5]),
    )  # fmt: skip
