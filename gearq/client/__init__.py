"""gearq's Gearman client: submit jobs to a pool of job servers, watch them, administer them.

``AsyncClient`` is the asyncio client; ``Client`` is its blocking twin with the same method
names. ``AdminClient`` / ``AsyncAdminClient`` speak the text admin protocol to every server.
"""

from .admin import AdminClient, AdminResults, AsyncAdminClient, ServerResult
from .client import AsyncClient
from .errors import (
    BatchError,
    BatchFailed,
    ClientClosed,
    JobConnectionLost,
    JobError,
    JobException,
    JobFailed,
    JobTimeout,
    NoServerAvailable,
    PayloadTooLarge,
    QueueFull,
    ServerRejected,
    SubmitError,
)
from .job import BackgroundBatch, Job, JobState, JobStatus, Priority, UniqueStatus
from .many import ForegroundBatch
from .pool import Strategy
from .sync import Client, SyncJob

__all__ = [
    "AdminClient",
    "AdminResults",
    "AsyncAdminClient",
    "AsyncClient",
    "BackgroundBatch",
    "BatchError",
    "BatchFailed",
    "Client",
    "ClientClosed",
    "ForegroundBatch",
    "Job",
    "JobConnectionLost",
    "JobError",
    "JobException",
    "JobFailed",
    "JobState",
    "JobStatus",
    "JobTimeout",
    "NoServerAvailable",
    "PayloadTooLarge",
    "Priority",
    "QueueFull",
    "ServerRejected",
    "ServerResult",
    "Strategy",
    "SubmitError",
    "SyncJob",
    "UniqueStatus",
]
