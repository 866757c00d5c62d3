"""``Task[P, R]``: what ``@app.task`` makes of a function, and how a call becomes a job.

::

    @app.task
    def add(x: int, y: int) -> int: ...

    add(2, 3)                  # runs here, now
    add.delay(2, 3)            # AsyncResult[int]: a foreground job; .get() -> 5
    await add.adelay(2, 3)     # the same from asyncio; ``await`` the result for 5
    add.send(2, 3)             # a durable background job (BackgroundResult)
    add.apply_async((2, 3), countdown=10)   # options per call
    add.s(2, 3)                # a signature, for group() and chain()

Names: the blocking methods (``delay``, ``apply_async``, ``send``) have asyncio twins with
an ``a`` prefix (``adelay``, ``aapply_async``, ``asend``), as ``result.get()`` has
``await result`` / ``result.aget()`` and ``result.stream()`` has ``result.astream()``.

The blocking methods return at once: the call is encoded (and its arguments checked) in
the caller's thread, and handed to the app's loop thread, which sends it. Connection errors
therefore surface from ``get()``; argument errors (:class:`SerializationError`, naming the
argument) are raised by the call itself.

A call of a task that no worker serves is not an error in Gearman: its job waits in the
queue until a worker for it connects. Bound the wait with ``timeout=`` (or the app's
``default_timeout``), or check up front with ``require_worker=True``
(:class:`NoWorkerAvailable`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

from typing_extensions import ParamSpec

from ..client.job import Priority
from ..protocol.errors import ArgumentError
from .envelope import encode_call, encode_positional_call
from .naming import UniqueSpec, function_name, key_unique, make_unique
from .options import TaskOptions
from .result import AsyncResult, BackgroundResult
from .serializers import RawSerializer, SerializationError, get_serializer

if TYPE_CHECKING:
    from .app import App, _Submit, _View
    from .canvas import PartialSignature, Signature

__all__ = ["DELAYED_SUFFIX", "AsyncTask", "Task", "make_options", "parse_priority"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Appended to a task's function name for its countdown/eta jobs (SUBMIT_JOB_EPOCH). They
#: get a function of their own because gearmand 1.1.x lets a not-yet-due epoch job at the
#: head of a queue hide that function's LOW jobs and makes its workers spin.
DELAYED_SUFFIX = b"@eta"

_PRIORITIES = {"high": Priority.HIGH, "normal": Priority.NORMAL, "low": Priority.LOW}


def parse_priority(value: Priority | str | int) -> Priority:
    """A :class:`Priority` from itself, a name (``"high"``...) or Celery's 0-9 (0-2 high,
    3-6 normal, 7-9 low: Gearman has three levels)."""
    if isinstance(value, Priority):
        return value
    if isinstance(value, str):
        found = _PRIORITIES.get(value.strip().lower())
        if found is not None:
            return found
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return Priority.HIGH if value <= 2 else Priority.NORMAL if value <= 6 else Priority.LOW
    raise ArgumentError(f"priority must be 'high', 'normal', 'low' or 0-9, got {value!r}")


def _default_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "__main__"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not qualname:
        raise ArgumentError(f"cannot name task {fn!r}: give it name=...")
    return f"{module}.{qualname}"


def make_options(
    fn: Callable[..., Any], options: Mapping[str, Any], default_serializer: str
) -> TaskOptions:
    """The :class:`TaskOptions` for ``@app.task(**options)`` on ``fn``."""
    known = {
        "name", "queue", "priority", "background", "unique", "max_retries", "retry_on",
        "retry_backoff", "retry_backoff_max", "retry_jitter", "time_limit", "serializer",
        "bind",
    }  # fmt: skip
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown task options: {', '.join(sorted(unknown))}")
    values = dict(options)
    if values.get("name") is None:
        values["name"] = _default_name(fn)
    if "priority" in values:
        values["priority"] = parse_priority(values["priority"])
    if values.get("serializer") is None:
        values["serializer"] = default_serializer
    get_serializer(values["serializer"])  # unknown names fail here, at declaration
    retry_on = values.get("retry_on")
    if isinstance(retry_on, type):
        values["retry_on"] = (retry_on,)
    elif retry_on is not None:
        values["retry_on"] = tuple(retry_on)
    if values.get("max_retries") is None:
        values.pop("max_retries", None)
    return TaskOptions(**values)


_getrandbits = random.getrandbits
_get_running_loop = asyncio.get_running_loop


def _new_id() -> str:
    """A task id: 32 random hex digits (128 bits, like a UUID4).

    From ``random`` rather than ``os.urandom``: ids need to be unique, not secret, and this
    costs a third. ``random`` is seeded from the OS and reseeded in a forked child.
    """
    return _getrandbits(128).to_bytes(16, "big").hex()  # (faster than "%032x" % ...)


def _epoch(eta: datetime | float) -> float:
    if isinstance(eta, datetime):
        if eta.tzinfo is None:
            raise ArgumentError("eta must be a timezone-aware datetime (or unix seconds)")
        return eta.timestamp()
    if isinstance(eta, (int, float)) and not isinstance(eta, bool) and math.isfinite(eta):
        return float(eta)
    raise ArgumentError(f"eta must be a datetime or unix seconds, got {eta!r}")


class Task(Generic[P, R]):
    """A task: the user's function plus its options, callable here and remotely.

    Attributes the worker side relies on: ``name``, ``fn``, ``options``
    (:class:`TaskOptions`), ``function_name`` (the Gearman function, with the queue
    prefix) and ``delayed_function_name`` (the function of its countdown/eta jobs).
    """

    def __init__(self, app: App, fn: Callable[..., Any], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.name = options.name
        self.function_name: bytes = function_name(options.name, options.queue)
        self.delayed_function_name: bytes = self.function_name + DELAYED_SUFFIX
        self.serializer = get_serializer(options.serializer)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.is_generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        self._raw = isinstance(self.serializer, RawSerializer)
        self._param_names = self._positional_names(fn, options.bind)
        self._functions: dict[str | None, bytes] = {options.queue: self.function_name}
        functools.update_wrapper(self, fn)

    @staticmethod
    def _positional_names(fn: Callable[..., Any], bind: bool) -> tuple[str, ...]:
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            return ()
        if bind and params:
            params = params[1:]
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return tuple(p.name for p in params if p.kind in kinds)

    # -- running here ---------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no worker, no serialization).

        A ``bind=True`` task gets a local :class:`TaskContext` whose progress, chunks and
        warnings go nowhere.
        """
        if self.options.bind:
            from .eager import local_context

            return self.fn(local_context(self), *args, **kwargs)  # type: ignore[no-any-return]
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Celery's name for calling the function here."""
        return self(*args, **kwargs)

    # -- building calls -------------------------------------------------------------------

    def _function(self, queue: str | None) -> bytes:
        fn = self._functions.get(queue)
        if fn is None:
            fn = self._functions[queue] = function_name(self.name, queue)
        return fn

    def _encode(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        task_id: str,
        *,
        eta: float | None = None,
        expires: float | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> bytes:
        if self._raw:
            if not kwargs and len(args) == 1 and args[0].__class__ is bytes:
                return args[0]  # what encode_call gives
            return encode_call(
                self.name, args, kwargs, serializer=self.serializer,
                param_names=self._param_names,
            )  # fmt: skip
        if not kwargs and eta is None and expires is None and not headers:
            payload = encode_positional_call(self.serializer, self.name, args, task_id)
            if payload is not None:
                return payload
        try:
            return encode_call(
                self.name, args, kwargs, serializer=self.serializer, task_id=task_id, eta=eta,
                expires=expires, headers=headers,
            )  # fmt: skip
        except SerializationError:
            # Again, with the parameter names, so that the error names the argument.
            return encode_call(
                self.name, args, kwargs, serializer=self.serializer, task_id=task_id, eta=eta,
                expires=expires, headers=headers, param_names=self._param_names,
            )  # fmt: skip

    def _unique(
        self,
        spec: UniqueSpec | None,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        background: bool,
        task_id: str,
    ) -> bytes | None:
        if spec is None:
            return key_unique(task_id, background=True) if background else None
        return make_unique(
            spec, task_name=self.name, args=args, kwargs=kwargs or {}, background=background
        )

    def _result(self, task_id: str, blocking: bool, home: _View | None = None) -> AsyncResult[R]:
        return AsyncResult(
            self.name, task_id, home, self.serializer, self.app.exception_registry, blocking,
            self.is_generator,
        )  # fmt: skip

    # -- calling remotely: the blocking API -----------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Call the task on a worker (a foreground job); returns at once.

        The result comes back over this process's connection: see :class:`AsyncResult`.
        gearmand drops the job if this process disconnects while it is still queued.
        A task no worker serves is not an error: its job waits, QUEUED, until a worker
        for it connects (bound the wait with ``get(timeout=...)``, the app's
        ``default_timeout``, or check first with ``require_worker``).
        """
        app = self.app
        conf = app.conf
        if conf.eager:
            from .eager import run_eager

            return cast("AsyncResult[R]", run_eager(self, args, kwargs, _new_id()))
        task_id = _getrandbits(128).to_bytes(16, "big").hex()  # _new_id(), a call fewer
        payload = self._encode(args, kwargs, task_id)
        spec = self.options.unique
        unique = None
        if spec is None and not conf.require_worker and conf.default_timeout is None:
            # The common call, sent as a lane if it is the only one (see App.call_lane).
            sent = app._thread().call_lane(self, task_id, payload)
            if sent is not None:
                return sent
        else:
            if spec is not None:
                unique = self._unique(spec, args, kwargs, False, task_id)
            if conf.require_worker:
                app._check_worker(self.name, self.function_name)
        return app._call_blocking(
            self._result, task_id,
            (self.function_name, payload, False, self.options.priority, unique, None,
             conf.default_timeout),
        )  # fmt: skip

    def send(self, *args: P.args, **kwargs: P.kwargs) -> BackgroundResult:
        """Submit the task as a durable background job: fire and forget.

        The job survives this process (and, with a persistent queue, a gearmand restart);
        its result is not returned (:class:`BackgroundResult`).
        """
        return self.apply_async(args, kwargs, background=True)

    @overload
    def apply_async(
        self,
        args: Sequence[Any] = ...,
        kwargs: Mapping[str, Any] | None = ...,
        *,
        background: Literal[True],
        priority: Priority | str | int | None = ...,
        unique: UniqueSpec | None = ...,
        countdown: float | None = ...,
        eta: datetime | float | None = ...,
        expires: datetime | float | None = ...,
        timeout: float | None = ...,
        queue: str | None = ...,
        task_id: str | None = ...,
        headers: Mapping[str, Any] | None = ...,
        require_worker: bool | None = ...,
    ) -> BackgroundResult: ...
    @overload
    def apply_async(
        self,
        args: Sequence[Any] = ...,
        kwargs: Mapping[str, Any] | None = ...,
        *,
        background: Literal[False],
        priority: Priority | str | int | None = ...,
        unique: UniqueSpec | None = ...,
        countdown: None = ...,
        eta: None = ...,
        expires: datetime | float | None = ...,
        timeout: float | None = ...,
        queue: str | None = ...,
        task_id: str | None = ...,
        headers: Mapping[str, Any] | None = ...,
        require_worker: bool | None = ...,
    ) -> AsyncResult[R]: ...
    @overload
    def apply_async(
        self,
        args: Sequence[Any] = ...,
        kwargs: Mapping[str, Any] | None = ...,
        *,
        background: bool | None = ...,
        priority: Priority | str | int | None = ...,
        unique: UniqueSpec | None = ...,
        countdown: float | None = ...,
        eta: datetime | float | None = ...,
        expires: datetime | float | None = ...,
        timeout: float | None = ...,
        queue: str | None = ...,
        task_id: str | None = ...,
        headers: Mapping[str, Any] | None = ...,
        require_worker: bool | None = ...,
    ) -> AsyncResult[R] | BackgroundResult: ...

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        background: bool | None = None,
        priority: Priority | str | int | None = None,
        unique: UniqueSpec | None = None,
        countdown: float | None = None,
        eta: datetime | float | None = None,
        expires: datetime | float | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        require_worker: bool | None = None,
    ) -> AsyncResult[R] | BackgroundResult:
        """Call the task with per-call options (arguments unchecked by the type checker).

        ``background``: a durable detached job (default: the task's ``background``
        option; a ``countdown``/``eta`` makes it background). ``countdown`` (seconds) or
        ``eta`` (aware datetime or unix seconds): do not run before then; gearmand
        schedules it (SUBMIT_JOB_EPOCH, 1 s resolution, NORMAL priority) on the task's
        ``@eta`` function. ``expires`` (seconds from now, or a datetime): a worker that gets
        the task later answers :class:`TaskExpired` instead of running it.
        ``timeout``: a foreground call gives up after that many seconds
        (:class:`TaskTimeout`). ``unique``: overrides the task's unique option.
        ``queue``: route to another queue. ``require_worker``: check a worker exists.
        """
        app = self.app
        args = tuple(args) if not isinstance(args, (tuple, list)) else args
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ArgumentError("kwargs must be a mapping")
        background, prio, run_at, expires_at = self._when(
            background, priority, countdown, eta, expires
        )
        if app.conf.eager:
            from .eager import run_eager

            return cast(
                "AsyncResult[R] | BackgroundResult",
                run_eager(self, args, kwargs or {}, task_id or _new_id(), background=background),
            )
        handle, submit = self._plan(
            args, kwargs, background, prio, unique, run_at, expires_at, timeout, queue,
            task_id, headers, blocking=True,
        )  # fmt: skip
        if require_worker if require_worker is not None else app.conf.require_worker:
            app._check_worker(self.name, submit[0])
        app._submit_blocking(handle, submit)
        return handle

    def _when(
        self,
        background: bool | None,
        priority: Priority | str | int | None,
        countdown: float | None,
        eta: datetime | float | None,
        expires: datetime | float | None,
    ) -> tuple[bool, Priority, float | None, float | None]:
        """Check the timing options of a call: (background, priority, run_at, expires_at)."""
        options = self.options
        run_at = self._run_at(countdown, eta)
        if background is None:
            background = options.background or run_at is not None
        elif not background and run_at is not None:
            raise ArgumentError(
                "countdown/eta need a background job: gearmand schedules only background"
                " jobs (a foreground caller would have to stay connected until then)"
            )
        prio = options.priority if priority is None else parse_priority(priority)
        if run_at is not None and priority is not None and prio is not Priority.NORMAL:
            raise ArgumentError("countdown/eta jobs always run at NORMAL priority in gearmand")
        if run_at is not None:
            prio = Priority.NORMAL
        expires_at = None if expires is None else self._expires(expires)
        return background, prio, run_at, expires_at

    def _plan(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        background: bool,
        prio: Priority,
        unique: UniqueSpec | None,
        run_at: float | None,
        expires_at: float | None,
        timeout: float | None,
        queue: str | None,
        task_id: str | None,
        headers: Mapping[str, Any] | None,
        *,
        blocking: bool,
    ) -> tuple[AsyncResult[R] | BackgroundResult, _Submit]:
        """The result handle of a call and what the app submits for it."""
        options = self.options
        task_id = task_id or _new_id()
        payload = self._encode(
            args, kwargs, task_id, eta=run_at, expires=expires_at, headers=headers
        )
        spec = options.unique if unique is None else unique
        unique_b = self._unique(spec, args, kwargs, background, task_id)
        fn = self._function(queue if queue is not None else options.queue)
        if run_at is not None:
            fn += DELAYED_SUFFIX
        if background:
            assert unique_b is not None
            handle = BackgroundResult(
                self.app, self.name, task_id, function=fn, unique=unique_b, eta=run_at,
                home=None, blocking=blocking,
            )  # fmt: skip
            return handle, (fn, payload, True, prio, unique_b, run_at, None)
        if timeout is None:
            timeout = self.app.conf.default_timeout
        result = self._result(task_id, blocking)
        return result, (fn, payload, False, prio, unique_b, None, timeout)

    @staticmethod
    def _run_at(countdown: float | None, eta: datetime | float | None) -> float | None:
        if countdown is not None and eta is not None:
            raise ArgumentError("give countdown or eta, not both")
        if countdown is not None:
            if not (isinstance(countdown, (int, float)) and math.isfinite(countdown)):
                raise ArgumentError(f"countdown must be a number of seconds, got {countdown!r}")
            return time.time() + max(0.0, float(countdown))
        if eta is not None:
            return _epoch(eta)
        return None

    @staticmethod
    def _expires(expires: datetime | float) -> float:
        """Unix time of ``expires``: a datetime, or seconds from now (as Celery)."""
        if isinstance(expires, datetime):
            return _epoch(expires)
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            if not math.isfinite(expires) or expires < 0:
                raise ArgumentError(f"expires must be >= 0 seconds, got {expires!r}")
            return time.time() + float(expires)
        raise ArgumentError(f"expires must be seconds from now or a datetime: {expires!r}")

    # -- calling remotely: asyncio ----------------------------------------------------------

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """:meth:`delay` for asyncio: ``result = await task.adelay(...)``, then
        ``await result`` for the value. Submit errors are raised here."""
        app = self.app
        conf = app.conf
        if conf.eager:
            from .eager import arun_eager

            return cast("AsyncResult[R]", await arun_eager(self, args, kwargs, _new_id()))
        task_id = "%032x" % _getrandbits(128)  # noqa: UP031 - the fastest spelling
        options = self.options
        payload = self._encode(args, kwargs, task_id)
        spec = options.unique
        unique = None if spec is None else self._unique(spec, args, kwargs, False, task_id)
        if conf.require_worker:
            await app._acheck_worker(self.name, self.function_name)
        result = self._result(task_id, False)
        # App._submit_async, inlined: this is the hot path of asyncio callers.
        home = app._last_home
        if home is None or home.loop is not _get_running_loop():
            home = app._home()
        # A lone call (nothing else of this app in flight on this loop) is written at
        # once, not at the end of the loop's pass; calls made together still leave in
        # one write.
        lone = home.fg == 0 and home.bg == 0
        home.fg += 1
        result._home = home.fg_view
        client = home.client
        job = None
        if lone:
            job = client.submit_now(
                self.function_name, payload, priority=options.priority, unique=unique,
                timeout=conf.default_timeout, send=True,
            )  # fmt: skip
        if job is None:
            try:
                job = await client.submit(
                    self.function_name, payload, priority=options.priority, unique=unique,
                    timeout=conf.default_timeout,
                )  # fmt: skip
            except BaseException as exc:
                result._fail(exc)
                raise
        result._attach(job)
        return result

    async def asend(self, *args: P.args, **kwargs: P.kwargs) -> BackgroundResult:
        """:meth:`send` for asyncio; returns once the job is queued for sending."""
        return await self.aapply_async(args, kwargs, background=True)

    @overload
    async def aapply_async(
        self,
        args: Sequence[Any] = ...,
        kwargs: Mapping[str, Any] | None = ...,
        *,
        background: Literal[True],
        priority: Priority | str | int | None = ...,
        unique: UniqueSpec | None = ...,
        countdown: float | None = ...,
        eta: datetime | float | None = ...,
        expires: datetime | float | None = ...,
        timeout: float | None = ...,
        queue: str | None = ...,
        task_id: str | None = ...,
        headers: Mapping[str, Any] | None = ...,
        require_worker: bool | None = ...,
    ) -> BackgroundResult: ...
    @overload
    async def aapply_async(
        self,
        args: Sequence[Any] = ...,
        kwargs: Mapping[str, Any] | None = ...,
        *,
        background: Literal[False],
        priority: Priority | str | int | None = ...,
        unique: UniqueSpec | None = ...,
        countdown: None = ...,
        eta: None = ...,
        expires: datetime | float | None = ...,
        timeout: float | None = ...,
        queue: str | None = ...,
        task_id: str | None = ...,
        headers: Mapping[str, Any] | None = ...,
        require_worker: bool | None = ...,
    ) -> AsyncResult[R]: ...
    @overload
    async def aapply_async(
        self,
        args: Sequence[Any] = ...,
        kwargs: Mapping[str, Any] | None = ...,
        *,
        background: bool | None = ...,
        priority: Priority | str | int | None = ...,
        unique: UniqueSpec | None = ...,
        countdown: float | None = ...,
        eta: datetime | float | None = ...,
        expires: datetime | float | None = ...,
        timeout: float | None = ...,
        queue: str | None = ...,
        task_id: str | None = ...,
        headers: Mapping[str, Any] | None = ...,
        require_worker: bool | None = ...,
    ) -> AsyncResult[R] | BackgroundResult: ...

    async def aapply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        background: bool | None = None,
        priority: Priority | str | int | None = None,
        unique: UniqueSpec | None = None,
        countdown: float | None = None,
        eta: datetime | float | None = None,
        expires: datetime | float | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        require_worker: bool | None = None,
    ) -> AsyncResult[R] | BackgroundResult:
        """:meth:`apply_async` for asyncio (submit errors are raised here)."""
        app = self.app
        background, prio, run_at, expires_at = self._when(
            background, priority, countdown, eta, expires
        )
        if app.conf.eager:
            from .eager import arun_eager

            return cast(
                "AsyncResult[R] | BackgroundResult",
                await arun_eager(
                    self, tuple(args), kwargs or {}, task_id or _new_id(), background=background
                ),
            )
        handle, submit = self._plan(
            args, kwargs, background, prio, unique, run_at, expires_at, timeout, queue,
            task_id, headers, blocking=False,
        )  # fmt: skip
        if require_worker if require_worker is not None else app.conf.require_worker:
            await app._acheck_worker(self.name, submit[0])
        await app._submit_async(handle, submit)
        return handle

    # -- signatures -----------------------------------------------------------------------

    @overload
    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R]: ...
    @overload
    def s(self, *args: Any, **kwargs: Any) -> PartialSignature[R]: ...

    def s(self, *args: Any, **kwargs: Any) -> Any:
        """A signature: this task with (some of) its arguments, for ``group``/``chain``.

        With all the arguments the type checker sees a :class:`Signature` (usable in a
        ``group``); with some missing a :class:`PartialSignature`, which a ``chain``
        completes with the previous task's result as the first argument.
        """
        from .canvas import Signature

        return Signature(self, args, kwargs)

    def signature(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> PartialSignature[R]:
        """An (unchecked) signature with these arguments."""
        from .canvas import Signature

        return Signature(self, tuple(args), dict(kwargs or {}))

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


class AsyncTask(Task[P, R]):
    """A task whose function is ``async def``: called here, it returns a coroutine."""

    def __call__(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        return super().__call__(*args, **kwargs)  # type: ignore[return-value]
