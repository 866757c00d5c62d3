"""Fixtures of the caller-side tests (``tests/app``): the task API end to end.

Every end-to-end test gets its own gearmand (``gearmand`` fixture, a free port), its own
``App`` pointed at it, and starts a real :class:`TaskWorker` (in a thread, via
``gearq.testing.WorkerThread``) once it has declared its tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gearq.tasks import App
from gearq.tasks.runner import TaskWorker
from gearq.testing import GearmandProcess, WorkerThread


@pytest.fixture
def app(gearmand: GearmandProcess) -> Iterator[App]:
    """A fresh app on this test's gearmand (no environment variables read)."""
    made = App("tests", servers=gearmand.address, env=False)
    yield made
    made.close()


@pytest.fixture
def serve(app: App) -> Iterator[Any]:
    """``serve(**options)`` starts a worker for the app's tasks (declare them first)."""
    threads: list[WorkerThread] = []

    def start(target: App | None = None, **options: Any) -> TaskWorker:
        options.setdefault("concurrency", 4)
        thread = WorkerThread(target or app, **options).start()
        threads.append(thread)
        return thread.worker

    yield start
    for thread in threads:
        thread.stop(2.0, graceful=False)
