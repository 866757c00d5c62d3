"""The health file ``gearq worker --health-file`` keeps and ``--check`` reads (pure: no
server; the end-to-end checks are in test_worker_cmd.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gearq.runtime.health import check_health, remove_health, write_health

FACTS: dict[str, Any] = {
    "state": "serving",
    "interval": 1.0,
    "pool": "prefork",
    "connected": 3,
    "connections": 3,
    "running": 1,
    "children": 4,
}


def test_a_fresh_file_of_a_live_serving_worker_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    write_health(path, FACTS)
    report = check_health(path)
    assert report.ok
    assert report.text == (
        f"worker pid {os.getpid()} serving: 3/3 connection(s) up, 1 job(s) running,"
        " pool prefork (4 child process(es))"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["h.json"]  # nothing left aside


def test_a_stale_file_is_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    write_health(path, FACTS)
    report = check_health(path, now=time.time() + 4.5)  # 3 intervals + 1 s is the limit
    assert not report.ok
    assert "has not reported for 4." in report.text
    assert check_health(path, now=time.time() + 3.5).ok


def test_a_worker_not_yet_serving_or_without_connections_is_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    write_health(path, {**FACTS, "state": "starting"})
    assert not check_health(path).ok
    write_health(path, {**FACTS, "connected": 0})
    report = check_health(path)
    assert not report.ok
    assert report.text.endswith("no job server connected")
    write_health(path, {**FACTS, "children": 0})  # children that cannot start
    report = check_health(path)
    assert not report.ok
    assert report.text.endswith("no child process is up")


def test_a_dead_pid_or_a_bad_file_is_unhealthy(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({**FACTS, "pid": 2**22 + 12345, "time": time.time()}))
    assert "is not running" in check_health(path).text
    path.write_text("{not json")
    assert "unreadable health file" in check_health(path).text
    assert "no health file" in check_health(tmp_path / "missing.json").text


def test_only_the_owner_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({**FACTS, "pid": os.getpid() + 1, "time": time.time()}))
    remove_health(path)
    assert path.exists()  # another worker's file (a restarted one) stays
    write_health(path, FACTS)
    remove_health(path)
    assert not path.exists()
