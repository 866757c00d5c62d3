"""Fixtures of the ``gearq worker`` tests: a gearmand, a caller app, worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gearq.tasks.app import App
from gearq.testing import GearmandProcess

from . import worker_tasks
from .worker_helpers import WorkerProcess, workers_factory


@pytest.fixture
def caller(gearmand: GearmandProcess) -> Iterator[App]:
    """The tasks module's app, pointed at this test's gearmand (the test calls through it)."""
    app = worker_tasks.app
    app.configure(servers=gearmand.address)
    try:
        yield app
    finally:
        app.close(wait=0)


@pytest.fixture
def workers(tmp_path: Path, gearmand: GearmandProcess) -> Iterator[Callable[..., WorkerProcess]]:
    """``workers(*args, pool=...)`` starts a ``gearq worker`` on this test's gearmand."""
    yield from workers_factory(tmp_path, gearmand.address)
