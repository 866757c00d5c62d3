"""Helpers for the TaskWorker tests: an app, a raw task client, a running worker.

The worker is driven the way any Gearman client would drive it: call envelopes built with
``gearq.tasks.encode_call``, submitted with the low-level ``AsyncClient``, and the packets
that come back (WORK_DATA / WARNING / STATUS / COMPLETE / EXCEPTION) decoded with the
envelope functions. Nothing here uses the caller side's ``AsyncResult``.

``make_app`` gives the real ``gearq.tasks.app.App`` (tasks named after their functions).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gearq.client import AsyncAdminClient, AsyncClient, JobException, JobFailed, Priority
from gearq.tasks import (
    Chunk,
    Failure,
    StateUpdate,
    decode_data,
    decode_failure,
    decode_reply,
    encode_call,
)
from gearq.tasks.app import App
from gearq.tasks.runner import TaskWorker
from gearq.testing import GearmandProcess
from tests.support.aio import FAST_RECOVER
from tests.support.aio import eventually as eventually
from tests.support.aio import run as run
from tests.support.aio import serving as serving

T = TypeVar("T")


# --- an app ------------------------------------------------------------------------------------


class NamedApp(App):
    """The real App, whose tasks are named after their function (not ``module.qualname``),
    so tests can spell their Gearman functions."""

    def task(self, *args: Any, **options: Any) -> Any:
        if args:
            (fn,) = args
            return super().task(name=fn.__name__)(fn)

        def decorate(fn: Callable[..., Any]) -> Any:
            return super(NamedApp, self).task(**{"name": fn.__name__, **options})(fn)

        return decorate


def make_app(server: GearmandProcess) -> NamedApp:
    return NamedApp("runner-tests", servers=[server.address], env=False)


# --- a worker ------------------------------------------------------------------------------------


def make_worker(app: Any, **kwargs: Any) -> TaskWorker:
    kwargs.setdefault("recover", FAST_RECOVER)
    kwargs.setdefault("poll_interval", 0.5)
    return TaskWorker(app, **kwargs)


# --- a raw task client ---------------------------------------------------------------------------


@dataclass
class Reply:
    """What a foreground caller saw of one task call, in arrival order."""

    events: list[tuple[str, Any, float]] = field(default_factory=list)
    kind: str = ""  # "ok" | "err" | "fail"
    value: Any = None  # the result value ("ok") or the Failure ("err")
    raw: bytes = b""
    packet: str = ""  # "complete" | "exception" | "fail"
    started: float = 0.0
    finished: float = 0.0
    is_raw: bool = False  # the task uses the raw serializer: no envelopes

    @property
    def failure(self) -> Failure:
        assert self.kind == "err", f"expected a failure, got {self.kind}: {self.value!r}"
        assert isinstance(self.value, Failure)
        return self.value

    def of(self, kind: str) -> list[Any]:
        return [value for what, value, _ in self.events if what == kind]

    @property
    def chunks(self) -> list[Any]:
        return [v.value for v in self.of("data") if isinstance(v, Chunk)]

    @property
    def states(self) -> list[StateUpdate]:
        return [v for v in self.of("data") if isinstance(v, StateUpdate)]

    @property
    def retries(self) -> list[StateUpdate]:
        return [v for v in self.states if v.state == "RETRY"]

    @property
    def elapsed(self) -> float:
        return self.finished - self.started


class Caller:
    """Calls tasks with hand-built envelopes and records everything that comes back."""

    def __init__(self, server: GearmandProcess) -> None:
        self.client = AsyncClient([server.address], recover_time=0.1)

    async def close(self) -> None:
        await self.client.close()

    async def submit(
        self,
        task: Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        payload: bytes | None = None,
        serializer: str = "msgpack",
        task_name: str | None = None,
        priority: Priority = Priority.NORMAL,
        function: bytes | None = None,
        on_event: Callable[[str, Any], object] | None = None,
        **call: Any,
    ) -> tuple[Reply, Any]:
        """Submit a foreground call; returns the Reply being filled and the client job."""
        if payload is None:
            payload = encode_call(
                task_name or task.name, args, kwargs, serializer=serializer, **call
            )
        raw = serializer == "raw"
        reply = Reply(started=time.monotonic(), is_raw=raw)
        function = task.function_name if function is None else function
        job = await self.client.submit(function, payload, priority=priority)

        def record(kind: str) -> Callable[[Any, Any], None]:
            def listener(_job: Any, value: Any) -> None:
                if kind == "data":
                    value = Chunk(value) if raw else decode_data(value)
                elif kind == "warning":
                    value = value.decode()
                reply.events.append((kind, value, time.monotonic()))
                if on_event is not None:
                    on_event(kind, value)

            return listener

        for kind in ("data", "warning", "status"):
            job.on(kind, record(kind))
        return reply, job

    async def finish(self, reply: Reply, job: Any, *, timeout: float = 10.0) -> Reply:
        try:
            data = await job.result(timeout)
        except JobException as exc:
            reply.packet, reply.raw = "exception", exc.data
            reply.kind, reply.value = "err", decode_failure(exc.data)
        except JobFailed:
            reply.packet, reply.kind = "fail", "fail"
        else:
            reply.packet, reply.raw = "complete", data
            outcome = decode_reply(data, serializer="raw" if reply.is_raw else None)
            if isinstance(outcome, Failure):
                reply.kind, reply.value = "err", outcome
            else:
                reply.kind, reply.value = "ok", outcome.value
        reply.finished = time.monotonic()
        return reply

    async def call(self, task: Any, *args: Any, timeout: float = 10.0, **kw: Any) -> Reply:
        reply, job = await self.submit(task, args, **kw)
        return await self.finish(reply, job, timeout=timeout)


@contextlib.asynccontextmanager
async def caller(server: GearmandProcess) -> AsyncIterator[Caller]:
    c = Caller(server)
    try:
        yield c
    finally:
        await c.close()


async def show_jobs(server: GearmandProcess) -> tuple[Any, ...]:
    async with AsyncAdminClient([server.address]) as admin:
        results = await admin.show_jobs()
        return tuple(next(iter(results.values())).result())
