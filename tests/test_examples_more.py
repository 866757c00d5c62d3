"""The task-level examples, run as a user runs them: ``python examples/<name>``.

Each runs in a subprocess against real gearmand servers (``GEARQ_SERVERS``), and some once
more on the embedded job server they fall back to when nothing is configured. The checks
read what the example prints (and, for the web app, what it answers over HTTP), so an
example that breaks fails here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gearq import TaskContext
from gearq.tasks.runner import TaskMiddleware, TaskOutcome
from gearq.testing import GearmandProcess, WorkerThread, in_ci

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def example_env(servers: list[str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEARQ_")}
    if servers is not None:
        env["GEARQ_SERVERS"] = ",".join(servers)
    return env


def run_example(
    *command: str, servers: list[str] | None = None, timeout: float = 45
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; fail on a non-zero exit."""
    done = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=example_env(servers),
        cwd=ROOT,
    )
    assert done.returncode == 0, (
        f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


class Running:
    """A long-running example: its stdout is read line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[str], stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first line (from now on) matching ``pattern``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
            if line is None:
                pytest.fail(f"exited before printing {pattern!r}:\n{self.output()}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"no line matching {pattern!r}:\n{self.output()}")

    def check(self, check: Callable[[str], None], arg: str) -> None:
        """``check(arg)``, showing this process's output if it fails."""
        try:
            check(arg)
        except (AssertionError, OSError) as exc:
            raise AssertionError(f"{exc!r}\n{self.output()}") from exc

    def output(self) -> str:
        return "\n".join(self.seen) + "\n--- stderr:\n" + self.stderr.read_text()

    def finish(self, sig: int | None = signal.SIGTERM, timeout: float = 20) -> list[str]:
        """Signal the process (if ``sig``), wait for exit 0; return the remaining lines."""
        if sig is not None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout)
        self._reader.join(5)
        rest: list[str] = []
        while (line := self.lines.get_nowait() if not self.lines.empty() else None) is not None:
            rest.append(line)
        self.seen.extend(rest)
        assert self.proc.returncode == 0, f"exited {self.proc.returncode}:\n{self.output()}"
        return rest


@contextmanager
def start_example(
    *command: str, servers: list[str] | None, stdin: bool = False
) -> Iterator[Running]:
    with tempfile.TemporaryDirectory() as tmp:
        errors = Path(tmp) / "stderr"
        with errors.open("w") as stderr:
            proc = subprocess.Popen(
                list(command),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=example_env(servers),
                cwd=ROOT,
            )
        try:
            yield Running(proc, errors)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- web_app.py -------------------------------------------------------------------------------


def check_web_app(base: str) -> None:
    assert http("GET", f"{base}/quote?sku=book&qty=3") == (
        200,
        {"sku": "book", "qty": 3, "total_cents": 3750},
    )
    # Remote errors come back as their own types; the handler turns them into a 400.
    assert http("GET", f"{base}/quote?sku=car") == (
        400,
        {"error": "KeyError: \"unknown sku 'car'\""},
    )
    status, body = http("GET", f"{base}/divide?a=1&b=0")
    assert status == 400 and body["error"].startswith("ZeroDivisionError:")
    assert http("GET", f"{base}/divide?a=7&b=2") == (200, {"result": 3.5})

    # Background: 202 at once, then the status from the job servers until it is gone.
    status, body = http("POST", f"{base}/thumbnails", b"cat.png")
    assert status == 202 and re.fullmatch(r"[0-9a-f]{32}", body["id"])
    states: list[str] = []
    progress: list[list[int]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, answer = http("GET", f"{base}/thumbnails/{body['id']}")
        assert status == 200 and answer["id"] == body["id"]
        states.append(answer["state"])
        if answer["progress"]:
            progress.append(answer["progress"])
        if answer["state"] == "UNKNOWN":  # finished: gearmand forgets finished jobs
            break
        time.sleep(0.02)
    assert states[-1] == "UNKNOWN", states
    assert set(states) <= {"QUEUED", "STARTED", "UNKNOWN"}
    assert "STARTED" in states, states
    assert progress and all(total == 4 for _, total in progress), progress
    assert progress == sorted(progress)
    assert http("GET", f"{base}/thumbnails/{'0' * 32}") == (404, {"error": "unknown task"})


def test_web_app_in_one_process_on_gearmand(gearmand: GearmandProcess) -> None:
    example = str(EXAMPLES / "web_app.py")
    with start_example(sys.executable, example, servers=[gearmand.address]) as web:
        base = web.wait_for(r"^listening on (http://\S+)/$").group(1)
        web.check(check_web_app, base)
        assert web.finish() == ["web server stopped"]


def test_web_app_web_and_worker_processes_on_gearmand(gearmand: GearmandProcess) -> None:
    example = str(EXAMPLES / "web_app.py")
    servers = [gearmand.address]
    with start_example(sys.executable, example, "worker", servers=servers) as worker:
        found = worker.wait_for(r"^worker serving (.*) on (\S+)$")
        assert found.group(1) == "web.divide, web.quote, web.thumbnail"
        with start_example(sys.executable, example, "web", servers=servers) as web:
            base = web.wait_for(r"^listening on (http://\S+)/$").group(1)
            assert http("GET", f"{base}/quote?sku=pen&qty=2")[1]["total_cents"] == 360
            assert web.finish() == ["web server stopped"]
        assert worker.finish() == ["worker stopped"]


def test_web_app_on_the_embedded_server() -> None:
    example = str(EXAMPLES / "web_app.py")
    with start_example(sys.executable, example, servers=None) as web:
        web.wait_for(r"^\(no GEARQ_SERVERS: using an embedded job server at \S+\)$")
        base = web.wait_for(r"^listening on (http://\S+)/$").group(1)
        web.check(check_web_app, base)
        web.finish(signal.SIGINT)


# -- asyncio_app.py ---------------------------------------------------------------------------


def check_asyncio(out: str) -> None:
    assert "fetch_price('GRQ') = 23.4\n" in out
    assert re.search(r"^gathered 200 prices in [\d.]+ s; first 22\.7, last 24\.6$", out, re.M), out
    assert re.findall(r"^streamed: (.*)$", out, re.M) == ["line 1", "line 2", "line 3"]
    progress = re.findall(r"^progress (\d)/4$", out, re.M)
    assert progress and progress == sorted(set(progress)), out
    assert "train -> trained for 4 epochs (last progress 4/4)" in out
    assert out.rstrip().endswith("gave up waiting: TaskTimeout")


def test_asyncio_app_on_gearmand(gearmand: GearmandProcess) -> None:
    done = run_example(sys.executable, "examples/asyncio_app.py", servers=[gearmand.address])
    check_asyncio(done.stdout)


def test_asyncio_app_on_the_embedded_server() -> None:
    done = run_example(sys.executable, "examples/asyncio_app.py")
    assert done.stdout.startswith("(no GEARQ_SERVERS: using an embedded job server at")
    check_asyncio(done.stdout)


# -- php_client.php and shell_client.sh (through interop_worker.py) ----------------------------


def require_tool(name: str, check: Callable[[str], bool]) -> str:
    path = shutil.which(name)
    if path is None or not check(path):
        message = f"{name} is missing (apt-get install php-cli php-gearman gearman-tools)"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return path


def php_with_gearman(php: str) -> bool:
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=20).stdout
    return "gearman" in modules.lower().split()


PHP_OUTPUT = """\
shop.add(2, 3, scale=10) = 50
  progress 1/3
  chunk {"i":1}
  progress 2/3
  chunk {"i":2}
  progress 3/3
  chunk {"i":3}
  warning: counted
shop.count -> "done"
shop.fail raised builtins.ValueError: bad input
background shop.add queued: yes
"""


@pytest.mark.php
def test_php_client_on_gearmand(gearmand: GearmandProcess) -> None:
    php = require_tool("php", php_with_gearman)
    done = run_example(
        sys.executable,
        "examples/interop_worker.py",
        php,
        "examples/php_client.php",
        servers=[gearmand.address],
    )
    assert done.stdout == PHP_OUTPUT


@pytest.mark.php
def test_php_client_on_the_embedded_server() -> None:
    php = require_tool("php", php_with_gearman)
    done = run_example(sys.executable, "examples/interop_worker.py", php, "examples/php_client.php")
    first, rest = done.stdout.split("\n", 1)
    assert first.startswith("(no GEARQ_SERVERS: using an embedded job server at")
    assert rest == PHP_OUTPUT


class Recorder(TaskMiddleware):
    """Records the name and outcome of every attempt the worker finishes."""

    def __init__(self) -> None:
        self.done: queue.Queue[tuple[str, str]] = queue.Queue()

    def after_task(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        self.done.put((ctx.name, outcome.status))

    def wait(self, count: int, timeout: float = 15) -> list[tuple[str, str]]:
        return [self.done.get(timeout=timeout) for _ in range(count)]


def test_shell_client_on_gearmand(gearmand: GearmandProcess) -> None:
    require_tool("gearman", lambda path: True)
    app = load_example("interop_worker").app
    app.configure(servers=gearmand.address)
    recorder = Recorder()
    with WorkerThread(app, concurrency=2, middleware=[recorder]):
        done = run_example("sh", "examples/shell_client.sh", servers=[gearmand.address])
        assert done.stdout == (
            "raw text.upper -> HELLO FROM THE SHELL\n"
            'shop.add -> {"v":1,"s":"ok","r":42}\n'
            "background shop.add queued\n"
        )
        # The background job (fire and forget) ran too.
        assert sorted(recorder.wait(3)) == [
            ("shop.add", "success"),
            ("shop.add", "success"),
            ("text.upper", "success"),
        ]
    app.close()


def test_interop_worker_runs_the_shell_client_on_gearmand(gearmand: GearmandProcess) -> None:
    require_tool("gearman", lambda path: True)
    done = run_example(
        sys.executable,
        "examples/interop_worker.py",
        "sh",
        "examples/shell_client.sh",
        servers=[gearmand.address],
    )
    assert done.stdout.splitlines() == [
        "raw text.upper -> HELLO FROM THE SHELL",
        'shop.add -> {"v":1,"s":"ok","r":42}',
        "background shop.add queued",
    ]


# -- multi_server_tasks.py --------------------------------------------------------------------


def round_spread(line: str) -> dict[str, int]:
    found = re.fullmatch(r"round \d: 12 tasks done \((.*)\)", line)
    assert found, line
    return {s: int(n) for s, n in (part.split(": ") for part in found.group(1).split(", "))}


def test_multi_server_tasks_survive_a_stopped_gearmand(
    gearmand_factory: Callable[..., GearmandProcess],
) -> None:
    gearmands = [gearmand_factory() for _ in range(3)]
    servers = [g.address for g in gearmands]
    example = str(EXAMPLES / "multi_server_tasks.py")
    with start_example(sys.executable, example, servers=servers, stdin=True) as run:
        run.wait_for(r"^servers: ")
        first = round_spread(run.wait_for(r"^round 1: .*").group(0))
        assert first == {s: 4 for s in servers}  # round robin over all three
        run.wait_for(r"^round 1 done: stop one of the servers now")
        gearmands[1].kill()  # a crash, not a clean stop
        assert run.proc.stdin is not None
        run.proc.stdin.write(f"{servers[1]}\n")
        run.proc.stdin.flush()
        assert run.wait_for(r"^stopped (\S+)$").group(1) == servers[1]
        left = {servers[0], servers[2]}
        for number in (2, 3):
            spread = round_spread(run.wait_for(rf"^round {number}: .*").group(0))
            assert set(spread) <= left and sum(spread.values()) == 12, spread
        run.finish(sig=None)


def test_multi_server_tasks_on_embedded_servers() -> None:
    done = run_example(sys.executable, "examples/multi_server_tasks.py")
    found = re.search(
        r"^\(no GEARQ_SERVERS: three embedded job servers, (.*)\)$", done.stdout, re.M
    )
    assert found, done.stdout
    servers = found.group(1).split(", ")
    lines = done.stdout.splitlines()
    rounds = [round_spread(line) for line in lines if line.startswith("round ")]
    assert len(rounds) == 3
    assert rounds[0] == {s: 4 for s in servers}
    assert f"stopped {servers[0]}" in lines
    for spread in rounds[1:]:
        assert set(spread) == set(servers[1:]) and sum(spread.values()) == 12


# -- prefork_cpu.py ---------------------------------------------------------------------------


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a fresh module (its app and tasks are new)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prefork_cpu_script_on_gearmand(gearmand: GearmandProcess) -> None:
    done = run_example(
        sys.executable,
        "examples/prefork_cpu.py",
        "--processes",
        "2",
        "--limits",
        "2000",
        "3000",
        "5000",
        "7919",
        servers=[gearmand.address],
    )
    found = re.findall(r"^primes below (\d+): (\d+) \(process (\d+)\)$", done.stdout, re.M)
    assert [(limit, count) for limit, count, _ in found] == [
        ("2000", "303"),
        ("3000", "430"),
        ("5000", "669"),
        ("7919", "999"),
    ]
    pids = {int(pid) for _, _, pid in found}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert re.search(r"^4 tasks in [\d.]+ s on [12] worker process\(es\)$", done.stdout, re.M)
    assert done.stdout.rstrip().endswith("worker exit codes: [0, 0]")


def test_prefork_cpu_module_with_a_thread_worker(gearmand: GearmandProcess) -> None:
    """The module as ``gearq worker`` imports it, served through the Python API."""
    module = load_example("prefork_cpu")
    app = module.app
    app.configure(servers=gearmand.address)
    with WorkerThread(app, concurrency=2):
        results = [module.count_primes.delay(n) for n in (10, 100, 1000)]
        answers = [r.get(timeout=20) for r in results]
    app.close()
    assert [(a["limit"], a["primes"]) for a in answers] == [(10, 4), (100, 25), (1000, 168)]
    assert {a["pid"] for a in answers} == {os.getpid()}  # threads: this very process


def test_prefork_cpu_module_under_gearq_worker_prefork(gearmand: GearmandProcess) -> None:
    """The command the module is written for: ``gearq worker examples.prefork_cpu --pool
    prefork``; the tasks run in its child processes, and SIGTERM stops it cleanly."""
    command = [sys.executable, "-m", "gearq", "worker", "examples.prefork_cpu"]
    command += ["--pool", "prefork", "-c", "2", "--servers", gearmand.address]
    with start_example(*command, servers=None) as worker:
        module = load_example("prefork_cpu")
        app = module.app
        app.configure(servers=gearmand.address)
        try:
            results = [module.count_primes.delay(n) for n in (10, 100, 1000, 7919)]
            answers = [r.get(timeout=30) for r in results]
        finally:
            app.close()
        assert [(a["primes"]) for a in answers] == [4, 25, 168, 999]
        pids = {a["pid"] for a in answers}
        assert not pids & {os.getpid(), worker.proc.pid}, "not run in child processes"
        worker.finish(signal.SIGTERM, timeout=40)


def test_every_example_is_run_by_a_test() -> None:
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_examples*.py"))
    examples = [p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".php", ".sh")]
    assert examples
    unrun = [name for name in examples if name.removesuffix(Path(name).suffix) not in tests]
    assert not unrun, f"examples no test runs: {unrun}"
