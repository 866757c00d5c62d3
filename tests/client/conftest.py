"""Fixtures for the client tests: several servers at once, and workers that stop by
themselves at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gearq.testing import GearmandProcess

from .helpers import ScriptedWorker

GearmandFactory = Callable[..., GearmandProcess]


@pytest.fixture
def three_servers(gearmand_factory: GearmandFactory) -> list[GearmandProcess]:
    return [gearmand_factory() for _ in range(3)]


@pytest.fixture
def two_servers(gearmand_factory: GearmandFactory) -> list[GearmandProcess]:
    return [gearmand_factory() for _ in range(2)]


@pytest.fixture
def workers() -> Iterator[Callable[..., ScriptedWorker]]:
    """``workers(server, "fn", ...)`` starts a ScriptedWorker; all stop at teardown."""
    started: list[ScriptedWorker] = []

    def start(server: GearmandProcess | str, *functions: str) -> ScriptedWorker:
        worker = ScriptedWorker(server, *functions)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
