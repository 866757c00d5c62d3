"""TLS: Debian's gearmand has none, so stunnel4 terminates TLS in front of it."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gearq.client import AdminClient, AsyncClient
from gearq.net import ServerAddress
from gearq.testing import in_ci, pick_free_port

from .helpers import run, script


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (apt-get install stunnel4 openssl)"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def tls_front(gearmand, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """stunnel in the foreground accepting TLS and forwarding to gearmand; yields
    (address, certificate)."""
    openssl = _require("openssl")
    stunnel = shutil.which("stunnel4") or _require("stunnel")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = pick_free_port()
    config = tmp_path / "stunnel.conf"
    config.write_text(
        "foreground = yes\n"
        f"output = {tmp_path / 'stunnel.log'}\n"
        "[gearman]\n"
        f"accept = 127.0.0.1:{port}\n"
        f"connect = {gearmand.address}\n"
        f"cert = {cert}\n"
        f"key = {key}\n"
    )
    proc = subprocess.Popen(
        [stunnel, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "stunnel.log").read_text(errors="replace")
                    pytest.fail(f"stunnel did not start: {log}")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}", cert
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_jobs_and_admin_over_tls(gearmand, workers, tls_front):
    address, cert = tls_front
    workers(gearmand, "tls")  # the worker speaks plain TCP to gearmand directly
    context = ssl.create_default_context(cafile=str(cert))

    async def main():
        async with AsyncClient(address, ssl=context, heartbeat_interval=0.5) as client:
            job = await client.submit("tls", script(["data", "chunk"], ["complete", "secret"]))
            result = await job.result(10)
            echoed = await client.echo(b"x" * 100_000)
            return job, result, len(echoed)

    job, result, echoed = run(main())
    assert result == b"secret" and job.data == [b"chunk"] and echoed == 100_000
    assert job.server == ServerAddress.parse(address)
    with AdminClient(address, ssl=context) as admin:
        assert next(iter(admin.version().values())).result().startswith("1.")


def test_tls_with_an_untrusted_certificate_fails_to_connect(gearmand, tls_front):
    from gearq.client import NoServerAvailable
    from gearq.net import ConnectFailed

    address, _ = tls_front

    async def main():
        async with AsyncClient(address, ssl=ssl.create_default_context()) as client:
            with pytest.raises(NoServerAvailable) as info:
                await client.submit("tls", b"x")
            return info.value

    error = run(main())
    (cause,) = error.errors.values()
    assert isinstance(cause, ConnectFailed) and "CERTIFICATE" in str(cause).upper()


def test_no_lane_over_tls_and_asking_for_one_does_not_move_a_round_robin_on(gearmand, tls_front):
    # A lane needs a connection read in place, which TLS is not; the refusal must come
    # before the strategy is asked, or a round-robin would skip a server per call.
    address, cert = tls_front
    context = ssl.create_default_context(cafile=str(cert))

    async def main() -> tuple[object, list[bytes]]:
        async with AsyncClient(address, ssl=context, strategy="round_robin") as client:
            await client.ping()  # connected
            asked: list[bytes] = []
            pool = client.pool
            candidates = pool.candidates
            pool.candidates = lambda unique=b"": asked.append(unique) or candidates(unique)  # type: ignore[method-assign]
            return client.send_lane("tls", b"payload"), asked

    lane, asked = run(main())
    assert lane is None and asked == []
