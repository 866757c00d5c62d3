"""The blocking client: ``AsyncClient`` on a private event loop in a daemon thread.

Any number of threads may share one ``Client``; each call is handed to the loop thread.
After ``os.fork()`` the child notices the new pid and starts its own loop and connections
(the parent's sockets are never touched by the child).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from ..net.address import ServerAddress, ServerSpec
from ..protocol.errors import GearqError
from .client import AsyncClient, ClientCallback, ClientEvent
from .errors import ClientClosed, JobTimeout
from .job import Job, JobCallback, JobEvent, JobState, JobStatus, Priority, UniqueStatus

__all__ = ["Client", "SyncJob"]

_T = TypeVar("_T")

# Kept for the life of the process: a forked child must not close (or even garbage-collect
# into closing) the event loop and sockets it inherited from its parent.
_ABANDONED: list[object] = []


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(started,), name=name, daemon=True
        )
        self.thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking Client call from its own callback would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` in the loop thread and return its result."""
        if threading.current_thread() is self.thread:
            return fn(*args)
        fut: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


class SyncJob:
    """A job of the blocking client: the same attributes and method names as :class:`Job`,
    with blocking waits. Callbacks run in the client's loop thread."""

    __slots__ = ("_created", "_done", "_job", "_pid", "_runner")

    def __init__(self, job: Job, runner: _LoopThread) -> None:
        # Built in the loop thread, so the callbacks cannot miss an event.
        self._job = job
        self._runner = runner
        self._pid = os.getpid()
        self._done = threading.Event()
        self._created = threading.Event()
        job.add_done_callback(self._on_done)
        if job.state is not JobState.PENDING:
            self._created.set()
        else:
            job.on("created", lambda _job, _handle: self._created.set())

    def _on_done(self, job: Job) -> None:
        self._created.set()
        self._done.set()

    @property
    def job(self) -> Job:
        """The underlying asyncio job (touch it only from the loop thread)."""
        return self._job

    @property
    def handle(self) -> bytes | None:
        return self._job.handle

    @property
    def server(self) -> ServerAddress | None:
        return self._job.server

    @property
    def state(self) -> JobState:
        return self._job.state

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._job.error if self.done else None

    @property
    def function(self) -> bytes:
        return self._job.function

    @property
    def unique(self) -> bytes:
        return self._job.unique

    @property
    def background(self) -> bool:
        return self._job.background

    @property
    def payload(self) -> bytes:
        return self._job.payload

    @property
    def priority(self) -> Priority:
        return self._job.priority

    @property
    def numerator(self) -> int:
        return self._job.numerator

    @property
    def denominator(self) -> int:
        return self._job.denominator

    @property
    def warnings(self) -> list[bytes]:
        return list(self._job.warnings)

    @property
    def data(self) -> list[bytes]:
        return self._job.data

    @property
    def attempts(self) -> int:
        return self._job.attempts

    def _check_pid(self) -> None:
        if os.getpid() != self._pid:
            raise GearqError("this job belongs to the parent process; submit it again here")

    def result(self, timeout: float | None = None) -> bytes:
        """Block for the result (b"" for a background job once created); raises the typed
        error, or :class:`JobTimeout` after ``timeout`` seconds (the job goes on)."""
        self._check_pid()
        if not self._done.wait(timeout):
            raise JobTimeout(
                f"no result within {timeout:g} s (the job goes on)",
                server=self._job.server,
                handle=self._job.handle,
            )
        return self._job.result_nowait()

    def created(self, timeout: float | None = None) -> bytes:
        """Block until the server acknowledged the job; return its handle."""
        self._check_pid()
        if not self._created.wait(timeout):
            raise JobTimeout(f"not acknowledged within {timeout:g} s")
        handle = self._job.handle
        if handle is None:
            error = self._job.error
            assert error is not None
            raise error
        return handle

    def stream(self, timeout: float | None = None) -> Iterator[bytes]:
        """Yield WORK_DATA chunks as they arrive until the job ends; then raise its error
        if it did not complete. ``timeout`` bounds the wait for each chunk."""
        self._check_pid()
        chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def start() -> None:
            for chunk in self._job.data:
                chunks.put(chunk)
            if self._job.done:
                chunks.put(None)
                return
            self._job.on("data", lambda _job, data: chunks.put(data))
            self._job.add_done_callback(lambda _job: chunks.put(None))

        self._runner.call(start)
        while True:
            try:
                item = chunks.get(timeout=timeout)
            except queue.Empty:
                raise JobTimeout(f"no data within {timeout:g} s") from None
            if item is None:
                break
            yield item
        if self._job.error is not None:
            raise self._job.error

    def on(self, event: JobEvent, callback: JobCallback) -> JobCallback:
        """``callback(job, value)`` on each event, called in the loop thread with the
        underlying :class:`Job`."""
        return self._runner.call(self._job.on, event, callback)

    def off(self, event: JobEvent, callback: JobCallback) -> None:
        self._runner.call(self._job.off, event, callback)

    def add_done_callback(self, callback: Callable[[Job], object]) -> None:
        self._runner.call(self._job.add_done_callback, callback)

    def __repr__(self) -> str:
        return repr(self._job).replace("<Job", "<SyncJob", 1)


class Client:
    """Blocking twin of :class:`AsyncClient`: the same arguments and method names."""

    def __init__(
        self, servers: str | ServerSpec | Iterable[ServerSpec] | None = None, **options: Any
    ) -> None:
        self._servers = servers
        self._options = options
        # Fail fast on bad arguments, in the caller's thread.
        probe = AsyncClient(servers, **options)
        self.servers: tuple[ServerAddress, ...] = probe.servers
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._runner: _LoopThread | None = None
        self._client: AsyncClient | None = None
        self._listeners: list[tuple[ClientEvent, ClientCallback]] = []
        self._closed = False

    def _ensure(self) -> tuple[_LoopThread, AsyncClient]:
        if self._pid != os.getpid():
            self._after_fork()
        runner, client = self._runner, self._client
        if runner is not None and client is not None:
            return runner, client
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._runner is None or self._client is None:
                runner = _LoopThread(f"gearq-client-{os.getpid()}")
                client = AsyncClient(self._servers, **self._options)
                for event, callback in self._listeners:
                    client.on(event, callback)
                self._runner, self._client = runner, client
            return self._runner, self._client

    def _after_fork(self) -> None:
        # The loop thread does not exist here, and the sockets are the parent's.
        _ABANDONED.append((self._runner, self._client))
        self._runner = None
        self._client = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def async_client(self) -> AsyncClient:
        return self._ensure()[1]

    def on(self, event: ClientEvent, callback: ClientCallback) -> ClientCallback:
        """Client events as in :meth:`AsyncClient.on`; callbacks run in the loop thread."""
        self._listeners.append((event, callback))
        if self._client is not None and self._runner is not None:
            self._runner.call(self._client.on, event, callback)
        return callback

    def off(self, event: ClientEvent, callback: ClientCallback) -> None:
        if (event, callback) in self._listeners:
            self._listeners.remove((event, callback))
        if self._client is not None and self._runner is not None:
            self._runner.call(self._client.off, event, callback)

    def submit(
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
    ) -> SyncJob:
        """See :meth:`AsyncClient.submit`; ``job.result(timeout)`` blocks for the result."""
        runner, client = self._ensure()

        async def submit() -> SyncJob:
            job = await client.submit(
                function,
                payload,
                background=background,
                priority=priority,
                unique=unique,
                run_at=run_at,
                reducer=reducer,
                timeout=timeout,
                resubmit_on_failure=resubmit_on_failure,
            )
            return SyncJob(job, runner)

        return runner.run(submit())

    def submit_many(
        self,
        function: str | bytes,
        payloads: Iterable[bytes],
        *,
        background: bool = False,
        priority: Priority = Priority.NORMAL,
        uniques: Iterable[str | bytes | None] | None = None,
        timeout: float | None = None,
        resubmit_on_failure: bool | None = None,
    ) -> list[SyncJob]:
        """See :meth:`AsyncClient.submit_many`."""
        runner, client = self._ensure()
        payload_list = list(payloads)
        unique_list = None if uniques is None else list(uniques)

        async def submit() -> list[SyncJob]:
            jobs = await client.submit_many(
                function,
                payload_list,
                background=background,
                priority=priority,
                uniques=unique_list,
                timeout=timeout,
                resubmit_on_failure=resubmit_on_failure,
            )
            return [SyncJob(job, runner) for job in jobs]

        return runner.run(submit())

    def get_status(
        self, handle: SyncJob | Job | str | bytes, server: ServerSpec | None = None
    ) -> JobStatus:
        runner, client = self._ensure()
        target = handle.job if isinstance(handle, SyncJob) else handle
        return runner.run(client.get_status(target, server))

    def get_status_unique(
        self, unique: str | bytes, server: ServerSpec | None = None
    ) -> UniqueStatus:
        runner, client = self._ensure()
        return runner.run(client.get_status_unique(unique, server))

    def echo(self, data: bytes = b"", server: ServerSpec | None = None) -> bytes:
        runner, client = self._ensure()
        return runner.run(client.echo(data, server))

    def ping(self, server: ServerSpec | None = None) -> float:
        runner, client = self._ensure()
        return runner.run(client.ping(server))

    def close(self) -> None:
        """Close the connections and stop the loop thread; waiting jobs fail."""
        with self._lock:
            self._closed = True
            runner, client = self._runner, self._client
            self._runner = self._client = None
        if self._pid != os.getpid():
            return
        if runner is not None and client is not None:
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                runner.run(client.close(), timeout=10)
            runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {','.join(str(s) for s in self.servers)}>"
