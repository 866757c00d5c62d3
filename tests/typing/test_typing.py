"""mypy checks the task API: right calls pass, wrong ``.delay()`` arguments fail, and the
result type flows from the task function to ``get()`` / ``await``.

``usage_ok.py`` must type-check under ``--strict``; each ``# R: <type>`` comment there is
the type ``reveal_type`` must show on that line. ``usage_bad.py`` must give an error on
every line marked ``# E: <text>`` (containing the text) and on no other line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OK = HERE / "usage_ok.py"
BAD = HERE / "usage_bad.py"

_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)$")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _marked(path: Path, marker: str) -> dict[int, str]:
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        _, sep, rest = line.partition(f"# {marker}: ")
        if sep:
            found[number] = rest.strip()
    return found


def _run_mypy() -> list[tuple[str, int, str, str]]:
    stdout, stderr, _status = mypy_api.run(
        [
            "--config-file", str(ROOT / "pyproject.toml"),
            "--strict",
            "--no-incremental",
            "--cache-dir", "/dev/null",
            "--show-error-codes",
            "--no-color-output",
            "--no-error-summary",
            "--hide-error-context",
            str(OK),
            str(BAD),
        ]
    )  # fmt: skip
    assert not stderr, stderr
    parsed = []
    for line in stdout.splitlines():
        match = _LINE.match(line)
        if match:
            parsed.append(
                (Path(match["path"]).name, int(match["line"]), match["kind"], match["text"])
            )
    assert parsed, stdout
    return parsed


def test_mypy_checks_the_task_api() -> None:
    """One mypy run (it takes seconds) for the three checks."""
    output = _run_mypy()
    _correct_usage_type_checks(output)
    _result_types_flow_to_get(output)
    _wrong_arguments_fail(output)


def _correct_usage_type_checks(mypy_output: list[tuple[str, int, str, str]]) -> None:
    errors = [(line, text) for name, line, kind, text in mypy_output
              if name == OK.name and kind == "error"]  # fmt: skip
    assert errors == []


def _result_types_flow_to_get(mypy_output: list[tuple[str, int, str, str]]) -> None:
    expected = _marked(OK, "R")
    assert len(expected) >= 20
    revealed = {
        line: text.removeprefix("Revealed type is ").strip('"')
        for name, line, kind, text in mypy_output
        if name == OK.name and kind == "note" and text.startswith("Revealed type is")
    }
    assert revealed == expected


def _wrong_arguments_fail(mypy_output: list[tuple[str, int, str, str]]) -> None:
    expected = _marked(BAD, "E")
    assert len(expected) >= 10
    errors: dict[int, list[str]] = {}
    for name, line, kind, text in mypy_output:
        if name == BAD.name and kind == "error":
            errors.setdefault(line, []).append(text)
    assert sorted(errors) == sorted(expected), errors
    for line, fragment in expected.items():
        assert any(fragment in text for text in errors[line]), (line, fragment, errors[line])
