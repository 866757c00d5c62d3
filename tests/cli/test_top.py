"""``gearq top`` driven in a real terminal: a pty with a window size, keys typed into it.

The screen is read back from the pty's output: every frame starts with cursor-home and
ends with clear-below, so the latest complete frame is what a user would see.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gearq.cli import main
from gearq.cli._status import build_snapshot
from gearq.cli.top import frame_lines
from gearq.client import AdminClient, Client
from gearq.protocol.admin import FunctionStatus, create_function
from gearq.testing import GearmandProcess, pick_free_port

ROOT = Path(__file__).resolve().parents[2]
Factory = Callable[..., GearmandProcess]

_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_HOME = "\x1b[H"
_END = "\x1b[J"
_LEAVE = "\x1b[?25h\x1b[?1049l"


class PtyScreen:
    """A command running on a pseudo-terminal of ``rows`` x ``cols``."""

    def __init__(self, argv: list[str], *, rows: int = 30, cols: int = 120) -> None:
        self.master, slave = os.openpty()
        self._set_size(slave, rows, cols)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GEARQ_")}
        env["TERM"] = "xterm"
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.raw = ""

    @staticmethod
    def _set_size(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows: int, cols: int) -> None:
        self._set_size(self.master, rows, cols)
        # No controlling terminal in this session, so the kernel does not signal it.
        self.proc.send_signal(signal.SIGWINCH)

    def pump(self, timeout: float) -> bool:
        """Read what is there (waiting up to ``timeout``); False once the pty is closed."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end is closed
            return False
        self.raw += data.decode("utf-8", "replace")
        return bool(data)

    def frames(self) -> list[str]:
        """Complete frames so far, as plain text."""
        out = []
        for piece in self.raw.split(_HOME)[1:]:
            if _END in piece:
                out.append(_CSI.sub("", piece.split(_END, 1)[0]))
        return out

    def wait_for(self, check: Callable[[str], bool], timeout: float = 15.0) -> str:
        """The first new frame for which ``check`` holds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            frames = self.frames()
            for frame in frames[seen:]:
                if check(frame):
                    return frame
            seen = len(frames)
            assert self.proc.poll() is None, f"gearq top exited early:\n{self.raw}"
            self.pump(0.1)
        last = self.frames()[-1:] or [self.raw]
        raise AssertionError(f"no matching frame within {timeout} s; last:\n{last[0]}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump(0.05)
        while self.pump(0.05) and select.select([self.master], [], [], 0)[0]:
            pass
        return self.proc.wait(max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def top(*args: str) -> list[str]:
    return [sys.executable, "-m", "gearq", "top", "--interval", "0.2", *args]


def row(frame: str, name: str) -> list[str] | None:
    for line in frame.splitlines():
        if line.split()[:1] == [name]:
            return line.split()
    return None


def test_top_shows_live_counts_and_quits_on_q(gearmand: GearmandProcess) -> None:
    down = f"127.0.0.1:{pick_free_port()}"
    with AdminClient(gearmand.address) as admin:
        admin.command(create_function("top.fn")).raise_errors()
    screen = PtyScreen(top("--servers", f"{gearmand.address},{down}"))
    try:
        first = screen.wait_for(lambda f: row(f, "top.fn") is not None)
        assert row(first, "top.fn") == ["top.fn", "0", "0", "0", "|", "0/0/0", "down"]
        assert "servers: 1 up, 1 DOWN" in first and f"DOWN {down} is down: cannot" in first
        assert "(q quits)" in first

        with Client(gearmand.address) as client:
            jobs = [client.submit("top.fn", b"x", background=True) for _ in range(5)]
            for job in jobs:
                job.created(timeout=10)
        later = screen.wait_for(lambda f: (row(f, "top.fn") or [""])[1] == "5")
        assert row(later, "top.fn") == ["top.fn", "5", "0", "0", "|", "5/0/0", "down"]
        total = next(line for line in later.splitlines() if line.startswith("TOTAL"))
        assert total.split()[3:6] == ["5", "0", "0"]

        screen.send(b"q")
        assert screen.finish() == 0
        assert screen.raw.endswith(_LEAVE)  # cursor back, main screen restored
        assert "Traceback" not in screen.raw
    finally:
        screen.close()


def test_top_ctrl_c_quits_cleanly_and_restores_the_terminal(gearmand: GearmandProcess) -> None:
    screen = PtyScreen(top("--servers", gearmand.address))
    try:
        before = termios.tcgetattr(screen.master)
        screen.wait_for(lambda f: "gearq top" in f)
        during = termios.tcgetattr(screen.master)
        assert not during[3] & termios.ICANON  # cbreak while running
        screen.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert screen.finish() == 0
        assert screen.raw.endswith(_LEAVE) and "Traceback" not in screen.raw
        assert termios.tcgetattr(screen.master)[3] == before[3]  # line mode restored
    finally:
        screen.close()


def test_top_follows_the_window_size(gearmand_factory: Factory) -> None:
    a, b = gearmand_factory(), gearmand_factory()
    with AdminClient(f"{a.address},{b.address}") as admin:
        admin.command(create_function("a.rather.long.function.name.for.resizing")).raise_errors()
    screen = PtyScreen(top("--servers", f"{a.address},{b.address}"), rows=20, cols=140)
    try:
        wide = screen.wait_for(lambda f: "a.rather.long" in f)
        assert a.address in wide and b.address in wide
        screen.resize(20, 80)
        narrow = screen.wait_for(lambda f: "1 server column(s) hidden" in f)
        assert all(len(line) <= 80 for line in narrow.splitlines())
        [name] = [line.split()[0] for line in narrow.splitlines() if "a.rather" in line]
        assert name.startswith("a.rather.long.function") and name.endswith("~")  # cut to fit
        assert a.address in narrow and b.address not in narrow
        screen.send(b"q")
        assert screen.finish() == 0
    finally:
        screen.close()


def test_top_marks_a_server_that_goes_down(gearmand_factory: Factory) -> None:
    a, b = gearmand_factory(), gearmand_factory()
    screen = PtyScreen(top("--servers", f"{a.address},{b.address}"))
    try:
        screen.wait_for(lambda f: "servers: 2 up " in f)
        b.stop()
        frame = screen.wait_for(lambda f: "servers: 1 up, 1 DOWN" in f)
        assert f"DOWN {b.address} is down" in frame
        assert (row(frame, "TOTAL") or [""])[-1] == "down"  # its column
        screen.send(b"q")
        assert screen.finish() == 0
    finally:
        screen.close()


def test_top_once_prints_one_plain_frame(
    gearmand: GearmandProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with AdminClient(gearmand.address) as admin:
        admin.command(create_function("once.fn")).raise_errors()
    assert main(["top", "--once", "--servers", gearmand.address]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert row(out, "once.fn") == ["once.fn", "0", "0", "0"]
    down = f"127.0.0.1:{pick_free_port()}"
    assert main(["top", "--once", "--servers", f"{gearmand.address},{down}"]) == 1
    assert f"DOWN {down} is down" in capsys.readouterr().out
    assert main(["top", "--once", "--servers", down]) == 3


def test_top_sorts_by_queue_length(
    gearmand: GearmandProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(gearmand.address) as client:
        for function, count in (("s.few", 1), ("s.many", 3)):
            for _ in range(count):
                client.submit(function, b"x", background=True).created(timeout=10)
    assert main(["top", "--once", "--sort", "queued", "--servers", gearmand.address]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[3:5]]
    assert names == ["s.many", "s.few"]


def test_top_needs_a_terminal_without_once(gearmand: GearmandProcess) -> None:
    done = subprocess.run(
        top("--servers", gearmand.address), cwd=ROOT, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "gearq top: stdout is not a terminal (use --once for one frame)\n"


def test_frame_fits_the_window_height() -> None:
    records = [FunctionStatus(f"fn.{i:02d}", total=i, running=0, workers=1) for i in range(40)]
    snapshot = build_snapshot([("gm1:4730", records, None), ("gm2:4730", None, "refused")])
    lines = frame_lines(snapshot, interval=1.0, width=100, height=12)
    assert len(lines) == 12
    assert lines[-1] == "DOWN gm2:4730 is down: refused"
    more = next(line for line in lines if line.startswith("... "))
    shown = [line for line in lines if line.startswith("fn.")]
    assert more == f"... {40 - len(shown)} more function(s)"
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert total.split()[3:6] == [str(sum(range(40))), "0", "40"]  # totals count every row
