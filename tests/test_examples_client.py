"""The client examples, run as a user runs them: ``python examples/<name>.py``.

Each runs in a subprocess against real gearmand servers named by ``GEARQ_SERVERS`` (or its
first argument), and once on the embedded job server it falls back to when nothing is
configured. The checks read what the example prints, so an example that breaks fails here.
The last tests keep ``docs/client.md`` in step with ``gearq.client``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import gearq.client
from gearq.client.pool import UniqueHashStrategy
from gearq.net import ServerAddress
from gearq.testing import GearmandProcess, pick_free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CLIENT_DOC = ROOT / "docs" / "client.md"
ACCOUNTS = [f"acct-{n:02d}" for n in range(1, 13)]


def run_example(
    name: str, *args: str, servers: list[str] | None = None, timeout: float = 45
) -> str:
    """Run ``examples/<name>``; return its stdout, failing on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k != "GEARQ_SERVERS"}
    if servers is not None:
        env["GEARQ_SERVERS"] = ",".join(servers)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


# -- client_basics.py -------------------------------------------------------------------------


def check_basics(out: str, server: str) -> None:
    assert f"word_count -> 9 (on {server})" in out
    queued = re.search(r"^render_pages queued as (H:\S+) on (\S+)$", out, re.M)
    assert queued, out
    assert queued.group(2) == server
    progress = re.findall(r"^  running (\d)/5$", out, re.M)
    assert progress, f"no progress seen:\n{out}"
    assert progress == sorted(progress)
    assert out.rstrip().endswith("render_pages finished")


def test_client_basics_on_gearmand(gearmand: GearmandProcess) -> None:
    check_basics(run_example("client_basics.py", servers=[gearmand.address]), gearmand.address)


def test_client_basics_server_argument_wins(gearmand: GearmandProcess) -> None:
    nobody = f"127.0.0.1:{pick_free_port()}"
    out = run_example("client_basics.py", gearmand.address, servers=[nobody])
    check_basics(out, gearmand.address)


def test_client_basics_on_the_embedded_server() -> None:
    out = run_example("client_basics.py")
    server = re.search(r"embedded job server at (\S+)\)", out)
    assert server, out
    check_basics(out, server.group(1))


# -- async_client.py --------------------------------------------------------------------------


def check_async(out: str) -> None:
    assert re.search(r"^checksum: 500 results in [\d.]+ s, first 19e6bd2cd5bf$", out, re.M), out
    rows = re.findall(r"^  data: row (\d): (\d+) units$", out, re.M)
    assert rows == [(str(n), str(17 * n)) for n in range(1, 5)]
    assert re.findall(r"^  progress (\d)/4$", out, re.M) == ["1", "2", "3", "4"]
    assert "export_report -> 4 rows exported" in out
    assert "slow_lookup: job not done within 0.5 s (client-side timeout) (state timeout)" in out


def test_async_client_on_gearmand(gearmand: GearmandProcess) -> None:
    check_async(run_example("async_client.py", servers=[gearmand.address]))


def test_async_client_on_the_embedded_server() -> None:
    check_async(run_example("async_client.py"))


# -- multi_server.py --------------------------------------------------------------------------


def ranking(servers: list[str], account: str) -> list[str]:
    """The servers in the order unique_hash tries them for ``account``'s job."""
    strategy = UniqueHashStrategy()
    strategy.bind([ServerAddress.parse(s) for s in servers])
    return [servers[i] for i in strategy.rank(f"sync:{account}".encode())]


def check_multi(out: str, servers: list[str], down: str) -> None:
    """Every account ran on the live server its unique ranks highest; none on ``down``."""
    placed = dict(re.findall(r"^(acct-\d\d) -> (\S+): synced \1$", out, re.M))
    assert sorted(placed) == ACCOUNTS, out
    for account, server in placed.items():
        expected = next(s for s in ranking(servers, account) if s != down)
        assert server == expected, f"{account} went to {server}, expected {expected}"
    assert f"! {down} is unavailable, skipping it: ConnectFailed" in out
    assert out.count("is unavailable") == 1  # then skipped for its recover time
    for server in servers:
        took = sum(1 for s in placed.values() if s == server)
        assert f"{server} took {took} job(s)" in out


def test_multi_server_fails_over_from_a_dead_gearmand(
    gearmand_factory: Callable[..., GearmandProcess],
) -> None:
    gearmands = [gearmand_factory() for _ in range(3)]
    servers = [g.address for g in gearmands]
    # Kill the server most accounts would pick, so that some accounts must move.
    busiest = Counter(ranking(servers, a)[0] for a in ACCOUNTS).most_common(1)[0][0]
    gearmands[servers.index(busiest)].kill()
    check_multi(run_example("multi_server.py", servers=servers), servers, busiest)


def test_multi_server_on_embedded_servers() -> None:
    out = run_example("multi_server.py")
    found = re.search(r"three embedded job servers; (\S+) is stopped\)", out)
    assert found, out
    servers = re.findall(r"^(\S+) took \d+ job\(s\)$", out, re.M)
    assert len(servers) == 3
    check_multi(out, servers, found.group(1))


# -- docs/client.md ---------------------------------------------------------------------------


def test_client_doc_names_every_public_name() -> None:
    text = CLIENT_DOC.read_text()
    missing = [n for n in gearq.client.__all__ if not re.search(rf"`{n}\b", text)]
    assert not missing, f"docs/client.md does not mention {missing}"


def test_client_doc_python_snippets_compile() -> None:
    blocks = re.findall(r"```python\n(.*?)```", CLIENT_DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        compile(block, str(CLIENT_DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
