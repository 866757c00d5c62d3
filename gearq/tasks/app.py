"""The application object: configuration, the task registry, and the connections callers use.

::

    from gearq import App

    app = App("proj", servers="gm1:4730,gm2:4730")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(2, 3).get(timeout=10)          # 5, from a worker
    await add.adelay(2, 3)                   # the same from asyncio (then ``await`` it)

Configuration comes from keyword arguments, then ``GEARQ_*`` environment variables, then
defaults (``App.from_env`` lets the environment win over the arguments instead):

======================  ===========================  =====================================
setting                 environment                  default
======================  ===========================  =====================================
servers                 ``GEARQ_SERVERS``            ``localhost:4730``
strategy                ``GEARQ_STRATEGY``           ``sequence``
recover_time            ``GEARQ_RECOVER_TIME``       30 (seconds a failed server is skipped)
serializer              ``GEARQ_SERIALIZER``         ``msgpack``
default_timeout         ``GEARQ_DEFAULT_TIMEOUT``    none (seconds a foreground call may take)
eager                   ``GEARQ_EAGER``              false (run tasks in-process)
require_worker          ``GEARQ_REQUIRE_WORKER``     false (check a worker exists at submit)
connect_timeout         ``GEARQ_CONNECT_TIMEOUT``    5
exit_wait               ``GEARQ_EXIT_WAIT``          0 (seconds to wait for pending
                                                     foreground tasks at exit)
======================  ===========================  =====================================

Connections. Blocking calls (``.delay()``, ``.send()``) go through one client the app runs
on a private event-loop thread; ``await task.adelay()`` uses one client per running event
loop. Both are made on first use; ``app.close()`` / ``await app.aclose()`` close them.

**Foreground tasks die with their caller.** gearmand drops a foreground job that is still
queued when the connection that submitted it closes, and discards the answer of one that is
running. So before a process exits, wait for its foreground tasks (``get()``, or
``app.close(wait=seconds)``); the app warns at exit (:class:`PendingTasksWarning`) when
some are still pending. For work that must happen even if the caller goes away, submit a
background task (``task.send(...)`` or ``apply_async(background=True)``): durable, but its
result is not returned.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import inspect
import logging
import math
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Literal, Protocol, TypeVar, overload

from typing_extensions import ParamSpec

from ..client.client import AsyncClient
from ..client.errors import ClientClosed
from ..client.job import Priority
from ..client.lane import LaneCall, LaneSender
from ..client.pool import Strategy, make_strategy
from ..client.sync import DrivenLoop, current_pid
from ..net.address import ServerAddress, ServerSpec, parse_servers
from ..net.connection import ConnectionOptions
from ..net.recover import RecoverPolicy
from ..protocol.errors import ArgumentError
from .context import TaskContext
from .naming import UniqueSpec
from .remote_errors import ExceptionRegistry, default_registry
from .result import AsyncResult, BackgroundResult, NoWorkerAvailable, PendingTasksWarning
from .serializers import DEFAULT_SERIALIZER, get_serializer

if TYPE_CHECKING:
    from .runner import TaskWorker
    from .task import AsyncTask, Task

__all__ = ["ENV_PREFIX", "App", "AppConfig", "config_from_env"]

log = logging.getLogger("gearq.tasks")

P = ParamSpec("P")
R = TypeVar("R")

ENV_PREFIX = "GEARQ_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# --- configuration -------------------------------------------------------------------------


def _parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ArgumentError(f"{name} must be true or false, got {text!r}")


def _parse_float(name: str, text: str, *, optional: bool = False) -> float | None:
    value = text.strip()
    if optional and value.lower() in {"", "none", "null"}:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ArgumentError(f"{name} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ArgumentError(f"{name} must be a finite number >= 0, got {text!r}")
    return number


@dataclass
class AppConfig:
    """The app's settings (``app.conf``). Change them before the first call: clients are
    made on first use with the settings of that moment (``app.close()`` drops them, and
    the next call makes new ones)."""

    servers: str | ServerSpec | tuple[ServerSpec, ...] | list[ServerSpec] | None = None
    strategy: str | Strategy = "sequence"
    recover_time: float = 30.0
    serializer: str = DEFAULT_SERIALIZER
    #: Default client-side timeout (seconds) of foreground calls; None: wait forever.
    default_timeout: float | None = None
    #: Run tasks in the calling process (still round-tripping the envelope).
    eager: bool = False
    #: In eager mode, raise a task's error from ``.delay()`` rather than from ``get()``.
    eager_propagates: bool = False
    #: Check at submit that some server lists a worker for the task (admin ``status``).
    require_worker: bool = False
    #: Seconds a positive ``require_worker`` check is trusted for the same function.
    worker_check_ttl: float = 2.0
    connect_timeout: float = 5.0
    heartbeat_interval: float | None = 5.0
    heartbeat_timeout: float = 5.0
    client_id: str | None = None
    max_payload_size: int | None = None
    #: Seconds to wait at interpreter exit for pending foreground tasks (then warn).
    exit_wait: float = 0.0
    #: Seconds to wait at exit for background submits the server has not acknowledged.
    exit_wait_background: float = 5.0
    #: Extra keyword arguments for :class:`gearq.client.AsyncClient`.
    client_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        parse_servers(self.servers)
        make_strategy(self.strategy)
        get_serializer(self.serializer)
        if not (isinstance(self.recover_time, (int, float)) and self.recover_time >= 0):
            raise ArgumentError(f"recover_time must be >= 0, got {self.recover_time!r}")
        if self.default_timeout is not None and not self.default_timeout > 0:
            raise ArgumentError(f"default_timeout must be > 0, got {self.default_timeout!r}")
        if not self.connect_timeout > 0:
            raise ArgumentError(f"connect_timeout must be > 0, got {self.connect_timeout!r}")
        if self.exit_wait < 0 or self.exit_wait_background < 0:
            raise ArgumentError("exit_wait and exit_wait_background must be >= 0")

    @property
    def server_addresses(self) -> tuple[ServerAddress, ...]:
        return tuple(parse_servers(self.servers))

    def connection_options(self) -> ConnectionOptions:
        """Socket settings for the app's connections (clients and workers)."""
        return ConnectionOptions(
            connect_timeout=self.connect_timeout,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
        )

    def recover_policy(self) -> RecoverPolicy:
        return RecoverPolicy(
            recover_time=self.recover_time, max_recover_time=max(300.0, self.recover_time)
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`AsyncClient` / :class:`Client`."""
        kwargs: dict[str, Any] = {
            "strategy": self.strategy,
            "recover_time": self.recover_time,
            "connect_timeout": self.connect_timeout,
            "heartbeat_interval": self.heartbeat_interval,
            "heartbeat_timeout": self.heartbeat_timeout,
            "max_payload_size": self.max_payload_size,
        }
        if self.client_id is not None:
            kwargs["client_id"] = self.client_id
        kwargs.update(self.client_options)
        return kwargs


_ENV_SETTINGS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "servers": ("SERVERS", lambda _n, v: v.strip() or None),
    "strategy": ("STRATEGY", lambda _n, v: v.strip()),
    "recover_time": ("RECOVER_TIME", _parse_float),
    "serializer": ("SERIALIZER", lambda _n, v: v.strip()),
    "default_timeout": ("DEFAULT_TIMEOUT", lambda n, v: _parse_float(n, v, optional=True)),
    "eager": ("EAGER", _parse_bool),
    "require_worker": ("REQUIRE_WORKER", _parse_bool),
    "connect_timeout": ("CONNECT_TIMEOUT", _parse_float),
    "exit_wait": ("EXIT_WAIT", _parse_float),
}


def config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings the ``GEARQ_*`` environment variables give (only those that are set)."""
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for setting, (suffix, parse) in _ENV_SETTINGS.items():
        name = ENV_PREFIX + suffix
        text = env.get(name)
        if text is not None:
            found[setting] = parse(name, text)
    return found


_CONFIG_FIELDS = frozenset(f.name for f in fields(AppConfig) if f.init)


# --- where results live: a loop with a client ------------------------------------------------


class _Home:
    """An event loop with the client that submits on it, and counts of what is pending.

    The counts change in the loop's thread only (results report there when done).
    """

    loop: asyncio.AbstractEventLoop
    client: AsyncClient

    def __init__(self) -> None:
        self.fg = 0  # foreground results not yet done
        self.bg = 0  # background submits not yet acknowledged
        self.fg_view = _View(self, background=False)
        self.bg_view = _View(self, background=True)

    def pending(self) -> tuple[int, int]:
        return self.fg, self.bg


class _View:
    """What a result holds of its home: the loop, and a hook to report it is done."""

    __slots__ = ("background", "home", "loop")

    def __init__(self, home: _Home, *, background: bool) -> None:
        self.home = home
        self.loop = home.loop
        self.background = background

    def _result_done(self) -> None:
        if self.background:
            self.home.bg -= 1
        else:
            self.home.fg -= 1


# A submit request: function, payload, background, priority, unique, run_at, timeout.
_Submit = tuple[bytes, bytes, bool, Priority, "bytes | None", "float | None", "float | None"]


class _Resume:
    """The rest of a coroutine that was started by hand and is waiting on ``first``."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self.coro
        waiting = self.first
        while True:
            try:
                sent = yield waiting
            except BaseException as exc:  # cancellation, passed on into the coroutine
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration:
                    return


async def _finish(resume: _Resume) -> None:
    await resume


def _start_by_hand(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
    # What 3.12's eager tasks do: run the coroutine at once, and make a task only if it
    # has to wait (a connect, a full buffer): a batch of submits usually never waits,
    # and its packets then leave in this loop iteration rather than the next. Unlike an
    # eager task, this also works while the loop is not running (see _ThreadHome.submit).
    try:
        waiting = coro.send(None)
    except StopIteration:
        return
    loop.create_task(_finish(_Resume(coro, waiting)))


if sys.version_info >= (3, 12):

    def _start(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.Task(coro, loop=loop, eager_start=True)

else:
    _start = _start_by_hand


class _LoopHome(_Home):
    """The client of one event loop that the user runs (``await task.adelay()``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: AsyncClient) -> None:
        self.loop = loop
        self.client = client
        super().__init__()


class _ThreadHome(_Home):
    """The app's private event loop, for blocking calls.

    A blocking ``.delay()`` encodes the call in the caller's thread, queues it and returns;
    the loop submits whatever is queued in one go (one wake-up per batch, not one per
    call), so a burst of calls costs the caller microseconds each. The loop runs in the
    thread that blocks on a result while nobody else runs it, else in a daemon thread
    (:class:`DrivenLoop`).
    """

    def __init__(self, app: App) -> None:
        self.pid = os.getpid()
        self.driver = DrivenLoop(f"gearq-app-{app.main}")
        self.loop = self.driver.loop
        self.thread = self.driver.thread
        self.client = app._make_client()
        super().__init__()
        self.queue: collections.deque[tuple[AsyncResult[Any] | BackgroundResult, _Submit]] = (
            collections.deque()
        )
        self.scheduled = False
        self.closed = False
        #: The lane senders of the tasks called here (see call_lane).
        self.senders: dict[Task[..., Any], LaneSender] = {}

    def pending(self) -> tuple[int, int]:
        fg, bg = self.fg, self.bg
        for result, _ in list(self.queue):
            if isinstance(result, BackgroundResult):
                bg += 1
            else:
                fg += 1
        return fg, bg

    def submit(self, result: AsyncResult[Any] | BackgroundResult, request: _Submit) -> None:
        """Send a submit (any thread): at once, in this thread, when it is the only call
        in flight and no thread runs the loop (one caller doing one round trip at a time);
        else queued for the loop, which sends what a burst of calls queued in one go (a
        system call per call would cost the burst more than it saves)."""
        if self.closed:
            raise ClientClosed("the app's client is closed")
        if not self.queue and self.fg == 0 and self.bg == 0 and self._submit_here(result, request):
            return
        self.queue.append((result, request))
        if not self.scheduled:
            self.scheduled = True
            try:
                self.driver.schedule(self._drain)
            except RuntimeError:  # closed under us
                self.scheduled = False
                raise ClientClosed("the app's client is closed") from None

    def _submit_here(self, result: AsyncResult[Any] | BackgroundResult, request: _Submit) -> bool:
        """Submit in the calling thread while no thread runs the loop (False: it cannot).

        Holding the loop's baton, the caller may touch the loop as its own thread would:
        the packet leaves before ``delay()`` returns, instead of after the waiting caller
        has entered the loop and it has taken a pass for the queued submit and another for
        the flush, the largest part of a blocking round trip's overhead over the asyncio
        one. Only for a lone call (see :meth:`submit`). Whatever the submit leaves
        scheduled (a connect, a task) runs when a thread next runs the loop, as a queued
        submit would.
        """
        if self.loop.is_closed():
            return False
        client = self.client

        def submit() -> bool:
            fn, payload, bg, priority, unique, run_at, timeout = request
            job = None
            if run_at is None:
                job = client.submit_now(
                    fn, payload, background=bg, priority=priority, unique=unique,
                    timeout=timeout, send=True,
                )  # fmt: skip
            if job is None:  # connect, fail over, or raise: the full path
                _start_by_hand(self.loop, self._submit_batch([(result, request)]))
                client.flush()
                return True
            if bg:
                self.bg += 1
            else:
                self.fg += 1
            result._attach(job)
            return True

        return self.driver.run_here(submit) is not None

    def call_lone(
        self, make_result: Callable[[str, bool], AsyncResult[R]], task_id: str, request: _Submit
    ) -> AsyncResult[R] | None:
        """A lone foreground call (nothing else in flight) sent from this thread at once,
        its result made once the packet has left (so the server starts meanwhile); None
        if this call does not qualify (:meth:`submit` then takes it). (A call that can
        go as a lane was offered to :meth:`call_lane` first.)"""
        if self.closed or self.queue or self.fg or self.bg or request[2] or request[5]:
            return None
        client = self.client
        fn, payload, _, priority, unique, _, timeout = request

        def send() -> AsyncResult[R] | None:
            job = client.submit_now(
                fn, payload, priority=priority, unique=unique, timeout=timeout, send=True
            )
            if job is None:
                return None
            result = make_result(task_id, True)
            result._home = self.fg_view
            self.fg += 1
            result._attach(job)
            return result

        return self.driver.run_here(send)

    def call_lane(self, task: Task[..., R], task_id: str, payload: bytes) -> AsyncResult[R] | None:
        """A lone foreground call of ``task`` (nothing else in flight, no unique, no
        timeout) sent from this thread at once as a lane, which its waiter reads without
        the client's bookkeeping (see gearq.client.lane); None if it does not qualify."""
        if self.closed or self.queue or self.fg or self.bg:
            return None
        sender = self.senders.get(task)
        if sender is None:  # made once per task: the function's checks and packet parts
            sender = self.client.lane_sender(task.function_name, task.options.priority)
            if sender is None:
                return None
            self.senders[task] = sender
        return self.driver.send_lane(sender, payload, self._bind_lane, task, task_id)

    def _bind_lane(self, lane: LaneCall, task: Task[..., R], task_id: str) -> AsyncResult[R]:
        # (Holding the loop's baton.) No gate: the waiter reads the lane; another thread's
        # wait makes one.
        result = task._result(task_id, False, self.fg_view)
        self.fg += 1
        result._lane = lane
        lane.on_done = result._lane_done
        lane.on_job = result._attach
        return result

    def _drain(self) -> None:
        # Reset the flag before taking the queue: a call queued after this point schedules
        # another drain, so nothing is left behind.
        self.scheduled = False
        queue = self.queue
        if not queue:
            return
        batch = []
        while queue:
            batch.append(queue.popleft())
        _start(self.loop, self._submit_batch(batch))

    async def _submit_batch(
        self, batch: list[tuple[AsyncResult[Any] | BackgroundResult, _Submit]]
    ) -> None:
        client = self.client
        taken = 0  # results counted in fg/bg (the rest fail below if we are cancelled)
        try:
            for result, (fn, payload, bg, priority, unique, run_at, timeout) in batch:
                taken += 1
                if bg:
                    self.bg += 1
                else:
                    self.fg += 1
                try:
                    job = await client.submit(
                        fn,
                        payload,
                        background=bg,
                        priority=priority,
                        unique=unique,
                        run_at=run_at,
                        timeout=timeout,
                    )
                except Exception as exc:
                    result._fail(exc)
                    continue
                result._attach(job)
        except BaseException:
            closed = ClientClosed("the app was closed before the task was submitted")
            for result, _ in batch[taken:]:
                if isinstance(result, BackgroundResult):
                    self.bg += 1
                else:
                    self.fg += 1
                result._fail(closed)
            raise

    def run(self, coro: Coroutine[Any, Any, R], timeout: float | None = None) -> R:
        """Run a coroutine on the loop and wait for its result."""
        return self.driver.run(coro, timeout)

    def stop(self, wait: float) -> None:
        """Close the client (pending results fail with ClientClosed) and stop the thread."""
        self.closed = True
        if self.loop.is_closed():
            return
        if self.driver.in_loop():
            return
        self.wait_idle(wait, background=True)
        with contextlib.suppress(Exception):
            self.driver.run(self._close(), 10)
        self.driver.stop()

    async def _close(self) -> None:
        self._drain()
        await self.client.close()
        closed = ClientClosed("the app was closed before the task was submitted")
        while self.queue:
            result, _ = self.queue.popleft()
            if isinstance(result, BackgroundResult):
                self.bg += 1
            else:
                self.fg += 1
            result._fail(closed)

    def wait_idle(self, timeout: float, *, background: bool = False) -> bool:
        """Wait up to ``timeout`` s until no foreground (and background) submit is pending."""
        deadline = time.monotonic() + timeout
        while True:
            fg, bg = self.pending()
            if fg <= 0 and (not background or bg <= 0):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self.thread.is_alive():
                return False
            time.sleep(min(0.005, left))


_LIVE_APPS: weakref.WeakSet[App] = weakref.WeakSet()
_ATEXIT_REGISTERED = False
_ATEXIT_LOCK = threading.Lock()


def _at_exit() -> None:
    for app in list(_LIVE_APPS):
        try:
            app._at_exit()
        except Exception:  # pragma: no cover - never let one app break interpreter exit
            log.exception("error shutting down gearq app %r", app.main)


def _register_atexit(app: App) -> None:
    global _ATEXIT_REGISTERED
    _LIVE_APPS.add(app)
    if not _ATEXIT_REGISTERED:
        with _ATEXIT_LOCK:
            if not _ATEXIT_REGISTERED:
                atexit.register(_at_exit)
                _ATEXIT_REGISTERED = True


# --- decorator protocols (for typing @app.task(...)) ---------------------------------------


class _TaskDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class _BoundTaskDecorator(Protocol):
    @overload
    def __call__(
        self, fn: Callable[Concatenate[TaskContext, P], Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R], /) -> Task[P, R]: ...


_UNSET: Any = object()


# --- the app -------------------------------------------------------------------------------


class App:
    """A gearq application: settings, tasks, and the connections that call them.

    :param main: the app's name (used in thread names and as the default module name of
        tasks defined in ``__main__``).
    :param servers: job servers: ``"h1:4730,h2:4730"``, a list of ``"host:port"``,
        ``(host, port)`` tuples or dicts. Env ``GEARQ_SERVERS``. Default localhost:4730.
    :param strategy: which server a call goes to: ``sequence`` (the first healthy one,
        default), ``round_robin``, ``random``, ``unique_hash``, or a ``Strategy``.
    :param recover_time: seconds a failed server is skipped before it is tried again.
    :param serializer: default serializer of tasks: ``msgpack``, ``json`` or ``raw``.
    :param default_timeout: default client-side timeout of foreground calls.
    :param eager: run tasks in this process, synchronously, through the envelope.
    :param require_worker: check at each submit (cached ``worker_check_ttl`` s) that a
        server lists a worker for the task, raising :class:`NoWorkerAvailable` otherwise.
    :param exception_registry: which remote exception classes are rebuilt as themselves.
    :param env: read ``GEARQ_*`` environment variables for settings not given here.

    Other :class:`AppConfig` fields may be given as keyword arguments too.
    """

    def __init__(
        self,
        main: str | None = None,
        *,
        servers: Any = _UNSET,
        strategy: Any = _UNSET,
        recover_time: Any = _UNSET,
        serializer: Any = _UNSET,
        default_timeout: Any = _UNSET,
        eager: Any = _UNSET,
        require_worker: Any = _UNSET,
        exception_registry: ExceptionRegistry | None = None,
        env: bool = True,
        **settings: Any,
    ) -> None:
        explicit = {
            key: value
            for key, value in {
                "servers": servers,
                "strategy": strategy,
                "recover_time": recover_time,
                "serializer": serializer,
                "default_timeout": default_timeout,
                "eager": eager,
                "require_worker": require_worker,
            }.items()
            if value is not _UNSET
        }
        unknown = set(settings) - _CONFIG_FIELDS
        if unknown:
            raise ArgumentError(f"unknown App settings: {', '.join(sorted(unknown))}")
        explicit.update(settings)
        from_env = config_from_env() if env else {}
        self._init(main, {**from_env, **explicit}, exception_registry)

    def _init(
        self,
        main: str | None,
        settings: dict[str, Any],
        exception_registry: ExceptionRegistry | None,
    ) -> None:
        self.main = main or "gearq"
        self.conf = AppConfig(**settings)
        self.conf.validate()
        self.exception_registry = exception_registry or default_registry
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._lock = threading.RLock()
        self._thread_home: _ThreadHome | None = None
        self._loop_homes: dict[asyncio.AbstractEventLoop, _LoopHome] = {}
        self._last_home: _LoopHome | None = None
        self._worker_seen: dict[bytes, float] = {}

    @classmethod
    def from_env(
        cls,
        main: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        exception_registry: ExceptionRegistry | None = None,
        **defaults: Any,
    ) -> App:
        """An app whose ``GEARQ_*`` environment variables win over ``defaults``."""
        unknown = set(defaults) - _CONFIG_FIELDS
        if unknown:
            raise ArgumentError(f"unknown App settings: {', '.join(sorted(unknown))}")
        app = cls.__new__(cls)
        app._init(main, {**defaults, **config_from_env(environ)}, exception_registry)
        return app

    # -- settings -------------------------------------------------------------------------

    @property
    def config(self) -> AppConfig:
        """The settings (same object as ``app.conf``)."""
        return self.conf

    @property
    def servers(self) -> tuple[ServerAddress, ...]:
        return self.conf.server_addresses

    def configure(self, **settings: Any) -> None:
        """Change settings (validated); clients made from now on use them."""
        unknown = set(settings) - _CONFIG_FIELDS
        if unknown:
            raise ArgumentError(f"unknown App settings: {', '.join(sorted(unknown))}")
        new = replace(self.conf, **settings)
        new.validate()
        for key in settings:
            setattr(self.conf, key, getattr(new, key))

    # -- tasks ----------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = ...,
        queue: str | None = ...,
        priority: Priority | str = ...,
        background: bool = ...,
        unique: UniqueSpec | None = ...,
        max_retries: int = ...,
        retry_on: tuple[type[BaseException], ...] | type[BaseException] = ...,
        retry_backoff: float = ...,
        retry_backoff_max: float = ...,
        retry_jitter: bool = ...,
        time_limit: float | None = ...,
        serializer: str | None = ...,
        bind: Literal[False] = ...,
    ) -> _TaskDecorator: ...
    @overload
    def task(
        self,
        *,
        name: str | None = ...,
        queue: str | None = ...,
        priority: Priority | str = ...,
        background: bool = ...,
        unique: UniqueSpec | None = ...,
        max_retries: int = ...,
        retry_on: tuple[type[BaseException], ...] | type[BaseException] = ...,
        retry_backoff: float = ...,
        retry_backoff_max: float = ...,
        retry_jitter: bool = ...,
        time_limit: float | None = ...,
        serializer: str | None = ...,
        bind: Literal[True],
    ) -> _BoundTaskDecorator: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """Declare a task: ``@app.task`` or ``@app.task(name=..., queue=..., ...)``.

        Options (all optional): ``name`` (default ``module.qualname``), ``queue`` (a
        function-name prefix for routing: the job goes to ``queue:name``), ``priority``
        (``"high"``, ``"normal"``, ``"low"`` or a :class:`Priority`), ``background``
        (``apply_async``'s default), ``unique`` (a key, ``"-"`` for "same arguments", or a
        callable over the arguments: calls with the same unique while one runs share it),
        ``max_retries``, ``retry_on`` (exception types), ``retry_backoff`` /
        ``retry_backoff_max`` (seconds) / ``retry_jitter``, ``time_limit`` (seconds,
        enforced by the worker), ``serializer``, ``bind`` (the function's first parameter
        is a :class:`TaskContext`).
        """
        from .task import AsyncTask, Task, make_options

        def decorate(function: Callable[..., Any]) -> Task[Any, Any]:
            task_options = make_options(function, options, self.conf.serializer)
            cls = AsyncTask if inspect.iscoroutinefunction(function) else Task
            task: Task[Any, Any] = cls(self, function, task_options)
            self._register(task)
            return task

        if args:
            if len(args) > 1 or options or not callable(args[0]):
                raise TypeError("use @app.task or @app.task(option=...), with keywords only")
            return decorate(args[0])
        return decorate

    def _register(self, task: Task[Any, Any]) -> None:
        with self._lock:
            existing = self.tasks.get(task.name)
            if existing is not None and existing.fn is not task.fn:
                same_origin = getattr(existing.fn, "__module__", None) == getattr(
                    task.fn, "__module__", None
                ) and getattr(existing.fn, "__qualname__", None) == getattr(
                    task.fn, "__qualname__", None
                )
                if not same_origin:
                    raise ArgumentError(
                        f"a different function is already registered as task {task.name!r}"
                    )
            self.tasks[task.name] = task

    # -- workers --------------------------------------------------------------------------

    def worker(self, **options: Any) -> TaskWorker:
        """A worker serving this app's tasks (see :class:`gearq.tasks.runner.TaskWorker`)."""
        from .runner import TaskWorker

        return TaskWorker(self, **options)

    # -- clients and homes ----------------------------------------------------------------

    def _make_client(self) -> AsyncClient:
        return AsyncClient(self.conf.servers, **self.conf.client_kwargs())

    def _thread(self) -> _ThreadHome:
        home = self._thread_home
        if home is not None and home.pid == current_pid() and not home.closed:
            return home
        with self._lock:
            home = self._thread_home
            if home is None or home.pid != os.getpid() or home.closed:
                # After fork the parent's loop thread does not exist here: start our own.
                home = _ThreadHome(self)
                self._thread_home = home
                _register_atexit(self)
            return home

    def _home(self) -> _LoopHome:
        """The home of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        last = self._last_home
        if last is not None and last.loop is loop:
            return last
        with self._lock:
            home = self._loop_homes.get(loop)
            if home is None:
                thread_home = self._thread_home
                if thread_home is not None and thread_home.loop is loop:
                    home = _LoopHome(loop, thread_home.client)  # shares the thread's client
                else:
                    home = _LoopHome(loop, self._make_client())
                # Forget homes of loops that are gone (asyncio.run ended).
                for old in [lp for lp in self._loop_homes if lp.is_closed()]:
                    del self._loop_homes[old]
                self._loop_homes[loop] = home
                _register_atexit(self)
            self._last_home = home
            return home

    @property
    def client(self) -> AsyncClient:
        """The client of the running event loop (inside a coroutine), else the one the
        app's loop thread uses for blocking calls."""
        try:
            return self._home().client
        except RuntimeError:
            return self._thread().client

    # -- submitting (used by Task) ----------------------------------------------------------

    def _call_blocking(
        self, make_result: Callable[[str, bool], AsyncResult[R]], task_id: str, request: _Submit
    ) -> AsyncResult[R]:
        """A blocking foreground call: sent at once if it is the only one in flight."""
        home = self._thread()
        result = home.call_lone(make_result, task_id, request)
        if result is None:
            result = make_result(task_id, True)
            self._submit_blocking(result, request)
        return result

    def _submit_blocking(
        self, result: AsyncResult[Any] | BackgroundResult, request: _Submit
    ) -> None:
        home = self._thread()
        result._home = home.bg_view if request[2] else home.fg_view
        home.submit(result, request)

    async def _submit_async(
        self, result: AsyncResult[Any] | BackgroundResult, request: _Submit
    ) -> None:
        home = self._home()
        fn, payload, bg, priority, unique, run_at, timeout = request
        if bg:
            home.bg += 1
            result._home = home.bg_view
        else:
            home.fg += 1
            result._home = home.fg_view
        try:
            job = await home.client.submit(
                fn,
                payload,
                background=bg,
                priority=priority,
                unique=unique,
                run_at=run_at,
                timeout=timeout,
            )
        except BaseException as exc:
            result._fail(exc)
            raise
        result._attach(job)

    # -- worker checks ----------------------------------------------------------------------

    def _worker_known(self, function: bytes) -> bool:
        seen = self._worker_seen.get(function)
        return seen is not None and time.monotonic() - seen < self.conf.worker_check_ttl

    async def _acheck_worker(self, task_name: str, function: bytes) -> None:
        if self._worker_known(function):
            return
        from ..client.admin import AsyncAdminClient

        admin = AsyncAdminClient(self.servers, connect_timeout=self.conf.connect_timeout)
        try:
            results = await admin.status()
        finally:
            await admin.close()
        name = function.decode()
        errors = []
        for server, outcome in results.items():
            if not outcome.ok:
                errors.append(f"{server}: {outcome.error}")
                continue
            for status in outcome.result():
                if status.function == name and status.workers > 0:
                    self._worker_seen[function] = time.monotonic()
                    return
        raise NoWorkerAvailable(task_name, function, "; ".join(errors))

    def _check_worker(self, task_name: str, function: bytes) -> None:
        if self._worker_known(function):
            return
        self._thread().run(self._acheck_worker(task_name, function))

    # -- background status ------------------------------------------------------------------

    def _status_unique(self, unique: bytes, server: ServerAddress | None) -> Any:
        home = self._thread()
        return home.run(home.client.get_status_unique(unique, server))

    async def _astatus_unique(self, unique: bytes, server: ServerAddress | None) -> Any:
        return await self._home().client.get_status_unique(unique, server)

    # -- closing --------------------------------------------------------------------------

    def pending(self) -> int:
        """Foreground tasks submitted by this process whose results have not arrived."""
        total = 0
        home = self._thread_home
        if home is not None and not home.closed:
            total += home.pending()[0]
        for loop_home in list(self._loop_homes.values()):
            if not loop_home.loop.is_closed():
                total += loop_home.fg
        return total

    def close(self, wait: float = 0.0) -> int:
        """Close the app's connections; returns how many foreground tasks were abandoned.

        ``wait``: first wait up to this many seconds for pending foreground tasks (and
        unacknowledged background submits) to finish. Tasks still pending then fail with
        ``ClientClosed``, and gearmand drops those of them that are still queued.
        Clients of event loops in other threads are closed there; for the running loop's
        own client use ``await app.aclose()``. The app can be used again afterwards.
        """
        if wait < 0:
            raise ArgumentError("wait must be >= 0")
        with self._lock:
            home, self._thread_home = self._thread_home, None
            loop_homes = list(self._loop_homes.values())
            self._loop_homes.clear()
            self._last_home = None
        abandoned = 0
        deadline = time.monotonic() + wait
        if home is not None and home.pid == os.getpid():
            home.wait_idle(wait, background=True)
            abandoned += home.pending()[0]
            home.stop(0)
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop_home in loop_homes:
            loop = loop_home.loop
            if loop.is_closed():
                continue
            if loop is current:
                # Cannot block here: close it in the background.
                abandoned += loop_home.fg
                loop.create_task(loop_home.client.close())
                continue
            if home is not None and loop_home.client is home.client:
                continue
            left = max(0.0, deadline - time.monotonic())
            with contextlib.suppress(Exception):
                if not loop.is_running():  # a loop that was run and left open: run it here
                    abandoned += loop.run_until_complete(self._close_home(loop_home, 0))
                    continue
                fut = asyncio.run_coroutine_threadsafe(self._close_home(loop_home, left), loop)
                abandoned += fut.result(left + 10)
        return abandoned

    async def _close_home(self, home: _LoopHome, wait: float) -> int:
        deadline = home.loop.time() + wait
        # Polls counters that the results' callbacks change: no event to wait on.
        while (home.fg > 0 or home.bg > 0) and home.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        abandoned = home.fg
        await home.client.close()
        return abandoned

    async def aclose(self, wait: float = 0.0) -> int:
        """:meth:`close` for asyncio: waits (up to ``wait`` s) for the running loop's
        pending foreground tasks, closes its client, and closes the rest as ``close``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            home = self._loop_homes.pop(loop, None)
            if self._last_home is home:
                self._last_home = None
        abandoned = 0
        thread_home = self._thread_home
        if home is not None and (thread_home is None or home.client is not thread_home.client):
            abandoned += await self._close_home(home, wait)
        abandoned += await asyncio.to_thread(self.close, wait)
        return abandoned

    def _at_exit(self) -> None:
        home = self._thread_home
        if home is not None and home.pid == os.getpid() and not home.closed:
            if home.pending()[1]:
                home.wait_idle(self.conf.exit_wait_background, background=True)
            if self.conf.exit_wait > 0:
                home.wait_idle(self.conf.exit_wait)
        pending = self.pending()
        if pending:
            message = (
                f"gearq app {self.main!r}: {pending} foreground task(s) still pending at exit;"
                " gearmand drops a queued foreground job when its caller disconnects, so they"
                " will not run (or their results are lost). Wait for them with result.get()"
                " or app.close(wait=...), or use .send() for durable background tasks."
            )
            warnings.warn(message, PendingTasksWarning, stacklevel=1)
            log.warning("%s", message)
        if home is not None and home.pid == os.getpid():
            home.stop(0)

    def __enter__(self) -> App:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(wait=self.conf.exit_wait)

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(wait=self.conf.exit_wait)

    def __repr__(self) -> str:
        servers = ",".join(str(s) for s in self.servers)
        return f"<App {self.main} {servers} tasks={len(self.tasks)}>"
