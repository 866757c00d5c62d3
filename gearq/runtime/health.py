"""The health file: a running worker rewrites it every few seconds; ``gearq worker --check``
reads it and says whether the worker serves.

It is JSON (``pid``, ``time``, ``interval``, ``state``, ``connected``, ``connections``,
``running``, ``pool``, ``children``, ``stuck_threads``), replaced atomically (written aside,
then renamed), and removed when the worker exits.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["HealthReport", "check_health", "remove_health", "write_health"]

#: A file older than this many intervals (plus a second) means the worker is wedged or gone.
STALE_INTERVALS = 3


def write_health(path: Path, facts: dict[str, Any]) -> None:
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    aside.write_text(json.dumps({**facts, "pid": os.getpid(), "time": time.time()}))
    os.replace(aside, path)


def remove_health(path: Path) -> None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    text: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_health(path: Path, now: float | None = None) -> HealthReport:
    """Serving means: the file is fresh, its process lives, its state is ``serving``, at
    least one connection to a job server is up, and (prefork) at least one child is up."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return HealthReport(False, f"no health file at {path}: the worker is not running")
    except (OSError, ValueError) as exc:
        return HealthReport(False, f"unreadable health file {path}: {exc}")
    if not isinstance(data, dict):
        return HealthReport(False, f"unreadable health file {path}")
    now = time.time() if now is None else now
    pid = int(data.get("pid", 0))
    age = now - float(data.get("time", 0.0))
    interval = float(data.get("interval", 5.0))
    if pid <= 0 or not _alive(pid):
        return HealthReport(False, f"worker pid {pid} is not running (stale {path})")
    if age > STALE_INTERVALS * interval + 1.0:
        return HealthReport(False, f"worker pid {pid} has not reported for {age:.1f} s")
    state = data.get("state")
    connected = int(data.get("connected", 0))
    connections = int(data.get("connections", 0))
    summary = (
        f"pid {pid} {state}: {connected}/{connections} connection(s) up,"
        f" {data.get('running', 0)} job(s) running, pool {data.get('pool')}"
    )
    if data.get("pool") == "prefork":
        summary += f" ({data.get('children', 0)} child process(es))"
    if state != "serving":
        return HealthReport(False, f"worker {summary}")
    if connected == 0:
        return HealthReport(False, f"worker {summary}: no job server connected")
    if data.get("pool") == "prefork" and not data.get("children"):
        return HealthReport(False, f"worker {summary}: no child process is up")
    return HealthReport(True, f"worker {summary}")
