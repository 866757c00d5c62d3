"""Reusable pieces for gearq's own tests (not part of the installed package).

* :class:`FaultProxy`: a loopback TCP proxy that injects delay, freeze, RST, FIN and refusal.
* :func:`require_gearmand`: skip a test when gearmand is missing, or fail it under ``CI=true``.

Fixtures built on these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest

from gearq.testing import find_gearmand, in_ci
from gearq.testing.gearmand import INSTALL_HINT

from .faultproxy import FaultProxy

__all__ = ["FaultProxy", "require_gearmand"]


def require_gearmand() -> None:
    """Skip the calling test if there is no gearmand; under ``CI=true`` fail it instead."""
    if find_gearmand() is not None:
        return
    message = f"gearmand is not installed: {INSTALL_HINT}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)
