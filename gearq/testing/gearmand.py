"""Run a real gearmand for tests: a private server on a free loopback port.

``GearmandProcess`` starts ``gearmand`` in the foreground (no ``-d``), so the pid it holds is
the server's own pid and it can stop, kill and restart that server without touching any other
process. It is plain Python with no pytest import, so it works from any test runner::

    from gearq.testing import GearmandProcess

    with GearmandProcess(["-j", "3"]) as server:
        connect_to(server.host, server.port)

Every server gets its own working directory (a temporary one unless ``workdir`` is given)
holding ``gearmand.log``, ``gearmand.out`` (its stdout/stderr) and anything that relative paths in
the extra arguments name, e.g. ``["-q", "libsqlite3", "--libsqlite3-db", "queue.db"]``.

Finding the binary: ``$GEARQ_GEARMAND`` if set, else ``gearmand`` on ``$PATH``, else
``/usr/sbin/gearmand`` (Debian's ``gearman-job-server`` package; ``/usr/sbin`` is often not on
a normal user's ``$PATH``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "GearmandError",
    "GearmandNotFound",
    "GearmandProcess",
    "GearmandStartError",
    "find_gearmand",
    "gearmand_available",
    "in_ci",
    "pick_free_port",
]

LOOPBACK = "127.0.0.1"
DEBIAN_PATH = "/usr/sbin/gearmand"
ENV_BINARY = "GEARQ_GEARMAND"
INSTALL_HINT = (
    "install it with `apt-get install gearman-job-server` (Debian/Ubuntu), "
    f"or set ${ENV_BINARY} to the path of a gearmand binary"
)

# gearmand listens a few milliseconds after exec. If a server we started on an automatically
# chosen port is alive but still refuses connections after this long, assume somebody else
# grabbed the port between our probe and its bind(): gearmand then retries bind() once a
# second for about 20 s before giving up, so waiting is pointless; try a new port instead.
_BIND_GRACE = 2.0
_POLL = 0.01


class GearmandError(RuntimeError):
    """Base class for launcher errors."""


class GearmandNotFound(GearmandError):
    """No gearmand binary could be found."""


class GearmandStartError(GearmandError):
    """gearmand did not start, or did not answer in time."""


def in_ci() -> bool:
    """True when the environment variable ``CI`` says we run under continuous integration."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def find_gearmand() -> str | None:
    """Path of the gearmand binary to use, or None if there is none."""
    override = os.environ.get(ENV_BINARY)
    if override:
        return override if os.access(override, os.X_OK) else None
    found = shutil.which("gearmand")
    if found:
        return found
    if os.access(DEBIAN_PATH, os.X_OK):
        return DEBIAN_PATH
    return None


def gearmand_available(*, strict: bool | None = None) -> bool:
    """Whether a gearmand binary exists, for skipping tests that need one.

    With ``strict`` (default: true when ``CI=true``) a missing binary raises
    :class:`GearmandNotFound` instead of returning False, so that CI cannot go green by skipping
    every server test.
    """
    if find_gearmand() is not None:
        return True
    if strict is None:
        strict = in_ci()
    if strict:
        raise GearmandNotFound(_missing_message())
    return False


def _missing_message() -> str:
    where = os.environ.get(ENV_BINARY) or f"gearmand on $PATH or {DEBIAN_PATH}"
    return f"gearmand not found (looked for {where}); {INSTALL_HINT}"


def pick_free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Finalizer: SIGKILL a server whose owner was garbage-collected or at interpreter exit."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class GearmandProcess:
    """One gearmand server process on ``127.0.0.1``, owned by pid.

    :param extra_args: more gearmand arguments, e.g. ``["-j", "3", "-t", "1"]``. Do not pass
        ``-d``, ``-L``, ``-p``, ``--log-file`` or ``--pid-file``; the launcher sets those.
    :param workdir: directory for the log and the server's working directory (created if
        needed, kept afterwards). Default: a fresh temporary directory, removed on
        :meth:`close` / leaving the ``with`` block.
    :param port: a fixed port; default is a free port picked at start. With a fixed port a
        start does not move to another port.
    :param verbose: gearmand ``--verbose`` level (FATAL, ALERT, CRITICAL, ERROR, WARNING,
        NOTICE, INFO, DEBUG).
    :param start_timeout: seconds to wait for the server to answer, per attempt.
    :param max_tries: attempts with a new port when the picked port turns out to be taken.
    :param executable: gearmand binary; default :func:`find_gearmand`.
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        workdir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        verbose: str = "WARNING",
        start_timeout: float = 10.0,
        max_tries: int = 5,
        executable: str | None = None,
    ) -> None:
        if isinstance(extra_args, str):
            raise TypeError("extra_args must be a sequence of strings, not one string")
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        for arg in self.extra_args:
            if arg in {"-d", "--daemon"}:
                raise ValueError("gearmand must run in the foreground; do not pass -d")
        self._own_workdir = workdir is None
        self._workdir: Path | None = None if workdir is None else Path(workdir)
        self._port = port
        self._fixed_port = port is not None
        self.verbose = verbose
        self.start_timeout = start_timeout
        self.max_tries = max(1, max_tries)
        self._executable = executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], GearmandProcess] | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        """The server's port (known once started; stays the same across :meth:`restart`)."""
        if self._port is None:
            raise GearmandError("gearmand has not been started yet, so it has no port")
        return self._port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """Pid of the current (or last) server process."""
        if self._proc is None:
            raise GearmandError("gearmand has not been started yet, so it has no pid")
        return self._proc.pid

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="gearmand-"))
        return self._workdir

    @property
    def log_path(self) -> Path:
        """gearmand's ``--log-file``."""
        return self.workdir / "gearmand.log"

    @property
    def output_path(self) -> Path:
        """Where gearmand's stdout and stderr go."""
        return self.workdir / "gearmand.out"

    @property
    def returncode(self) -> int | None:
        """Exit status of the last process once it has exited (negative: killed by signal)."""
        return None if self._proc is None else self._proc.poll()

    def command(self) -> list[str]:
        """The full command line the next start will run (for the current port)."""
        return [
            self._binary(),
            "-L",
            self.host,
            "-p",
            str(self.port),
            "--log-file",
            str(self.log_path),
            "--pid-file",
            str(self.workdir / "gearmand.pid"),
            # Never read a system-wide /etc/gearmand.conf.
            "--config-file",
            str(self.workdir / "gearmand.conf"),
            "--verbose",
            self.verbose,
            *self.extra_args,
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> GearmandProcess:
        """Start the server and wait until it answers; returns self.

        With an automatically picked port, a port lost to another process in the meantime is
        retried with a new port, up to ``max_tries`` times.
        """
        if self.is_running():
            raise GearmandError(f"gearmand is already running (pid {self.pid})")
        failures: list[str] = []
        for _ in range(self.max_tries):
            if not self._fixed_port:
                self._port = pick_free_port(self.host)
            outcome = self._start_once(may_move=not self._fixed_port)
            if outcome is None:
                return self
            reason, port_problem = outcome
            failures.append(f"port {self.port}: {reason}")
            if self._fixed_port or not port_problem:
                break
        raise GearmandStartError(
            "gearmand did not start: "
            + "; ".join(failures)
            + f"\ncommand: {' '.join(self.command())}\n{self._diagnostics()}"
        )

    def restart(self) -> GearmandProcess:
        """Stop the server if it runs (SIGTERM), then start it again on the same port.

        If the port is briefly busy (e.g. a just-killed server's sockets), gearmand itself
        retries bind() once a second; this waits up to ``start_timeout`` for it.
        """
        port = self.port
        self.stop()
        self._port = port
        was_fixed = self._fixed_port
        self._fixed_port = True
        try:
            return self.start()
        finally:
            self._fixed_port = was_fixed

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the server and wait; SIGKILL it if still alive after ``timeout`` seconds.

        Returns the exit status (None if never started). Safe to call more than once.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return self.kill()
        self._detach_finalizer()
        return proc.returncode

    def kill(self, timeout: float = 10.0) -> int | None:
        """SIGKILL the server (a crash, for tests) and wait for it to be gone."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=timeout)
        self._detach_finalizer()
        return proc.returncode

    def send_signal(self, signum: int) -> None:
        """Send a signal to the server (e.g. ``signal.SIGUSR1`` for a graceful stop)."""
        if self._proc is None or self._proc.poll() is not None:
            raise GearmandError("gearmand is not running")
        self._proc.send_signal(signum)

    def is_running(self) -> bool:
        """True while the server process has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """Stop the server and remove the working directory if it is a temporary one."""
        self.stop()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def read_log(self) -> str:
        """The server's log file so far ('' if none)."""
        return _read_text(self.log_path)

    def __enter__(self) -> GearmandProcess:
        if not self.is_running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        port = self._port if self._port is not None else "?"
        pid = self._proc.pid if self._proc is not None else "?"
        return f"<GearmandProcess {self.host}:{port} pid={pid} {state}>"

    # -- internals -------------------------------------------------------------------------

    def _binary(self) -> str:
        if self._executable is None:
            found = find_gearmand()
            if found is None:
                raise GearmandNotFound(_missing_message())
            self._executable = found
        return self._executable

    def _start_once(self, *, may_move: bool) -> tuple[str, bool] | None:
        """Launch and wait for readiness.

        None on success, else why it failed and whether another port might help.
        """
        workdir = self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "gearmand.conf").touch()
        cmd = self.command()
        with open(self.output_path, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        self._proc = proc
        self._detach_finalizer()
        self._finalizer = weakref.finalize(self, _reap, proc)

        started = time.monotonic()
        deadline = started + self.start_timeout
        while True:
            code = proc.poll()
            if code is not None:
                output = (self.read_log() + _read_text(self.output_path)).lower()
                port_problem = "bind" in output or "address already in use" in output
                return f"gearmand exited with status {code} before answering", port_problem
            reply = self._probe()
            if reply == "ours":
                return None
            if reply == "foreign":
                self.kill()
                return "the port is served by another process", True
            now = time.monotonic()
            if may_move and now - started > _BIND_GRACE:
                self.kill()
                return f"no listener after {_BIND_GRACE:.0f} s (port probably taken)", True
            if now > deadline:
                self.kill()
                return f"no answer within {self.start_timeout:g} s", False
            time.sleep(_POLL)

    def _probe(self) -> str:
        """'ours' if our gearmand answers, 'foreign' if something else does, '' if nobody."""
        assert self._proc is not None and self._port is not None
        try:
            sock = socket.create_connection((self.host, self._port), timeout=1.0)
        except OSError:
            return ""
        with sock:
            try:
                sock.settimeout(2.0)
                sock.sendall(b"version\ngetpid\n")
                lines = _read_lines(sock, 2)
            except OSError:
                return ""
        if not lines or not lines[0].startswith(b"OK"):
            return "foreign" if lines else ""
        # ``getpid`` answers "OK <pid>". Only a clear mismatch counts as another server.
        if len(lines) > 1:
            parts = lines[1].split()
            if (
                len(parts) == 2
                and parts[0] == b"OK"
                and parts[1].isdigit()
                and int(parts[1]) != self._proc.pid
            ):
                return "foreign"
        return "ours" if self._proc.poll() is None else ""

    def _detach_finalizer(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def _diagnostics(self) -> str:
        parts = []
        for label, path in (("log", self.log_path), ("output", self.output_path)):
            text = _read_text(path).strip()
            if text:
                parts.append(f"--- gearmand {label} ({path}) ---\n{text[-4000:]}")
        return "\n".join(parts) or "(gearmand wrote nothing)"


def _read_lines(sock: socket.socket, count: int) -> list[bytes]:
    buf = b""
    while buf.count(b"\n") < count:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return [line.rstrip(b"\r") for line in buf.split(b"\n")[:count] if line]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
