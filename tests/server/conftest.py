"""Fixtures for the embedded server's tests.

* ``server``: an :class:`EmbeddedServer` for this test.
* ``backend``: parametrized over the embedded server and a real gearmand, for conformance.
* ``connect``: ``connect() -> Wire`` to the test's server (whichever backend it uses).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gearq.server import EmbeddedServer

from .wire import Wire


@dataclass
class Backend:
    kind: str  # "gearq" or "gearmand"
    host: str
    port: int
    wires: list[Wire] = field(default_factory=list)

    @property
    def is_gearmand(self) -> bool:
        return self.kind == "gearmand"

    def connect(self, timeout: float = 2.0) -> Wire:
        wire = Wire(self.host, self.port, timeout=timeout)
        self.wires.append(wire)
        return wire

    def close_all(self) -> None:
        for wire in self.wires:
            wire.close()


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(handle_prefix="H:test:") as srv:
        yield srv


def _embedded_backend(**options: Any) -> Iterator[Backend]:
    with EmbeddedServer(**options) as srv:
        backend = Backend("gearq", srv.host, srv.port)
        try:
            yield backend
        finally:
            backend.close_all()


BACKENDS = ["gearq", pytest.param("gearmand", marks=pytest.mark.gearmand)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gearmand_fault(reason): a conformance case that gearmand 1.1.20 fails because of a"
        " known bug in it; expected (strictly) to fail on the gearmand backend",
    )


def _mark_gearmand_fault(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("gearmand_fault")
    if marker is not None:
        reason = marker.args[0] if marker.args else "known gearmand 1.1.20 bug"
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"gearmand 1.1.20: {reason}"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The embedded server, then a real gearmand (via the shared ``gearmand`` fixture).

    A test marked ``gearmand_fault("why")`` asserts the correct behaviour; on gearmand it is
    a strict xfail, so it starts failing the suite if gearmand ever gets it right.
    """
    if request.param == "gearq":
        yield from _embedded_backend()
        return
    _mark_gearmand_fault(request)
    gearmand = request.getfixturevalue("gearmand")
    backend = Backend("gearmand", gearmand.host, gearmand.port)
    try:
        yield backend
    finally:
        backend.close_all()


@pytest.fixture(params=BACKENDS)
def backend_retries2(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Both backends with job retries set to 2 (gearmand ``-j 2``)."""
    if request.param == "gearq":
        yield from _embedded_backend(job_retries=2)
        return
    factory = request.getfixturevalue("gearmand_factory")
    gearmand = factory("-j", "2")
    backend = Backend("gearmand", gearmand.host, gearmand.port)
    try:
        yield backend
    finally:
        backend.close_all()


@pytest.fixture
def connect(server: EmbeddedServer) -> Iterator[Callable[..., Wire]]:
    wires: list[Wire] = []

    def factory(timeout: float = 2.0) -> Wire:
        wire = Wire(server.host, server.port, timeout=timeout)
        wires.append(wire)
        return wire

    yield factory
    for wire in wires:
        wire.close()


@pytest.fixture
def gearman_cli() -> str:
    path = shutil.which("gearman")
    if path is None:
        pytest.skip("libgearman's gearman CLI is not installed (apt-get install gearman-tools)")
    return path
