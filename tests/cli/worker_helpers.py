"""Run ``gearq worker`` as a real subprocess for a test, and read what it did.

:class:`WorkerProcess` starts ``python -m gearq worker tests.cli.worker_tasks ...`` from the
repository root with its output in files (no pipe to fill up), waits on what it logs, sends
it signals, and kills it (by pid) if a test leaves it running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS_MODULE = "tests.cli.worker_tasks"


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what or check}")
        time.sleep(0.02)


def gearq_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gearq", *args]


def run_gearq(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a short ``gearq`` command to its end."""
    return subprocess.run(
        gearq_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


class WorkerProcess:
    """One ``gearq worker`` process for a test."""

    def __init__(
        self,
        tmp: Path,
        servers: str,
        *args: str,
        pool: str = "threads",
        name: str = "worker",
        app: str = TASKS_MODULE,
        new_session: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = tmp / f"{name}.log"
        self.out_path = tmp / f"{name}.out"
        command = gearq_command(
            "worker", app, "--servers", servers, "--pool", pool,
            "--poll-interval", "0.2", "--shutdown-timeout", "20", "--log-tasks", *args,
        )  # fmt: skip
        with self.log_path.open("wb") as err, self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=new_session, env=None if env is None else {**os.environ, **env},
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, count: int = 1, timeout: float = 15.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and self.log.count(text) < count:
                pytest.fail(f"the worker exited ({self.proc.returncode}) first:\n{self.log}")
            return self.log.count(text) >= count

        wait_until(seen, timeout, f"{text!r} x{count} in the worker's log")

    def wait_ready(self, timeout: float = 20.0) -> WorkerProcess:
        self.wait_log("gearq worker: ready", timeout=timeout)
        return self

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit within {timeout} s:\n{self.log}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def children(self) -> list[int]:
        """The pids of this process's children (prefork), from /proc."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.pid and fields[0] != "Z":
                found.append(int(entry.name))
        return sorted(found)


def marks(path: Path) -> list[tuple[str, int]]:
    """The ``start``/``end`` lines the counted tasks wrote: (what, pid)."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(what, int(pid)) for what, pid in lines]


def starts(path: Path) -> list[int]:
    return [pid for what, pid in marks(path) if what == "start"]


def ends(path: Path) -> list[int]:
    return [pid for what, pid in marks(path) if what == "end"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_all(workers: Sequence[WorkerProcess]) -> None:
    for worker in workers:
        worker.kill()


def workers_factory(tmp: Path, servers: str) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*args: str, **kwargs: Any) -> WorkerProcess:
        kwargs.setdefault("name", f"worker-{len(started)}")
        worker = WorkerProcess(tmp, servers, *args, **kwargs)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        stop_all(started)


SIGTERM = signal.SIGTERM
