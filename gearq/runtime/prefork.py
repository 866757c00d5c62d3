"""The prefork pool: N child processes run the tasks; this process holds the connections.

The parent runs a :class:`~gearq.tasks.runner.TaskWorker` with this pool as its
``executor``: it grabs the jobs (concurrency = the number of children) and hands each to an
idle child (:mod:`.child`), then writes the packets the child sends back on the job's own
connection. Because the connection outlives the child:

* a child that dies while running a job (a crash, an OOM kill, SIGKILL) is replaced, and
  the job is handed once more to a child. If that one dies too, the job is answered with a
  :class:`WorkerLost` failure: it ran twice, never zero times, never in a loop;
* at a task's hard time limit (per attempt) the parent answers the job with the
  ``time_limit`` failure envelope (gearmand ends it; nothing is requeued), kills the child
  and starts a replacement. ``async`` tasks get one second more, in which the child
  cancels them itself and keeps running;
* ``max_tasks_per_child`` retires a child after that many jobs; :meth:`PreforkPool.restart`
  (SIGHUP) replaces every child, the busy ones once their job is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..protocol.errors import GearqError
from ..tasks.envelope import EnvelopeError, detect_serializer, encode_failure
from ..tasks.serializers import JSON, MSGPACK, Serializer, get_serializer
from .ipc import MessageError, read_message, write_message

if TYPE_CHECKING:
    from ..tasks.runner import TaskLike
    from ..worker.job import Job

__all__ = ["ChildStartError", "PreforkPool", "WorkerLost"]

log = logging.getLogger("gearq.runtime.prefork")

#: Seconds an ``async`` task may run past its limit while its child cancels it.
ASYNC_GRACE = 1.0


class WorkerLost(GearqError):
    """The processes that ran a job died twice: the job is answered with this, not rerun."""


class ChildStartError(GearqError):
    """A child could not start (its import of the app failed, say); one line."""


class _Child:
    __slots__ = ("jobs", "limit_hit", "pid", "proc", "reader", "retire", "writer")

    def __init__(
        self, proc: subprocess.Popen[bytes], reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:  # fmt: skip
        self.proc = proc
        self.pid = proc.pid
        self.reader = reader
        self.writer = writer
        self.jobs = 0
        self.retire = False
        self.limit_hit = False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def close(self) -> None:
        """Close the channel: an idle child exits at once."""
        with contextlib.suppress(Exception):
            self.writer.close()

    async def exit_status(self, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                return code
            if time.monotonic() > deadline:
                self.kill()
                deadline = time.monotonic() + timeout
            await asyncio.sleep(0.01)

    def __repr__(self) -> str:
        return f"<child pid {self.pid}>"


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(slots=True)
class _End:
    finished: bool  # the child returned from the job (and is free again)
    result: bytes | None = None
    reason: str = ""


class PreforkPool:
    """Child processes for a :class:`~gearq.tasks.runner.TaskWorker` (its ``executor``).

    :param app_spec: ``module:attribute`` of the app, imported by each child.
    :param processes: children kept running (give the worker the same concurrency).
    :param max_tasks_per_child: retire a child after that many jobs (None: never).
    :param child_config: passed to every child (servers, tasks, queues, log settings).
    :param start_timeout: seconds a child may take to import the app and say it is ready.
    """

    def __init__(
        self,
        app_spec: str,
        *,
        processes: int,
        max_tasks_per_child: int | None = None,
        child_config: dict[str, Any] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.app_spec = app_spec
        self.processes = processes
        self.max_tasks_per_child = max_tasks_per_child
        self.child_config = dict(child_config or {})
        self.start_timeout = start_timeout
        self.replaced = 0  # children started after the first ones
        self._children: set[_Child] = set()
        self._idle: deque[_Child] = deque()
        self._waiters: deque[asyncio.Future[_Child]] = deque()
        self._spawning: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- facts ------------------------------------------------------------------------------

    @property
    def alive(self) -> int:
        """Children ready to take jobs or running one."""
        return len(self._children)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(sorted(child.pid for child in self._children))

    # -- starting and stopping --------------------------------------------------------------

    async def start(self) -> None:
        """Start every child and wait until each is ready (ChildStartError otherwise)."""
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self.processes)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for result in results:
            if isinstance(result, _Child):
                self._children.add(result)
                self._idle.append(result)
        if errors:
            await self.close(hard=True)
            raise errors[0]

    def restart(self) -> None:
        """Replace every child: the idle ones now, the busy ones after their job."""
        log.warning("restarting %d child process(es)", len(self._children))
        for child in self._children:
            child.retire = True
        while self._idle:
            self._retire(self._idle.popleft())

    async def close(self, *, hard: bool = False) -> None:
        """Stop every child: idle ones by closing their channel, busy ones (or all, when
        ``hard``) by SIGKILL; wait for them to exit."""
        self._closing = True
        for task in list(self._spawning):
            task.cancel()
        children = list(self._children)
        idle = set(self._idle)
        for child in children:
            if hard or child not in idle:
                child.kill()
            else:
                child.close()
        for child in children:
            await child.exit_status(timeout=5.0)
            child.close()
        self._children.clear()
        self._idle.clear()

    def kill_all(self) -> None:
        """SIGKILL every child now (a hard stop: gearmand requeues their jobs once this
        process's connections close)."""
        self._closing = True
        for child in self._children:
            child.kill()

    # -- children ---------------------------------------------------------------------------

    async def _spawn(self) -> _Child:
        parent_end, child_end = socket.socketpair()
        config = {
            **self.child_config,
            "app": self.app_spec,
            "fd": child_end.fileno(),
            "parent": os.getpid(),
        }
        try:
            proc = _start_child(config, child_end.fileno())
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        reader, writer = await asyncio.open_connection(sock=parent_end)
        child = _Child(proc, reader, writer)
        try:
            hello = await asyncio.wait_for(read_message(reader), self.start_timeout)
        except (asyncio.IncompleteReadError, ConnectionError, MessageError):
            code = await child.exit_status()
            child.close()
            raise ChildStartError(f"a child process {describe_exit(code)} on start") from None
        except (asyncio.TimeoutError, asyncio.CancelledError):
            child.kill()
            await child.exit_status()
            child.close()
            raise
        if hello[0] != "ready":
            child.kill()
            await child.exit_status()
            child.close()
            text = hello[1] if hello[0] == "error" and len(hello) > 1 else repr(hello)
            raise ChildStartError(f"a child process could not start: {text}")
        return child

    def _replace(self) -> None:
        if self._closing:
            return
        task = asyncio.get_running_loop().create_task(self._spawn_until_up())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _spawn_until_up(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                child = await self._spawn()
            except (ChildStartError, OSError, asyncio.TimeoutError) as exc:
                log.error("%s; trying again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self._closing:
                child.kill()
                await child.exit_status()
                child.close()
                return
            self.replaced += 1
            self._children.add(child)
            log.info("child process %d started", child.pid)
            self._hand_over(child)
            return

    def _hand_over(self, child: _Child) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(child)
                return
        self._idle.append(child)

    def _retire(self, child: _Child) -> None:
        self._children.discard(child)
        child.close()
        loop = asyncio.get_running_loop()
        reap = loop.create_task(child.exit_status())
        self._spawning.add(reap)
        reap.add_done_callback(self._spawning.discard)
        self._replace()

    def _discard(self, child: _Child) -> None:
        """A child that died (or was killed): forget it and start a replacement."""
        self._children.discard(child)
        child.kill()
        child.close()
        self._replace()

    def _release(self, child: _Child) -> None:
        child.jobs += 1
        limit = self.max_tasks_per_child
        if child.retire or (limit is not None and child.jobs >= limit):
            if not child.retire:
                log.info("child process %d retires after %d job(s)", child.pid, child.jobs)
            self._retire(child)
        else:
            self._hand_over(child)

    async def _acquire(self) -> _Child:
        if self._closing:
            await _until_cancelled()
        if self._idle:
            return self._idle.popleft()
        fut: asyncio.Future[_Child] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._hand_over(fut.result())
            raise

    # -- jobs -------------------------------------------------------------------------------

    async def execute(self, task: TaskLike, job: Job) -> bytes | None:
        """Run ``job`` in a child (the :class:`~gearq.tasks.runner.JobExecutor` hook)."""
        first_death: str | None = None
        grace = ASYNC_GRACE if _is_async(task.fn) else 0.0
        while True:
            child = await self._acquire()
            try:
                end = await self._run_on(child, job, grace)
            except BaseException:
                # A hard stop: the job is left unanswered; gearmand requeues it when the
                # connection closes. The child must not run on with it.
                self._discard(child)
                raise
            if end.finished:
                self._release(child)
                return end.result
            self._discard(child)
            if self._closing and not job.answered:
                await _until_cancelled()
            if child.limit_hit or job.answered:
                return None
            if first_death is not None:
                text = (
                    f"task {task.name}: the worker process running it died twice"
                    f" ({first_death}, then {end.reason}); it is not run again"
                )
                log.error("job %s: %s", job.handle.decode(errors="replace"), text)
                job.exception(encode_failure(WorkerLost(text), serializer=_serializer(task, job)))
                return None
            first_death = f"pid {child.pid} {end.reason}"
            log.warning(
                "job %s of task %s: child process %s while running it; handing it to another"
                " child once",
                job.handle.decode(errors="replace"), task.name, first_death,
            )  # fmt: skip

    async def _run_on(self, child: _Child, job: Job, grace: float) -> _End:
        loop = asyncio.get_running_loop()
        write_message(
            child.writer,
            ["job", job.handle, job.function, job.unique, job.payload, str(job.server)],
        )
        timer: asyncio.TimerHandle | None = None

        def time_up(answer: bytes, message: str) -> None:
            child.limit_hit = True
            if job.exception(answer):
                log.warning("%s; killing child process %d", message, child.pid)
            child.kill()

        try:
            while True:
                try:
                    message = await read_message(child.reader)
                except (asyncio.IncompleteReadError, ConnectionError, MessageError):
                    code = await child.exit_status()
                    return _End(False, reason=describe_exit(code))
                kind = message[0]
                if kind == "data":
                    job.send_data(message[1])
                elif kind == "status":
                    job.send_status(message[1], message[2])
                elif kind == "warning":
                    job.send_warning(message[1])
                elif kind == "attempt":
                    if timer is not None:
                        timer.cancel()
                    _, _attempt, limit, answer, text = message
                    timer = loop.call_later(float(limit) + grace, time_up, answer, text)
                elif kind == "attempt_end":
                    if timer is not None:
                        timer.cancel()
                        timer = None
                elif kind == "complete":
                    job.complete(message[1])
                elif kind == "exception":
                    job.exception(message[1])
                elif kind == "fail":
                    job.fail()
                elif kind == "done":
                    result = message[1]
                    return _End(True, result=None if result is None else bytes(result))
                else:
                    log.error("child process %d sent %r; dropping it", child.pid, kind)
                    return _End(False, reason=f"sent an unknown message {kind!r}")
        finally:
            if timer is not None:
                timer.cancel()


async def _until_cancelled() -> None:
    """Wait for the hard stop that comes with closing the pool. The job must stay
    unanswered (gearmand requeues it when the connection closes): returning, or raising,
    would make the worker answer it."""
    await asyncio.get_running_loop().create_future()


def _start_child(config: dict[str, Any], fd: int) -> subprocess.Popen[bytes]:
    # A fork and exec: milliseconds, so it is done on the loop. A fresh interpreter (not a
    # forked copy of this one) holds none of the parent's sockets, threads or locks.
    return subprocess.Popen(
        [sys.executable, "-m", "gearq.runtime.child", json.dumps(config)],
        pass_fds=(fd,),
        stdin=subprocess.DEVNULL,
    )


def _is_async(fn: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def _serializer(task: TaskLike, job: Job) -> Serializer:
    ser = get_serializer(task.options.serializer)
    if ser is MSGPACK or ser is JSON:
        try:
            return detect_serializer(job.payload)
        except EnvelopeError:
            return JSON
    return ser
