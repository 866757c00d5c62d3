"""A real worker on a real server for a user's tests, without pytest (see also
:mod:`gearq.testing.pytest_plugin`, which wraps these as fixtures).

::

    from gearq.testing import running_server, running_worker

    def test_add():
        with running_server() as address, running_worker(app, servers=address):
            assert add.delay(2, 3).get(timeout=10) == 5

``running_server()`` starts a private gearmand on a free port where gearmand is installed,
else gearq's embedded pure-Python server (``kind="gearmand"`` / ``"embedded"`` forces one;
``GEARQ_TEST_SERVER`` sets the default). ``running_worker(app)`` points the app at the
server, runs a :class:`TaskWorker` for its tasks in a thread, waits until it is registered,
and at the end stops it and closes the app's connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal

from .gearmand import GearmandProcess, find_gearmand, in_ci

if TYPE_CHECKING:
    from ..tasks.app import App
    from ..tasks.runner import TaskWorker

__all__ = [
    "ServerFactory",
    "ServerKind",
    "WorkerThread",
    "default_server_kind",
    "running_server",
    "running_worker",
    "server_factory",
]

ServerKind = Literal["auto", "gearmand", "embedded"]
#: Starts a server and yields its ``"host:port"``; stops it at the end.
ServerFactory = Callable[..., AbstractContextManager[str]]

ENV_SERVER = "GEARQ_TEST_SERVER"


def default_server_kind() -> Literal["gearmand", "embedded"]:
    """``$GEARQ_TEST_SERVER`` if set, else gearmand when installed, else embedded.

    Under ``CI=true`` a missing gearmand is an error rather than a quiet fallback, unless
    ``GEARQ_TEST_SERVER=embedded`` asks for the embedded server.
    """
    wanted = os.environ.get(ENV_SERVER, "").strip().lower()
    if wanted in ("gearmand", "embedded"):
        return wanted  # type: ignore[return-value]
    if wanted not in ("", "auto"):
        raise ValueError(f"{ENV_SERVER} must be gearmand, embedded or auto, not {wanted!r}")
    if find_gearmand() is not None:
        return "gearmand"
    if in_ci():
        raise RuntimeError(
            "CI=true and gearmand is not installed; install gearman-job-server or set"
            f" {ENV_SERVER}=embedded"
        )
    return "embedded"


@contextlib.contextmanager
def running_server(kind: ServerKind = "auto", *args: str) -> Iterator[str]:
    """A job server on a free loopback port for the ``with`` block; yields ``host:port``.

    ``args``: extra gearmand command-line arguments (gearmand only), e.g. ``"-j", "3"``.
    """
    chosen = default_server_kind() if kind == "auto" else kind
    if chosen == "gearmand":
        with GearmandProcess(list(args)) as server:
            yield server.address
        return
    if chosen != "embedded":
        raise ValueError(f"unknown server kind {kind!r}")
    if args:
        raise ValueError("gearmand arguments given for the embedded server")
    from ..server.embedded import EmbeddedServer

    with EmbeddedServer() as embedded:
        yield embedded.address


def server_factory(kind: ServerKind = "auto") -> ServerFactory:
    """A :data:`ServerFactory` of the given kind (for the pytest plugin's fixture)."""

    def factory(*args: str) -> AbstractContextManager[str]:
        return running_server(kind, *args)

    return factory


class WorkerThread:
    """A :class:`TaskWorker` for an app, serving in a daemon thread on its own loop."""

    def __init__(self, app: App, **options: Any) -> None:
        from ..tasks.runner import TaskWorker

        options.setdefault("poll_interval", 0.25)
        self.worker: TaskWorker = TaskWorker(app, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 10.0) -> WorkerThread:
        """Start serving; return once every connection is registered (or raise)."""
        if self._thread is not None:
            raise RuntimeError("this worker thread was started already")
        self._thread = threading.Thread(target=self._run, name="gearq-test-worker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"the test worker was not ready within {timeout:g} s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            serve = asyncio.ensure_future(self.worker.run())
            try:
                await self.worker.wait_ready()
            except BaseException as exc:
                self._error = exc
                serve.cancel()
            finally:
                self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await serve

        try:
            asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - reported by start()
            self._error = exc
            self._ready.set()

    def stop(self, timeout: float = 10.0, *, graceful: bool = True) -> None:
        """Stop serving (gracefully: jobs in hand may finish within ``timeout`` s)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                fut = asyncio.run_coroutine_threadsafe(self.worker.stop(graceful, timeout), loop)
                with contextlib.suppress(Exception):
                    fut.result(timeout + 5)
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> WorkerThread:
        # ``with WorkerThread(app).start(timeout=...)`` is fine too: already started.
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_worker(app: App, *, servers: str | None = None, **options: Any) -> Iterator[TaskWorker]:
    """Serve ``app``'s tasks in a thread for the ``with`` block.

    ``servers``: point the app (and the worker) at these servers first. At the end the
    worker stops, the app's client connections are closed, and the app's servers are
    restored.
    """
    previous = app.conf.servers
    if servers is not None:
        app.configure(servers=servers)
    thread = WorkerThread(app, **options).start()
    try:
        yield thread.worker
    finally:
        app.close(wait=0)
        thread.stop()
        app.configure(servers=previous)
