"""libgearman's own tools (``gearman``, ``gearadmin``) against the embedded server."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gearq.server import EmbeddedServer

from .wire import T, Wire

TIMEOUT = 10


def _run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT, input=input, check=False)


def _worker(cli: str, server: EmbeddedServer, function: str, count: int) -> subprocess.Popen[bytes]:
    if shutil.which("rev") is None:
        pytest.skip("needs rev(1)")
    return subprocess.Popen(
        [
            cli,
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-w",
            "-f",
            function,
            "-c",
            str(count),
            "--",
            "rev",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _reap(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_gearman_cli_worker_and_client(server: EmbeddedServer, gearman_cli: str) -> None:
    worker = _worker(gearman_cli, server, "rev", 1)
    try:
        done = _run(gearman_cli, "-h", server.host, "-p", str(server.port), "-f", "rev", "hello")
    finally:
        code = _reap(worker)
    assert (done.returncode, done.stdout) == (0, b"olleh"), done
    assert code == 0


def test_gearman_cli_background_high_priority_with_unique(
    server: EmbeddedServer, gearman_cli: str
) -> None:
    port = str(server.port)
    for data in ("one", "two"):
        # Same unique twice: coalesced into one job.
        done = _run(
            gearman_cli, "-h", server.host, "-p", port, "-f", "bg", "-b", "-I", "-u", "same", data
        )
        assert done.returncode == 0, done
    with Wire(server.host, server.port) as admin:
        assert admin.admin(b"prioritystatus") == b"bg\t1\t0\t0\t0\n.\n"
    worker = _worker(gearman_cli, server, "bg", 1)
    assert _reap(worker) == 0
    with Wire(server.host, server.port) as admin:
        assert admin.admin(b"status") == b"bg\t0\t0\t0\n.\n"


def test_gearman_cli_worker_sleeps_and_wakes(server: EmbeddedServer, gearman_cli: str) -> None:
    worker = _worker(gearman_cli, server, "sleepy", 2)
    try:
        with Wire(server.host, server.port) as client:
            # Let the worker go to sleep first, so that only a NOOP can wake it.
            for _ in range(100):
                if b"sleepy\t0\t0\t1" in client.admin(b"status"):
                    break
                client.quiet(0.02)
            for word in (b"abc", b"xyz"):
                handle = client.submit(T.SUBMIT_JOB, b"sleepy", b"", word)
                client.expect(T.WORK_COMPLETE, handle, word[::-1], timeout=TIMEOUT)
    finally:
        code = _reap(worker)
    assert code == 0


@pytest.mark.skipif(shutil.which("gearadmin") is None, reason="needs gearadmin")
def test_gearadmin(server: EmbeddedServer) -> None:
    base = ["gearadmin", "-h", server.host, "-p", str(server.port)]
    with Wire(server.host, server.port) as wire:
        wire.send(T.SET_CLIENT_ID, b"w1").send(T.CAN_DO, b"fa")
        handle = wire.submit(T.SUBMIT_JOB_BG, b"fa", b"u1", b"d")
        wire.sync()
        assert _run(*base, "--status").stdout == b"fa\t1\t0\t1\n.\n"
        assert _run(*base, "--priority-status").stdout == b"fa\t0\t1\t0\t1\n.\n"
        assert _run(*base, "--getpid").stdout.strip() == str(os.getpid()).encode()
        assert _run(*base, "--show-unique-jobs").stdout == b"u1\n.\n"
        assert handle in _run(*base, "--show-jobs").stdout
        assert b" w1 : fa\n" in _run(*base, "--workers").stdout
        assert _run(*base, "--server-version").stdout.strip()
        assert _run(*base, "--cancel-job", handle.decode()).returncode == 0
        assert _run(*base, "--status").stdout == b"fa\t0\t0\t1\n.\n"
