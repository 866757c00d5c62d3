"""Jobs from gearq completed by workers that are not gearq: libgearman's ``gearman -w``
command and a worker written with PHP's gearman extension."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gearq.client import AsyncClient, JobException, JobFailed
from gearq.net import ServerAddress
from gearq.testing import GearmandProcess, in_ci

from .helpers import run, wait_until

PHP_WORKER = r"""<?php
$worker = new GearmanWorker();
$worker->addServer("127.0.0.1", (int)$argv[1]);
$worker->addFunction("php_events", function (GearmanJob $job) {
    $job->sendStatus(1, 3);
    $job->sendData("chunk-1");
    $job->sendWarning("careful");
    $job->sendData("chunk-2");
    $job->sendStatus(3, 3);
    return strrev($job->workload());
});
$worker->addFunction("php_exception", function (GearmanJob $job) {
    $job->sendException("php says no: " . $job->workload());
    $job->setReturn(GEARMAN_WORK_EXCEPTION);
    return "";
});
$worker->addFunction("php_fail", function (GearmanJob $job) {
    $job->setReturn(GEARMAN_WORK_FAIL);
    return "";
});
$worker->addFunction("php_unique", function (GearmanJob $job) {
    return $job->unique();
});
echo "ready\n";
// work() returns false after a failed or excepted job; keep going regardless.
while (true) {
    $worker->work();
}
"""


def _missing(message: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _has_worker(server: GearmandProcess, function: str) -> bool:
    from gearq.client import AdminClient

    with AdminClient(server.address) as admin:
        rows = admin.status()[ServerAddress.parse(server.address)].result()
    return any(r.function == function and r.workers > 0 for r in rows)


@pytest.fixture
def php_worker(gearmand: GearmandProcess, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    php = shutil.which("php")
    if php is None:
        _missing("php is not installed (apt-get install php-cli php-gearman)")
    assert php is not None
    modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout.split()
    if "gearman" not in [m.lower() for m in modules]:
        _missing("PHP's gearman extension is missing (apt-get install php-gearman)")
    script = tmp_path / "worker.php"
    script.write_text(PHP_WORKER)
    proc = subprocess.Popen(
        [php, str(script), str(gearmand.port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        wait_until(lambda: _has_worker(gearmand, "php_unique"), what="the PHP worker")
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_php_worker_sends_data_warning_status_and_result(gearmand, php_worker):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            job = await client.submit("php_events", b"abc\x00\xff")
            seen = []
            for event in ("data", "warning", "status", "complete"):
                job.on(event, lambda j, v, event=event: seen.append((event, v)))
            return await job.result(10), seen

    result, seen = run(main())
    assert result == b"\xff\x00cba"  # binary-safe both ways
    assert seen == [
        ("status", (1, 3)),
        ("data", b"chunk-1"),
        ("warning", b"careful"),
        ("data", b"chunk-2"),
        ("status", (3, 3)),
        ("complete", b"\xff\x00cba"),
    ]


def test_php_worker_exception_and_fail(gearmand, php_worker):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            exc_job = await client.submit("php_exception", b"input")
            fail_job = await client.submit("php_fail", b"input")
            with pytest.raises(JobException) as info:
                await exc_job.result(10)
            with pytest.raises(JobFailed):
                await fail_job.result(10)
            # The worker is still serving after both.
            unique_job = await client.submit("php_unique", b"", unique="from-gearq")
            return info.value, await unique_job.result(10)

    error, unique = run(main())
    assert error.data == b"php says no: input"
    assert unique == b"from-gearq"


@pytest.fixture
def cli_workers(gearmand: GearmandProcess) -> Iterator[None]:
    gearman = shutil.which("gearman")
    if gearman is None:
        _missing("the gearman command is not installed (apt-get install gearman-tools)")
    assert gearman is not None
    base = [gearman, "-h", gearmand.host, "-p", str(gearmand.port), "-w"]
    procs = [
        subprocess.Popen([*base, "-f", "cli_upper", "--", "tr", "a-z", "A-Z"]),
        subprocess.Popen([*base, "-f", "cli_cat", "--", "cat"]),
        # -n: a WORK_DATA packet per output line.
        subprocess.Popen([*base, "-n", "-f", "cli_lines", "--", "cat"]),
        subprocess.Popen([*base, "-f", "cli_false", "--", "false"]),
    ]
    try:
        for function in ("cli_upper", "cli_cat", "cli_lines", "cli_false"):
            wait_until(lambda f=function: _has_worker(gearmand, f), what=function)
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def test_gearman_cli_worker(gearmand, cli_workers):
    async def main():
        async with AsyncClient(gearmand.address) as client:
            upper = await client.submit("cli_upper", b"hello gearq")
            binary = await client.submit("cli_cat", bytes(range(256)))
            lines = await client.submit("cli_lines", b"a\nb\nc\n")
            false = await client.submit("cli_false", b"x")
            results = [await upper.result(10), await binary.result(10)]
            await lines.result(10)
            with pytest.raises(JobFailed):
                await false.result(10)
            return results, lines.data

    (upper, binary), data = run(main())
    assert upper == b"HELLO GEARQ"
    assert binary == bytes(range(256))
    # libgearman 1.1.20's CLI sends its whole output so far with each line, not just the
    # new line; either way the last line of each packet is the line that was just read.
    assert [chunk.splitlines()[-1] for chunk in data] == [b"a", b"b", b"c"]
