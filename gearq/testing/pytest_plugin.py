"""pytest fixtures for testing gearq apps against a real server and a real worker.

pytest loads it by itself: gearq registers it as a ``pytest11`` entry point, named as this
module (so an explicit ``pytest_plugins = ["gearq.testing.pytest_plugin"]`` in a conftest
finds it loaded already). It starts nothing until a test asks for one of its fixtures, so
it cannot disturb test runs that do not use it, with or without gearmand installed;
``pytest -p no:gearq.testing.pytest_plugin`` switches it off. In your ``conftest.py``::

    @pytest.fixture
    def gearq_app():            # your app (its servers are replaced by the test server)
        from myproj.tasks import app
        return app

    def test_add(gearq_worker):
        assert add.delay(2, 3).get(timeout=10) == 5

Fixtures:

``gearq_server_factory``
    Starts servers: ``with gearq_server_factory() as address: ...``. Default: gearmand
    where it is installed, else the embedded server (``GEARQ_TEST_SERVER`` overrides;
    under ``CI=true`` a missing gearmand fails). Override it to choose.
``gearq_server``
    A server (``"host:port"``) for one test.
``gearq_app``
    The app under test. The default is an empty ``App("gearq-test")``; override it.
``gearq_worker_options``
    Keyword arguments of the worker (default ``{"concurrency": 4}``); override it.
``gearq_worker``
    Points ``gearq_app`` at ``gearq_server``, serves its tasks with a :class:`TaskWorker`
    in a thread until the test ends, then stops it, closes the app's connections and
    points the app back at its own servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .fixtures import ServerFactory, WorkerThread, server_factory

if TYPE_CHECKING:
    from ..tasks.app import App
    from ..tasks.runner import TaskWorker

__all__ = [
    "gearq_app",
    "gearq_server",
    "gearq_server_factory",
    "gearq_worker",
    "gearq_worker_options",
]


@pytest.fixture
def gearq_server_factory() -> ServerFactory:
    """``factory(*gearmand_args)`` -> a context manager yielding ``host:port``."""
    return server_factory("auto")


@pytest.fixture
def gearq_server(gearq_server_factory: ServerFactory) -> Iterator[str]:
    """A job server for this test, as ``"host:port"``."""
    with gearq_server_factory() as address:
        yield address


@pytest.fixture
def gearq_app() -> App:
    """The app under test; override this fixture to return yours."""
    from ..tasks.app import App

    return App("gearq-test", env=False)


@pytest.fixture
def gearq_worker_options() -> dict[str, Any]:
    """Keyword arguments for the test worker; override to change them."""
    return {"concurrency": 4}


@pytest.fixture
def gearq_worker(
    gearq_app: App, gearq_server: str, gearq_worker_options: dict[str, Any]
) -> Iterator[TaskWorker]:
    """A real worker serving ``gearq_app``'s tasks on ``gearq_server``."""
    previous = gearq_app.conf.servers
    gearq_app.configure(servers=gearq_server)
    thread = WorkerThread(gearq_app, **gearq_worker_options).start()
    try:
        yield thread.worker
    finally:
        gearq_app.close(wait=0)
        thread.stop()
        gearq_app.configure(servers=previous)
