"""Tasks that ``gearq call`` runs in the admin command tests (``-A tests.cli.admin_tasks``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from gearq.tasks import App
from gearq.tasks.context import TaskContext

# The tests point the app and the command at their own servers; GEARQ_* must not interfere.
app = App("admin-tasks", env=False)


@app.task(name="admin.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="admin.echo")
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="admin.steps", bind=True)
def steps(ctx: TaskContext, count: int, pause: float = 0.1) -> str:
    for step in range(1, count + 1):
        time.sleep(pause)
        ctx.progress(step, count)
    time.sleep(pause)
    return f"{count} steps"


@app.task(name="admin.rows")
def rows(count: int) -> Iterator[str]:
    for row in range(1, count + 1):
        yield f"row {row}"


@app.task(name="admin.divide")
def divide(a: float, b: float) -> float:
    return a / b


@app.task(name="admin.jq_echo", queue="jq", serializer="json")
def jq_echo(value: Any) -> Any:
    return value
