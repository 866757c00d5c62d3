"""Jobs from libgearman's ``gearman`` CLI and from PHP's ext-gearman, served by gearq.

Without ``gearman`` (gearman-tools) or ``php`` + ``php-gearman`` these tests are skipped,
or fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gearq.testing import GearmandProcess, in_ci
from gearq.worker import Job

from .helpers import make_worker, run, serving

PHP_CLIENT = Path(__file__).with_name("php_client.php")


def _require(ok: bool, what: str) -> None:
    if ok:
        return
    if in_ci():
        pytest.fail(f"CI=true and {what}", pytrace=False)
    pytest.skip(what)


def _require_gearman_cli() -> None:
    _require(shutil.which("gearman") is not None, "the gearman CLI (gearman-tools) is missing")


def _require_php_gearman() -> None:
    php = shutil.which("php")
    modules = ""
    if php is not None:
        modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.lower()
    ok = "gearman" in modules.split()
    _require(ok, "php with the gearman extension (php-cli, php-gearman) is missing")


async def _echo(job: Job) -> bytes:
    job.send_status(1, 2)
    job.send_data(b"[data]")
    job.send_warning(b"[warning]")
    return job.payload[::-1] + b"/" + job.unique


def _boom(job: Job) -> bytes:
    raise ValueError("bad thing")


def _failing(job: Job) -> None:
    job.fail()


def _worker(address: str):  # type: ignore[no-untyped-def]
    worker = make_worker(address)
    worker.register("echo", _echo)
    worker.register("boom", _boom)
    worker.register("failing", _failing)
    return worker


async def _exec(*cmd: str, timeout: float = 15) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


def test_gearman_cli_client_jobs_are_served(gearmand: GearmandProcess) -> None:
    """libgearman's ``do`` joins WORK_DATA into the result and prints the status; warnings
    go to stderr. WORK_FAIL makes it print "Job failed". (The CLI cannot ask for
    exceptions, and libgearman hangs on the WORK_FAIL gearmand sends instead, so there is
    no exception case here: that is a libgearman bug, not something a worker can fix.)"""
    _require_gearman_cli()
    base = ("gearman", "-h", "127.0.0.1", "-p", str(gearmand.port))

    async def main() -> None:
        async with serving(_worker(gearmand.address)):
            code, out, err = await _exec(*base, "-u", "cli-unique", "-f", "echo", "hello")
            assert code == 0, err
            assert out == b"[data]olleh/cli-unique50% Complete\n"
            assert err == b"[warning]"
            code, out, err = await _exec(*base, "-f", "failing", "x")
            assert (code, err) == (1, b"Job failed\n")
            code, out, err = await _exec(*base, "-b", "-f", "echo", "background")
            assert code == 0, err

    run(main())


def test_php_client_jobs_are_served_with_status_data_and_exceptions(
    gearmand: GearmandProcess,
) -> None:
    _require_php_gearman()

    async def main() -> dict[str, object]:
        async with serving(_worker(gearmand.address)):
            code, out, err = await _exec("php", str(PHP_CLIENT), str(gearmand.port))
            assert code == 0, (out, err)
        result: dict[str, object] = json.loads(out)
        return result

    result = run(main())
    do_normal = result["doNormal"]
    assert isinstance(do_normal, list)
    # doNormal joins WORK_DATA into the result; PHP generates a unique when none is given.
    assert do_normal[0].startswith("[data]olleh/") and len(do_normal[0]) > len("[data]olleh/")
    # doNormal only reports that an exception happened; the task API below gets its text.
    assert result["doNormalException"] == [None, "GEARMAN_WORK_EXCEPTION"]
    events = result["events"]
    assert isinstance(events, list)
    by_kind: dict[str, list[list[object]]] = {}
    for event in events:
        by_kind.setdefault(event[0], []).append(event[1:])
    assert by_kind["status"] == [[1, 2]]
    assert by_kind["data"] == [["[data]"]]
    assert by_kind["warning"] == [["[warning]"]]
    assert by_kind["complete"] == [["1ksat/php-unique", "php-unique"]]
    assert by_kind["fail"] == [["failing"]]
    [[exception]] = by_kind["exception"]
    assert isinstance(exception, str)
    first, _, rest = exception.partition("\n")
    assert first == "ValueError: bad thing" and "Traceback" in rest
