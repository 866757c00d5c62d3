"""``examples/worker_basics.py``, run as an operator runs it, and ``docs/worker.md``.

The example runs in a subprocess against a fresh gearmand; the test is its client. It
checks each handler's answer, stops the worker with SIGTERM while a job is running, and
expects that job to finish and the process to exit 0.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import gearq.worker
from gearq.client import AdminClient, Client, JobException
from gearq.testing import GearmandProcess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "worker_basics.py"
WORKER_DOC = ROOT / "docs" / "worker.md"


def start_example(*args: str, servers: list[str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "GEARQ_SERVERS"}
    if servers is not None:
        env["GEARQ_SERVERS"] = ",".join(servers)
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def example(gearmand: GearmandProcess) -> Iterator[subprocess.Popen[str]]:
    proc = start_example(servers=[gearmand.address])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def finish(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    """Send ``sig``; return (stdout, stderr) once the process has exited 0."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{err}"
    return out, err


def test_worker_example_serves_and_stops_on_sigterm(
    gearmand: GearmandProcess, example: subprocess.Popen[str]
) -> None:
    with Client(gearmand.address) as client:
        # checksum (a thread handler)
        digest = client.submit("checksum", b"hello world").result(timeout=15)
        assert digest == b"b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

        # export_csv (async): data chunks and progress arrive before the result
        statuses: list[tuple[int, int]] = []
        job = client.submit("export_csv", b"orders 4")
        job.on("status", lambda _job, progress: statuses.append(progress))
        assert job.result(timeout=15) == b"exported 4 rows of orders"
        assert b"".join(job.data) == b"orders,1,17\norders,2,34\norders,3,51\norders,4,68\n"
        assert statuses[-1] == (4, 4)
        assert statuses == sorted(statuses)

        # slow_lookup: within its limit, and past it
        assert client.submit("slow_lookup", b"0.1").result(timeout=15) == b"looked up in 0.1 s"
        started = time.monotonic()
        late = client.submit("slow_lookup", b"30")
        with pytest.raises(JobException) as caught:
            late.result(timeout=15)
        assert time.monotonic() - started < 10
        first_line = caught.value.data.split(b"\n", 1)[0]
        assert first_line.startswith(b"gearq.TimeLimitExceeded: job H:")
        assert first_line.endswith(b"of slow_lookup ran past its time limit of 1 s")

        # a handler's error reaches the client with its type
        with pytest.raises(JobException) as caught:
            client.submit("export_csv", b"orders many").result(timeout=15)
        assert caught.value.data.startswith(b"ValueError: invalid literal for int()")

        # SIGTERM while a job runs: a graceful stop lets it finish
        running = client.submit("export_csv", b"invoices 20")
        first = threading.Event()
        running.on("data", lambda _job, _chunk: first.set())
        assert first.wait(15), "export_csv sent no data"
        assert example.poll() is None, "the worker exited early"
        example.send_signal(signal.SIGTERM)
        assert running.result(timeout=15) == b"exported 20 rows of invoices"
        assert len(running.data) == 20

    out, err = example.communicate(timeout=20)
    assert example.returncode == 0, f"exited {example.returncode}:\n{err}"
    assert out.splitlines()[0] == f"serving checksum, export_csv, slow_lookup on {gearmand.address}"
    stopped = re.search(
        r"^stopped: (\d+) started, (\d+) completed, (\d+) exceptions, (\d+) past", out, re.M
    )
    assert stopped, out
    assert stopped.groups() == ("6", "4", "2", "1")
    assert "time limit of 1 s exceeded" in err


def wait_registered(server: str, client_id: str, timeout: float = 15) -> tuple[str, ...]:
    """The functions gearmand lists for the connections named ``client_id``."""
    deadline = time.monotonic() + timeout
    with AdminClient(server) as admin:
        while True:
            rows = admin.workers().raise_errors().values_ok()
            functions = tuple(
                f
                for infos in rows.values()
                for w in infos
                if w.client_id == client_id
                for f in w.functions
            )
            if len(functions) == 3 or time.monotonic() > deadline:
                return functions
            time.sleep(0.05)


def test_worker_example_stops_on_sigint_when_idle(
    gearmand: GearmandProcess, example: subprocess.Popen[str]
) -> None:
    # Registered means work() runs, so its signal handlers are in place. The default
    # client id names the host and the process: one connection per function.
    client_id = f"{socket.gethostname()}-{example.pid}-gearq"
    functions = wait_registered(gearmand.address, client_id)
    assert sorted(functions) == ["checksum", "export_csv", "slow_lookup"]
    out, _ = finish(example, signal.SIGINT)
    assert "stopped: 0 started, 0 completed" in out


def test_worker_example_argument_wins_over_environment(gearmand: GearmandProcess) -> None:
    proc = start_example(gearmand.address, servers=["127.0.0.1:1"])
    try:
        with Client(gearmand.address) as client:
            assert client.submit("checksum", b"").result(timeout=15) == (
                b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
        out, _ = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert f"on {gearmand.address}\n" in out


def test_worker_example_needs_a_server() -> None:
    proc = start_example()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "usage: worker_basics.py" in err


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("worker_basics", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_example_main_with_max_seconds(gearmand: GearmandProcess) -> None:
    """``main(servers, max_seconds=...)`` serves in-process (off the main thread: no
    signal handlers) and returns once the time is up."""
    module = load_example()
    returned: list[gearq.worker.Worker] = []
    thread = threading.Thread(
        target=lambda: returned.append(module.main([gearmand.address], max_seconds=3.0)),
        daemon=True,
    )
    started = time.monotonic()
    thread.start()
    with Client(gearmand.address) as client:
        assert client.submit("checksum", b"abc").result(timeout=10).startswith(b"ba7816bf")
    thread.join(15)
    assert not thread.is_alive(), "main() did not return after max_seconds"
    assert 2.5 < time.monotonic() - started < 15
    assert len(returned) == 1
    assert returned[0].stats.completed == 1


def test_worker_doc_names_every_public_name() -> None:
    text = WORKER_DOC.read_text()
    missing = [n for n in gearq.worker.__all__ if not re.search(rf"`{n}\b", text)]
    assert not missing, f"docs/worker.md does not mention {missing}"


def test_worker_doc_python_snippets_compile() -> None:
    blocks = re.findall(r"```python\n(.*?)```", WORKER_DOC.read_text(), re.S)
    assert len(blocks) >= 5
    for block in blocks:
        compile(block, str(WORKER_DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
