"""Signatures, groups and chains: many task calls as one.

::

    results = group(add.s(1, 1), add.s(2, 2)).delay().get(timeout=10)   # [2, 4], in order
    total = chain(add.s(1, 2), mul.s(10), str_.s()).delay().get()      # "30"
    total = (add.s(1, 2) | mul.s(10)).delay().get()                     # 30

``group`` submits every member at once as foreground jobs (one connection, pipelined) and
gives the results in the order of the members. ``chain`` is driven by the caller: each step
is submitted when the previous one has finished, with its result as the first argument.
Like every foreground call, both live as long as the caller's connection.

Typing: ``task.s(...)`` with all of the task's arguments is a :class:`Signature` (mypy
checks them); with some missing it is a :class:`PartialSignature`, which only a chain (that
supplies the first argument) accepts after its first step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

from ..protocol.errors import ArgumentError
from .result import AsyncResult, TaskState, TaskTimeout

if TYPE_CHECKING:
    from .task import Task

__all__ = ["ChainResult", "GroupResult", "PartialSignature", "Signature", "chain", "group"]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
R2 = TypeVar("R2")

_CALL_OPTIONS = frozenset({"priority", "unique", "timeout", "queue", "headers", "expires"})


class PartialSignature(Generic[R_co]):
    """A task with some (or all) of its arguments and call options, not yet called."""

    __slots__ = ("args", "kwargs", "options", "task")

    def __init__(
        self,
        task: Task[Any, Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        unknown = set(self.options) - _CALL_OPTIONS
        if unknown:
            raise ArgumentError(f"unknown call options: {', '.join(sorted(unknown))}")

    def set(self, **options: Any) -> PartialSignature[R_co]:
        """A copy with these call options (priority, unique, timeout, queue, headers,
        expires)."""
        return type(self)(self.task, self.args, self.kwargs, {**self.options, **options})

    def _with_first(self, value: Any) -> tuple[Any, ...]:
        return (value, *self.args)

    def delay(self) -> AsyncResult[R_co]:
        """Call it (a foreground job); its arguments must be complete."""
        result = self.task.apply_async(self.args, self.kwargs, background=False, **self.options)
        return cast("AsyncResult[R_co]", result)

    async def adelay(self) -> AsyncResult[R_co]:
        result = await self.task.aapply_async(
            self.args, self.kwargs, background=False, **self.options
        )
        return cast("AsyncResult[R_co]", result)

    def __or__(self, other: PartialSignature[R2]) -> chain[R2]:
        return chain._of([self, other])

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task.name}.s({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PartialSignature)
            and other.task is self.task
            and other.args == self.args
            and other.kwargs == self.kwargs
            and other.options == self.options
        )

    __hash__ = None  # type: ignore[assignment]


class Signature(PartialSignature[R_co]):
    """A task with all of its arguments (as far as the type checker knows)."""

    __slots__ = ()

    def set(self, **options: Any) -> Signature[R_co]:
        return Signature(self.task, self.args, self.kwargs, {**self.options, **options})


# --- group ---------------------------------------------------------------------------------


class GroupResult(Generic[R_co]):
    """The results of a group, in the order of its members."""

    __slots__ = ("results",)

    def __init__(self, results: Sequence[AsyncResult[R_co]]) -> None:
        self.results = list(results)

    def __iter__(self) -> Iterator[AsyncResult[R_co]]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AsyncResult[R_co]:
        return self.results[index]

    def ready(self) -> bool:
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        return any(r.failed() for r in self.results)

    def completed_count(self) -> int:
        return sum(1 for r in self.results if r.successful())

    @overload
    def get(self, timeout: float | None = None, propagate: Literal[True] = True) -> list[R_co]: ...
    @overload
    def get(
        self, timeout: float | None = None, *, propagate: bool
    ) -> list[R_co | BaseException]: ...

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Every member's value, in order. ``timeout`` bounds the whole wait. With
        ``propagate`` the first failed member's error (in member order) is raised once
        all are done; without it errors are returned in place."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        for result in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            result.get(left, propagate=False)
        return [r.get(0, propagate=propagate) for r in self.results]

    join = get

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for result in self.results:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            await result.aget(left, propagate=False)
        return [await r.aget(0, propagate=propagate) for r in self.results]

    def __await__(self) -> Generator[Any, None, list[R_co]]:
        return self.aget().__await__()

    def __repr__(self) -> str:
        return f"<GroupResult {len(self.results)} tasks, {self.completed_count()} done>"


class group(Generic[R_co]):
    """Many task calls at once: ``group(add.s(1, 1), add.s(2, 2))`` or
    ``group(add.s(i, i) for i in range(10))``. ``.delay()`` gives a :class:`GroupResult`."""

    __slots__ = ("signatures",)

    @overload
    def __init__(self, signatures: Iterable[Signature[R_co]], /) -> None: ...
    @overload
    def __init__(self, *signatures: Signature[R_co]) -> None: ...

    def __init__(self, *signatures: Any) -> None:
        if len(signatures) == 1 and not isinstance(signatures[0], PartialSignature):
            signatures = tuple(signatures[0])
        for sig in signatures:
            if not isinstance(sig, PartialSignature):
                raise ArgumentError(f"group members must be signatures (task.s(...)), got {sig!r}")
        self.signatures: list[Signature[R_co]] = list(signatures)

    def delay(self) -> GroupResult[R_co]:
        """Submit every member now (foreground jobs); results in member order."""
        return GroupResult([sig.delay() for sig in self.signatures])

    def apply_async(self, **options: Any) -> GroupResult[R_co]:
        """Submit every member with these call options added."""
        return GroupResult([sig.set(**options).delay() for sig in self.signatures])

    async def adelay(self) -> GroupResult[R_co]:
        return GroupResult([await sig.adelay() for sig in self.signatures])

    def __len__(self) -> int:
        return len(self.signatures)

    def __repr__(self) -> str:
        return f"group({', '.join(map(repr, self.signatures))})"


# --- chain ---------------------------------------------------------------------------------


class ChainResult(Generic[R_co]):
    """The outcome of a chain: ``get()`` / ``await`` give the last step's value.

    ``results`` holds the results of the steps submitted so far; a step that fails ends
    the chain with its error.
    """

    __slots__ = ("_future", "_steps", "results")

    def __init__(
        self,
        future: concurrent.futures.Future[Any] | asyncio.Future[Any],
        steps: int,
        results: list[AsyncResult[Any]],
    ) -> None:
        self._future = future
        self._steps = steps
        self.results = results

    def ready(self) -> bool:
        return self._future.done()

    def successful(self) -> bool:
        return self._future.done() and self._future.exception() is None

    def failed(self) -> bool:
        return self._future.done() and self._future.exception() is not None

    @property
    def state(self) -> str:
        if self._future.done():
            return TaskState.FAILURE if self._future.exception() else TaskState.SUCCESS
        if not self.results:
            return TaskState.PENDING
        return self.results[-1].state

    @overload
    def get(self, timeout: float | None = None, propagate: Literal[True] = True) -> R_co: ...
    @overload
    def get(self, timeout: float | None = None, *, propagate: bool) -> R_co | BaseException: ...

    def get(self, timeout: float | None = None, propagate: bool = True) -> Any:
        fut = self._future
        if isinstance(fut, asyncio.Future):
            if not fut.done():
                raise RuntimeError("this chain runs on an event loop: use `await result`")
            error = fut.exception()
        else:
            try:
                fut.result(timeout)
                error = None
            except concurrent.futures.TimeoutError:
                raise self._timeout(timeout) from None
            except BaseException as exc:
                error = exc
        if error is not None:
            if propagate:
                raise error
            return error
        return fut.result()

    def _timeout(self, timeout: float | None) -> TaskTimeout:
        step = self.results[-1] if self.results else None
        return TaskTimeout(
            f"chain of {self._steps} steps not done within {timeout:g} s (it goes on)",
            task_name=step.task_name if step else "chain",
            task_id=step.id if step else None,
            abandoned=False,
        )

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        fut = self._future
        waitable = fut if isinstance(fut, asyncio.Future) else asyncio.wrap_future(fut)
        try:
            return await asyncio.wait_for(asyncio.shield(waitable), timeout)
        except asyncio.TimeoutError:
            if waitable.done():
                raise
            raise self._timeout(timeout) from None
        except Exception as exc:
            if propagate:
                raise
            return exc

    def __await__(self) -> Generator[Any, None, R_co]:
        return self.aget().__await__()

    def __repr__(self) -> str:
        return f"<ChainResult {len(self.results)}/{self._steps} steps {self.state}>"


class chain(Generic[R_co]):
    """Tasks one after another, each getting the previous result as its first argument.

    ``chain(add.s(1, 2), mul.s(10))`` computes ``mul(add(1, 2), 10)``. The caller drives
    it: step n + 1 is submitted when step n has finished, so the caller must stay up (as
    for any foreground call).
    """

    __slots__ = ("signatures",)

    @overload
    def __init__(self: chain[R], a: PartialSignature[R], /) -> None: ...
    @overload
    def __init__(self: chain[R], a: PartialSignature[Any], b: PartialSignature[R], /) -> None: ...
    @overload
    def __init__(
        self: chain[R],
        a: PartialSignature[Any],
        b: PartialSignature[Any],
        c: PartialSignature[R],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R],
        a: PartialSignature[Any],
        b: PartialSignature[Any],
        c: PartialSignature[Any],
        d: PartialSignature[R],
        /,
    ) -> None: ...
    @overload
    def __init__(
        self: chain[R],
        a: PartialSignature[Any],
        b: PartialSignature[Any],
        c: PartialSignature[Any],
        d: PartialSignature[Any],
        e: PartialSignature[R],
        /,
    ) -> None: ...
    @overload
    def __init__(self: chain[Any], *signatures: PartialSignature[Any]) -> None: ...

    def __init__(self, *signatures: PartialSignature[Any]) -> None:
        if not signatures:
            raise ArgumentError("a chain needs at least one signature")
        flat: list[PartialSignature[Any]] = []
        for sig in signatures:
            if isinstance(sig, chain):
                flat.extend(sig.signatures)
            elif isinstance(sig, PartialSignature):
                flat.append(sig)
            else:
                raise ArgumentError(f"chain members must be signatures (task.s(...)), got {sig!r}")
        self.signatures = flat

    @classmethod
    def _of(cls, signatures: list[PartialSignature[Any]]) -> chain[Any]:
        made: chain[Any] = cls.__new__(cls)
        made.signatures = []
        for sig in signatures:
            made.signatures.extend(sig.signatures if isinstance(sig, chain) else [sig])
        return made

    def __or__(self, other: PartialSignature[R2] | chain[R2]) -> chain[R2]:
        return chain._of([*self.signatures, other])  # type: ignore[list-item]

    async def _drive(self, results: list[AsyncResult[Any]]) -> Any:
        value: Any = None
        for index, sig in enumerate(self.signatures):
            args = sig.args if index == 0 else sig._with_first(value)
            result = await sig.task.aapply_async(args, sig.kwargs, background=False, **sig.options)
            results.append(result)
            value = await result
        return value

    def _drive_eager(self, results: list[AsyncResult[Any]]) -> Any:
        value: Any = None
        for index, sig in enumerate(self.signatures):
            args = sig.args if index == 0 else sig._with_first(value)
            result = sig.task.apply_async(args, sig.kwargs, background=False, **sig.options)
            results.append(result)
            value = result.get()
        return value

    def delay(self) -> ChainResult[R_co]:
        """Start the chain (driven by the app's loop thread); returns at once."""
        results: list[AsyncResult[Any]] = []
        app = self.signatures[0].task.app
        if app.conf.eager:
            fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
            try:
                fut.set_result(self._drive_eager(results))
            except Exception as exc:
                fut.set_exception(exc)
            return ChainResult(fut, len(self.signatures), results)
        home = app._thread()
        fut = asyncio.run_coroutine_threadsafe(self._drive(results), home.loop)
        home.driver.wake()  # nobody waits in the loop for this future: run it now
        return ChainResult(fut, len(self.signatures), results)

    async def adelay(self) -> ChainResult[R_co]:
        """Start the chain on the running loop; ``await`` the result for the value."""
        results: list[AsyncResult[Any]] = []
        task = asyncio.ensure_future(self._drive(results))
        # The first step is submitted before we return, so submit errors surface early.
        await asyncio.sleep(0)
        return ChainResult(task, len(self.signatures), results)

    def __len__(self) -> int:
        return len(self.signatures)

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.signatures))
