"""The job model of the embedded server: jobs, and the per-function queues that hold them.

Plain data with no I/O. Queues use lazy deletion: a job dropped while queued (cancelled, or
its only client went away) is marked done and skipped when it reaches the head, because
removing it from the middle of a deque would cost O(n) on every drop.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["Function", "Job", "JobState", "Priority", "TimerHandle"]


class TimerHandle(Protocol):
    """What a scheduler returns for a callback: something that can be cancelled."""

    def cancel(self) -> None: ...


class Priority(enum.IntEnum):
    """Queue order within a function; the values index ``Function.queues``."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


class JobState(enum.IntEnum):
    QUEUED = 0
    DELAYED = 1  # an epoch job that is not due yet
    RUNNING = 2
    DONE = 3


class Job:
    """One job, from submit until its result (or failure) has been forwarded."""

    __slots__ = (
        "background",
        "clients",
        "data",
        "denominator",
        "function",
        "handle",
        "key",
        "numerator",
        "priority",
        "reducer",
        "retries",
        "state",
        "timer",
        "unique",
        "when",
        "worker",
    )

    def __init__(
        self,
        handle: bytes,
        function: Function,
        unique: bytes,
        key: bytes | None,
        data: bytes,
        priority: Priority,
        background: bool,
        reducer: bytes,
        when: float,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        # The coalescing key in ``function.uniques`` (None: this job never coalesces).
        self.key = key
        self.data = data
        self.priority = priority
        # True once any background submit owns the job: then it runs even with no client.
        self.background = background
        self.reducer = reducer
        self.when = when
        # Foreground clients waiting for the result; a connection that submitted the same
        # unique twice is listed twice and gets every packet twice, as with gearmand.
        self.clients: list[Peer] = []
        self.worker: Peer | None = None
        self.numerator = 0
        self.denominator = 0
        self.retries = 0
        self.state = JobState.QUEUED
        self.timer: TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Job {self.handle!r} {self.function.name!r} {self.state.name}>"


class Function:
    """A function name with its queues, workers and coalescing map."""

    __slots__ = (
        "dead",
        "max_queue",
        "name",
        "queued",
        "queues",
        "running",
        "sleepers",
        "uniques",
        "waiting",
        "workers",
    )

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.queues: tuple[deque[Job], deque[Job], deque[Job]] = (deque(), deque(), deque())
        # Live queued jobs per priority, counting epoch jobs that are not due yet (as the
        # admin ``status`` of gearmand does).
        self.queued = [0, 0, 0]
        # Jobs a worker could take right now (queued minus not-yet-due).
        self.waiting = 0
        self.running = 0
        # Done jobs still sitting in ``queues`` (lazy deletion).
        self.dead = 0
        self.workers: dict[Peer, None] = {}
        # Workers that sent PRE_SLEEP and were not woken since; a subset of ``workers``.
        self.sleepers: dict[Peer, None] = {}
        self.uniques: dict[bytes, Job] = {}
        # Per priority; 0 means unlimited. Compared with the function's total job count.
        self.max_queue = [0, 0, 0]

    @property
    def total(self) -> int:
        """Queued (including not yet due) plus running jobs."""
        q = self.queued
        return q[0] + q[1] + q[2] + self.running

    def push(self, job: Job) -> None:
        """Make ``job`` runnable at the tail of its priority queue."""
        job.state = JobState.QUEUED
        self.queues[job.priority].append(job)
        self.waiting += 1

    def pop(self) -> Job | None:
        """Take the first runnable job: highest priority first, FIFO within a priority."""
        if not self.waiting:
            return None
        for queue in self.queues:
            while queue:
                job = queue.popleft()
                if job.state is JobState.QUEUED:
                    self.waiting -= 1
                    self.queued[job.priority] -= 1
                    return job
                self.dead -= 1
        return None  # unreachable while the counters are right

    def forget_queued(self, job: Job) -> None:
        """Account for a queued or delayed job that was dropped where it stands."""
        if job.state is JobState.QUEUED:
            self.waiting -= 1
            self.dead += 1
        self.queued[job.priority] -= 1
        job.state = JobState.DONE
        # Compact once dead entries dominate, so that queues abandoned by their clients
        # (submit, disconnect, repeat, with no worker) cannot grow without bound.
        if self.dead > 64 and self.dead > self.waiting:
            for i, queue in enumerate(self.queues):
                live = [j for j in queue if j.state is JobState.QUEUED]
                if len(live) != len(queue):
                    self.queues[i].clear()
                    self.queues[i].extend(live)
            self.dead = 0

    def __repr__(self) -> str:
        return f"<Function {self.name!r} queued={self.queued} running={self.running}>"
