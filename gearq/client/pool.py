"""Which server gets a request: strategies, and the health of every configured server.

A strategy only orders servers; the :class:`ServerPool` leaves out those in their recover
time and remembers each server's last error, so every strategy gets failover and
fail-back for free.
"""

from __future__ import annotations

import hashlib
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from ..net.address import ServerAddress
from ..net.recover import RecoverPolicy, ServerHealth
from ..protocol.errors import ArgumentError
from .errors import NoServerAvailable

__all__ = [
    "STRATEGIES",
    "RandomStrategy",
    "RoundRobinStrategy",
    "SequenceStrategy",
    "ServerPool",
    "Strategy",
    "UniqueHashStrategy",
    "make_strategy",
]


class Strategy(ABC):
    """Orders servers for one request. Subclass it to plug in another policy."""

    #: Set by the pool before the first call.
    servers: tuple[ServerAddress, ...] = ()

    def bind(self, servers: Sequence[ServerAddress]) -> None:
        """Called once with every configured server, in configuration order."""
        self.servers = tuple(servers)

    @abstractmethod
    def order(self, available: tuple[int, ...], unique: bytes) -> Sequence[int]:
        """Indices of the servers to try, best first, taken from ``available``.

        ``available`` (never empty) holds the indices of the servers not in recover time,
        in configuration order. Servers left out are not tried for this request.
        """


class SequenceStrategy(Strategy):
    """The first healthy server in configuration order; back to it once it recovers."""

    def order(self, available: tuple[int, ...], unique: bytes) -> Sequence[int]:
        return available


class RoundRobinStrategy(Strategy):
    """Each request starts one server further along the healthy ones."""

    def __init__(self) -> None:
        self._next = 0

    def order(self, available: tuple[int, ...], unique: bytes) -> Sequence[int]:
        n = len(available)
        if n == 1:
            return available
        start = self._next % n
        self._next = start + 1
        return available[start:] + available[:start]


class RandomStrategy(Strategy):
    """A random healthy server first, then the others."""

    def __init__(self, rand: Callable[[], float] = random.random) -> None:
        self._rand = rand

    def order(self, available: tuple[int, ...], unique: bytes) -> Sequence[int]:
        n = len(available)
        if n == 1:
            return available
        start = int(self._rand() * n) % n
        return available[start:] + available[:start]


class UniqueHashStrategy(Strategy):
    """Rendezvous (highest random weight) hashing of the unique over *all* servers.

    The same unique always ranks the servers the same way, so it goes to the same server
    (and coalesces there) as long as that server is up, and to the next in its ranking
    while it is down. Adding or removing a server moves only the uniques that rank it
    first. Requests without a unique are spread round-robin.
    """

    def __init__(self) -> None:
        self._keys: tuple[bytes, ...] = ()
        self._fallback = RoundRobinStrategy()

    def bind(self, servers: Sequence[ServerAddress]) -> None:
        super().bind(servers)
        # blake2b keys are at most 64 bytes; hash longer addresses down.
        self._keys = tuple(
            hashlib.blake2b(str(s).encode(), digest_size=32).digest() for s in self.servers
        )
        self._fallback.bind(servers)

    def rank(self, unique: bytes) -> list[int]:
        """Every server's index, best first, for this unique."""
        scores = [
            hashlib.blake2b(unique, key=key, digest_size=8).digest() for key in self._keys
        ]
        return sorted(range(len(scores)), key=scores.__getitem__, reverse=True)

    def order(self, available: tuple[int, ...], unique: bytes) -> Sequence[int]:
        if not unique:
            return self._fallback.order(available, unique)
        if len(available) == len(self._keys):
            return self.rank(unique)
        up = set(available)
        return [i for i in self.rank(unique) if i in up]


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "sequence": SequenceStrategy,
    "round_robin": RoundRobinStrategy,
    "random": RandomStrategy,
    "unique_hash": UniqueHashStrategy,
}


def make_strategy(spec: str | Strategy) -> Strategy:
    """A strategy from its name (``sequence``, ``round_robin``, ``random``,
    ``unique_hash``) or an instance."""
    if isinstance(spec, Strategy):
        return spec
    factory = STRATEGIES.get(spec.replace("-", "_").lower()) if isinstance(spec, str) else None
    if factory is None:
        raise ArgumentError(f"unknown strategy {spec!r}; use one of {sorted(STRATEGIES)}")
    return factory()


class ServerPool:
    """The configured servers, their health, and the strategy that orders them."""

    def __init__(
        self,
        servers: Sequence[ServerAddress],
        strategy: Strategy,
        policy: RecoverPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not servers:
            raise ArgumentError("no servers configured")
        self.servers = tuple(servers)
        self.strategy = strategy
        strategy.bind(self.servers)
        self.health = [ServerHealth(s, policy, clock) for s in self.servers]
        self.last_error: list[BaseException | None] = [None] * len(self.servers)
        self._all = tuple(range(len(self.servers)))
        self._down = 0
        # Sequence's order while every server is up never changes: skip the calls.
        self._fixed = type(strategy) is SequenceStrategy
        #: Every request's order while it cannot change (sequence, every server up), else
        #: None: one attribute read on the submit hot path instead of a call.
        self.fixed_order: tuple[int, ...] | None = self._all if self._fixed else None
        self.index = {s: i for i, s in enumerate(self.servers)}

    def available(self) -> tuple[int, ...]:
        """Indices of the servers that may be tried now, in configuration order."""
        if not self._down:
            return self._all
        return tuple(i for i in self._all if self.health[i].available())

    def candidates(self, unique: bytes = b"") -> Sequence[int]:
        """Servers to try for a request, best first (empty when all are down)."""
        if self._fixed and not self._down:
            return self._all
        available = self.available()
        if not available:
            return ()
        return self.strategy.order(available, unique)

    def route(
        self, uniques: Sequence[bytes], indices: Sequence[int]
    ) -> tuple[dict[int, Sequence[int]], list[int]]:
        """Route many requests at once: the indices (into ``uniques``) grouped by the server
        each would try first, and those with no server to try."""
        if self._fixed and not self._down:
            return {0: indices}, []
        available = self.available()
        if not available:
            return {}, list(indices)
        groups: dict[int, list[int]] = {}
        none: list[int] = []
        order = self.strategy.order
        for i in indices:
            choice = order(available, uniques[i])
            if choice:
                first = choice[0]
                group = groups.get(first)
                if group is None:
                    groups[first] = [i]
                else:
                    group.append(i)
            else:
                none.append(i)
        return dict(groups), none

    def mark_failed(self, index: int, error: BaseException) -> float:
        """Record a failure; returns the seconds the server is now skipped."""
        health = self.health[index]
        if not health.failures:
            self._down += 1
            self.fixed_order = None
        self.last_error[index] = error
        return health.mark_failed()

    def mark_ok(self, index: int) -> None:
        health = self.health[index]
        if health.failures:
            self._down -= 1
            health.mark_ok()
            if self._fixed and not self._down:
                self.fixed_order = self._all

    def no_server_error(
        self, errors: dict[int, BaseException] | None = None, only: int | None = None
    ) -> NoServerAvailable:
        """The error for "nothing to try", with each server's latest error (or, with
        ``only``, just that server's)."""
        errors = errors or {}
        indices = range(len(self.servers)) if only is None else [only]
        return NoServerAvailable(
            {self.servers[i]: errors.get(i, self.last_error[i]) for i in indices},
            {self.servers[i]: self.health[i].retry_in() for i in indices},
        )
