"""Interop: a PHP client (php-cli + php-gearman) calls gearq tasks served by a real
TaskWorker, through the documented JSON envelope, and reads their results, progress,
streamed chunks, warnings and errors.

Without php and its gearman extension the test is skipped; under ``CI=true`` it fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from gearq.tasks import App
from gearq.tasks.context import TaskContext
from gearq.testing import GearmandProcess, WorkerThread, in_ci

PHP_CLIENT = Path(__file__).with_name("php_task_client.php")

pytestmark = [pytest.mark.php, pytest.mark.timeout(60)]


def _require_php_gearman() -> str:
    php = shutil.which("php")
    ok = False
    if php is not None:
        modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.lower()
        ok = "gearman" in modules.split()
    if not ok:
        message = "php with the gearman extension (php-cli, php-gearman) is missing"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    assert php is not None
    return php


def test_php_client_calls_gearq_tasks(gearmand: GearmandProcess) -> None:
    php = _require_php_gearman()
    app = App("interop", servers=gearmand.address, env=False)
    background_ran = threading.Event()

    @app.task(name="interop.add")
    def add(x: int, y: int, scale: int = 1) -> int:
        if x == y == 1:
            background_ran.set()
        return (x + y) * scale

    @app.task(name="interop.greet")
    def greet(name: str) -> dict[str, str]:
        return {"hello": name}

    @app.task(name="interop.count", bind=True)
    def count(ctx: TaskContext, n: int) -> str:
        for i in range(n):
            ctx.progress(i + 1, n)
            ctx.send_chunk({"i": i})
        ctx.warn("counted")
        return "done"

    @app.task(name="interop.fail")
    def fail(text: str) -> None:
        raise ValueError(f"{text} input")

    with WorkerThread(app):
        done = subprocess.run(
            [php, str(PHP_CLIENT), str(gearmand.port)],
            capture_output=True,
            text=True,
            timeout=45,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = json.loads(done.stdout)
        assert background_ran.wait(10)

    assert out["add"] == {"v": 1, "s": "ok", "r": 50}
    assert out["add_rc"] == 0
    assert out["greet"] == {"v": 1, "s": "ok", "r": {"hello": "Zoë"}}
    events = out["events"]
    count_events = [e for e in events if e[0] in ("status", "data", "warning", "complete")]
    assert count_events == [
        ["status", 1, 3], ["data", {"v": 1, "s": "chunk", "d": {"i": 0}}],
        ["status", 2, 3], ["data", {"v": 1, "s": "chunk", "d": {"i": 1}}],
        ["status", 3, 3], ["data", {"v": 1, "s": "chunk", "d": {"i": 2}}],
        ["warning", "counted"],
        ["complete", {"v": 1, "s": "ok", "r": "done"}],
    ]  # fmt: skip
    (exception,) = [e[1] for e in events if e[0] == "exception"]
    assert exception["v"] == 1 and exception["s"] == "err" and exception["kind"] == "error"
    assert exception["type"] == "builtins.ValueError"
    assert exception["msg"] == "bad input"
    assert "Traceback" in exception["tb"]
    assert out["background_rc"] == 0
    app.close()
