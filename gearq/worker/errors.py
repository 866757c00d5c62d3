"""Errors of the worker, and how a handler's exception is written into a WORK_EXCEPTION."""

from __future__ import annotations

import traceback

from ..protocol.errors import GearqError

__all__ = ["TIME_LIMIT_EXCEEDED", "TimeLimitExceeded", "WorkerError", "format_exception"]

# The wire name clients match on, kept short and stable whatever module the class lives in.
TIME_LIMIT_EXCEEDED = "gearq.TimeLimitExceeded"


class WorkerError(GearqError):
    """The worker was misused (e.g. a function registered twice, or an AsyncWorker run twice)."""


class TimeLimitExceeded(GearqError):
    """A job ran past its time limit; the worker answered it with a WORK_EXCEPTION."""


def _type_name(exc: BaseException) -> str:
    if isinstance(exc, TimeLimitExceeded):
        return TIME_LIMIT_EXCEEDED
    cls = type(exc)
    module = cls.__module__
    # "ValueError" reads better than "builtins.ValueError"; anything else keeps its module
    # so that the first line names exactly one class.
    if module in ("builtins", "__main__", None):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def format_exception(exc: BaseException, *, with_traceback: bool = True) -> bytes:
    """The bytes of a WORK_EXCEPTION for ``exc``.

    The first line is ``<qualified type>: <message>`` (``ValueError: bad input``,
    ``gearq.TimeLimitExceeded: ...``), so a client can parse it with one ``partition``;
    the traceback, when there is one, follows after a blank line.
    """
    message = str(exc).replace("\r", " ").replace("\n", " ").strip()
    head = f"{_type_name(exc)}: {message}" if message else _type_name(exc)
    if with_traceback and exc.__traceback__ is not None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        head = f"{head}\n\n{tb.rstrip()}"
    return head.encode("utf-8", "backslashreplace")
