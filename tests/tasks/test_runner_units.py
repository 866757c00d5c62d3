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

    from gearq.tasks.threads import TaskThreads as _Threads

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


def test_a_call_waited_for_after_an_abandoned_one_is_its_own() -> None:
    """The loop's thread gives up on a long call (it comes back through the loop); the next
    call waited for in place gets its own value, and a long one after it is given up on
    too, not handed back early with a stale value."""
    import asyncio

    from gearq.tasks.threads import TaskThreads as _Threads

    def nap(value: str, seconds: float) -> str:
        time.sleep(seconds)
        return value

    async def main() -> list[Any]:
        threads = _Threads(1, asyncio.get_running_loop())
        seen: list[Any] = []
        try:
            await threads.submit(lambda: None)  # start the thread
            handoff, fut = threads.call_waiting_now(nap, "first", 0.05)
            assert handoff is None and fut is not None
            seen.append(await fut)
            for _ in range(5):  # a quick one: in place (five tries on a busy machine)
                handoff, fut = threads.call_waiting_now(nap, "second", 0.0)
                if handoff is not None:
                    seen.append(handoff.take())
                    break
                seen.append(("late", await fut))
            handoff, fut = threads.call_waiting_now(nap, "third", 0.05)
            assert handoff is None and fut is not None
            seen.append(await fut)
        finally:
            threads.shutdown()
        return seen

    seen = asyncio.run(main())
    assert seen[0] == "first" and seen[-2] == "second" and seen[-1] == "third"


def test_the_answer_from_a_thread_gets_the_call_arguments_and_the_value() -> None:
    seen: list[tuple[Any, ...]] = []

    def answer(*args: Any) -> bool:
        seen.append(args)
        return True

    value, delivered = _threads_call(lambda a, b: a + b, 2, 3, answer=answer, quick=True)
    assert value == 5 and delivered == ["answered"]
    assert seen[-1] == (2, 3, 5)


def test_a_shut_down_pool_takes_no_hand_off() -> None:
    import asyncio

    from gearq.tasks.threads import TaskThreads as _Threads

    async def main() -> None:
        threads = _Threads(1, asyncio.get_running_loop())
        threads.shutdown()
        with pytest.raises(RuntimeError, match="shut down"):
            threads.call_waiting_now(lambda: None)
        with pytest.raises(RuntimeError, match="shut down"):
            threads.submit(lambda: None)

    asyncio.run(main())


# --- the worker's quick decoding of the common call --------------------------------------------


def _envelopes() -> list[bytes]:
    import msgpack

    from gearq.tasks.envelope import encode_call

    pack = msgpack.packb
    return [
        encode_call("t", [1, "a"]),
        encode_call("t", [b"x" * 100], task_id="id-1"),
        encode_call("t", [], {"k": 1}),
        encode_call("t"),
        encode_call("t", [1], task_id="i", attempt=3, max_retries=5, expires=2e9),
        encode_call("t", [1], headers={"h": 1}, parent_id="p"),
        encode_call("t", [1], serializer="json"),
        pack({"v": 1, "t": "t"}),
        pack({"v": 1, "t": None, "a": [1]}),
        pack({"v": 1, "a": (), "k": None}),
        pack({"v": 1, "k": []}),  # an empty array for no kwargs (PHP)
        pack({"v": 1, "t": 5}),
        pack({"v": 1, "id": 5}),
        pack({"v": 1, "a": {"x": 1}}),
        pack({"v": 1, "a": "abc"}),
        pack({"v": 1, "k": {1: 2}}),
        pack({"v": 1, "k": [1]}),
        pack({"v": True}),
        pack({"v": 1.0}),
        pack({"v": 2}),
        pack({"t": "t"}),
        pack({1: 1, "v": 1}),
        pack({"v": 1, "zz": 1}),
        pack([1, 2]),
        pack({"v": 1, **{f"x{i}": i for i in range(20)}}),  # a map16
        b"\x81\xa1v",  # cut short
        b"\x81\xa1v\xc1",  # a byte msgpack never writes
        b"",
        b"{}",
        b"\x80",
    ]


def test_the_quick_call_decoding_agrees_with_decode_call() -> None:
    """``decode_plain_call`` decodes what it takes exactly as ``decode_call`` does, and leaves
    everything else (optional keys, other types, errors) to it."""
    from gearq.tasks.envelope import decode_call, decode_plain_call

    taken = 0
    for data in _envelopes():
        quick = decode_plain_call(data)
        try:
            full: Any = decode_call(data)
        except Exception as exc:
            full = exc
        if quick is None:
            continue
        taken += 1
        assert not isinstance(full, Exception), (data, full)
        assert quick == full and quick.serializer is full.serializer, data
        assert type(quick.args) is tuple and type(quick.kwargs) is dict
    assert taken == 7  # the plain msgpack calls: encode_call's first four, and three more


def test_the_quick_call_decoding_takes_what_delay_sends() -> None:
    from gearq.tasks.envelope import decode_plain_call, encode_call

    call = decode_plain_call(encode_call("bench.echo", [b"x" * 100], task_id="abc"))
    assert call is not None
    assert (call.task, call.args, call.kwargs, call.task_id) == (
        "bench.echo", (b"x" * 100,), {}, "abc"
    )  # fmt: skip
    assert call.attempt == 1 and call.expires is None and call.headers == {}


def test_the_quick_result_encoding_agrees_with_encode_result() -> None:
    import datetime
    import decimal

    from gearq.tasks.envelope import encode_plain_result, encode_result
    from gearq.tasks.serializers import JSON, MSGPACK, RAW, SerializationError

    values: list[Any] = [
        None, 1, "s", b"x" * 100, [1, {"a": (1, 2)}], {"k": [None]}, 1.5, True,
        datetime.datetime(2020, 1, 2, 3, 4, 5), decimal.Decimal("1.25"), {1, 2},
    ]  # fmt: skip
    for ser in (MSGPACK, JSON):
        for value in values:
            try:
                expected: Any = encode_result(value, serializer=ser, task_name="t")
            except SerializationError as exc:
                expected = type(exc)
            try:
                got: Any = encode_plain_result(value, ser, "t")
            except SerializationError as exc:
                got = type(exc)
            assert got == expected, (ser, value)
    raw = encode_result(b"raw", serializer=RAW, task_name="t")
    assert encode_plain_result(b"raw", RAW, "t") == raw
    with pytest.raises(SerializationError, match="return value"):
        encode_plain_result(object(), MSGPACK, "t")  # explained by encode_result


def test_a_wait_cut_short_by_a_signal_handler_leaves_the_job_to_the_loop() -> None:
    """A signal handler that raises while the loop's thread waits for a hand-off: the
    error goes up, and the pool thread, once done, neither answers the job (it would write
    to the connection while the loop's thread runs) nor keeps its value."""
    import asyncio
    import signal
    import threading

    from gearq.tasks.threads import TaskThreads as _Threads

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are handled in the main thread only")

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    main_thread = threading.get_ident()
    answered: list[Any] = []

    def answer(*args: Any) -> bool:
        answered.append(args)
        return True

    def poke() -> str:  # in the pool thread, while the loop's thread waits for it
        signal.pthread_kill(main_thread, signal.SIGUSR1)
        time.sleep(0.02)
        return "late"

    async def main() -> list[Any]:
        threads = _Threads(1, asyncio.get_running_loop())
        delivered: list[Any] = []
        deliver = threads._deliver

        def spy() -> None:
            delivered.append(list(threads._done))
            deliver()

        threads._deliver = spy  # type: ignore[method-assign]
        previous = signal.signal(signal.SIGUSR1, interrupt)
        try:
            await threads.submit(lambda: None)  # start the thread
            delivered.clear()
            with pytest.raises(Interrupted):
                threads.call_waiting_now(poke, answer=answer)
            await asyncio.sleep(0.1)  # the thread is done by now
        finally:
            signal.signal(signal.SIGUSR1, previous)
            threads.shutdown()
        return delivered

    assert asyncio.run(main()) == []  # nothing came back through the loop either
    assert answered == []
