"""Task failures: what a worker reports, and the exception the caller gets back.

A worker turns an exception into a :class:`Failure` (type name, message, args, traceback
text) and sends it as a failure envelope. The caller rebuilds an exception from it with
:func:`rebuild_exception`:

* kind ``"error"``: the original class if it is a builtin ``Exception`` subclass, a class
  registered with :meth:`ExceptionRegistry.register`, a class of a module allowed with
  :meth:`ExceptionRegistry.allow_module`, or one of gearq's own errors that is already
  imported. Anything else becomes a dynamically made :class:`RemoteError` subclass named
  after the remote class (``myapp.Boom`` -> a class ``Boom(RemoteError)``). No module is
  ever imported because remote data named it, unless it was allowed.
* the other kinds give gearq's own types: :class:`TimeLimitExceeded`,
  :class:`RetryScheduled`, :class:`TaskExpired`, :class:`TaskRevoked`.

Every rebuilt exception carries ``remote_type``, ``remote_message``, ``remote_traceback``,
``task_id`` and ``attempt`` attributes, and on Python 3.11+ a note with the remote
traceback, so it shows up when the exception is printed.
"""

from __future__ import annotations

import builtins
import enum
import functools
import importlib
import sys
import traceback as traceback_module
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ..protocol.errors import GearqError

__all__ = [
    "ExceptionRegistry",
    "Failure",
    "FailureKind",
    "RemoteError",
    "RetryScheduled",
    "TaskExpired",
    "TaskRevoked",
    "TimeLimitExceeded",
    "default_registry",
    "is_remote",
    "qualified_name",
    "rebuild_exception",
    "register_exception",
]

E = TypeVar("E", bound=type[Exception])


class FailureKind(str, enum.Enum):
    """Why a job ended without a value (the ``kind`` of a failure envelope)."""

    ERROR = "error"
    """The task raised an exception."""
    TIME_LIMIT = "time_limit"
    """The worker stopped the task at its time limit."""
    RETRY = "retry"
    """This attempt failed and the worker scheduled another one (see ``eta``/``att``)."""
    EXPIRED = "expired"
    """The job's ``expires`` time had passed when a worker got it; it did not run."""
    REVOKED = "revoked"
    """The task was revoked; it did not run, or was stopped."""

    @classmethod
    def parse(cls, value: object) -> FailureKind:
        """The kind named ``value``; unknown kinds (from newer workers) read as ERROR."""
        try:
            return cls(value)
        except ValueError:
            return cls.ERROR


@dataclass(frozen=True)
class Failure:
    """A task failure as data: what the failure envelope carries.

    ``exc_type`` is the qualified name of the remote class (``"builtins.ValueError"``,
    ``"myapp.errors.Boom"``), or ``""`` when the worker did not say (a non-gearq worker
    sent plain text). ``args`` are the exception's args when they could be serialized.
    ``attempt`` is the attempt that failed; ``eta`` (unix seconds) is when the next attempt
    may run, for kind RETRY.
    """

    kind: FailureKind
    exc_type: str
    message: str
    traceback: str = ""
    args: tuple[Any, ...] | None = None
    attempt: int | None = None
    eta: float | None = None

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        kind: FailureKind = FailureKind.ERROR,
        attempt: int | None = None,
        eta: float | None = None,
    ) -> Failure:
        """Describe ``exc`` (with its traceback, if it was raised).

        A :class:`RemoteError` from a sub-task keeps its remote identity: its ``exc_type``
        and message are the remote ones and the remote traceback is appended.
        """
        text = "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, RemoteError):
            if exc.remote_traceback:
                text += f"\nRemote traceback ({exc.remote_type}):\n{exc.remote_traceback}"
            return cls(
                kind=kind,
                exc_type=exc.remote_type,
                message=exc.remote_message,
                traceback=text,
                args=(exc.remote_message,),
                attempt=attempt,
                eta=eta,
            )
        return cls(
            kind=kind,
            exc_type=qualified_name(type(exc)),
            message=str(exc),
            traceback=text,
            args=tuple(exc.args),
            attempt=attempt,
            eta=eta,
        )


def qualified_name(kind: type) -> str:
    """``module.QualName`` of a class, as the failure envelope names it."""
    return f"{kind.__module__}.{kind.__qualname__}"


# --- exception types ----------------------------------------------------------------------


class RemoteError(GearqError):
    """A task failed in a worker, and its exception could not (or should not) be rebuilt.

    ``str(exc)`` is the remote message. Unknown remote classes get a subclass of this one
    named after them, so ``type(exc).__name__`` is the remote class name.
    """

    remote_type: str
    remote_message: str
    remote_traceback: str
    task_id: str | None
    attempt: int | None
    kind: FailureKind

    def __init__(
        self,
        message: str = "",
        *,
        remote_type: str = "",
        remote_traceback: str = "",
        task_id: str | None = None,
        attempt: int | None = None,
        kind: FailureKind = FailureKind.ERROR,
    ) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_message = message
        self.remote_traceback = remote_traceback
        self.task_id = task_id
        self.attempt = attempt
        self.kind = kind

    def __repr__(self) -> str:
        shown = self.remote_type or "unknown remote error"
        return f"{type(self).__name__}({self.remote_message!r}, remote_type={shown!r})"


class TimeLimitExceeded(RemoteError):
    """The worker stopped the task because it ran past its time limit."""


class RetryScheduled(RemoteError):
    """The attempt failed and the worker scheduled attempt ``next_attempt`` at ``eta``."""

    eta: float | None = None
    next_attempt: int | None = None


class TaskExpired(RemoteError):
    """The task had expired before a worker started it; it did not run."""


class TaskRevoked(RemoteError):
    """The task was revoked."""


_KIND_TYPES: Final[dict[FailureKind, type[RemoteError]]] = {
    FailureKind.TIME_LIMIT: TimeLimitExceeded,
    FailureKind.RETRY: RetryScheduled,
    FailureKind.EXPIRED: TaskExpired,
    FailureKind.REVOKED: TaskRevoked,
}


def is_remote(exc: BaseException) -> bool:
    """Whether ``exc`` was rebuilt from a remote failure (by :func:`rebuild_exception`)."""
    return "remote_traceback" in getattr(exc, "__dict__", {}) or isinstance(exc, RemoteError)


# --- the allow-list -----------------------------------------------------------------------


def _find_in_module(module: Any, module_name: str, qualname: str) -> type[Exception] | None:
    """The class ``qualname`` of ``module`` if it really is an Exception class defined there."""
    obj: Any = module
    for part in qualname.split("."):
        if not part.isidentifier():
            return None
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if (
        isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == module_name
        and obj.__qualname__ == qualname
    ):
        return obj
    return None


class ExceptionRegistry:
    """Which remote exception classes may be rebuilt as themselves.

    By default only builtin ``Exception`` subclasses (``ValueError``, ``KeyError``...) and
    gearq's own errors (when their module is already imported). ``BaseException``-only
    classes such as ``KeyboardInterrupt`` or ``SystemExit`` are never rebuilt as themselves.
    """

    def __init__(self, *, allow_builtins: bool = True) -> None:
        self.allow_builtins = allow_builtins
        self._classes: dict[str, type[Exception]] = {}
        self._modules: set[str] = set()

    def register(self, cls: E) -> E:
        """Allow ``cls`` (usable as a class decorator). Its name is ``module.QualName``."""
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"{cls!r} is not an Exception subclass")
        self._classes[qualified_name(cls)] = cls
        return cls

    def allow_module(self, module: str) -> None:
        """Allow every Exception class defined in ``module``; it is imported on first use."""
        self._modules.add(module)

    def resolve(self, name: str) -> type[Exception] | None:
        """The class a failure envelope's type name stands for, or None if not allowed."""
        found = self._classes.get(name)
        if found is not None:
            return found
        module_name, _, qualname = name.rpartition(".")
        if self.allow_builtins and module_name == "builtins" and qualname.isidentifier():
            obj = getattr(builtins, qualname, None)
            if isinstance(obj, type) and issubclass(obj, Exception):
                return obj
            return None
        for allowed in self._modules:
            if name.startswith(allowed + ".") and len(name) > len(allowed) + 1:
                try:
                    module = importlib.import_module(allowed)
                except Exception:  # an allowed module that fails to import allows nothing
                    return None
                return _find_in_module(module, allowed, name[len(allowed) + 1 :])
        if name.startswith("gearq."):
            # gearq's own errors, but only from modules that are already loaded.
            parts = name.split(".")
            for cut in range(len(parts) - 1, 1, -1):
                candidate = ".".join(parts[:cut])
                loaded = sys.modules.get(candidate)
                if loaded is not None:
                    found = _find_in_module(loaded, candidate, ".".join(parts[cut:]))
                    if found is not None and issubclass(found, GearqError):
                        return found
        return None


default_registry: Final = ExceptionRegistry()


def register_exception(cls: E) -> E:
    """Allow ``cls`` in the default registry (usable as a class decorator)."""
    return default_registry.register(cls)


# --- rebuilding ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _synthetic_class(remote_type: str) -> type[RemoteError]:
    name = remote_type.rpartition(".")[2]
    if not name.isidentifier():
        return RemoteError
    return type(
        name,
        (RemoteError,),
        {
            "__module__": "gearq.remote",
            "__qualname__": name,
            "__doc__": f"Stands for the remote exception class {remote_type}.",
        },
    )


def _construct(cls: type[Exception], failure: Failure) -> Exception | None:
    args = failure.args if failure.args is not None else (failure.message,)
    try:
        return cls(*args)
    except Exception:
        pass
    try:
        return cls(failure.message)
    except Exception:
        return None


def rebuild_exception(
    failure: Failure,
    *,
    registry: ExceptionRegistry | None = None,
    task_id: str | None = None,
) -> Exception:
    """The exception to raise for ``failure`` on the caller's side (it is not raised here)."""
    exc: Exception
    remote_class = _KIND_TYPES.get(failure.kind)
    if remote_class is not None:
        exc = remote_class(
            failure.message,
            remote_type=failure.exc_type,
            remote_traceback=failure.traceback,
            task_id=task_id,
            attempt=failure.attempt,
            kind=failure.kind,
        )
        if isinstance(exc, RetryScheduled):
            exc.eta = failure.eta
            exc.next_attempt = None if failure.attempt is None else failure.attempt + 1
    else:
        cls = (registry or default_registry).resolve(failure.exc_type)
        rebuilt = None if cls is None else _construct(cls, failure)
        if rebuilt is None:
            rebuilt = _synthetic_class(failure.exc_type)(
                failure.message,
                remote_type=failure.exc_type,
                remote_traceback=failure.traceback,
                task_id=task_id,
                attempt=failure.attempt,
                kind=failure.kind,
            )
        exc = rebuilt
        if not isinstance(exc, RemoteError):
            exc.remote_type = failure.exc_type  # type: ignore[attr-defined]
            exc.remote_message = failure.message  # type: ignore[attr-defined]
            exc.remote_traceback = failure.traceback  # type: ignore[attr-defined]
            exc.task_id = task_id  # type: ignore[attr-defined]
            exc.attempt = failure.attempt  # type: ignore[attr-defined]
    if failure.traceback and sys.version_info >= (3, 11):
        where = f"task {task_id}" if task_id else "the task"
        exc.add_note(f"Remote traceback of {where}:\n{failure.traceback.rstrip()}")
    return exc
