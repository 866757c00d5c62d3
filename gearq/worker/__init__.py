"""The Gearman worker: serve functions from every job server, N jobs at once.

    worker = AsyncWorker(["127.0.0.1:4730"], concurrency=16)
    worker.register("resize", resize_image, time_limit=30)
    await worker.run()          # until ``await worker.stop()``

:class:`Worker` is the blocking twin (``work()``, and ``stop()`` from any thread or a
signal handler).
"""

from .errors import TIME_LIMIT_EXCEEDED, TimeLimitExceeded, WorkerError, format_exception
from .job import Job
from .sync import Worker
from .worker import (
    AsyncHandler,
    AsyncWorker,
    Handler,
    HandlerResult,
    SyncHandler,
    WorkerStats,
    default_client_id,
)

__all__ = [
    "TIME_LIMIT_EXCEEDED",
    "AsyncHandler",
    "AsyncWorker",
    "Handler",
    "HandlerResult",
    "Job",
    "SyncHandler",
    "TimeLimitExceeded",
    "Worker",
    "WorkerError",
    "WorkerStats",
    "default_client_id",
    "format_exception",
]
