"""Recover time: a server that failed is left alone for a while, then tried again.

GearmaNode's ``recoverTime`` idea, with optional growth: each failure in a row multiplies
the pause by ``backoff`` up to ``max_recover_time``; one success resets it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .address import ServerAddress

__all__ = ["RecoverPolicy", "ServerHealth"]


@dataclass(frozen=True, slots=True)
class RecoverPolicy:
    """How long a failed server is skipped.

    ``recover_time``: seconds after the first failure (GearmaNode's default is 30).
    ``backoff``: factor per further failure in a row (1.0 keeps it constant).
    ``max_recover_time``: the cap of that growth.
    ``jitter``: a fraction of the pause added at random, so many clients don't retry
    in step.
    """

    recover_time: float = 30.0
    backoff: float = 1.0
    max_recover_time: float = 300.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.recover_time < 0:
            raise ValueError("recover_time must be >= 0")
        if self.backoff < 1.0:
            raise ValueError("backoff must be >= 1.0")
        if self.max_recover_time < self.recover_time:
            raise ValueError("max_recover_time must be >= recover_time")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within 0..1")

    def pause(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to skip a server after ``failures`` failures in a row (>= 1)."""
        if failures <= 0:
            return 0.0
        base = min(self.recover_time * self.backoff ** (failures - 1), self.max_recover_time)
        return base * (1.0 + self.jitter * rand()) if self.jitter else base


@dataclass(slots=True)
class ServerHealth:
    """Failure bookkeeping for one server, on a monotonic clock."""

    address: ServerAddress
    policy: RecoverPolicy = field(default_factory=RecoverPolicy)
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    down_until: float = 0.0

    def available(self) -> bool:
        """True when the server is healthy or its recover time has passed."""
        return self.failures == 0 or self.clock() >= self.down_until

    def mark_failed(self) -> float:
        """Record a failure; returns how many seconds the server is now skipped."""
        self.failures += 1
        pause = self.policy.pause(self.failures)
        self.down_until = self.clock() + pause
        return pause

    def mark_ok(self) -> None:
        self.failures = 0
        self.down_until = 0.0

    def retry_in(self) -> float:
        """Seconds until the server may be tried again (0 when it may be now)."""
        return max(0.0, self.down_until - self.clock()) if self.failures else 0.0
