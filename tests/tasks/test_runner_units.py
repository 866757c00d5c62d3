"""TaskWorker and TaskContext pieces that need no job server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gearq.tasks import decode_data
from gearq.tasks.context import MaxRetriesExceeded, Retry, TaskContext
from gearq.tasks.remote_errors import RetryScheduled
from gearq.tasks.runner import _id_from_unique, _is_async, _is_generator


class FakeJob:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def send_data(self, data: bytes) -> bool:
        self.sent.append(("data", data))
        return True

    def send_warning(self, data: bytes) -> bool:
        self.sent.append(("warning", data))
        return True

    def send_status(self, numerator: int, denominator: int) -> bool:
        self.sent.append(("status", (numerator, denominator)))
        return True


def make_ctx(**kw: Any) -> tuple[TaskContext, FakeJob]:
    job = FakeJob()
    return TaskContext(job, "app.t", **kw), job  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("unique", "expected"),
    [
        (b"", None),
        (b"f:0f3c", "0f3c"),
        (b"b:0f3c#2", "0f3c"),
        (b"b:key#x", "key#x"),
        (b"b~pre~abcdef", "b~pre~abcdef"),
        (b"plain", "plain"),
        (b"f:#3", "#3"),
    ],
)
def test_id_from_unique(unique: bytes, expected: str | None) -> None:
    assert _id_from_unique(unique) == expected


def test_kinds_of_task_functions() -> None:
    import functools

    async def a() -> None: ...

    async def ag() -> Any:
        yield 1

    def g() -> Any:
        yield 1

    def s() -> None: ...

    class Callable:
        async def __call__(self) -> None: ...

    assert _is_async(a) and _is_async(ag) and _is_async(functools.partial(a))
    assert _is_async(Callable())
    assert not _is_async(s) and not _is_async(g)
    assert _is_generator(g) and _is_generator(ag) and _is_generator(functools.partial(g))
    assert not _is_generator(a) and not _is_generator(s)


def test_context_senders_encode_in_the_call_serializer() -> None:
    ctx, job = make_ctx(id="i1", attempt=2, max_retries=3)
    assert ctx.progress(1, 4) and ctx.warn("careful") and ctx.warn(b"raw")
    assert ctx.send_chunk({"k": (1, 2)}) and ctx.update_state("PHASE", {"n": 1})
    kinds = [kind for kind, _ in job.sent]
    assert kinds == ["status", "warning", "warning", "data", "data"]
    assert job.sent[1][1] == b"careful" and job.sent[2][1] == b"raw"
    chunk = decode_data(job.sent[3][1])
    assert chunk.value == {"k": (1, 2)}  # type: ignore[union-attr]
    state = decode_data(job.sent[4][1])
    assert (state.state, state.meta) == ("PHASE", {"n": 1})  # type: ignore[union-attr]
    assert ctx.retries_left == 2 and ctx.time_left() is None
    assert "app.t[i1] attempt 2/4" in repr(ctx)
    ctx.deadline = time.monotonic() + 5
    assert 4 < (ctx.time_left() or 0) <= 5


def test_retry_raises_with_the_handled_exception_as_cause() -> None:
    ctx, _ = make_ctx()
    with pytest.raises(Retry) as info:
        try:
            raise KeyError("k")
        except KeyError:
            ctx.retry(countdown=3)
    retry = info.value
    assert isinstance(retry, RetryScheduled)
    assert isinstance(retry.exc, KeyError) and retry.countdown == 3
    assert str(retry) == "KeyError: 'k'"
    with pytest.raises(Retry) as info:
        ctx.retry(max_retries=7)
    assert info.value.exc is None and info.value.max_retries == 7
    assert str(info.value) == "retry requested"
    with pytest.raises(ValueError, match="countdown"):
        ctx.retry(countdown=-1)
    assert issubclass(MaxRetriesExceeded, Exception)


# --- the thread pool's in-place hand-off (a lone plain task) ----------------------------------


def _threads_call(
    fn: Any, *args: Any, answer: Any = None, quick: bool = False
) -> tuple[Any, list[str]]:
    """``call_waiting_now(fn, *args)`` on a pool whose thread is started and idle; the
    outcome and how it came back (``"answered"`` when ``answer`` took the value in the
    pool thread). ``quick``: a call expected back within HANDOFF_WAIT (1 ms): on a busy
    machine a thread can miss that now and then, so it gets up to five tries, and the
    first that came back in place counts (one that never does still fails the test)."""
    import asyncio

    from gearq.tasks.runner import _Threads

    async def main() -> tuple[Any, list[str]]:
        threads = _Threads(2, asyncio.get_running_loop())
        delivered: list[str] = []
        deliver = threads._deliver

        def spy() -> None:
            delivered.append("loop")
            deliver()

        threads._deliver = spy  # type: ignore[method-assign]
        try:
            await threads.submit(lambda: None)  # start the thread: not part of the call
            await asyncio.sleep(0.01)
            delivered.clear()
            for _ in range(5 if quick else 1):
                delivered.clear()
                try:
                    handoff, fut = threads.call_waiting_now(fn, *args, answer=answer)
                    value: Any = handoff.take() if handoff is not None else await fut
                    if handoff is not None and handoff.answered:
                        delivered.append("answered")
                except Exception as exc:
                    value = exc
                await asyncio.sleep(0.05)  # a late delivery would show up here
                if "loop" not in delivered:
                    break
            return value, delivered
        finally:
            threads.shutdown()

    return asyncio.run(main())


def test_a_quick_call_comes_back_in_place_not_through_the_loop() -> None:
    import threading

    value, delivered = _threads_call(lambda x: (x, threading.current_thread().name), 7, quick=True)
    assert value[0] == 7 and value[1].startswith("gearq-task-")  # still ran in a pool thread
    assert delivered == []


def test_a_quick_call_that_raises_raises_in_place() -> None:
    def boom() -> None:
        raise KeyError("k")

    value, delivered = _threads_call(boom, quick=True)
    assert isinstance(value, KeyError) and delivered == []


def test_a_call_longer_than_the_wait_comes_back_through_the_loop() -> None:
    def nap() -> str:
        time.sleep(0.05)  # 50x the in-place wait
        return "late"

    value, delivered = _threads_call(nap)
    assert value == "late" and delivered == ["loop"]


def test_a_quick_call_is_answered_from_its_thread_when_asked() -> None:
    import threading

    seen: list[tuple[Any, str]] = []

    def answer(value: Any) -> bool:
        seen.append((value, threading.current_thread().name))
        return True

    value, delivered = _threads_call(lambda: 5, answer=answer, quick=True)
    assert value == 5 and delivered == ["answered"]
    assert seen[0][0] == 5 and seen[0][1].startswith("gearq-task-")


def test_a_call_that_raises_or_outlasts_the_wait_is_not_answered_from_its_thread() -> None:
    calls: list[Any] = []

    def answer(value: Any) -> bool:
        calls.append(value)
        return True

    def boom() -> None:
        raise KeyError("k")

    def nap() -> str:
        time.sleep(0.05)
        return "late"

    value, delivered = _threads_call(boom, answer=answer, quick=True)
    assert isinstance(value, KeyError) and delivered == []
    value, delivered = _threads_call(nap, answer=answer)
    assert value == "late" and delivered == ["loop"]
    assert calls == []
