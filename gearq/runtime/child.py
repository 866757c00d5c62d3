"""A prefork child: ``python -m gearq.runtime.child CONFIG`` (started by :mod:`.prefork`).

It imports the app itself, takes one job at a time from its parent over the socket pair,
runs it with the task worker's own handler (decode, retries, streaming, answers) and sends
every packet of the job back; the parent writes them on its Gearman connection. So a child
that dies takes no connection with it, and the parent can kill one that runs past its time
limit.

Children ignore SIGINT, SIGTERM and SIGHUP: the terminal's Ctrl-C and a whole process
group's SIGTERM reach them too, and the parent decides when they go (it closes their
channel, or kills them). A child whose parent has gone exits within half a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from ..net.address import ServerAddress
from ..protocol.errors import ArgumentError
from ..tasks.runner import TaskMiddleware, TaskOutcome, TaskWorker, time_limit_failure
from ..worker.errors import format_exception
from .ipc import BlockingChannel
from .loader import AppLoadError, load_app

if TYPE_CHECKING:
    from ..tasks.app import App
    from ..tasks.context import TaskContext
    from ..worker.job import Job

__all__ = ["ChildJob", "main"]

log = logging.getLogger("gearq.runtime.child")

_UINT32_MAX = 0xFFFFFFFF


class ChildJob:
    """Stands for the parent's :class:`gearq.worker.Job` in the child: the same attributes
    and senders, each packet sent to the parent. The first final answer wins."""

    def __init__(
        self,
        channel: BlockingChannel,
        handle: bytes,
        function: bytes,
        unique: bytes,
        payload: bytes,
        server: ServerAddress,
        time_limit: float | None,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.payload = payload
        self.server = server
        self.time_limit = time_limit
        self.attempt: int | None = None
        self._channel = channel
        self._lock = threading.Lock()
        self._outcome: str | None = None

    @property
    def answered(self) -> bool:
        return self._outcome is not None

    @property
    def outcome(self) -> str | None:
        return self._outcome

    @property
    def expired(self) -> bool:
        return False

    async def fetch_attempt(self, timeout: float = 5.0) -> int | None:
        return self.attempt

    def fetch_attempt_blocking(self, timeout: float = 5.0) -> int | None:
        return self.attempt

    def _send(self, message: list[Any]) -> bool:
        if self._outcome is not None:
            return False
        self._channel.send(message)
        return True

    def send_data(self, data: bytes | bytearray | memoryview) -> bool:
        return self._send(["data", bytes(data)])

    def send_warning(self, data: bytes | bytearray | memoryview) -> bool:
        return self._send(["warning", bytes(data)])

    def send_status(self, numerator: int, denominator: int) -> bool:
        for name, value in (("numerator", numerator), ("denominator", denominator)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArgumentError(f"status {name} must be an int, got {value!r}")
            if not 0 <= value <= _UINT32_MAX:
                raise ArgumentError(f"status {name} {value} is outside 0..{_UINT32_MAX}")
        return self._send(["status", numerator, denominator])

    def _final(self, outcome: str, message: list[Any]) -> bool:
        with self._lock:
            if self._outcome is not None:
                return False
            self._outcome = outcome
        self._channel.send(message)
        return True

    def complete(self, result: bytes | bytearray | memoryview = b"") -> bool:
        return self._final("complete", ["complete", bytes(result)])

    def fail(self) -> bool:
        return self._final("fail", ["fail"])

    def exception(self, data: bytes | bytearray | memoryview | BaseException) -> bool:
        raw = format_exception(data) if isinstance(data, BaseException) else bytes(data)
        return self._final("exception", ["exception", raw])

    def __repr__(self) -> str:
        return f"<ChildJob {self.handle.decode(errors='replace')} in pid {os.getpid()}>"


class _AttemptReporter(TaskMiddleware):
    """Middleware telling the parent when an attempt starts (with the answer to give if it
    runs past its limit) and ends, so the parent's hard limit is per attempt."""

    def __init__(self, channel: BlockingChannel, app: App) -> None:
        self.channel = channel
        self.app = app

    def before_task(self, ctx: TaskContext) -> None:
        limit = self.app.tasks[ctx.name].options.time_limit
        if limit is None:
            return
        answer, message = time_limit_failure(ctx.name, ctx.id, ctx.attempt, limit, ctx.serializer)
        self.channel.send(["attempt", ctx.attempt, limit, answer, message])

    def after_task(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        if self.app.tasks[ctx.name].options.time_limit is not None:
            self.channel.send(["attempt_end"])


def _watch_parent(parent: int) -> None:
    # Orphaned (the parent was killed): the job's connection is gone and gearmand has
    # requeued it; finishing it here would only run it twice.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    config: dict[str, Any] = json.loads(argv[0])
    parent = int(config["parent"])
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    channel = BlockingChannel(socket.socket(fileno=int(config["fd"])))
    logging.basicConfig(
        level=config.get("loglevel", "WARNING"),
        format=config.get("logformat", "%(levelname)s %(name)s: %(message)s"),
    )
    if config.get("log_tasks"):
        logging.getLogger("gearq.tasks.worker").setLevel(logging.INFO)
    try:
        app, _ = load_app(config["app"])
        if config.get("servers"):
            app.configure(servers=config["servers"])
        reporter = _AttemptReporter(channel, app)
        worker = TaskWorker(
            app,
            concurrency=1,
            tasks=config.get("tasks"),
            queues=config.get("queues"),
            pool="inline",  # one job at a time: the task runs on this process's thread
            log_tasks=bool(config.get("log_tasks")),
            middleware=[reporter],
        )
    except AppLoadError as exc:
        channel.send(["error", str(exc)])
        return 1
    except Exception as exc:
        channel.send(["error", f"{type(exc).__name__}: {exc}"])
        return 1
    channel.send(["ready", os.getpid()])
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        while True:
            message = channel.receive()
            if message is None:
                return 0  # the parent closed the channel: retire
            if message[0] != "job":
                continue
            _, handle, function, unique, payload, server = message
            job = ChildJob(
                channel, handle, function, unique, payload, ServerAddress.parse(server), None
            )
            try:
                handler = worker.handler_for(function)
                result = loop.run_until_complete(handler(cast("Job", job)))
            except Exception as exc:  # not the task's error (the handler catches those)
                log.exception("job %r could not be run", job)
                job.exception(exc)
                result = None
            channel.send(["done", result])
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
