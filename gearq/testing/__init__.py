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
