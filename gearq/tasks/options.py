"""A task's options (what ``@app.task(...)`` was given) and its retry backoff.

Shared by the caller side (``Task``, ``App``) and the worker side (``TaskWorker``): both read
the same frozen :class:`TaskOptions`. Pure: no I/O.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Final

from ..client.job import Priority
from ..protocol.errors import ArgumentError
from .naming import UniqueSpec
from .serializers import DEFAULT_SERIALIZER

__all__ = ["DEFAULT_RETRY_BACKOFF", "DEFAULT_RETRY_BACKOFF_MAX", "TaskOptions", "retry_delay"]

DEFAULT_RETRY_BACKOFF: Final = 1.0
DEFAULT_RETRY_BACKOFF_MAX: Final = 60.0


@dataclass(frozen=True)
class TaskOptions:
    """Everything a task was declared with.

    ``name``
        The task name (defaults to ``module.qualname`` of the function).
    ``queue``
        A function-name prefix for routing: the job goes to ``queue:name``; only workers
        that serve that queue take it. None: no prefix.
    ``priority``
        The Gearman queue priority of the task's jobs (HIGH, NORMAL, LOW).
    ``background``
        Whether ``apply_async()`` submits a background (durable, fire-and-forget) job by
        default. ``.delay()`` is always foreground; ``.send()`` always background.
    ``unique``
        None (every call is its own job), a fixed key, :data:`~gearq.tasks.SAME_ARGS`
        (``"-"``: calls with the same arguments coalesce) or a callable over the call's
        arguments returning a key.
    ``max_retries``
        How many times the worker reruns the task after it raised one of ``retry_on``
        (0: never). The first run is attempt 1; the last possible is ``max_retries + 1``.
    ``retry_on``
        Exception types that trigger a retry (subclasses included).
    ``retry_backoff`` / ``retry_backoff_max`` / ``retry_jitter``
        Exponential backoff: before attempt ``n + 1`` the worker waits
        ``min(retry_backoff * 2 ** (n - 1), retry_backoff_max)`` seconds, and with jitter a
        uniformly random part of it (:func:`retry_delay`).
    ``time_limit``
        Seconds one attempt may run before the worker gives up on it (None: no limit).
    ``serializer``
        ``"msgpack"`` (default), ``"json"`` or ``"raw"``: how arguments and results travel.
    ``bind``
        The function's first parameter is a task context (id, attempt, progress, chunks).
    """

    name: str
    queue: str | None = None
    priority: Priority = Priority.NORMAL
    background: bool = False
    unique: UniqueSpec | None = None
    max_retries: int = 0
    retry_on: tuple[type[BaseException], ...] = ()
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    retry_backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX
    retry_jitter: bool = True
    time_limit: float | None = None
    serializer: str = DEFAULT_SERIALIZER
    bind: bool = False
    #: Free-form extras (kept out of equality so options stay hashable and comparable).
    extra: tuple[tuple[str, object], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ArgumentError(f"a task name must be a non-empty str, got {self.name!r}")
        if self.queue is not None and (not self.queue or ":" in self.queue):
            raise ArgumentError(f"queue name {self.queue!r} is empty or contains ':'")
        if not isinstance(self.priority, Priority):
            raise ArgumentError(f"priority must be a gearq.Priority, got {self.priority!r}")
        if type(self.max_retries) is not int or self.max_retries < 0:
            raise ArgumentError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        if isinstance(self.retry_on, type):
            object.__setattr__(self, "retry_on", (self.retry_on,))
        retry_on = tuple(self.retry_on)
        for exc_type in retry_on:
            if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                raise ArgumentError(f"retry_on must hold exception types, got {exc_type!r}")
        object.__setattr__(self, "retry_on", retry_on)
        for attr in ("retry_backoff", "retry_backoff_max"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ArgumentError(f"{attr} must be a finite number >= 0, got {value!r}")
        if self.time_limit is not None and (
            not isinstance(self.time_limit, (int, float))
            or not math.isfinite(self.time_limit)
            or self.time_limit <= 0
        ):
            raise ArgumentError(f"time_limit must be a number > 0, got {self.time_limit!r}")
        if not isinstance(self.serializer, str) or not self.serializer:
            raise ArgumentError(f"serializer must be a name, got {self.serializer!r}")

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether an attempt (1-based) that raised ``exc`` is run again."""
        return attempt <= self.max_retries and isinstance(exc, self.retry_on)


def retry_delay(options: TaskOptions, attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after attempt ``attempt`` (1-based) failed, before the next one.

    ``base * 2 ** (attempt - 1)`` capped at ``retry_backoff_max``; with ``retry_jitter`` a
    uniformly random value in ``[delay / 2, delay]`` ("equal jitter": spreads retries of
    many failed tasks while keeping the backoff growing).
    """
    if type(attempt) is not int or attempt < 1:
        raise ArgumentError(f"attempt must be an int >= 1, got {attempt!r}")
    cap = float(options.retry_backoff_max)
    base = float(options.retry_backoff)
    # Avoid float overflow for large attempts: 2**1024 overflows.
    exponent = min(attempt - 1, 1023)
    delay = min(base * math.ldexp(1.0, exponent), cap) if base > 0 else 0.0
    if options.retry_jitter and delay > 0:
        half = delay / 2
        delay = half + (rng or random).random() * half
    return delay
