"""The job server's state machine: binary packets in, replies queued on peers.

No sockets and no event loop here: the broker is handed a ``call_later`` for its timers
(epoch jobs, CAN_DO_TIMEOUT) and a wall clock, and queues its output on :class:`Peer`
objects that the transport layer flushes (:meth:`Broker.flush`) after every event.

Where gearmand 1.1.20 has a bug the broker does what the protocol means instead; every such
place says so in a comment. The rest follows what gearmand was seen to do.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import struct
import time
from collections.abc import Callable, Iterator
from functools import partial

from ..protocol.codec import encode_response
from ..protocol.limits import MAX_CLIENT_ID, MAX_UNIQUE
from ..protocol.packets import RES, Magic, Packet, PacketType
from .jobs import Function, Job, JobState, Priority, TimerHandle
from .peer import Peer

__all__ = ["Broker", "CallLater", "atoi"]

log = logging.getLogger("gearq.server")

CallLater = Callable[[float, Callable[[], None]], TimerHandle]
_Handler = Callable[[Peer, tuple[bytes, ...]], None]

_T = PacketType
_QUEUED = JobState.QUEUED
_DELAYED = JobState.DELAYED
_RUNNING = JobState.RUNNING
_DONE = JobState.DONE


def _error(code: bytes, text: bytes) -> bytes:
    return encode_response(_T.ERROR, code, text)


# ERROR packets with gearmand's codes and texts (reference §1.3).
ERR_INVALID_MAGIC = _error(b"INVALID_MAGIC", b"Request magic expected")
ERR_INVALID_COMMAND = _error(b"INVALID_COMMAND", b"Command not expected")
ERR_UNIQUE_TOO_LARGE = _error(b"ARGUMENT_TOO_LARGE", b"Unique value too large")
ERR_QUEUE_FULL = _error(b"QUEUE_ERROR", b"Job queue is full")
ERR_RESULT_NOT_FOUND = _error(b"JOB_NOT_FOUND", b"Job given in work result not found")
ERR_DATA_NOT_FOUND = _error(b"JOB_NOT_FOUND", b"Job does not exist on server")
ERR_EXCEPTION_NOT_FOUND = _error(
    b"JOB_NOT_FOUND", b"An exception was received for a job that does not exist"
)
ERR_UNKNOWN_OPTION = _error(b"UNKNOWN_OPTION", b"Server does not recognize given option")

_pack_header = struct.Struct(">4sII").pack


def _res(ptype: PacketType, *args: bytes) -> bytes:
    """encode_response without its argument checks, for the hot path.

    Only for arguments that cannot hold a NUL except the last: ones the decoder split on
    NUL, handles made here, and stored payloads in last position.
    """
    body = args[0] if len(args) == 1 else b"\0".join(args)
    return _pack_header(RES, ptype, len(body)) + body


_NOOP = encode_response(_T.NOOP)
_NO_JOB = encode_response(_T.NO_JOB)

# C's strtol/atoi: leading blanks, an optional sign, digits; anything else reads as 0.
_LEADING_INT = re.compile(rb"[ \t\n\r\f\v]*([+-]?[0-9]+)")
# Epochs are clamped to this, which is far enough in the future to mean "never".
_NEVER = 2**53


def atoi(text: bytes) -> int:
    m = _LEADING_INT.match(text)
    if m is None:
        return 0
    digits = m.group(1)
    if len(digits) > 20:
        # Saturate like strtoll; this also keeps int() away from its digit limit.
        return -(2**63) if digits.startswith(b"-") else 2**63 - 1
    return int(digits)


class Broker:
    """Functions, jobs and connections of one server, and every protocol operation."""

    def __init__(
        self,
        *,
        handle_prefix: bytes,
        call_later: CallLater,
        job_retries: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if job_retries < 0:
            raise ValueError("job_retries must be >= 0 (0 means unlimited)")
        self.handle_prefix = handle_prefix
        self.job_retries = job_retries
        self._call_later = call_later
        self._clock = clock
        self.functions: dict[bytes, Function] = {}
        self.jobs: dict[bytes, Job] = {}
        self.peers: dict[Peer, None] = {}
        # Peers with buffered output, written out by flush().
        self.dirty: list[Peer] = []
        self._counter = 0
        # Epoch jobs not due yet: (when, sequence, job), with lazy deletion like the queues.
        self._delayed: list[tuple[float, int, Job]] = []
        self._delay_timer: TimerHandle | None = None
        self._delay_at = math.inf
        self._delay_seq = 0  # FIFO among jobs due at the same time
        self._closed = False
        self._handlers: dict[PacketType, _Handler] = {
            _T.CAN_DO: self._can_do,
            _T.CAN_DO_TIMEOUT: self._can_do_timeout,
            _T.CANT_DO: self._cant_do,
            _T.RESET_ABILITIES: self._reset_abilities,
            _T.PRE_SLEEP: self._pre_sleep,
            _T.SUBMIT_JOB: partial(self._submit, Priority.NORMAL, False),
            _T.SUBMIT_JOB_BG: partial(self._submit, Priority.NORMAL, True),
            _T.SUBMIT_JOB_HIGH: partial(self._submit, Priority.HIGH, False),
            _T.SUBMIT_JOB_HIGH_BG: partial(self._submit, Priority.HIGH, True),
            _T.SUBMIT_JOB_LOW: partial(self._submit, Priority.LOW, False),
            _T.SUBMIT_JOB_LOW_BG: partial(self._submit, Priority.LOW, True),
            _T.SUBMIT_JOB_EPOCH: self._submit_epoch,
            _T.SUBMIT_REDUCE_JOB: partial(self._submit_reduce, False),
            _T.SUBMIT_REDUCE_JOB_BACKGROUND: partial(self._submit_reduce, True),
            _T.GRAB_JOB: partial(self._grab, _T.JOB_ASSIGN),
            _T.GRAB_JOB_UNIQ: partial(self._grab, _T.JOB_ASSIGN_UNIQ),
            _T.GRAB_JOB_ALL: partial(self._grab, _T.JOB_ASSIGN_ALL),
            _T.WORK_STATUS: self._work_status,
            _T.WORK_DATA: partial(self._work_forward, _T.WORK_DATA),
            _T.WORK_WARNING: partial(self._work_forward, _T.WORK_WARNING),
            _T.WORK_COMPLETE: self._work_complete,
            _T.WORK_FAIL: self._work_fail,
            _T.WORK_EXCEPTION: self._work_exception,
            _T.GET_STATUS: self._get_status,
            _T.GET_STATUS_UNIQUE: self._get_status_unique,
            _T.ECHO_REQ: self._echo,
            _T.OPTION_REQ: self._option,
            _T.SET_CLIENT_ID: self._set_client_id,
            # Everything else (responses sent to the server, ALL_YOURS, SUBMIT_JOB_SCHED)
            # gets INVALID_COMMAND, as from gearmand.
        }

    # -- events from the transport ------------------------------------------------------------

    def connect(self, peer: Peer) -> None:
        self.peers[peer] = None

    def handle(self, peer: Peer, packet: Packet) -> None:
        """Act on one binary packet from ``peer``."""
        if packet.magic is not Magic.REQ:
            peer.send(ERR_INVALID_MAGIC)
            return
        handler = self._handlers.get(packet.type)
        if handler is None:
            peer.send(ERR_INVALID_COMMAND)
        else:
            handler(peer, packet.args)

    def disconnect(self, peer: Peer) -> None:
        """The connection is gone: give back its jobs and forget it."""
        if self.peers.pop(peer, 1) is not None:
            return  # already handled
        peer.closed = True
        peer.out.clear()
        for job in list(peer.held.values()):
            self._requeue(job)
        for f in peer.abilities:
            f.workers.pop(peer, None)
            f.sleepers.pop(peer, None)
        peer.abilities = []
        peer.timeouts.clear()
        for job in peer.attached:
            job.clients = [c for c in job.clients if c is not peer]
            # A queued job nobody waits for any more will never be looked at: drop it.
            # Unlike gearmand 1.1.20 a job that a background submit also owns survives
            # (gearmand cancels it, reference §0.5).
            if not job.clients and not job.background and job.state is _QUEUED:
                self._drop_queued(job)
        peer.attached.clear()

    def flush(self) -> None:
        """Write every peer's buffered output."""
        dirty = self.dirty
        if dirty:
            for peer in dirty:
                peer.flush()
            dirty.clear()

    def close(self) -> None:
        """Cancel every timer (the server is stopping)."""
        self._closed = True
        if self._delay_timer is not None:
            self._delay_timer.cancel()
            self._delay_timer = None
        for job in self.jobs.values():
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
        for peer in self.peers:
            for job in peer.held.values():
                if job.timer is not None:
                    job.timer.cancel()
                    job.timer = None

    # -- client side: submits and status ------------------------------------------------------

    def _submit(
        self, priority: Priority, background: bool, peer: Peer, args: tuple[bytes, ...]
    ) -> None:
        self.submit(peer, args[0], args[1], args[2], priority, background)

    def _submit_epoch(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        name, unique, epoch, data = args
        # Not a number reads as 0 and runs at once, as with gearmand. A number too big for
        # a float (gearmand: no reply at all) just means "never" here.
        when = float(min(atoi(epoch), _NEVER))
        self.submit(peer, name, unique, data, Priority.NORMAL, True, when=when)

    def _submit_reduce(self, background: bool, peer: Peer, args: tuple[bytes, ...]) -> None:
        # The 4th field ("aggregate") is sent by libgearman and ignored by gearmand.
        name, unique, reducer, _aggregate, data = args
        self.submit(peer, name, unique, data, Priority.NORMAL, background, reducer=reducer)

    def submit(
        self,
        peer: Peer,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: Priority,
        background: bool,
        *,
        reducer: bytes = b"",
        when: float = 0.0,
    ) -> Job | None:
        """Create a job, or attach to the job with the same unique; reply JOB_CREATED."""
        if len(unique) > MAX_UNIQUE:
            # gearmand takes exactly 64 bytes but truncates them and corrupts the job.
            peer.send(ERR_UNIQUE_TOO_LARGE)
            return None
        f = self.functions.get(name)
        if f is None:
            f = self.functions[name] = Function(name)
        key: bytes | None = None
        if unique:
            # "-" coalesces on the payload; NUL cannot occur in a unique, so prefixing one
            # keeps payload keys apart from unique keys.
            key = unique if unique != b"-" else (b"\0" + data if data else None)
            if key is not None:
                job = f.uniques.get(key)
                if job is not None:
                    if background:
                        job.background = True
                    else:
                        job.clients.append(peer)
                        peer.attached.add(job)
                    peer.send(_res(_T.JOB_CREATED, job.handle))
                    return job
        limit = f.max_queue[priority]
        if limit > 0 and f.total >= limit:
            peer.send(ERR_QUEUE_FULL)
            return None
        self._counter += 1
        handle = self.handle_prefix + b"%d" % self._counter
        job = Job(handle, f, unique, key, data, priority, background, reducer, when)
        self.jobs[handle] = job
        if key is not None:
            f.uniques[key] = job
        if not background:
            job.clients.append(peer)
            peer.attached.add(job)
        peer.send(_res(_T.JOB_CREATED, handle))
        f.queued[priority] += 1
        if when and when > self._clock():
            self._delay(job)
        else:
            f.push(job)
            if f.sleepers:
                self._wake(f)
        return job

    def _get_status(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        handle = args[0]
        job = self.jobs.get(handle)
        if job is None:
            peer.send(encode_response(_T.STATUS_RES, handle, b"0", b"0", b"0", b"0"))
            return
        peer.send(
            encode_response(
                _T.STATUS_RES,
                handle,
                b"1",
                b"1" if job.state is _RUNNING else b"0",
                b"%d" % job.numerator,
                b"%d" % job.denominator,
            )
        )

    def _get_status_unique(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        unique = args[0]
        job = self.find_unique(unique)
        if job is None:
            reply = (unique, b"0", b"0", b"0", b"0", b"0")
        else:
            reply = (
                unique,
                b"1",
                b"1" if job.state is _RUNNING else b"0",
                b"%d" % job.numerator,
                b"%d" % job.denominator,
                b"%d" % len(job.clients),
            )
        peer.send(encode_response(_T.STATUS_RES_UNIQUE, *reply))

    def find_unique(self, unique: bytes) -> Job | None:
        """The job with this unique in any function (the first found, as gearmand does)."""
        if not unique:
            return None
        for f in self.functions.values():
            job = f.uniques.get(unique)
            if job is not None:
                return job
        return None

    # -- worker side --------------------------------------------------------------------------

    def _can_do(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        f = self._register(peer, args[0])
        peer.timeouts.pop(f, None)

    def _can_do_timeout(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        f = self._register(peer, args[0])
        ms = atoi(args[1])
        # One timer per job, cancelled when the job ends (gearmand keeps one per connection
        # and can fire it on a recycled job, hanging the server: reference §0.4).
        if ms > 0:
            peer.timeouts[f] = ms / 1000.0
        else:
            peer.timeouts.pop(f, None)

    def _register(self, peer: Peer, name: bytes) -> Function:
        f = self.functions.get(name)
        if f is None:
            f = self.functions[name] = Function(name)
        # gearmand registers a repeated CAN_DO again (and counts the worker again); once
        # is what a worker means.
        if peer not in f.workers:
            f.workers[peer] = None
            peer.abilities.append(f)
            if peer.sleeping:
                if f.waiting:
                    self._wake_peer(peer)
                else:
                    f.sleepers[peer] = None
        return f

    def _cant_do(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        f = self.functions.get(args[0])
        if f is None or peer not in f.workers:
            return
        self._unregister(peer, f)
        peer.abilities.remove(f)

    def _reset_abilities(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        for f in list(peer.abilities):
            self._unregister(peer, f)
        peer.abilities = []

    def _unregister(self, peer: Peer, f: Function) -> None:
        del f.workers[peer]
        f.sleepers.pop(peer, None)
        peer.timeouts.pop(f, None)
        # A worker that gives up a function gives back its jobs of that function (a
        # retry, as in gearmand); its later WORK_* for them get JOB_NOT_FOUND.
        for job in [j for j in peer.held.values() if j.function is f]:
            self._requeue(job)

    def _pre_sleep(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        for f in peer.abilities:
            if f.waiting:
                peer.send(_NOOP)
                return
        peer.sleeping = True
        for f in peer.abilities:
            f.sleepers[peer] = None

    def _wake(self, f: Function) -> None:
        # Every sleeper of the function, like gearmand's default ``-w 0``.
        for peer in list(f.sleepers):
            self._wake_peer(peer)

    def _wake_peer(self, peer: Peer) -> None:
        self._unsleep(peer)
        peer.send(_NOOP)

    @staticmethod
    def _unsleep(peer: Peer) -> None:
        peer.sleeping = False
        for f in peer.abilities:
            f.sleepers.pop(peer, None)

    def _grab(self, reply: PacketType, peer: Peer, args: tuple[bytes, ...]) -> None:
        if peer.sleeping:
            self._unsleep(peer)
        abilities = peer.abilities
        n = len(abilities)
        if n:
            # Round-robin over the worker's functions, starting after the one that gave
            # the last job, so that a busy function cannot starve the others.
            start = peer.rotation if peer.rotation < n else 0
            i = start
            while True:
                f = abilities[i]
                i += 1
                if i == n:
                    i = 0
                if f.waiting:
                    job = f.pop()
                    if job is not None:
                        peer.rotation = i
                        self._assign(peer, job, reply)
                        return
                if i == start:
                    break
        peer.send(_NO_JOB)

    def _assign(self, peer: Peer, job: Job, reply: PacketType) -> None:
        f = job.function
        job.state = _RUNNING
        job.worker = peer
        f.running += 1
        peer.held[job.handle] = job
        if peer.timeouts:
            timeout = peer.timeouts.get(f)
            if timeout is not None:
                job.timer = self._call_later(timeout, partial(self._expire, job, peer))
        if reply is _T.JOB_ASSIGN:
            peer.send(_res(_T.JOB_ASSIGN, job.handle, f.name, job.data))
        elif reply is _T.JOB_ASSIGN_UNIQ or not job.reducer:
            # GRAB_JOB_ALL answers JOB_ASSIGN_UNIQ for jobs without a reducer, like gearmand.
            peer.send(_res(_T.JOB_ASSIGN_UNIQ, job.handle, f.name, job.unique, job.data))
        else:
            peer.send(
                encode_response(
                    _T.JOB_ASSIGN_ALL, job.handle, f.name, job.unique, job.reducer, job.data
                )
            )

    def _expire(self, job: Job, peer: Peer) -> None:
        job.timer = None
        if job.worker is peer and job.state is _RUNNING:
            log.warning("worker timeout reached on job %r, requeueing", job.handle)
            self._requeue(job)
            self.flush()

    def _work_status(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        handle, num, den = args
        job = peer.held.get(handle)
        if job is None:
            peer.send(ERR_RESULT_NOT_FOUND)
            return
        # Stored as C's atoi into a uint32, forwarded verbatim.
        job.numerator = atoi(num) & 0xFFFFFFFF
        job.denominator = atoi(den) & 0xFFFFFFFF
        if job.clients:
            packet = _res(_T.WORK_STATUS, handle, num, den)
            for client in job.clients:
                client.send(packet)

    def _work_forward(self, ptype: PacketType, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = peer.held.get(args[0])
        if job is None:
            peer.send(ERR_DATA_NOT_FOUND)
            return
        if job.clients:
            packet = _res(ptype, *args)
            for client in job.clients:
                client.send(packet)

    def _work_complete(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = peer.held.get(args[0])
        if job is None:
            peer.send(ERR_RESULT_NOT_FOUND)
            return
        if job.clients:
            packet = _res(_T.WORK_COMPLETE, *args)
            for client in job.clients:
                client.send(packet)
        self._finish(job)

    def _work_fail(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = peer.held.get(args[0])
        if job is None:
            peer.send(ERR_RESULT_NOT_FOUND)
            return
        self._fail_clients(job)
        self._finish(job)

    def _work_exception(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = peer.held.get(args[0])
        if job is None:
            peer.send(ERR_EXCEPTION_NOT_FOUND)
            return
        if job.clients:
            exception = _res(_T.WORK_EXCEPTION, *args)
            # gearmand appends a NUL to the handle of this WORK_FAIL; a clean handle is what
            # every client expects (gearq's decoder strips that NUL either way).
            fail = encode_response(_T.WORK_FAIL, job.handle)
            for client in job.clients:
                client.send(exception if client.exceptions else fail)
        self._finish(job)

    # -- job lifecycle ------------------------------------------------------------------------

    def _fail_clients(self, job: Job) -> None:
        if job.clients:
            packet = encode_response(_T.WORK_FAIL, job.handle)
            for client in job.clients:
                client.send(packet)
                client.attached.discard(job)
            job.clients = []

    def _finish(self, job: Job) -> None:
        """The worker ended the job (after its result went to the clients)."""
        worker = job.worker
        if worker is not None:
            worker.held.pop(job.handle, None)
            job.worker = None
        job.function.running -= 1
        job.state = _DONE
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        self._forget(job)
        for client in job.clients:
            client.attached.discard(job)
        job.clients = []

    def _forget(self, job: Job) -> None:
        """Free the job's handle and unique (unless a newer job took them over)."""
        if self.jobs.get(job.handle) is job:
            del self.jobs[job.handle]
        key = job.key
        if key is not None:
            uniques = job.function.uniques
            if uniques.get(key) is job:
                del uniques[key]

    def _drop_queued(self, job: Job) -> None:
        job.function.forget_queued(job)
        self._forget(job)

    def _requeue(self, job: Job) -> None:
        """The worker lost the job (disconnect, CANT_DO, timeout): run it again, or give up."""
        f = job.function
        worker = job.worker
        if worker is not None:
            worker.held.pop(job.handle, None)
            job.worker = None
        f.running -= 1
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        job.retries += 1
        if self.job_retries and job.retries >= self.job_retries:
            log.info("dropped job due to max retry count: %r", job.handle)
            self._fail_clients(job)
            job.state = _DONE
            self._forget(job)
            return
        if not job.clients and not job.background:
            # Abandoned by its clients (or cancelled) while it ran: nobody wants it now.
            job.state = _DONE
            self._forget(job)
            return
        # To the tail of its priority queue, progress reset, as gearmand does.
        job.numerator = job.denominator = 0
        f.queued[job.priority] += 1
        f.push(job)
        if f.sleepers:
            self._wake(f)

    def cancel(self, handle: bytes) -> bool:
        """Admin ``cancel job``: fail the job for its clients and drop it if it is queued.

        A running job stays with its worker, whose later results are accepted but no
        longer forwarded (gearmand forwards them to clients that already got WORK_FAIL).
        """
        job = self.jobs.get(handle)
        if job is None:
            return False
        self._fail_clients(job)
        if job.state is _QUEUED or job.state is _DELAYED:
            self._drop_queued(job)
        else:
            job.background = False
            self._forget(job)
        return True

    # -- epoch jobs ---------------------------------------------------------------------------

    def _delay(self, job: Job) -> None:
        # gearmand 1.1.20 leaves such a job in the queue and never wakes a worker for it
        # (reference §0.2); here a timer makes it runnable when due and wakes the sleepers.
        job.state = _DELAYED
        self._delay_seq += 1
        heapq.heappush(self._delayed, (job.when, self._delay_seq, job))
        if job.when < self._delay_at:
            self._arm(job.when)

    def _arm(self, when: float) -> None:
        if self._closed:
            return
        if self._delay_timer is not None:
            self._delay_timer.cancel()
        self._delay_at = when
        self._delay_timer = self._call_later(max(0.0, when - self._clock()), self._release_due)

    def _release_due(self) -> None:
        self._delay_timer = None
        self._delay_at = math.inf
        heap = self._delayed
        now = self._clock()
        while heap and (heap[0][0] <= now or heap[0][2].state is not _DELAYED):
            job = heapq.heappop(heap)[2]
            if job.state is _DELAYED:
                f = job.function
                f.push(job)
                if f.sleepers:
                    self._wake(f)
        if heap:
            self._arm(heap[0][0])
        self.flush()

    # -- small requests -----------------------------------------------------------------------

    def _echo(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        peer.send(_res(_T.ECHO_RES, args[0]))

    def _option(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        name = args[0]
        if name.lower() == b"exceptions":
            peer.exceptions = True
            peer.send(encode_response(_T.OPTION_RES, name))
        else:
            peer.send(ERR_UNKNOWN_OPTION)

    def _set_client_id(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        peer.client_id = args[0][:MAX_CLIENT_ID] or b"-"

    # -- admin support ------------------------------------------------------------------------

    def function_list(self) -> Iterator[Function]:
        """Functions newest first, the order gearmand's ``status`` lists them in."""
        return reversed(list(self.functions.values()))

    def create_function(self, name: bytes) -> None:
        if name not in self.functions:
            self.functions[name] = Function(name)

    def drop_function(self, name: bytes) -> bool | None:
        """True if dropped, None if unknown, False if it still has workers or jobs."""
        f = self.functions.get(name)
        if f is None:
            return None
        if f.workers or f.total:
            return False
        del self.functions[name]
        return True
