"""``gearq call TASK [ARG ...]``: call a task from the shell, show its progress, print its result.

Arguments are JSON literals where they parse and strings otherwise, so ``gearq call add 2 3``
sends two ints and ``gearq call greet world`` a string; ``NAME=VALUE`` is a keyword
argument. With ``-A`` the task's own options apply; without, the task is addressed by its
name with the default envelope, exactly as ``@app.task(name=TASK)`` would send it.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    CommandError,
    error_text,
    load_app,
    resolve_servers,
    server_error,
    to_json,
)

if TYPE_CHECKING:
    from ..client.job import Job
    from ..tasks.app import App
    from ..tasks.task import Task

__all__ = ["parse_arguments", "parse_literal", "run_call"]


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; "NaN" on a command line is more likely a string.
    raise ValueError(name)


def parse_literal(text: str) -> Any:
    """A JSON literal if ``text`` is one, else ``text`` itself."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _json_option(option: str, text: str | None, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise CommandError(f"{option}: not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        want = "array" if kind is list else "object"
        raise CommandError(f"{option} must be a JSON {want}, got {text!r}")
    return value


def parse_arguments(
    items: Sequence[str], json_args: str | None = None, json_kwargs: str | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments from the command line.

    ``--args`` (a JSON array) comes first, then the positional ARGs; ``--kwargs`` (a JSON
    object) is overridden by no one: a keyword given twice is an error.
    """
    args: list[Any] = list(_json_option("--args", json_args, list))
    kwargs: dict[str, Any] = dict(_json_option("--kwargs", json_kwargs, dict))
    keyword_seen = False
    for item in items:
        name, sep, value = item.partition("=")
        if sep and name.isidentifier():
            if name in kwargs:
                raise CommandError(f"keyword argument {name!r} given twice")
            kwargs[name] = parse_literal(value)
            keyword_seen = True
            continue
        if keyword_seen:
            raise CommandError(f"positional argument {item!r} after a NAME=VALUE argument")
        args.append(parse_literal(item))
    return args, kwargs


# --- which task ----------------------------------------------------------------------------


def _remote_only(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("gearq call made this task only to call it remotely")


def _resolve_task(args: argparse.Namespace) -> tuple[App, Task[Any, Any], str | None]:
    """The app, the task, and the queue to route to (None: the task's own)."""
    from ..protocol.errors import ArgumentError
    from ..tasks.app import App
    from ..tasks.naming import split_function_name

    name: str = args.task
    queue: str | None = args.queue
    if args.app:
        app = load_app(args.app)
        if args.servers:
            app.configure(servers=[str(s) for s in resolve_servers(args.servers)])
        task = app.tasks.get(name)
        if task is None and queue is None and ":" in name:
            queue, bare = split_function_name(name)
            task = app.tasks.get(bare)
        if task is None:
            close = difflib.get_close_matches(name, list(app.tasks), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            if not close:
                names = sorted(app.tasks)
                listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                hint = f"; its tasks: {listed}" if names else "; it has no tasks"
            raise CommandError(f"unknown task {name!r} in app {args.app}{hint}")
        if args.serializer:
            raise CommandError("--serializer is for calls without -A (the task has its own)")
        return app, task, queue
    if queue is None and ":" in name:
        queue, name = split_function_name(name)
    servers = [str(s) for s in resolve_servers(args.servers)]
    try:
        app = App("gearq-call", servers=servers, env=False)
        task = app.task(name=name, queue=queue, serializer=args.serializer or "msgpack")(
            _remote_only
        )
    except ArgumentError as exc:
        raise CommandError(f"task {args.task!r}: {exc}") from None
    return app, task, queue


# --- the progress line ---------------------------------------------------------------------

_SPIN = "|/-\\"
# gearmand does not tell a caller when a worker takes its job; QUEUED covers "running but
# silent" too (a task reports STARTED only when the worker tracks it).
_STATE_LABELS = {
    "PENDING": "sending",
    "QUEUED": "submitted, waiting",
    "STARTED": "running",
    "RETRY": "retrying",
}


class ProgressLine:
    """A one-line progress bar, redrawn in place on a terminal (stderr)."""

    def __init__(self, stream: TextIO, label: str, width: int = 24) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self.started = time.monotonic()
        self.progress: tuple[int, int] | None = None
        self.state = "sending"
        self.ticks = 0
        self.shown = False

    def draw(self) -> None:
        elapsed = time.monotonic() - self.started
        self.ticks += 1
        if self.progress is not None and self.progress[1] > 0:
            done, total = self.progress
            fraction = min(max(done / total, 0.0), 1.0)
            filled = int(self.width * fraction)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {fraction:4.0%}"
        else:
            bar = f"{_SPIN[self.ticks % len(_SPIN)]} {self.state}"
        self.stream.write(f"\r\x1b[K{self.label} {bar} {elapsed:5.1f}s")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


# --- running -------------------------------------------------------------------------------


def _failure_line(task_name: str, exc: BaseException, timeout: float | None = None) -> str:
    from ..tasks.remote_errors import is_remote
    from ..tasks.result import TaskTimeout

    if isinstance(exc, TaskTimeout):
        within = "the timeout" if timeout is None else f"{timeout:g} s"
        return f"task {task_name!r}: no result within {within} (the job may still run)"
    if is_remote(exc):
        remote_type = getattr(exc, "remote_type", "") or type(exc).__name__
        short = remote_type.rpartition(".")[2] or type(exc).__name__
        message = " ".join(str(exc).split())
        detail = f"{short}: {message}" if message else short
        return f"task {task_name!r} failed: {detail}"
    return f"task {task_name!r} failed: {error_text(exc)}"


async def _background(task: Task[Any, Any], call: dict[str, Any], timeout: float | None) -> int:
    handle = await task.aapply_async(background=True, **call)
    await handle.acreated(timeout=timeout or 30.0)
    report = {
        "task": task.name,
        "id": handle.id,
        "server": str(handle.server),
        "handle": (handle.handle or b"").decode(),
        "unique": handle.unique.decode("utf-8", "backslashreplace"),
        "function": handle.function.decode("utf-8", "backslashreplace"),
    }
    print(to_json(report), flush=True)
    return EXIT_OK


async def _foreground(
    task: Task[Any, Any], call: dict[str, Any], show_progress: bool, traceback: bool
) -> int:
    timeout: float | None = call.get("timeout")
    result = await task.aapply_async(background=False, **call)
    bar = ProgressLine(sys.stderr, task.name) if show_progress else None
    ticker: asyncio.Task[None] | None = None
    if bar is not None:
        job = result.job

        def on_status(_job: Job, value: Any) -> None:
            bar.progress = value
            bar.draw()

        if job is not None:
            job.on("status", on_status)

        async def tick() -> None:
            while True:
                state = str(result.state)
                bar.state = _STATE_LABELS.get(state, state.lower())
                bar.draw()
                await asyncio.sleep(0.1)

        ticker = asyncio.ensure_future(tick())
    streamed = 0
    try:
        try:
            async for chunk in result.astream():
                if bar is not None:
                    bar.clear()
                print(to_json(chunk), flush=True)
                streamed += 1
                if bar is not None:
                    bar.draw()
        finally:
            if ticker is not None:
                ticker.cancel()
            if bar is not None:
                bar.clear()
    except Exception as exc:
        if not result.ready():
            raise
        line = _failure_line(task.name, exc, timeout)
        print(f"gearq call: {line}", file=sys.stderr, flush=True)
        remote_tb = result.traceback
        if traceback and remote_tb:
            print(remote_tb.rstrip(), file=sys.stderr, flush=True)
        return EXIT_FAILED
    value = await result.aget()
    if task.is_generator or (streamed and value is None):
        return EXIT_OK  # the chunks were the output
    print(to_json(value), flush=True)
    return EXIT_OK


async def _call(
    app: App, task: Task[Any, Any], args: argparse.Namespace, call: dict[str, Any]
) -> int:
    from ..client.errors import NoServerAvailable
    from ..protocol.errors import ArgumentError, GearqError
    from ..tasks.result import NoWorkerAvailable
    from ..tasks.serializers import SerializationError

    try:
        if args.background:
            return await _background(task, call, args.timeout)
        show = not args.no_progress and sys.stderr.isatty()
        return await _foreground(task, call, show, args.traceback)
    except (ArgumentError, SerializationError) as exc:
        raise CommandError(f"bad arguments for {task.name!r}: {error_text(exc)}") from None
    except NoWorkerAvailable as exc:
        raise CommandError(error_text(exc), EXIT_FAILED) from None
    except NoServerAvailable as exc:
        reasons = "; ".join(
            f"{server}: {'skipped' if error is None else server_error(server, error)}"
            for server, error in exc.errors.items()
        )
        raise CommandError(f"no server reachable ({reasons})", EXIT_UNREACHABLE) from None
    except (TimeoutError, asyncio.TimeoutError):
        raise CommandError(
            f"task {task.name!r}: the server did not acknowledge the job in time", EXIT_FAILED
        ) from None
    except GearqError as exc:
        raise CommandError(_failure_line(task.name, exc), EXIT_FAILED) from None
    finally:
        await app.aclose()


def run_call(args: argparse.Namespace) -> int:
    # The client logs each server it cannot reach; the command reports that itself, once.
    logging.getLogger("gearq.client").setLevel(logging.ERROR)
    positional, keywords = parse_arguments(args.arguments, args.json_args, args.kwargs)
    app, task, queue = _resolve_task(args)
    call: dict[str, Any] = {"args": positional, "kwargs": keywords, "queue": queue}
    if args.priority:
        call["priority"] = args.priority
    if args.require_worker:
        call["require_worker"] = True
    if not args.background and args.timeout is not None:
        call["timeout"] = args.timeout
    return asyncio.run(_call(app, task, args, call))
