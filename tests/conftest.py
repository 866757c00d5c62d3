"""Fixtures shared by all of gearq's tests.

* ``gearmand``: a fresh gearmand (``GearmandProcess``) for one test, stopped afterwards.
* ``gearmand_factory``: ``factory(*extra_args) -> GearmandProcess`` starts as many servers as
  a test asks for (e.g. ``factory("-j", "3")``); all are stopped afterwards.

Without gearmand these tests are skipped, or fail under ``CI=true``. More fixtures: put the
reusable code in ``tests/support/`` and the fixtures in a ``conftest.py`` next to the tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Make ``tests.support`` importable however pytest is started (``pytest``, ``python -m
# pytest``, xdist workers, tox): the repository root goes on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from gearq.testing import GearmandProcess, in_ci  # noqa: E402
from tests.support import require_gearmand  # noqa: E402

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=200,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev"))

GearmandFactory = Callable[..., GearmandProcess]

_SERVER_FIXTURES = {"gearmand", "gearmand_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag tests that use a server fixture with the ``gearmand`` marker (``-m 'not gearmand'``)."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.gearmand)


@pytest.fixture
def gearmand_factory(tmp_path: Path) -> Iterator[GearmandFactory]:
    """Start gearmand servers on demand: ``factory("-j", "3")``; all stopped at teardown."""
    require_gearmand()
    servers: list[GearmandProcess] = []

    def factory(*extra_args: str) -> GearmandProcess:
        workdir = tmp_path / f"gearmand-{len(servers)}"
        server = GearmandProcess(extra_args, workdir=workdir)
        servers.append(server)
        return server.start()

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def gearmand(gearmand_factory: GearmandFactory) -> GearmandProcess:
    """A running gearmand on 127.0.0.1 with default options, for this test only."""
    return gearmand_factory()
