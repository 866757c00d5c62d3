"""group and chain through gearmand and a real TaskWorker (and their checks)."""

from __future__ import annotations

import threading
import time

import pytest

from gearq.protocol.errors import ArgumentError
from gearq.tasks import App, ChainResult, GroupResult, Signature, TaskTimeout, chain, group

from .helpers import StartWorker, run

pytestmark = pytest.mark.timeout(60)


def test_group_runs_concurrently_and_keeps_order(app: App, serve: StartWorker) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    @app.task
    def slow_square(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.4 - x * 0.03)  # later members finish first
        with lock:
            running -= 1
        return x * x

    serve(concurrency=8)
    started = time.monotonic()
    result = group(slow_square.s(i) for i in range(8)).delay()
    assert isinstance(result, GroupResult) and len(result) == 8
    assert result.get(timeout=10) == [i * i for i in range(8)]
    assert time.monotonic() - started < 1.5  # one after another would take 2.4 s
    assert peak >= 4
    assert result.ready() and result.successful() and result.completed_count() == 8


def test_group_errors_in_place_or_raised(app: App, serve: StartWorker) -> None:
    @app.task
    def check(x: int) -> int:
        if x < 0:
            raise ValueError(f"negative: {x}")
        return x

    serve()
    result = group(check.s(1), check.s(-2), check.s(3)).delay()
    with pytest.raises(ValueError, match="negative: -2"):
        result.get(timeout=10)
    values = result.get(timeout=10, propagate=False)
    assert values[0] == 1 and values[2] == 3 and isinstance(values[1], ValueError)
    assert result.failed()


def test_chain_feeds_each_result_to_the_next(app: App, serve: StartWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def mul(x: int, factor: int) -> int:
        return x * factor

    @app.task
    def describe(x: int, prefix: str = "=") -> str:
        return f"{prefix}{x}"

    serve()
    result = chain(add.s(1, 2), mul.s(10), describe.s(prefix="total ")).delay()
    assert isinstance(result, ChainResult)
    assert result.get(timeout=10) == "total 30"
    assert [r.get() for r in result.results] == [3, 30, "total 30"]
    assert (add.s(2, 2) | mul.s(3)).delay().get(timeout=10) == 12
    assert result.ready() and result.successful()


def test_chain_stops_at_the_first_failure(app: App, serve: StartWorker) -> None:
    calls: list[str] = []

    @app.task
    def first() -> int:
        calls.append("first")
        raise LookupError("nothing")

    @app.task
    def second(x: int) -> int:
        calls.append("second")
        return x

    serve()
    result = chain(first.s(), second.s()).delay()
    with pytest.raises(LookupError):
        result.get(timeout=10)
    assert isinstance(result.get(timeout=1, propagate=False), LookupError)
    assert calls == ["first"]
    assert result.failed() and len(result.results) == 1


def test_group_and_chain_from_asyncio(app: App, serve: StartWorker) -> None:
    @app.task
    async def double(x: int) -> int:
        return 2 * x

    serve()

    async def main() -> tuple[list[int], int]:
        results = await group([double.s(i) for i in range(5)]).adelay()
        values = await results
        chained = await chain(double.s(1), double.s(), double.s()).adelay()
        final = await chained
        await app.aclose()
        return values, final

    assert run(main()) == ([0, 2, 4, 6, 8], 8)


def test_chain_timeout(app: App, serve: StartWorker) -> None:
    @app.task
    def slow(x: int) -> int:
        time.sleep(0.5)
        return x

    serve()
    result = chain(slow.s(1), slow.s()).delay()
    with pytest.raises(TaskTimeout):
        result.get(timeout=0.1)
    assert result.get(timeout=10) == 1


def test_signature_checks(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    sig = add.s(1, 2)
    assert isinstance(sig, Signature)
    assert sig == add.s(1, 2) and sig != add.s(2, 1)
    assert repr(sig).endswith("add.s(1, 2)")
    assert sig.set(priority="high").options == {"priority": "high"}
    with pytest.raises(ArgumentError):
        sig.set(nonsense=1)
    with pytest.raises(ArgumentError):
        group(1, 2)  # type: ignore[call-overload]
    with pytest.raises(ArgumentError):
        chain()  # type: ignore[call-overload]
