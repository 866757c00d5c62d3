"""What a running task knows about itself, and how it talks to its caller while it runs.

A task declared with ``bind=True`` gets a :class:`TaskContext` as its first argument::

    @app.task(bind=True, max_retries=3)
    def build(ctx: TaskContext, day: str) -> int:
        ctx.progress(0, 3)               # WORK_STATUS 0/3
        ctx.warn("cache cold")           # WORK_WARNING
        ctx.send_chunk({"part": 1})      # WORK_DATA chunk envelope
        if not ready(day):
            ctx.retry(countdown=10)      # raises Retry: attempt 2 runs in 10 s, same job
        return 42

Every method works from an ``async def`` task (on the event loop) and from a plain one (in a
worker thread); the packets are written in the order they were asked for, and always before
the task's final answer. Once the job has been answered (its time limit struck, say) the
senders return False and send nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn

from ..protocol.errors import GearqError
from .envelope import encode_chunk, encode_state
from .remote_errors import RetryScheduled
from .serializers import MSGPACK, Serializer

if TYPE_CHECKING:
    from ..worker.job import Job
    from .envelope import Call

__all__ = ["MaxRetriesExceeded", "Retry", "TaskContext", "UnknownTask"]


class Retry(RetryScheduled):
    """Raised by :meth:`TaskContext.retry`: run this task again, in the same job.

    ``exc`` is the error that caused the retry (reported if no attempt is left),
    ``countdown`` the seconds to wait (None: the task's backoff), ``max_retries`` an
    override of the task's limit for this decision.
    """

    def __init__(
        self,
        message: str = "",
        *,
        exc: BaseException | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(message)
        self.exc = exc
        self.countdown = countdown
        self.max_retries = max_retries


class MaxRetriesExceeded(GearqError):
    """A task asked for a retry (``ctx.retry()``) with no attempt left and no error to report."""


class UnknownTask(GearqError):
    """The call envelope names a task that the function it arrived on does not serve."""


class TaskContext:
    """The running attempt of a task: ids, attempt numbers, and the senders.

    ``id`` is the task id from the call envelope (for ``raw`` tasks, and calls without an
    id, the key of the Gearman unique, or None). ``attempt`` counts from 1 and grows with
    each retry of the same job; ``max_retries`` is the limit for this call. ``headers`` are
    the call's headers. ``job`` is the low-level :class:`gearq.worker.Job`.

    ``cancelled`` turns True when the worker gave up on the attempt (its time limit
    struck): a plain task in a thread cannot be interrupted, so a long loop should check it
    and return. ``time_left()`` is the seconds left before the time limit (None: no limit).
    """

    __slots__ = (
        "attempt",
        "cancelled",
        "deadline",
        "eta",
        "expires",
        "group_id",
        "headers",
        "id",
        "job",
        "max_retries",
        "name",
        "parent_id",
        "root_id",
        "serializer",
    )

    def __init__(
        self,
        job: Job,
        name: str,
        *,
        id: str | None = None,
        attempt: int = 1,
        max_retries: int = 0,
        headers: dict[str, Any] | None = None,
        serializer: Serializer = MSGPACK,
        eta: float | None = None,
        expires: float | None = None,
        parent_id: str | None = None,
        root_id: str | None = None,
        group_id: str | None = None,
    ) -> None:
        self.job = job
        self.name = name
        self.id = id
        self.attempt = attempt
        self.max_retries = max_retries
        self.headers: dict[str, Any] = headers if headers is not None else {}
        self.serializer = serializer
        self.eta = eta
        self.expires = expires
        self.parent_id = parent_id
        self.root_id = root_id
        self.group_id = group_id
        self.cancelled = False
        self.deadline: float | None = None  # time.monotonic() at the time limit

    @classmethod
    def for_call(
        cls,
        job: Job,
        name: str,
        call: Call,
        task_id: str | None,
        attempt: int,
        max_retries: int,
    ) -> TaskContext:
        """The context of an attempt of ``call`` (the worker's hot path: no keyword parsing)."""
        ctx = object.__new__(cls)
        ctx.job = job
        ctx.name = name
        ctx.id = task_id
        ctx.attempt = attempt
        ctx.max_retries = max_retries
        ctx.headers = call.headers
        ctx.serializer = call.serializer
        ctx.eta = call.eta
        ctx.expires = call.expires
        ctx.parent_id = call.parent_id
        ctx.root_id = call.root_id
        ctx.group_id = call.group_id
        ctx.cancelled = False
        ctx.deadline = None
        return ctx

    # -- facts ---------------------------------------------------------------------------------

    @property
    def retries_left(self) -> int:
        """How many more attempts a retry could still get."""
        return max(0, self.max_retries + 1 - self.attempt)

    def time_left(self) -> float | None:
        """Seconds until this attempt's time limit (negative once past), or None."""
        deadline = self.deadline
        return None if deadline is None else deadline - time.monotonic()

    # -- talking to the caller -----------------------------------------------------------------

    def progress(self, numerator: int, denominator: int) -> bool:
        """Report progress (WORK_STATUS ``numerator``/``denominator``, whole numbers)."""
        return self.job.send_status(numerator, denominator)

    def send_chunk(self, value: Any) -> bool:
        """Stream one partial result to the caller (a WORK_DATA chunk envelope).

        The value must suit the call's serializer (``SerializationError`` otherwise); for a
        ``raw`` task it must be bytes and is sent as it is.
        """
        return self.job.send_data(
            encode_chunk(value, serializer=self.serializer, task_name=self.name)
        )

    def warn(self, text: str | bytes) -> bool:
        """Send a warning to the caller (WORK_WARNING, UTF-8 text)."""
        data = text if isinstance(text, bytes) else str(text).encode("utf-8", "replace")
        return self.job.send_warning(data)

    def update_state(self, state: str, meta: Any = None) -> bool:
        """Report a custom state with metadata (a WORK_DATA state envelope; not for ``raw``)."""
        return self.job.send_data(
            encode_state(state, meta, serializer=self.serializer, task_name=self.name)
        )

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        *,
        max_retries: int | None = None,
    ) -> NoReturn:
        """Run the task again, in the same job: raises :class:`Retry` (``raise ctx.retry()``
        reads well too).

        ``exc``: the error behind the retry, reported as the failure when no attempt is
        left (default: the exception being handled, if any). ``countdown``: seconds to wait
        (default: the task's backoff). ``max_retries``: override the limit for this call.
        """
        if exc is None:
            exc = sys.exc_info()[1]
        if countdown is not None and not countdown >= 0:
            raise ValueError(f"countdown must be >= 0 seconds, got {countdown!r}")
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "retry requested"
        raise Retry(reason, exc=exc, countdown=countdown, max_retries=max_retries)

    def __repr__(self) -> str:
        return f"<TaskContext {self.name}[{self.id}] attempt {self.attempt}/{self.max_retries + 1}>"
