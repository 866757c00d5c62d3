"""Tasks for the ``gearq worker`` tests, imported by the worker subprocess
(``gearq worker tests.cli.worker_tasks``) and by the tests that call them.

Tasks that must be counted append a line to a file the test names: ``start <pid>`` when
they begin and ``end <pid>`` when they finish, so a test sees how often a task ran and in
which process.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

from gearq import App
from gearq.tasks.context import TaskContext

app = App("cli-tests", env=False)

TIME_LIMIT = 0.5


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _mark(path: str, what: str) -> None:
    with Path(path).open("a") as f:
        f.write(f"{what} {os.getpid()}\n")


@app.task(name="add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="aadd")
async def aadd(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


@app.task(name="where")
def where() -> int:
    return os.getpid()


@app.task(name="slow")
def slow(path: str, seconds: float) -> str:
    _mark(path, "start")
    time.sleep(seconds)
    _mark(path, "end")
    return "slept"


@app.task(name="aslow")
async def aslow(path: str, seconds: float) -> str:
    _mark(path, "start")
    await asyncio.sleep(seconds)
    _mark(path, "end")
    return "slept"


@app.task(name="wait_for_file")
def wait_for_file(path: str, release: str) -> str:
    """Runs until ``release`` exists (a test decides when it may finish)."""
    _mark(path, "start")
    while not os.path.exists(release):
        time.sleep(0.02)
    _mark(path, "end")
    return "released"


@app.task(name="long_first")
def long_first(path: str) -> str:
    """The first run hangs (for a minute); every later run returns at once."""
    first = not os.path.exists(path)
    _mark(path, "start")
    if first:
        time.sleep(60)
    _mark(path, "end")
    return "second run"


@app.task(name="along_first")
async def along_first(path: str) -> str:
    """``long_first`` on the event loop."""
    first = not _exists(path)
    _mark(path, "start")
    if first:
        await asyncio.sleep(60)
    _mark(path, "end")
    return "second run"


@app.task(name="runaway", time_limit=TIME_LIMIT)
def runaway(path: str) -> str:
    """Never returns by itself and never looks at a cancel flag."""
    _mark(path, "start")
    while True:
        time.sleep(0.02)


@app.task(name="arunaway", time_limit=TIME_LIMIT)
async def arunaway(path: str) -> str:
    _mark(path, "start")
    for _ in itertools.count():
        await asyncio.sleep(0.02)
    return "never"


@app.task(name="await_file")
async def await_file(path: str, release: str) -> str:
    """``wait_for_file`` on the event loop."""
    _mark(path, "start")
    while True:
        if _exists(release):
            break
        await asyncio.sleep(0.02)
    _mark(path, "end")
    return "released"


@app.task(name="report", bind=True)
def report(ctx: TaskContext, n: int) -> Iterator[int]:
    """Streams ``n`` chunks, with progress and a warning per step."""
    for i in range(n):
        ctx.progress(i + 1, n)
        ctx.warn(f"step {i}")
        yield i * 10


@app.task(
    name="flaky",
    bind=True,
    time_limit=1.0,
    max_retries=2,
    retry_on=(OSError,),
    retry_backoff=0.1,
    retry_jitter=False,
)
def flaky(ctx: TaskContext, path: str) -> int:
    """Three attempts of 0.6 s each: past the time limit in all, but not in any one."""
    _mark(path, "start")
    time.sleep(0.6)
    if ctx.attempt < 3:
        raise OSError(f"attempt {ctx.attempt} failed")
    _mark(path, "end")
    return ctx.attempt
