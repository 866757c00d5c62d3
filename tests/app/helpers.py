"""Helpers of the caller-side tests (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from gearq.tasks.runner import TaskWorker

T = TypeVar("T")

#: ``serve(**options)``: the fixture that starts a worker for the test's app.
StartWorker = Callable[..., TaskWorker]


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a test coroutine on a fresh loop, failing it after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
