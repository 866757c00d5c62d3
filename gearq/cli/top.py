"""``gearq top``: a live terminal view of every function's queue and workers across servers.

Plain ANSI rather than curses: the view is one table redrawn in place on the alternate
screen, which any terminal (and a pty in a test) understands, and curses would add a C
library's terminfo lookups for no gain. Keys are read in cbreak mode; q or Ctrl-C quits and
the terminal is restored whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CommandError,
    load_app,
    resolve_servers,
)
from ._status import (
    Snapshot,
    app_functions,
    down_lines,
    fetch_snapshot,
    render_table,
    sorted_snapshot,
)

if TYPE_CHECKING:
    from ..client.admin import AsyncAdminClient

__all__ = ["frame_lines", "run_top"]

_ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, cursor hidden
_LEAVE = "\x1b[?25h\x1b[?1049l"
_HOME = "\x1b[H"
_CLEAR_LINE = "\x1b[K"
_CLEAR_BELOW = "\x1b[J"
_QUIT_KEYS = (b"q", b"Q", b"\x03", b"\x04")


def frame_lines(
    snapshot: Snapshot,
    *,
    interval: float,
    width: int | None = None,
    height: int | None = None,
    live: bool = True,
) -> list[str]:
    """One frame: a heading, the table (trimmed to ``width`` x ``height``), down servers."""
    up = len(snapshot.servers) - len(snapshot.down)
    clock = time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at))
    heading = f"gearq top  {clock}  servers: {up} up"
    if snapshot.down:
        heading += f", {len(snapshot.down)} DOWN"
    if live:
        heading += f"  every {interval:g}s  (q quits)"
    footer = [f"DOWN {line}" for line in down_lines(snapshot)]
    max_rows = None
    if height is not None:
        # heading, blank, table head, TOTAL, a note line, the footer
        max_rows = max(height - 5 - len(footer), 1)
    lines = [heading, "", *render_table(snapshot, width=width, max_rows=max_rows), *footer]
    if width is not None:
        lines = [line[:width] for line in lines]
    if height is not None:
        lines = lines[:height]
    return lines


class _Terminal:
    """Cbreak input and the alternate screen for the ``with`` block, restored on exit."""

    def __init__(self, out: TextIO, in_fd: int | None) -> None:
        self.out = out
        self.in_fd = in_fd
        self._saved: list[Any] | None = None

    def __enter__(self) -> _Terminal:
        if self.in_fd is not None:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.in_fd)
            tty.setcbreak(self.in_fd)
        self.out.write(_ENTER)
        self.out.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.write(_LEAVE)
        self.out.flush()
        if self.in_fd is not None and self._saved is not None:
            import termios

            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)

    def size(self) -> os.terminal_size:
        try:
            return os.get_terminal_size(self.out.fileno())
        except (OSError, ValueError):
            return shutil.get_terminal_size()

    def draw(self, lines: Sequence[str]) -> None:
        body = f"{_CLEAR_LINE}\n".join(lines)
        self.out.write(f"{_HOME}{body}{_CLEAR_LINE}{_CLEAR_BELOW}")
        self.out.flush()


@contextlib.contextmanager
def _signals(
    loop: asyncio.AbstractEventLoop, quit: asyncio.Event, resize: asyncio.Event
) -> Iterator[None]:
    installed: list[signal.Signals] = []
    for signum, event in (
        (signal.SIGINT, quit),
        (signal.SIGTERM, quit),
        (signal.SIGHUP, quit),
        (signal.SIGWINCH, resize),
    ):
        loop.add_signal_handler(signum, event.set)
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _until(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


async def _live(
    admin: AsyncAdminClient,
    args: argparse.Namespace,
    only: list[str] | None,
    optional: set[str],
) -> int:
    loop = asyncio.get_running_loop()
    quit = asyncio.Event()
    resize = asyncio.Event()
    in_fd = sys.stdin.fileno() if sys.stdin.isatty() else None

    def on_key() -> None:
        assert in_fd is not None
        try:
            data = os.read(in_fd, 64)
        except OSError:
            data = b""
        if not data:  # the terminal went away: nothing can quit us by key any more
            loop.remove_reader(in_fd)
            quit.set()
        elif any(key in data for key in _QUIT_KEYS):
            quit.set()

    terminal = _Terminal(sys.stdout, in_fd)
    with _signals(loop, quit, resize), terminal:
        if in_fd is not None:
            loop.add_reader(in_fd, on_key)
        try:
            while not quit.is_set():
                fetch = asyncio.ensure_future(fetch_snapshot(admin, only=only, optional=optional))
                stop = asyncio.ensure_future(quit.wait())
                await asyncio.wait((fetch, stop), return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if quit.is_set():
                    fetch.cancel()
                    break
                snapshot = sorted_snapshot(fetch.result(), args.sort)
                deadline = loop.time() + args.interval
                while True:
                    size = terminal.size()
                    terminal.draw(
                        frame_lines(
                            snapshot,
                            interval=args.interval,
                            width=size.columns,
                            height=size.lines,
                        )
                    )
                    resize.clear()
                    left = deadline - loop.time()
                    if left <= 0 or quit.is_set():
                        break
                    waiting = [asyncio.ensure_future(e.wait()) for e in (quit, resize)]
                    await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                    for task in waiting:
                        task.cancel()
                    if not resize.is_set():
                        break
        finally:
            if in_fd is not None:
                loop.remove_reader(in_fd)
    return EXIT_OK


def run_top(args: argparse.Namespace) -> int:
    from ..client.admin import AsyncAdminClient

    app = load_app(args.app) if args.app else None
    servers = resolve_servers(args.servers, app)
    only, optional = app_functions(app) if app is not None else (None, set[str]())
    if not args.once and not sys.stdout.isatty():
        raise CommandError("stdout is not a terminal (use --once for one frame)", EXIT_USAGE)

    async def go() -> int:
        async with AsyncAdminClient(
            servers, timeout=args.admin_timeout, connect_timeout=args.admin_timeout
        ) as admin:
            if not args.once:
                return await _live(admin, args, only, optional)
            snapshot = sorted_snapshot(
                await fetch_snapshot(admin, only=only, optional=optional), args.sort
            )
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        print("\n".join(frame_lines(snapshot, interval=args.interval, width=width, live=False)))
        if snapshot.all_down:
            return EXIT_UNREACHABLE
        return EXIT_FAILED if snapshot.down else EXIT_OK

    return asyncio.run(go())
