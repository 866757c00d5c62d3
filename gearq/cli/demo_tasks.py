"""The tasks ``gearq demo`` runs: small, but each shows one thing gearq does."""

from __future__ import annotations

import time
from collections.abc import Iterator

from ..tasks.app import App
from ..tasks.context import TaskContext

# The servers are set by the demo itself; GEARQ_* variables must not override them.
app = App("gearq-demo", env=False)


@app.task(name="demo.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="demo.resize", bind=True)
def resize(ctx: TaskContext, image: str, steps: int) -> str:
    for step in range(1, steps + 1):
        time.sleep(0.08)
        ctx.progress(step, steps)
    return f"{image}: {steps} sizes made"


@app.task(name="demo.report")
def report(rows: int) -> Iterator[str]:
    for row in range(1, rows + 1):
        time.sleep(0.05)
        yield f"row {row}: {row * row}"


@app.task(name="demo.divide")
def divide(a: int, b: int) -> float:
    return a / b
