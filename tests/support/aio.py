"""Helpers for async tests of workers: run a coroutine with a bound, serve for a block, poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from gearq.net import RecoverPolicy

T = TypeVar("T")
W = TypeVar("W", bound="Servable")

# Reconnect fast in tests: a killed server is retried within a fraction of a second.
FAST_RECOVER = RecoverPolicy(recover_time=0.05, backoff=1.5, max_recover_time=0.3)


class Servable(Protocol):
    async def run(self) -> None: ...

    async def wait_ready(self, timeout: float | None = None) -> None: ...

    async def stop(self, graceful: bool = True, timeout: float = 30.0) -> None: ...


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a test coroutine on a fresh loop, failing it after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def serving(worker: W, *, ready: bool = True) -> AsyncIterator[W]:
    """Run ``worker`` in a task for the block (ready first); stop it hard afterwards."""
    task = asyncio.ensure_future(worker.run())
    try:
        if ready:
            await worker.wait_ready(10)
        yield worker
    finally:
        await worker.stop(graceful=False)
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll ``check`` (plain or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(every)
