"""The blocking twins of the bulk calls: Client.submit_background_many and Client.run_many,
against real gearmand, from one thread and from several."""

from __future__ import annotations

import threading

import pytest

from gearq.client import (
    BackgroundBatch,
    BatchFailed,
    Client,
    ForegroundBatch,
    JobException,
    JobTimeout,
    NoServerAvailable,
)
from gearq.protocol import ArgumentError

from .helpers import script, totals


def test_blocking_run_many_returns_every_result_in_order(gearmand, workers):
    worker = workers(gearmand, "sync_many")
    payloads = [b"p%d" % i for i in range(150)] + [script(["exception", "bad"])]
    with Client(gearmand.address) as client:
        batch = client.run_many("sync_many", payloads, in_flight=13)
        assert client.submit("sync_many", b"after").result(timeout=5) == b"after"
    assert isinstance(batch, ForegroundBatch) and batch.done
    assert batch.results[:150] == payloads[:150] and batch.results[150] is None
    assert isinstance(batch.errors[150], JobException) and batch.errors[150].data == b"bad"
    with pytest.raises(BatchFailed):
        batch.result_nowait()
    seen = {handle: payload for handle, _fn, _unique, payload in worker.jobs}
    assert all(seen[batch.handles[i]] == payloads[i] for i in range(151))


def test_blocking_run_many_from_several_threads(gearmand, workers):
    workers(gearmand, "sync_many_t")
    results: dict[int, list[bytes | None]] = {}
    with Client(gearmand.address) as client:

        def work(n: int) -> None:
            batch = client.run_many("sync_many_t", [b"%d-%d" % (n, i) for i in range(40)])
            results[n] = batch.results

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == {n: [b"%d-%d" % (n, i) for i in range(40)] for n in range(4)}


def test_blocking_run_many_timeout_and_bad_values(gearmand):
    with Client(gearmand.address) as client:
        with pytest.raises(ArgumentError, match="unique"):
            client.run_many("sync_many_bad", [b"x"], uniques=["u" * 64])
        batch = client.run_many("sync_many_none", [b"x", b"y"], timeout=0.3)  # no worker
    assert sorted(batch.errors) == [0, 1]
    assert all(isinstance(e, JobTimeout) for e in batch.errors.values())
    assert totals([gearmand], "sync_many_bad") == [0]


def test_blocking_submit_background_many(gearmand):
    uniques = [f"sb{i}" for i in range(100)]
    with Client(gearmand.address) as client:
        batch = client.submit_background_many("sync_bg_many", [b"x"] * 100, uniques=uniques)
        status = client.get_status_unique("sb42")
    assert isinstance(batch, BackgroundBatch) and batch.done and not batch.errors
    handles = batch.result_nowait()
    assert len(set(handles)) == 100 and status.known
    assert totals([gearmand], "sync_bg_many") == [100]


def test_blocking_bulk_calls_with_every_server_down(two_servers):
    for server in two_servers:
        server.kill()
    with Client([s.address for s in two_servers]) as client:
        with pytest.raises(NoServerAvailable):
            client.submit_background_many("sync_down", [b"x"] * 3)
        batch = client.run_many("sync_down", [b"x"] * 3)
    assert all(isinstance(e, NoServerAvailable) for e in batch.errors.values())
    assert len(batch.errors) == 3
    with pytest.raises(BatchFailed):
        batch.result_nowait()
