"""``gearq status / workers / ping / cancel / call`` against real gearmand processes.

Each test starts its own servers (``gearmand_factory``); "down" servers are a stopped
gearmand or a free port nobody listens on. Commands run as real subprocesses
(``python -m gearq``) where the exit status and the streams matter, and in process
(``gearq.cli.main``) where only the output does.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gearq.cli import main
from gearq.client import AdminClient, Client
from gearq.net import ServerAddress
from gearq.protocol.admin import JobInfo
from gearq.testing import GearmandProcess, pick_free_port, running_worker

from .admin_tasks import app as tasks_app

ROOT = Path(__file__).resolve().parents[2]
TASKS = "tests.cli.admin_tasks"
Factory = Callable[..., GearmandProcess]

CAN_DO = 1
SET_CLIENT_ID = 22


def gearq(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``python -m gearq ARGS`` from the repository root, GEARQ_* variables cleared."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEARQ_")}
    return subprocess.run(
        [sys.executable, "-m", "gearq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def dead_address() -> str:
    """A loopback port with nothing listening on it."""
    return f"127.0.0.1:{pick_free_port()}"


def submit_background(server: str, function: str, count: int) -> list[bytes]:
    """``count`` background jobs of ``function`` on ``server``; their handles."""
    with Client(server) as client:
        jobs = [client.submit(function, b"payload", background=True) for _ in range(count)]
        return [job.created(timeout=10) for job in jobs]


@contextlib.contextmanager
def raw_worker(server: GearmandProcess, client_id: str, *functions: str) -> Iterator[None]:
    """A connection that registers ``functions`` and never grabs: a worker that shows in
    ``status`` and ``workers`` without taking any job."""

    def packet(kind: int, data: bytes) -> bytes:
        return b"\0REQ" + struct.pack(">II", kind, len(data)) + data

    sock = socket.create_connection((server.host, server.port), timeout=10)
    try:
        sock.sendall(
            packet(SET_CLIENT_ID, client_id.encode())
            + b"".join(packet(CAN_DO, f.encode()) for f in functions)
        )
        with AdminClient(server.address) as admin:  # wait until gearmand has taken them in
            deadline = time.monotonic() + 10
            while True:
                known = {f.function for f in admin.status().raise_errors()[_addr(server)].result()}
                if set(functions) <= known:
                    break
                assert time.monotonic() < deadline, "the raw worker never registered"
                time.sleep(0.02)
        yield
    finally:
        sock.close()


def _addr(server: GearmandProcess) -> ServerAddress:
    return ServerAddress(server.host, server.port)


# --- status --------------------------------------------------------------------------------


@pytest.fixture
def two_up_one_down(gearmand_factory: Factory) -> tuple[GearmandProcess, GearmandProcess, str]:
    """Servers A and B with jobs (3 + 2 of adm.fn, 1 of adm.other on B), a raw worker for
    adm.fn on A, and a stopped gearmand as the third server."""
    a = gearmand_factory()
    b = gearmand_factory()
    stopped = gearmand_factory()
    stopped.stop()
    submit_background(a.address, "adm.fn", 3)
    submit_background(b.address, "adm.fn", 2)
    submit_background(b.address, "adm.other", 1)
    return a, b, stopped.address


def test_status_sums_over_servers_and_marks_the_down_one(
    two_up_one_down: tuple[GearmandProcess, GearmandProcess, str],
) -> None:
    a, b, down = two_up_one_down
    with raw_worker(a, "adm-worker", "adm.fn"):
        done = gearq("status", "--servers", f"{a.address},{b.address},{down}")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    head = lines[0].split()
    assert head[:4] == ["FUNCTION", "QUEUED", "RUNNING", "WORKERS"]
    assert [a.address, b.address, down] == head[-3:]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    # totals, then queued/running/workers per server, the stopped one "down"
    assert rows["adm.fn"][1:] == ["5", "0", "1", "|", "3/0/1", "2/0/0", "down"]
    assert rows["adm.other"][1:] == ["1", "0", "0", "|", "-", "1/0/0", "down"]
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "(2/3 up)" in total and total.split()[3:6] == ["6", "0", "1"]
    assert done.stderr.startswith(f"gearq status: {down} is down: cannot connect")
    assert len(done.stderr.splitlines()) == 1


def test_status_json_per_server(
    two_up_one_down: tuple[GearmandProcess, GearmandProcess, str],
) -> None:
    a, b, down = two_up_one_down
    done = gearq("status", "--json", "--servers", f"{a.address},{b.address},{down}")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["totals"] == {"queued": 6, "running": 0, "workers": 0}
    servers = {s["server"]: s for s in report["servers"]}
    assert servers[down]["up"] is False and "cannot connect" in servers[down]["error"]
    assert servers[a.address]["totals"] == {"queued": 3, "running": 0, "workers": 0}
    functions = {f["function"]: f for f in report["functions"]}
    assert functions["adm.fn"]["queued"] == 5
    assert functions["adm.fn"]["servers"][b.address] == {"queued": 2, "running": 0, "workers": 0}
    assert functions["adm.other"]["servers"][a.address] is None  # A does not know it
    assert down not in functions["adm.fn"]["servers"]


def test_status_per_server_blocks(
    two_up_one_down: tuple[GearmandProcess, GearmandProcess, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b, down = two_up_one_down
    assert main(["status", "--per-server", "--servers", f"{a.address},{b.address},{down}"]) == 1
    out = capsys.readouterr().out
    blocks = out.split("\n\n")
    assert blocks[0].splitlines()[0] == a.address
    assert blocks[0].split("adm.fn")[1].split()[:3] == ["3", "0", "0"]
    assert "adm.other" not in blocks[0]
    assert blocks[1].splitlines()[0] == b.address and "adm.other" in blocks[1]
    assert blocks[2].startswith(f"{down}  DOWN: ")


def test_status_with_an_app_lists_its_tasks_only(
    gearmand: GearmandProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    submit_background(gearmand.address, "admin.add", 2)
    submit_background(gearmand.address, "unrelated", 1)
    assert main(["status", "-A", TASKS, "--servers", gearmand.address, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    functions = {f["function"]: f["queued"] for f in report["functions"]}
    expected = {t.function_name.decode() for t in tasks_app.tasks.values()}
    assert set(functions) == expected  # unknown-to-the-server tasks shown as zeros
    assert functions["admin.add"] == 2 and functions["jq:admin.jq_echo"] == 0


def test_status_no_server_reachable_is_one_line(gearmand_factory: Factory) -> None:
    done = gearq("status", "--servers", f"{dead_address()},{dead_address()}")
    assert done.returncode == 3
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("gearq status: no server reachable (")


def test_status_uses_gearq_servers_from_the_environment(gearmand: GearmandProcess) -> None:
    submit_background(gearmand.address, "env.fn", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEARQ_")}
    env["GEARQ_SERVERS"] = gearmand.address
    done = subprocess.run(
        [sys.executable, "-m", "gearq", "status"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split() == ["env.fn", "1", "0", "0"]
    assert "|" not in done.stdout  # one server: no per-server columns


def test_bad_server_list_is_a_usage_error() -> None:
    done = gearq("status", "--servers", "host:notaport")
    assert done.returncode == 2
    assert done.stderr.startswith("gearq status: --servers: ") and "port" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_help_states_exit_statuses() -> None:
    done = gearq("status", "--help")
    assert done.returncode == 0
    assert "exit status" in done.stdout and "some server is down" in done.stdout


# --- workers -------------------------------------------------------------------------------


def test_workers_lists_registered_connections(gearmand_factory: Factory) -> None:
    a = gearmand_factory()
    down = dead_address()
    with raw_worker(a, "raw-worker-7", "w.one", "w.two"):
        done = gearq("workers", "--servers", f"{a.address},{down}")
        as_json = gearq("workers", "--json", "--servers", f"{a.address},{down}")
        everyone = gearq("workers", "--all", "--json", "--servers", a.address)
        filtered = gearq("workers", "--function", "w.nope", "--servers", a.address)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["SERVER", "FD", "IP", "CLIENT", "ID", "FUNCTIONS"]
    assert len(lines) == 2  # the admin connection itself has no functions: not a worker
    server, fd, ip, client_id, *functions = lines[1].split()
    assert (server, ip, client_id, functions) == (a.address, "127.0.0.1", "raw-worker-7",
                                                  ["w.one", "w.two"])  # fmt: skip
    assert fd.isdigit()
    assert f"gearq workers: {down} is down: cannot connect" in done.stderr

    report = json.loads(as_json.stdout)
    assert report[0]["workers"][0]["client_id"] == "raw-worker-7"
    assert sorted(report[0]["workers"][0]["functions"]) == ["w.one", "w.two"]
    assert report[1] == {"server": down, "up": False, "error": report[1]["error"], "workers": None}

    assert everyone.returncode == 0
    assert len(json.loads(everyone.stdout)[0]["workers"]) >= 2  # ours, plus the admin link
    assert filtered.returncode == 0 and "(no workers" in filtered.stdout


def test_workers_serving_tasks(
    gearmand: GearmandProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_worker(tasks_app, servers=gearmand.address, concurrency=1):
        assert main(["workers", "--function", "admin.add", "--servers", gearmand.address]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].endswith("admin.add")


# --- ping ----------------------------------------------------------------------------------


def test_ping_reports_round_trip_and_version(gearmand_factory: Factory) -> None:
    a, b = gearmand_factory(), gearmand_factory()
    down = dead_address()
    ok = gearq("ping", "--json", "-c", "3", "--servers", f"{a.address},{b.address}")
    assert ok.returncode == 0, ok.stderr
    for entry in json.loads(ok.stdout):
        assert entry["up"] is True and entry["version"].startswith("1.1.")
        rtt = entry["rtt_ms"]
        assert 0 < rtt["min"] <= rtt["avg"] <= rtt["max"]
    one_down = gearq("ping", "--servers", f"{a.address},{down}")
    assert one_down.returncode == 1
    rows = {line.split()[0]: line.split() for line in one_down.stdout.splitlines()[1:]}
    assert rows[a.address][1] == "up" and rows[a.address][3] == "ms"
    assert rows[down][1:4] == ["down", "-", "cannot"]
    all_down = gearq("ping", "--servers", down)
    assert all_down.returncode == 3


# --- cancel --------------------------------------------------------------------------------


def _jobs(server: str) -> dict[str, JobInfo]:
    with AdminClient(server) as admin:
        [result] = admin.show_jobs().raise_errors().values()
        return {j.handle: j for j in result.result()}


def test_cancel_names_its_server(gearmand_factory: Factory) -> None:
    a, b = gearmand_factory(), gearmand_factory()
    [handle_a] = submit_background(a.address, "cancel.fn", 1)
    [handle_b] = submit_background(b.address, "cancel.fn", 1)
    assert handle_a == handle_b  # each server numbers its own handles: the server decides
    handle = handle_a.decode()

    done = gearq("cancel", a.address, handle)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cancelled {a.address} {handle}"
    assert _jobs(a.address)[handle].ignored is True
    assert _jobs(b.address)[handle].ignored is False  # same handle, other server: untouched

    unknown = gearq("cancel", b.address, handle, "H:nowhere:99")
    assert unknown.returncode == 1
    assert unknown.stdout.strip() == f"cancelled {b.address} {handle}"
    assert unknown.stderr.strip() == f"gearq cancel: {b.address} H:nowhere:99: no such job"

    down = dead_address()
    unreachable = gearq("cancel", down, handle)
    assert unreachable.returncode == 3
    assert unreachable.stderr.startswith(f"gearq cancel: {down} is down: cannot connect")


# --- call ----------------------------------------------------------------------------------


@pytest.fixture
def served(gearmand: GearmandProcess) -> Iterator[str]:
    """A gearmand with a worker serving tests.cli.admin_tasks; yields its address."""
    with running_worker(tasks_app, servers=gearmand.address, concurrency=4):
        yield gearmand.address


def test_call_prints_the_result(served: str) -> None:
    with_app = gearq("call", "-A", TASKS, "-s", served, "admin.add", "2", "3")
    assert (with_app.returncode, with_app.stdout, with_app.stderr) == (0, "5\n", "")
    by_name = gearq("call", "-s", served, "admin.add", "40", "2")
    assert (by_name.returncode, by_name.stdout) == (0, "42\n")


def test_call_argument_forms(served: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "call",
        "-s",
        served,
        "admin.echo",
        "1",
        "-2.5",
        "hello",
        '"7"',
        "[1, 2]",
        "null",
        "k=true",
        "s=a b",
        'j={"x": [1]}',
        "--args",
        "[0]",
        "--kwargs",
        '{"z": "w"}',
    ]
    assert main(argv) == 0
    value = json.loads(capsys.readouterr().out)
    assert value == {
        "args": [0, 1, -2.5, "hello", "7", [1, 2], None],
        "kwargs": {"z": "w", "k": True, "s": "a b", "j": {"x": [1]}},
    }


def test_call_streams_chunks_as_they_come(served: str) -> None:
    done = gearq("call", "-A", TASKS, "-s", served, "admin.rows", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['"row 1"', '"row 2"', '"row 3"']
    # Without the app the command cannot know it is a generator task: same output.
    plain = gearq("call", "-s", served, "admin.rows", "2")
    assert plain.stdout.splitlines() == ['"row 1"', '"row 2"']


def test_call_remote_error_is_one_line_and_exit_1(served: str) -> None:
    done = gearq("call", "-A", TASKS, "-s", served, "admin.divide", "1", "0")
    assert done.returncode == 1
    assert done.stdout == ""
    assert (
        done.stderr
        == "gearq call: task 'admin.divide' failed: ZeroDivisionError: division by zero\n"
    )
    verbose = gearq("call", "-s", served, "admin.divide", "1", "0", "--traceback")
    assert verbose.returncode == 1
    assert verbose.stderr.splitlines()[1] == "Traceback (most recent call last):"
    assert "return a / b" in verbose.stderr


def test_call_uses_the_tasks_queue_and_serializer(
    served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The task is on queue "jq" with the json serializer: -A knows, by name it must be told.
    assert main(["call", "-A", TASKS, "-s", served, "admin.jq_echo", '{"a": [1, 2]}']) == 0
    assert json.loads(capsys.readouterr().out) == {"a": [1, 2]}
    argv = ["call", "-s", served, "jq:admin.jq_echo", "x", "--serializer", "json"]
    assert main(argv) == 0
    assert capsys.readouterr().out == '"x"\n'


def test_call_background_prints_the_handle(gearmand: GearmandProcess) -> None:
    done = gearq("call", "-s", gearmand.address, "bg.nobody", "1", "--background")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["server"] == gearmand.address and report["function"] == "bg.nobody"
    assert report["unique"] == f"b:{report['id']}"
    jobs = _jobs(gearmand.address)
    assert report["handle"] in jobs and jobs[report["handle"]].queued is True


def test_call_timeout(gearmand: GearmandProcess) -> None:
    started = time.monotonic()
    done = gearq("call", "-s", gearmand.address, "nobody.serves", "--timeout", "0.5")
    assert done.returncode == 1
    assert done.stderr == (
        "gearq call: task 'nobody.serves': no result within 0.5 s (the job may still run)\n"
    )
    assert time.monotonic() - started < 20


def test_call_errors_are_one_line(served: str) -> None:
    cases = [
        (["-A", TASKS, "admin.ad", "1"], 2, "unknown task 'admin.ad' in app tests.cli.admin_tasks;"
         " did you mean admin.add"),
        (["-A", "tests.cli.no_such_module", "x"], 2, "-A tests.cli.no_such_module: no module"),
        (["-A", f"{TASKS}:add", "x"], 2, f"-A {TASKS}:add: add is a Task, not a gearq App"),
        (["-A", "json", "x"], 2, "-A json: module 'json' holds no gearq App"),
        (["admin.add", "--kwargs", "[1]"], 2, "--kwargs must be a JSON object"),
        (["admin.add", "--kwargs", "{"], 2, "--kwargs: not valid JSON"),
        (["admin.add", "x=1", "2"], 2, "positional argument '2' after a NAME=VALUE argument"),
        (["admin.add", "x=1", "x=2"], 2, "keyword argument 'x' given twice"),
        (["nobody.serves", "--require-worker"], 1, "no worker serves task 'nobody.serves'"),
    ]  # fmt: skip
    for argv, code, start in cases:
        done = gearq("call", "-s", served, *argv)
        assert done.returncode == code, (argv, done.stderr)
        assert done.stderr.startswith(f"gearq call: {start}"), (argv, done.stderr)
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stdout == ""


def test_call_no_server_reachable() -> None:
    down = dead_address()
    done = gearq("call", "-s", down, "admin.add", "1", "2")
    assert done.returncode == 3
    assert done.stderr.startswith(f"gearq call: no server reachable ({down}: cannot connect")
    assert len(done.stderr.splitlines()) == 1


def test_call_progress_bar_on_a_terminal(served: str) -> None:
    """stderr on a pty: the bar is redrawn in place from the task's WORK_STATUS packets;
    stdout (a pipe) gets only the result."""
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEARQ_")}
    argv = [sys.executable, "-m", "gearq", "call", "-A", TASKS, "-s", served,
            "admin.steps", "4", "pause=0.15"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 20)
            assert ready, "no output from gearq call"
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            screen += data
        assert proc.stdout is not None
        out = proc.stdout.read()
        assert proc.wait(20) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == b'"4 steps"\n'
    text = screen.decode()
    for step in range(1, 5):
        assert f"] {step}/4 " in text  # each status packet redrew the bar
    assert "[" + "#" * 24 + "] 4/4 100%" in text
    assert text.endswith("\r\x1b[K")  # the bar is wiped before the result is printed
