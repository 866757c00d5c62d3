"""gearq: a fast, typed, Celery-style task queue on the Gearman job system.

::

    from gearq import App

    app = App("proj", servers="127.0.0.1:4730")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(2, 3).get(timeout=10)

The names below are imported on first use, so ``import gearq`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .protocol.errors import GearqError

if TYPE_CHECKING:
    from .client.job import Priority as Priority
    from .tasks.app import App as App
    from .tasks.canvas import chain as chain
    from .tasks.canvas import group as group
    from .tasks.context import TaskContext as TaskContext
    from .tasks.remote_errors import RemoteError as RemoteError
    from .tasks.remote_errors import TimeLimitExceeded as TimeLimitExceeded
    from .tasks.remote_errors import register_exception as register_exception
    from .tasks.result import AsyncResult as AsyncResult
    from .tasks.result import BackgroundResult as BackgroundResult
    from .tasks.result import NoWorkerAvailable as NoWorkerAvailable
    from .tasks.result import PendingTasksWarning as PendingTasksWarning
    from .tasks.result import ResultNotKept as ResultNotKept
    from .tasks.result import TaskFailed as TaskFailed
    from .tasks.result import TaskState as TaskState
    from .tasks.result import TaskTimeout as TaskTimeout
    from .tasks.serializers import SerializationError as SerializationError
    from .tasks.task import Task as Task

__version__ = "0.1.0.dev0"

_LAZY = {
    "App": "gearq.tasks.app",
    "AsyncResult": "gearq.tasks.result",
    "BackgroundResult": "gearq.tasks.result",
    "NoWorkerAvailable": "gearq.tasks.result",
    "PendingTasksWarning": "gearq.tasks.result",
    "Priority": "gearq.client.job",
    "RemoteError": "gearq.tasks.remote_errors",
    "ResultNotKept": "gearq.tasks.result",
    "SerializationError": "gearq.tasks.serializers",
    "Task": "gearq.tasks.task",
    "TaskContext": "gearq.tasks.context",
    "TaskFailed": "gearq.tasks.result",
    "TaskState": "gearq.tasks.result",
    "TaskTimeout": "gearq.tasks.result",
    "TimeLimitExceeded": "gearq.tasks.remote_errors",
    "chain": "gearq.tasks.canvas",
    "group": "gearq.tasks.canvas",
    "register_exception": "gearq.tasks.remote_errors",
}

__all__ = ["GearqError", "__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gearq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
