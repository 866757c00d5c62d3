"""The README's main job: ``python -m gearq demo`` as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from gearq.testing import pick_free_port


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "GEARQ_SERVERS"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gearq", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def check_output(out: str) -> None:
    assert "add.delay(2, 3).get() -> 5" in out
    assert re.search(r"\] [1-9]/10\n", out), "no progress seen while the task ran"
    assert "10/10  -> 'cat.png: 10 sizes made'" in out
    assert "row 1: 1\n   row 2: 4\n   row 3: 9\n   row 4: 16" in out
    assert "raised ZeroDivisionError(division by zero)" in out
    assert "1000 tasks in" in out and "first: [0, 2, 4, 6, 8]" in out
    assert "state=STARTED" in out or "state=QUEUED" in out


def test_demo_on_the_embedded_server():
    done = run_demo()
    assert done.returncode == 0, done.stderr
    assert "embedded job server" in done.stdout
    check_output(done.stdout)
    assert "stopped cleanly" in done.stdout


def test_demo_on_gearmand_from_the_environment(gearmand):
    done = run_demo(env={"GEARQ_SERVERS": gearmand.address})
    assert done.returncode == 0, done.stderr
    assert f"gearq demo on {gearmand.address}" in done.stdout
    check_output(done.stdout)


def test_demo_with_no_server_says_so_in_one_line():
    address = f"127.0.0.1:{pick_free_port()}"
    done = run_demo("--servers", address)
    assert done.returncode == 1
    assert done.stderr.strip() == f"gearq demo: no job server answered at {address}"
