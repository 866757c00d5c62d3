"""Many foreground jobs of one function run as one :class:`ForegroundBatch`, with a fixed
number in flight: the bulk path of ``AsyncClient.run_many`` (libgearman's
``gearman_client_run_tasks``, or a ``map`` over a pool of workers).

No Job, no Future and no coroutine per job: a job is an index into the batch's lists.
Its submit goes out in a chunk with the others sent in the same loop iteration (one
:class:`ForegroundSpan` in the link's reply queue per chunk), its handle is registered
with the link as ``(batch, index)``, and the WORK_COMPLETE / FAIL / EXCEPTION that ends it
frees a slot that is refilled once per read, so the next submits leave in the same write
as everything else the read caused.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..net.address import ServerAddress
from ..net.errors import ConnectFailed
from ..protocol.errors import ArgumentError
from ..protocol.limits import MAX_UNIQUE, check_unique
from .errors import BatchFailed, ClientClosed, JobConnectionLost, JobError, JobTimeout, detail
from .job import Priority
from .submit import NUL, SUBMIT_HEADS, to_bytes

if TYPE_CHECKING:
    from .client import AsyncClient
    from .link import ServerLink

__all__ = ["ForegroundBatch", "ForegroundSpan", "check_payloads", "check_uniques"]

_ONLY_BYTES = {bytes}


def check_payloads(payloads: list[bytes], limit: int | None) -> set[int]:
    """Turn bytes-likes into bytes in place, refuse anything else and payloads over
    ``limit``; returns the distinct lengths."""
    from .errors import PayloadTooLarge

    # map() and set(): C loops, a fraction of the cost of a Python one.
    if payloads and set(map(type, payloads)) != _ONLY_BYTES:
        for i, payload in enumerate(payloads):
            if payload.__class__ is not bytes:
                if not isinstance(payload, (bytes, bytearray, memoryview)):
                    raise ArgumentError(f"payload must be bytes, got {type(payload).__name__}")
                payloads[i] = bytes(payload)
    lengths = set(map(len, payloads))
    if limit is not None and lengths and max(lengths) > limit:
        raise PayloadTooLarge(
            f"a payload is {max(lengths)} bytes, the client's max_payload_size is {limit}"
        )
    return lengths


def check_uniques(
    given: list[str | bytes | None], default: Callable[[int], list[bytes]]
) -> list[bytes]:
    """Validate uniques (None: take one from ``default(count_of_nones)``) before anything
    is sent: gearmand answers an over-long unique with silence, which would shift the
    in-order matching of every reply after it."""
    if given and set(map(type, given)) == _ONLY_BYTES:
        plain: list[bytes] = given  # type: ignore[assignment]
        if max(map(len, plain)) <= MAX_UNIQUE and 0 not in b"".join(plain):
            return plain
    fresh = iter(default(given.count(None)))
    return [next(fresh) if u is None else check_unique(to_bytes(u, "unique")) for u in given]


class ForegroundSpan:
    """Consecutive submits of one :class:`ForegroundBatch` written together: one entry in
    a link's reply queue for all of them. ``indices[pos]`` is the job the next reply is
    for."""

    __slots__ = ("batch", "count", "indices", "pos")

    def __init__(self, batch: ForegroundBatch, indices: Sequence[int]) -> None:
        self.batch = batch
        self.indices = indices
        self.count = len(indices)
        self.pos = 0


class ForegroundBatch:
    """Foreground jobs run together by ``AsyncClient.run_many``.

    Job ``i`` is the one with ``payloads[i]`` and ``uniques[i]``. When it ends,
    ``results[i]`` holds its WORK_COMPLETE bytes, or ``errors[i]`` its typed error
    (:class:`JobFailed`, :class:`JobException`, :class:`JobConnectionLost`,
    :class:`QueueFull`, :class:`JobTimeout`, :class:`NoServerAvailable`, ...); one job
    failing never touches the others. ``handles[i]`` and ``servers[i]`` say where it ran
    (None if it never got a handle). WORK_DATA, WORK_WARNING and WORK_STATUS packets are
    not kept: use ``submit`` for jobs whose progress matters.
    """

    __slots__ = (
        "_active",
        "_attempts",
        "_client",
        "_head",
        "_left",
        "_loop",
        "_next",
        "_queued",
        "_refill_handle",
        "_retry",
        "_timer",
        "_wakeup",
        "errors",
        "function",
        "handles",
        "in_flight",
        "payloads",
        "priority",
        "resubmit",
        "results",
        "servers",
        "uniques",
    )

    def __init__(
        self,
        client: AsyncClient,
        function: bytes,
        payloads: list[bytes],
        uniques: list[bytes],
        priority: Priority,
        in_flight: int,
        resubmit: bool,
    ) -> None:
        count = len(payloads)
        self._client = client
        self._loop = client._get_loop()
        self.function = function
        self.payloads = payloads
        self.uniques = uniques
        self.priority = priority
        self.in_flight = in_flight
        self.resubmit = resubmit
        self.results: list[bytes | None] = [None] * count
        self.errors: dict[int, BaseException] = {}
        self.handles: list[bytes | None] = [None] * count
        self.servers: list[ServerAddress | None] = [None] * count
        self._head = SUBMIT_HEADS[False, priority]
        self._left = count  # jobs not ended
        self._next = 0  # the next job never sent
        self._active = 0  # jobs holding a slot: sent (or waiting to be resent), not ended
        self._retry: deque[int] = deque()  # jobs the run_many coroutine must (re)send
        self._attempts: dict[int, int] | None = None
        self._refill_handle: asyncio.Handle | None = None
        self._queued = False  # in the client's list of batches to refill after a read
        self._timer: asyncio.TimerHandle | None = None
        self._wakeup: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def done(self) -> bool:
        return self._left == 0

    @property
    def client(self) -> AsyncClient:
        return self._client

    def result_nowait(self) -> list[bytes]:
        """Every job's result, in input order; raises :class:`BatchFailed` (holding the
        results of the others) if any job failed, ``asyncio.InvalidStateError`` while
        the batch is not done."""
        if self._left:
            raise asyncio.InvalidStateError(f"{self!r} is not done")
        if self.errors:
            raise BatchFailed(self.errors, self.results)
        return self.results  # type: ignore[return-value]  # no error: every one is set

    def _ended(self, index: int) -> bool:
        return self.results[index] is not None or index in self.errors

    # -- running (the run_many coroutine) ----------------------------------------------------

    async def run(self, timeout: float | None) -> None:
        """Send every job, keeping ``in_flight`` of them out, until all have ended."""
        if not self._left:
            return
        loop = self._loop
        if timeout is not None:
            self._timer = loop.call_later(timeout, self._expire, timeout)
        try:
            self._refill()
            while self._left:
                retry = self._retry
                while retry and self._left:
                    index = retry.popleft()
                    if not self._ended(index):
                        await self._send_one(index)
                if not self._left:
                    break
                fut = self._wakeup = loop.create_future()
                try:
                    await fut
                finally:
                    self._wakeup = None
        except asyncio.CancelledError:
            self._abort(JobError("run_many was cancelled before the job ended"))
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._refill_handle is not None:
                self._refill_handle.cancel()
                self._refill_handle = None

    def _wake(self) -> None:
        fut = self._wakeup
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _send_one(self, index: int) -> None:
        """The slow path, for a job whose server is not connected: connect (or fail over)
        as ``submit`` would; the job fails with NoServerAvailable if no server can take it."""
        client = self._client
        errors: dict[int, BaseException] = {}
        for server in client.pool.candidates(self.uniques[index]):
            if client.closed:
                break
            link = client._links[server]
            if link.conn is None:
                try:
                    await link.connect()
                except ConnectFailed as exc:
                    errors[server] = exc
                    continue
                except ClientClosed:
                    break
                if link.conn is None:  # lost again while we were resumed
                    continue
            if self._ended(index):
                return  # timed out while connecting
            self._write(link, (index,), False)
            return
        if client.closed:
            self._fail(index, ClientClosed("the client was closed"))
            return
        error = client.pool.no_server_error(errors)
        self._fail(index, error)
        if not client.pool.available():
            # Every server is in its recover time: the jobs not sent yet would each fail
            # the same way, one loop iteration apiece; end them together.
            self._fail_unsent(error)

    def _fail_unsent(self, error: BaseException) -> None:
        unsent = [i for i in self._retry if not self._ended(i)]
        self._retry.clear()
        self._active -= len(unsent)
        unsent.extend(range(self._next, len(self.payloads)))
        self._next = len(self.payloads)
        for index in unsent:
            self.errors[index] = error
        self._left -= len(unsent)
        if not self._left:
            self._done()

    def _refill(self, in_read: bool = False) -> None:
        """Send jobs into the free slots: each to its strategy's first server when that is
        connected (chunks per server), else through the run_many coroutine. ``in_read``:
        called as a read's packets are handled (the reading link flushes after)."""
        self._refill_handle = None
        self._queued = False
        start = self._next
        stop = min(start + self.in_flight - self._active, len(self.payloads))
        if stop <= start or not self._left:
            return
        self._next = stop
        self._active += stop - start
        client = self._client
        if client.closed:
            self._retry.extend(range(start, stop))
            self._wake()
            return
        links = client._links
        pool = client.pool
        fixed = pool.fixed_order
        if fixed:
            link = links[fixed[0]]
            if link.conn is not None:
                self._write(link, range(start, stop), in_read)
                return
        groups: dict[int, list[int]] = {}
        uniques = self.uniques
        for index in range(start, stop):
            order = fixed or pool.candidates(uniques[index])
            if order and links[order[0]].conn is not None:
                groups.setdefault(order[0], []).append(index)
            else:
                self._retry.append(index)
        for server, indices in groups.items():
            self._write(links[server], indices, in_read)
        if self._retry:
            self._wake()

    def _write(self, link: ServerLink, indices: Sequence[int], in_read: bool) -> None:
        head = self._head
        fn_nul = self.function + NUL
        fixed = len(fn_nul) + 1
        uniques = self.uniques
        payloads = self.payloads
        parts: list[bytes] = []
        add = parts.extend
        for i in indices:
            unique = uniques[i]
            payload = payloads[i]
            add((head, (fixed + len(unique) + len(payload)).to_bytes(4, "big"), fn_nul,
                 unique, NUL, payload))  # fmt: skip
        link.send_span(ForegroundSpan(self, indices), b"".join(parts), in_read)

    # -- updates from the connections -------------------------------------------------------

    def _created(self, index: int, handle: bytes, server: ServerAddress) -> None:
        self.handles[index] = handle
        self.servers[index] = server

    def _complete(self, index: int, result: bytes) -> None:
        """WORK_COMPLETE, always from a link's read."""
        if self.results[index] is not None or index in self.errors:
            return
        self.results[index] = result
        self._left -= 1
        self._active -= 1
        if not self._left:
            self._done()
        elif not self._queued and self._next < len(self.payloads):
            # Once per read: the slots freed by one read's packets are refilled by one
            # chunk when the read is handled, and leave in that iteration's write.
            self._queued = True
            self._client._due.append(self)

    def _fail(self, index: int, error: BaseException, *, in_read: bool = False) -> None:
        if self.results[index] is not None or index in self.errors:
            return
        self.errors[index] = error
        self._left -= 1
        self._active -= 1
        if not self._left:
            self._done()
        elif self._next < len(self.payloads) and not self._queued:
            if in_read:
                self._queued = True
                self._client._due.append(self)
            elif self._refill_handle is None:
                self._refill_handle = self._loop.call_soon(self._refill)

    def _lost(self, index: int, link: ServerLink, reason: BaseException) -> None:
        """The connection carrying job ``index`` broke: resend it (opt-in) or fail it
        with JobConnectionLost naming the server."""
        if self._ended(index):
            return
        if isinstance(reason, ClientClosed):
            self._fail(index, ClientClosed(str(reason), handle=self.handles[index]))
            return
        if self.resubmit:
            attempts = self._attempts
            if attempts is None:
                attempts = self._attempts = {}
            tries = attempts.get(index, 1)
            if tries <= len(self._client._links):
                attempts[index] = tries + 1
                self.handles[index] = None
                self.servers[index] = None
                self._retry.append(index)
                self._wake()
                return
        handle = self.handles[index]
        if handle is None:
            what = "the connection was lost before the server acknowledged the job"
        else:
            what = f"the connection was lost while job {handle.decode(errors='replace')} ran"
        error = JobConnectionLost(
            link.address, f"{what} ({detail(reason, link.address)})", handle=handle
        )
        error.__cause__ = reason
        self._fail(index, error)

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()

    def _expire(self, timeout: float) -> None:
        self._timer = None
        message = f"job not done within {timeout:g} s of run_many (client-side timeout)"
        for index in range(len(self.payloads)):
            if not self._ended(index):
                self.errors[index] = JobTimeout(
                    message, server=self.servers[index], handle=self.handles[index]
                )
        self._left = 0
        self._done()

    def _abort(self, error: JobError) -> None:
        for index in range(len(self.payloads)):
            if not self._ended(index):
                self.errors[index] = error
        self._left = 0
        self._done()

    def __repr__(self) -> str:
        state = "done" if not self._left else f"{self._left} waiting"
        return (
            f"<ForegroundBatch {self.function!r} {len(self.payloads)} jobs, "
            f"{len(self.errors)} failed, {state}>"
        )


#: What a link's handle table holds for a job of a ForegroundBatch.
BatchEntry = tuple[ForegroundBatch, int]
