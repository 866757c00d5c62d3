"""The pytest plugin is registered as a ``pytest11`` entry point: an installed gearq gives
every pytest run its fixtures, and must not disturb runs that do not use them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from gearq.testing.gearmand import ENV_BINARY

PLUGIN = "gearq.testing.pytest_plugin"
_OUTER_SETTINGS = ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")

USER_TESTS = """
def test_unrelated():
    assert 1 + 1 == 2

def test_plugin_fixtures(gearq_worker_options, gearq_app):
    assert gearq_worker_options == {"concurrency": 4}
    assert gearq_app.main == "gearq-test"
"""


def _pytest(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Plugin autoload stays on (that is what is under test), whatever the outer run set.
    outer = {k: v for k, v in os.environ.items() if k not in _OUTER_SETTINGS}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path,
        env={**outer, **env},
    )


def test_the_entry_point_names_the_plugin_module() -> None:
    found = [ep for ep in entry_points(group="pytest11") if ep.value == PLUGIN]
    # Named as the module, so `pytest_plugins = [PLUGIN]` does not register it twice.
    assert [ep.name for ep in found] == [PLUGIN]


@pytest.mark.slow
def test_a_fresh_pytest_run_has_the_fixtures_without_gearmand(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    # No gearmand anywhere, even under CI=true: nothing starts until a server is asked for.
    done = _pytest(tmp_path, **{ENV_BINARY: str(tmp_path / "no-gearmand"), "CI": "true"})
    assert "2 passed" in done.stdout, done.stdout + done.stderr
    # The user can still switch it off.
    off = _pytest(tmp_path, "-p", f"no:{PLUGIN}")
    assert "1 passed, 1 error" in off.stdout, off.stdout + off.stderr
    assert "fixture 'gearq_worker_options' not found" in off.stdout


@pytest.mark.slow
def test_an_explicit_pytest_plugins_line_still_works(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(f"pytest_plugins = [{PLUGIN!r}]\n")
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    done = _pytest(tmp_path)
    assert "2 passed" in done.stdout, done.stdout + done.stderr
