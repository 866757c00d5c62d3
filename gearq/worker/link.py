"""One worker connection: a server, a group of functions, and its grab loop.

The grab loop, per connection::

    ACTIVE   --GRAB_JOB_UNIQ (one per free slot, up to the window)-->  JOB_ASSIGN_UNIQ / NO_JOB
    NO_JOB   --> DRAINED: no new GRABs; once all are answered, PRE_SLEEP --> SLEEPING
    SLEEPING --NOOP, or the poll timer--> ACTIVE
    woken after the queue was seen empty: a probe, GRAB and PRE_SLEEP in one write --> SLEEPING
        (its GRAB is answered while asleep; a NOOP right behind its job, gearmand's answer to
        the PRE_SLEEP when more jobs wait, hands over to the GRABs as usual)

The poll timer exists because gearmand 1.1.20 never wakes a worker when an epoch job falls
due, and sometimes strands jobs ("stuck jobs", gearmand #343). A future epoch job can also
make gearmand answer PRE_SLEEP with an immediate NOOP while GRAB keeps giving NO_JOB; wakes
that find nothing therefore back off, exponentially, up to the poll interval.

Slots are the worker's (see ``worker.py``): every outstanding GRAB holds one, because it may
come back with a job that must then be started at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from typing import TYPE_CHECKING

from ..net.address import ServerAddress
from ..net.connection import Connection, loop_clock
from ..net.errors import ConnectFailed, ConnectionLost
from ..net.recover import ServerHealth
from ..protocol.codec import Decoder, encode_request, encode_response
from ..protocol.errors import ProtocolError
from ..protocol.packets import REQ, Packet, PacketType
from .job import COMPLETE, _answer_lock

if TYPE_CHECKING:
    from .job import Job
    from .worker import AsyncWorker, _Function

__all__ = ["Link"]

log = logging.getLogger("gearq.worker")

_T = PacketType
_JOB_ASSIGN_UNIQ = _T.JOB_ASSIGN_UNIQ
_NO_JOB = _T.NO_JOB
_NOOP = _T.NOOP
_GRAB = encode_request(_T.GRAB_JOB_UNIQ)
# A WORK_COMPLETE header is these 8 bytes and the body size.
_COMPLETE_HEAD = REQ + int(_T.WORK_COMPLETE).to_bytes(4, "big")
_pack_head = struct.Struct(">8sI").pack
_PRE_SLEEP = encode_request(_T.PRE_SLEEP)
# What the decoder gives for every NOOP (one shared packet).
(_NOOP_PACKET,) = Decoder().feed_jobs(encode_response(_T.NOOP))
_RESET_ABILITIES = encode_request(_T.RESET_ABILITIES)
_SYNC_TOKEN = b"gearq-worker-sync-"
# Answered once gearmand has read the registration in front of it (it answers in order).
_REGISTERED = b"gearq-worker-registered"
_REGISTERED_ECHO = encode_request(_T.ECHO_REQ, _REGISTERED)

# Link states.
DOWN = 0
ACTIVE = 1
DRAINED = 2
SLEEPING = 3
STOPPING = 4

# Wakes that find no job: this many are answered at once, then each waits twice as long as
# the one before, from SPIN_BASE up to the poll interval. Losing a race for a job to another
# worker looks the same, and costs at most a few milliseconds before the streak resets.
SPIN_FREE = 3
SPIN_BASE = 0.001
# A connection that lived this long counts as a success: a drop is retried at once.
STABLE_AFTER = 1.0
# A probe (see Link._wake): one GRAB, and asleep right after it.
_PROBE = _GRAB + _PRE_SLEEP


class _Connection(Connection):
    """A connection that hands its link every packet of a read at once, jobs as bare
    argument lists (no Packet objects on the hot path): the link holds back its writes
    meanwhile, so a batch of jobs run inline costs one send, not two loop iterations."""

    link: Link | None = None

    def data_received(self, data: bytes) -> None:
        link = self.link
        if link is None:
            super().data_received(data)
            return
        # Connection.data_received, but with the decoder's job fast path.
        self._last_rx = link.now()
        try:
            items = self._decoder.feed_jobs(data)
        except ProtocolError as exc:
            log.warning("%s: protocol error, closing: %s", self.address, exc)
            self._fail(ConnectionLost(self.address, f"protocol error: {exc}"))
            return
        if not items:
            return
        # (As in read_in_place.)
        if len(items) == 1:
            first = items[0]
            if first is _NOOP_PACKET:
                link.woken()
                return
            if first.__class__ is list:
                link.lone_job(first)
                return
        link.receive(items)

    def read_in_place(self) -> bool:
        # Connection.read_in_place, with what it read going straight to the link (not
        # through buffer_updated and data_received).
        link = self.link
        fd = self._fd
        if link is None or fd < 0:
            return super().read_in_place()
        try:
            nbytes = os.readv(fd, (self._inbox,))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._fail(ConnectionLost(self.address, f"connection lost: {exc}"))
            return True
        if not nbytes:
            return False  # EOF: the transport sees it too, and closes as usual
        self._last_rx = link.now()
        try:
            items = self._decoder.feed_jobs(self._inbox[:nbytes].tobytes())
            # The two reads of a lone job, each to its shortcut: the NOOP that wakes the
            # connection, then the job its probe brings.
            if len(items) == 1:
                first = items[0]
                if first is _NOOP_PACKET:
                    link.woken()
                elif first.__class__ is list:
                    link.lone_job(first)
                else:
                    link.receive(items)
            elif items:
                link.receive(items)
        except ProtocolError as exc:
            log.warning("%s: protocol error, closing: %s", self.address, exc)
            self._fail(ConnectionLost(self.address, f"protocol error: {exc}"))
        except Exception as exc:  # as the transport does when a protocol callback fails
            log.exception("%s: error while handling a read", self.address)
            self._fail(ConnectionLost(self.address, f"connection lost: {exc!r}"))
        return True


class Link:
    """A connection to ``address`` serving ``functions``, reconnected for as long as it runs."""

    def __init__(
        self,
        worker: AsyncWorker,
        address: ServerAddress,
        group: str,
        functions: dict[bytes, _Function],
    ) -> None:
        self.worker = worker
        self.address = address
        self.group = group
        self.functions = functions
        self.loop = worker.loop
        self.now = loop_clock(self.loop)  # the loop's time
        self.thread_id = worker.thread_id
        self.health = ServerHealth(address, worker.recover)
        self.conn: Connection | None = None
        self.registered = False
        self.gen = 0  # bumped per connection: a job is only ever answered on its own
        self.state = DOWN
        self.grabs = 0
        self.window = worker.grab_window
        # GRABs allowed out now: 1 after a wake, growing by one per job up to the window, so
        # an idle connection woken for one job sends one GRAB, not a window of them.
        self.limit = 1
        self.queued = False  # in the worker's queue of links waiting for a slot
        self.held: dict[bytes, Job] = {}
        self.task: asyncio.Task[None] | None = None
        self.corked = False
        self._out: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        # The poll timer is armed lazily: a wake leaves it be, and when it fires for a sleep
        # that has since ended it re-arms for the current one (no call_at and cancel for
        # every job of a lone caller).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0  # when self._timer fires
        self._timer_at = 0.0  # when this sleep ends
        self._timer_noop = False
        self._streak = 0  # wakes in a row that found no job
        self._woken_by_noop = False
        # The queue was seen empty (a NO_JOB) when this connection last went to sleep: the
        # next wake probes (see _wake).
        self._quiet = False
        self._probe = False  # the next grab() is a probe
        self._probe_found = 0
        self._sent_grabs = 0
        self._echoes_due = 0  # registration ECHOs not yet answered on this connection
        self._sync_marks: dict[bytes, int] = {}
        self._sync_seq = 0
        self._lost: asyncio.Future[None] | None = None
        # CAN_DOs in the order gearmand last saw them on a connection (see registration).
        self._can_do_order = list(reversed(list(functions)))

    @property
    def registration(self) -> bytes:
        """What a new connection sends first: its id, a CAN_DO per function, and the ECHO
        that tells when gearmand has taken them."""
        return b"".join(
            [encode_request(_T.SET_CLIENT_ID, self.worker.client_id)]
            # gearmand lists (and hands out) functions last-registered-first; registering
            # in reverse makes the first registered function the first one served.
            + [encode_request(_T.CAN_DO, name) for name in self._can_do_order]
            + [_REGISTERED_ECHO]
        )

    def add_function(self, fn: _Function) -> None:
        """Serve one more function (registered while running): a CAN_DO on the live
        connection, and in the registration of every later one."""
        self.functions[fn.name] = fn
        # Registered last here, so served first, now and after a reconnect alike.
        self._can_do_order.append(fn.name)
        if self.conn is None:
            return  # the next connection registers it
        was_up, self.registered = self.registered, False
        if was_up:
            self.worker._link_registering(self)
        self._echoes_due += 1
        self.write(encode_request(_T.CAN_DO, fn.name) + _REGISTERED_ECHO)
        # gearmand wakes sleepers for new jobs only: look at what is queued already.
        if self.state is SLEEPING:
            self._wake(noop=False)
        elif self.state is DRAINED:
            self.state = ACTIVE
            self.worker._want(self)

    def __repr__(self) -> str:
        names = b",".join(self.functions).decode(errors="replace")
        return f"<Link {self.address} [{names}] state={self.state} grabs={self.grabs}>"

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes; everything queued in one loop iteration goes out in one write."""
        self._out.append(data)
        if self._flush_handle is None and not self.corked:
            self._flush_handle = self.loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        conn = self.conn
        if conn is not None:
            try:
                if not conn.send_idle(data):  # (send_now, a call fewer)
                    conn.send(data)
            except ConnectionLost:  # on_lost has run or will run; gearmand requeues the jobs
                return

    def send_final(self, job: Job, packet: bytes) -> None:
        """Write a job's final answer (on the loop). Dropped if its connection is gone."""
        if job._final_sent:
            return
        job._final_sent = True
        if job._gen != self.gen or self.conn is None:
            return  # a job is only ever answered on the connection that holds it
        self.held.pop(job.handle, None)
        self.worker._count_answer(job._answer)
        self.write(packet)

    def complete(self, job: Job, result: bytes) -> None:
        """``job.complete(result)`` for the loop thread, without the detours."""
        lock = _answer_lock
        lock.acquire()
        if job._answer:
            lock.release()
            return
        job._answer = COMPLETE
        lock.release()
        job._final_sent = True
        if job._gen != self.gen or self.conn is None:
            return
        handle = job.handle
        self.held.pop(handle, None)
        self.worker.stats.completed += 1
        # The pieces go out joined with the rest of the batch: no packet is built alone.
        out = self._out
        out += (_pack_head(_COMPLETE_HEAD, len(handle) + 1 + len(result)), handle, b"\0", result)
        if self._flush_handle is None and not self.corked:
            self._flush_handle = self.loop.call_soon(self.flush)

    def complete_now(self, job: Job, result: bytes) -> bool:
        """:meth:`complete` and :meth:`flush` in one: the answer (behind whatever is queued)
        leaves now. From the loop's thread, or a thread the loop's thread is blocked
        waiting for (see :meth:`Job.complete_for_loop`). False if the job was already
        answered."""
        lock = _answer_lock
        lock.acquire()
        if job._answer:
            lock.release()
            return False
        job._answer = COMPLETE
        lock.release()
        job._final_sent = True
        conn = self.conn
        if job._gen != self.gen or conn is None:
            return True
        handle = job.handle
        packet = _pack_head(_COMPLETE_HEAD, len(handle) + 1 + len(result)) + handle + b"\0" + result
        out = self._out
        if out:  # queued before it: they go first, in the same write
            out.append(packet)
            packet = b"".join(out)
            out.clear()
        try:
            if not conn.send_idle(packet):  # (send_now, a call fewer)
                conn.send(packet)
        except ConnectionLost:  # on_lost has run or will run; gearmand requeues the job
            pass
        finally:  # (after the write: the caller waits for nothing of this)
            self.held.pop(handle, None)
            self.worker.stats.completed += 1
        return True

    def send_progress(self, job: Job, packet: bytes) -> None:
        if job._final_sent or job._gen != self.gen or self.conn is None:
            return
        self.write(packet)

    # -- connection lifecycle --------------------------------------------------------------

    async def supervise(self) -> None:
        """Connect, serve until the connection drops, then reconnect with the recover time."""
        worker = self.worker
        while not worker.stopping:
            delay = self.health.retry_in()
            if delay > 0:
                await asyncio.sleep(delay)
                if worker.stopping:
                    break
            try:
                conn = await _Connection.open(
                    self.address, worker.options, self.on_packet, self._on_lost
                )
            except ConnectFailed as exc:
                pause = self.health.mark_failed()
                log.warning("%s; retrying in %.1f s", exc, pause)
                continue
            except Exception:  # whatever it is, this link must live on and retry
                pause = self.health.mark_failed()
                log.exception("%s: cannot connect; retrying in %.1f s", self.address, pause)
                continue
            assert isinstance(conn, _Connection)
            if worker.stopping:
                conn.close()
                break
            if not conn.is_open:
                self.health.mark_failed()
                continue
            lost = self.loop.create_future()
            self._lost = lost
            started = self.loop.time()
            self._attach(conn)
            await lost
            if worker.stopping:
                break
            if self.loop.time() - started >= STABLE_AFTER:
                self.health.mark_ok()
            else:
                self.health.mark_failed()  # a server that drops us at once is not retried hot

    def _attach(self, conn: _Connection) -> None:
        first = self.gen == 0
        conn.link = self
        self.conn = conn
        self.gen += 1
        self.state = ACTIVE
        self.grabs = 0
        self.limit = 1
        self._streak = 0
        self._woken_by_noop = False
        self._quiet = False
        self._probe = False
        self._sent_grabs = 0
        self._sync_marks.clear()
        self.worker.stats.connects += 1
        count = len(self.functions)
        if first:
            log.debug("%s: connected, registering %d function(s)", self.address, count)
        else:
            log.info("%s: reconnected, registering %d function(s)", self.address, count)
        self.registered = False
        self._echoes_due = 1
        self.write(self.registration)
        self.worker._want(self)

    def _on_lost(self, conn: Connection, error: ConnectionLost | None) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        was_registered, self.registered = self.registered, False
        self.state = DOWN
        self._cancel_timer()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._out.clear()
        grabs, self.grabs = self.grabs, 0
        held, self.held = self.held, {}
        if held:
            # gearmand requeues them (or lost them, if it died); their late answers are
            # dropped because the job's connection generation is gone.
            self.worker.stats.jobs_lost += len(held)
        if error is not None and not self.worker.stopping:
            log.warning("%s (%d job(s) in hand)", error, len(held))
        self.worker._link_down(self, grabs, was_registered)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def close(self, *, hard: bool) -> None:
        """Close for a stop: RESET_ABILITIES first when nothing is held (else gearmand
        would requeue what is), or abort at once when ``hard``."""
        conn = self.conn
        self._cancel_timer()
        if conn is None:
            return
        self.state = STOPPING
        if hard or self.held:
            self._out.clear()
            conn.abort()
            return
        self.write(_RESET_ABILITIES)
        self.flush()
        conn.close()

    # -- grab loop -------------------------------------------------------------------------

    def grab(self, count: int = 1) -> None:
        self.grabs += count
        self._sent_grabs += count
        self.worker.stats.grabs += count
        if self._probe:
            # GRABs with a PRE_SLEEP behind them: asleep at gearmand as soon as they are
            # answered, and woken by it at once if more jobs wait (see _wake).
            self._probe = False
            self._probe_found = 0
            self.limit = self.grabs  # nothing more to ask for
            self.state = SLEEPING
            # Out now, with whatever is queued before it, and before the timer is seen to:
            # a job that woke us waits for this write.
            self._out.append(_GRAB + _PRE_SLEEP if count == 1 else _GRAB * count + _PRE_SLEEP)
            self.flush()
            self._arm_timer(self.worker.poll_interval, noop=False)
            self.worker._asleep()
            return
        self.write(_GRAB if count == 1 else _GRAB * count)

    def stop_grabbing(self) -> None:
        self._cancel_timer()
        self._probe = False
        if self.state is not DOWN:
            self.state = STOPPING

    def receive(self, items: list[Packet | list[bytes]]) -> None:
        """Handle what one read brought (a job as its argument list, else a packet), then
        write every answer and GRAB it caused in one go. (But for what a lone caller waits
        for: a probe goes out at once; a read that is one job goes to :meth:`lone_job`,
        which writes a probe's answer at once.)"""
        worker = self.worker
        self.corked = True
        job_read = False
        try:
            for item in items:
                try:
                    if item.__class__ is list:
                        job_read = True
                        self._assigned(*item)
                        continue
                    ptype = item.type  # type: ignore[union-attr]
                    if ptype is _NOOP:
                        if job_read:
                            # Right behind a job: gearmand answered our PRE_SLEEP at once,
                            # so more jobs wait. Not a lone job: GRAB as usual.
                            self._quiet = False
                        self._noop()
                    elif ptype is _NO_JOB:
                        self._no_job()
                    else:
                        self._on_packet(item)  # type: ignore[arg-type]
                except Exception:
                    # A bug here must not take the connection (and its other jobs) down.
                    log.exception("%s: error while handling %r", self.address, item)
        finally:
            # Slots freed meanwhile (a NO_JOB, say) and not handed out yet.
            if worker._free > 0 and worker._hungry:
                worker._dispatch()
            self.corked = False
            if self._out:
                self.flush()

    def woken(self) -> None:
        """A read that was one NOOP: :meth:`receive` of it, in one step for the usual case
        (asleep with nothing asked for, the queue seen empty, no wake in vain before it,
        a slot to spare and nobody waiting for it): the probe of a GRAB and PRE_SLEEP that
        _noop, _wake and grab would send (see _wake). Anything else goes the usual way."""
        worker = self.worker
        conn = self.conn
        free = worker._free
        if (
            self.state is not SLEEPING or self.grabs or self._streak or not self._quiet
            or free < 1 or worker._hungry or self.queued or self._out or conn is None
        ):  # fmt: skip
            self.receive([_NOOP_PACKET])
            return
        # The write first: the job that woke us waits for it (and nothing below changes
        # what goes out).
        try:
            if not conn.send_idle(_PROBE):  # (send_now, a call fewer)
                conn.send(_PROBE)
        except ConnectionLost:  # closed: on_lost has run, and nothing is asked for
            return
        stats = worker.stats
        stats.noops += 1
        stats.grabs += 1
        worker._free = free - 1
        self.grabs = self.limit = 1
        self._sent_grabs += 1
        self._woken_by_noop = True
        self._probe = False
        self._probe_found = 0
        at = self.now() + worker.poll_interval
        self._timer_at = at
        self._timer_noop = False
        if self._timer is None or self._timer_when > at:
            self._arm_timer(worker.poll_interval, noop=False)
        waiter = worker._in_place  # (worker._asleep, a call fewer)
        if waiter is not None:
            waiter.idle_soon()

    def lone_job(self, job: list[bytes]) -> None:
        """:meth:`receive` of a read that is one job (what a lone job's probe brings back):
        the same steps, unrolled. A probe's job, with nothing else to write, is answered
        with a write of its own as soon as its handler returns, before the bookkeeping."""
        worker = self.worker
        if self.state is SLEEPING and self.grabs == 1 and not self._out:
            # _assigned's steps for a probe's job.
            self.grabs = 0
            self._streak = 0
            self._probe_found += 1
            try:
                try:
                    handle, function, unique, payload = job
                    worker._start_job(self, handle, function, unique, payload, now=True)
                except Exception:
                    log.exception("%s: error while handling %r", self.address, job)
                self._probed()
            finally:
                if worker._free > 0 and worker._hungry:
                    worker._dispatch()
                if self._out:
                    self.flush()
            return
        self.corked = True
        try:
            try:
                self._assigned(*job)
            except Exception:
                log.exception("%s: error while handling %r", self.address, job)
        finally:
            if worker._free > 0 and worker._hungry:
                worker._dispatch()
            self.corked = False
            if self._out:
                self.flush()

    def on_packet(self, packet: Packet) -> None:
        """One packet outside :meth:`receive` (the plain Connection callback)."""
        self.receive([packet])

    def _on_packet(self, packet: Packet) -> None:
        ptype = packet.type
        if ptype is _JOB_ASSIGN_UNIQ:
            self._assigned(*packet.args)
        elif ptype is _NO_JOB:
            self._no_job()
        elif ptype is _NOOP:
            self._noop()
        elif ptype is _T.JOB_ASSIGN_ALL:
            handle, function, unique, _reducer, payload = packet.args
            self._assigned(handle, function, unique, payload)
        elif ptype is _T.JOB_ASSIGN:
            handle, function, payload = packet.args
            self._assigned(handle, function, b"", payload)
        elif ptype is _T.ERROR:
            self._error(packet.args[0], packet.args[1])
        elif ptype is _T.ECHO_RES:
            self._echo(packet.args[0])
        else:
            log.debug("%s: ignoring unexpected %s", self.address, ptype.name)

    def _assigned(self, handle: bytes, function: bytes, unique: bytes, payload: bytes) -> None:
        if self.grabs > 0:
            self.grabs -= 1  # the GRAB's slot now belongs to the job
        else:  # unasked for: run it all the same, on a slot of its own
            self.worker._free -= 1
        self._streak = 0
        worker = self.worker
        if self.state is SLEEPING:
            # A probe's job: gearmand has our PRE_SLEEP behind it, and wakes us if more
            # jobs wait; nothing to GRAB now.
            self._probe_found += 1
            worker._start_job(self, handle, function, unique, payload)
            if not self.grabs:
                self._probed()
            return
        woken = self._woken_by_noop
        self._woken_by_noop = False  # this wake found work
        if self.limit < self.window and not woken:
            # (Not for the first job of a wake: one GRAB after it, as before it, until a
            # second job shows that more are coming.)
            self.limit += 1
        if self.state is DRAINED:
            self.state = ACTIVE  # a job came after a NO_JOB: more may follow
        worker._start_job(self, handle, function, unique, payload)
        if not self.queued and self.grabs < self.limit and self.state is ACTIVE:
            self.queued = True
            worker._hungry.append(self)
            if worker._free > 0:
                # The GRAB right behind the job's answer (in the same write): gearmand
                # drained measurably faster so than with all answers first, then all GRABs.
                worker._dispatch()

    def _no_job(self) -> None:
        if self.grabs <= 0:
            return  # unasked for
        self.grabs -= 1
        self.worker.stats.no_jobs += 1
        if self.state is SLEEPING:  # a probe's GRAB: the queue is empty now
            self.worker._release_slot()
            if not self.grabs:
                self._probed()
            return
        if self.state is ACTIVE:
            self.state = DRAINED
        self.worker._release_slot()
        if self.grabs == 0 and self.state is DRAINED:
            self._sleep()

    def _probed(self) -> None:
        """Every GRAB of a probe is answered; the connection is asleep at gearmand."""
        if self._woken_by_noop and not self._probe_found:
            self._streak += 1
        self._woken_by_noop = False
        # The next wake probes again, unless a NOOP right behind the probe's job (see
        # receive) shows a queue.
        self._quiet = True

    def _sleep(self) -> None:
        if self._woken_by_noop:  # woken by a NOOP, and found nothing
            self._streak += 1
        self._woken_by_noop = False
        self._quiet = True
        self.state = SLEEPING
        self.write(_PRE_SLEEP)
        self._arm_timer(self.worker.poll_interval, noop=False)
        self.worker._asleep()

    def _noop(self) -> None:
        self.worker.stats.noops += 1
        if self.state is not SLEEPING or self.grabs:
            # A NOOP that crossed a GRAB of ours: that GRAB sees the job (and a probe's
            # PRE_SLEEP, behind it, gets a NOOP of its own if more wait).
            return
        streak = self._streak
        if streak < SPIN_FREE:
            self._wake(noop=True)
            return
        delay = min(self.worker.poll_interval, SPIN_BASE * 2 ** (streak - SPIN_FREE))
        if self.now() + delay < self._timer_at:
            self._arm_timer(delay, noop=True)
        else:
            self._timer_noop = True

    def _arm_timer(self, delay: float, *, noop: bool) -> None:
        """End this sleep in ``delay`` seconds, with a timer that fires no later."""
        at = self.now() + delay
        self._timer_at = at
        self._timer_noop = noop
        timer = self._timer
        if timer is not None:
            if self._timer_when <= at:
                return  # it fires first, and re-arms for ``at``
            timer.cancel()
        self._timer_when = at
        self._timer = self.loop.call_at(at, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.state is not SLEEPING:
            return  # the sleep it was set for has ended; the next one arms it again
        at = self._timer_at
        if at > self.now():  # set for an earlier sleep
            self._timer_when = at
            self._timer = self.loop.call_at(at, self._on_timer)
            return
        if self.grabs:
            # A probe not answered in all that time: wake as from a GRAB's answer, so
            # that the usual grab loop takes over once it is.
            self.state = ACTIVE
            self.limit = 1
            self._woken_by_noop = False
            return
        if not self._timer_noop:
            self.worker.stats.polls += 1
        self._wake(noop=self._timer_noop)

    def _wake(self, *, noop: bool) -> None:
        self.state = ACTIVE
        self._woken_by_noop = noop
        if self._quiet and not self.grabs:
            # The queue was empty when we last looked: most likely this wake is for one
            # job. A probe: a GRAB with a PRE_SLEEP right behind it, so the job costs one
            # write and no GRAB after it (a lone caller's round trip: a wake-up of this loop
            # and two packets fewer). gearmand answers the PRE_SLEEP with a NOOP at once if
            # more jobs wait: right behind the probe's job, that NOOP shows a queue, and the
            # next wake GRABs as usual (see receive). One GRAB, not two: measured, a
            # second GRAB's NO_JOB cost a lone round trip more than it told.
            self._probe = True
        self.limit = 1
        worker = self.worker
        free = worker._free
        if free > 0 and not worker._hungry and not self.queued:
            # Nobody else waits for a slot: take it now (as _want and _dispatch would).
            count = min(1 - self.grabs, free)
            if count > 0:
                worker._free = free - count
                self.grab(count)
            return
        worker._want(self)

    # -- server errors ---------------------------------------------------------------------

    def _error(self, code: bytes, text: bytes) -> None:
        self.worker.stats.server_errors += 1
        log.warning(
            "%s: server error %s: %s",
            self.address,
            code.decode(errors="replace"),
            text.decode(errors="replace"),
        )
        if self.grabs and self.conn is not None:
            # ERROR is not tied to a request. If it answered a GRAB, that GRAB's slot would
            # be lost for good; an ECHO behind it tells: gearmand answers in order.
            self._sync_seq += 1
            token = _SYNC_TOKEN + b"%d" % self._sync_seq
            self._sync_marks[token] = self._sent_grabs
            self.write(encode_request(_T.ECHO_REQ, token))

    def _echo(self, token: bytes) -> None:
        conn = self.conn
        if isinstance(conn, _Connection) and conn.heartbeat_answered(token):
            return
        if token == _REGISTERED:
            self._echoes_due -= 1
            if not self.registered and self.conn is not None and self._echoes_due <= 0:
                self.registered = True
                self.worker._link_up(self)
            return
        mark = self._sync_marks.pop(token, None)
        if mark is None:
            return
        # GRABs sent after the ECHO are answered after it; any other still outstanding
        # was answered by an ERROR.
        missing = self.grabs - (self._sent_grabs - mark)
        if missing <= 0:
            return
        log.warning("%s: %d GRAB(s) were answered with an error", self.address, missing)
        self.grabs -= missing
        if self.state is ACTIVE:
            self.state = DRAINED
        for _ in range(missing):
            self.worker._release_slot()
        if self.grabs == 0:
            if self.state is DRAINED:
                self._sleep()
            elif self.state is SLEEPING:  # a probe's
                self._probed()
