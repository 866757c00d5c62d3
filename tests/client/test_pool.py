"""Strategies and server health, without servers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.client.pool import (
    RandomStrategy,
    RoundRobinStrategy,
    SequenceStrategy,
    ServerPool,
    UniqueHashStrategy,
    make_strategy,
)
from gearq.net import ConnectFailed, RecoverPolicy, ServerAddress
from gearq.protocol import ArgumentError

SERVERS = [ServerAddress("10.0.0.1", 4730 + i) for i in range(4)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pool(strategy, recover_time=10.0, clock=None):
    return ServerPool(
        SERVERS, make_strategy(strategy), RecoverPolicy(recover_time=recover_time),
        clock or Clock(),
    )  # fmt: skip


def test_sequence_prefers_the_first_and_comes_back():
    clock = Clock()
    pool = _pool("sequence", clock=clock)
    assert list(pool.candidates()) == [0, 1, 2, 3]
    pool.mark_failed(0, ConnectFailed(SERVERS[0], "refused"))
    assert list(pool.candidates()) == [1, 2, 3]
    clock.now += 10.0
    assert list(pool.candidates()) == [0, 1, 2, 3]  # tried again once recovered
    pool.mark_ok(0)
    assert pool.available() == (0, 1, 2, 3)


def test_round_robin_rotates_over_healthy_servers():
    pool = _pool("round_robin")
    firsts = [pool.candidates()[0] for _ in range(8)]
    assert firsts == [0, 1, 2, 3, 0, 1, 2, 3]
    pool.mark_failed(2, ConnectFailed(SERVERS[2], "x"))
    firsts = [pool.candidates()[0] for _ in range(6)]
    assert sorted(set(firsts)) == [0, 1, 3]
    assert all(len(pool.candidates()) == 3 for _ in range(3))


def test_random_covers_everything_and_orders_all():
    values = iter([0.0, 0.3, 0.6, 0.9])
    strategy = RandomStrategy(rand=lambda: next(values))
    strategy.bind(SERVERS)
    orders = [list(strategy.order((0, 1, 2, 3), b"")) for _ in range(4)]
    assert [o[0] for o in orders] == [0, 1, 2, 3]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)


@given(st.binary(min_size=1, max_size=63))
def test_unique_hash_is_stable_and_fails_over_in_rank_order(unique):
    strategy = UniqueHashStrategy()
    strategy.bind(SERVERS)
    rank = strategy.rank(unique)
    assert sorted(rank) == [0, 1, 2, 3]
    assert list(strategy.order((0, 1, 2, 3), unique)) == rank
    down = rank[0]
    rest = tuple(i for i in range(4) if i != down)
    assert list(strategy.order(rest, unique)) == rank[1:]
    # Another instance (another process) ranks the same way.
    twin = UniqueHashStrategy()
    twin.bind(SERVERS)
    assert twin.rank(unique) == rank


def test_unique_hash_moves_only_keys_of_a_new_server():
    old, new = UniqueHashStrategy(), UniqueHashStrategy()
    old.bind(SERVERS[:3])
    new.bind(SERVERS)
    moved = 0
    for i in range(2000):
        u = f"k{i}".encode()
        a, b = old.rank(u)[0], new.rank(u)[0]
        if a != b:
            assert b == 3  # a key only moves to the server that was added
            moved += 1
    assert 300 < moved < 700  # about a quarter


def test_unique_hash_spreads_empty_uniques_round_robin():
    strategy = UniqueHashStrategy()
    strategy.bind(SERVERS)
    assert [strategy.order((0, 1, 2, 3), b"")[0] for _ in range(4)] == [0, 1, 2, 3]


def test_recover_time_with_backoff_and_no_server_error():
    clock = Clock()
    pool = ServerPool(
        SERVERS[:2], SequenceStrategy(),
        RecoverPolicy(recover_time=1.0, backoff=2.0, max_recover_time=3.0), clock,
    )  # fmt: skip
    assert pool.mark_failed(0, ConnectFailed(SERVERS[0], "a")) == 1.0
    clock.now += 1.0
    assert pool.mark_failed(0, ConnectFailed(SERVERS[0], "b")) == 2.0
    clock.now += 2.0
    assert pool.mark_failed(0, ConnectFailed(SERVERS[0], "c")) == 3.0  # capped
    pool.mark_failed(1, ConnectFailed(SERVERS[1], "d"))
    assert pool.candidates() == ()
    error = pool.no_server_error()
    assert set(error.errors) == set(SERVERS[:2])
    assert error.retry_in[SERVERS[0]] == 3.0
    assert "c" in str(error.errors[SERVERS[0]])


def test_round_robin_strategy_instance_and_bad_names():
    assert isinstance(make_strategy("round-robin"), RoundRobinStrategy)
    instance = SequenceStrategy()
    assert make_strategy(instance) is instance
    with pytest.raises(ArgumentError, match="unknown strategy"):
        make_strategy("fastest")
