"""Test helpers for gearq and for applications that use it.

:class:`GearmandProcess` runs a private gearmand on a free loopback port; it needs no pytest.
"""

from .gearmand import (
    GearmandError,
    GearmandNotFound,
    GearmandProcess,
    GearmandStartError,
    find_gearmand,
    gearmand_available,
    in_ci,
    pick_free_port,
)

__all__ = [
    "GearmandError",
    "GearmandNotFound",
    "GearmandProcess",
    "GearmandStartError",
    "find_gearmand",
    "gearmand_available",
    "in_ci",
    "pick_free_port",
]

# A real worker on a real server for users' tests (pytest fixtures: gearq.testing.pytest_plugin).
from .fixtures import (
    ServerFactory,
    WorkerThread,
    default_server_kind,
    running_server,
    running_worker,
    server_factory,
)

__all__ += [
    "ServerFactory",
    "WorkerThread",
    "default_server_kind",
    "running_server",
    "running_worker",
    "server_factory",
]
