"""Helper processes of the benchmarks: started with the repository on their path, ready once
they print a line starting with ``ready``, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ReadyProcess:
    """``command`` (argv) run from the repository root; waits for its ``ready`` line.

    ``info`` holds what the process printed after ``ready`` (e.g. its slots).
    """

    def __init__(self, command: Sequence[str], what: str = "") -> None:
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        word, _, self.info = line.strip().partition(" ")
        if word != "ready":
            self.stop()
            raise RuntimeError(f"{what or command} did not start: {line!r}")

    @classmethod
    def module(cls, module: str, *args: str) -> ReadyProcess:
        """``python -m module args...`` with this interpreter."""
        return cls([sys.executable, "-m", module, *args], f"{module} {' '.join(args)}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
