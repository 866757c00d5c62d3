"""Submits as bytes: validation of everything gearmand would mishandle, and encoding.

Kept apart from the client so that the client module holds routing and failover only.
"""

from __future__ import annotations

import binascii
import math
import os
from datetime import datetime
from typing import TYPE_CHECKING

from ..protocol.codec import encode_request
from ..protocol.errors import ArgumentError
from ..protocol.limits import check_epoch as _check_epoch
from ..protocol.limits import check_function, check_unique
from ..protocol.packets import PacketType
from .errors import PayloadTooLarge
from .job import Job, Priority

if TYPE_CHECKING:
    from .client import AsyncClient

__all__ = ["FLUSH_AT", "encode_submit", "make_job", "new_unique", "new_uniques", "to_bytes"]

# Above this many buffered bytes a connection's queued submits are written at once, not at
# the end of the loop iteration, and a long burst lets the loop run (so replies are read
# while it is still being written, as a windowed pipeline would) and waits while the
# socket is backed up.
FLUSH_AT = 64 * 1024

_T = PacketType
SUBMIT_TYPES: dict[tuple[bool, Priority], PacketType] = {
    (False, Priority.NORMAL): _T.SUBMIT_JOB,
    (False, Priority.HIGH): _T.SUBMIT_JOB_HIGH,
    (False, Priority.LOW): _T.SUBMIT_JOB_LOW,
    (True, Priority.NORMAL): _T.SUBMIT_JOB_BG,
    (True, Priority.HIGH): _T.SUBMIT_JOB_HIGH_BG,
    (True, Priority.LOW): _T.SUBMIT_JOB_LOW_BG,
}
# "\0REQ" + the type, ready for the size to be appended.
HEADS = {t: b"\0REQ" + int(t).to_bytes(4, "big") for t in PacketType}
SUBMIT_HEADS = {key: HEADS[t] for key, t in SUBMIT_TYPES.items()}
NORMAL = Priority.NORMAL
FG_HEAD = HEADS[_T.SUBMIT_JOB]
BG_HEAD = HEADS[_T.SUBMIT_JOB_BG]
NUL = b"\0"
HEARTBEAT_TOKEN = b"gearq-heartbeat"  # gearq.net.connection's; its replies never reach us
MAX_FUNCTION_CACHE = 4096
# gearmand checks the reducer's length against 64 (a bug: it means the unique's).
MAX_REDUCER = 63


def new_unique() -> bytes:
    """A random 128-bit id as 32 hex digits (the default unique of background jobs).

    Straight from os.urandom each time: no shared state, so it is safe across threads and
    after fork, and batching the random bytes measured no faster.
    """
    return binascii.hexlify(os.urandom(16))


def new_uniques(count: int) -> list[bytes]:
    """``count`` random uniques like :func:`new_unique`'s, from one read of os.urandom."""
    digits = binascii.hexlify(os.urandom(16 * count))
    return [digits[i : i + 32] for i in range(0, 32 * count, 32)]


def to_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ArgumentError(f"{what} must be str or bytes, got {type(value).__name__}")


def _epoch(run_at: datetime | float) -> int:
    if isinstance(run_at, datetime):
        if run_at.tzinfo is None:
            raise ArgumentError("run_at must be a timezone-aware datetime (or epoch seconds)")
        seconds = run_at.timestamp()
    elif isinstance(run_at, (int, float)) and not isinstance(run_at, bool):
        seconds = float(run_at)
    else:
        raise ArgumentError(f"run_at must be a datetime or epoch seconds, got {run_at!r}")
    if not math.isfinite(seconds):
        raise ArgumentError(f"run_at {run_at!r} is not a finite time")
    # Rounded up: a job must never become due before the time asked for.
    return _check_epoch(max(0, math.ceil(seconds)))


def make_job(
    client: AsyncClient,
    fn: bytes,
    payload: bytes,
    background: bool,
    priority: Priority,
    unique: str | bytes | None,
    run_at: datetime | float | None,
    reducer: str | bytes | None,
    resubmit: bool,
    max_payload_size: int | None,
) -> Job:
    """Validate one submit (``fn`` already checked) and build its unsent Job."""
    if payload.__class__ is not bytes:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ArgumentError(f"payload must be bytes, got {type(payload).__name__}")
        payload = bytes(payload)
    if max_payload_size is not None and len(payload) > max_payload_size:
        raise PayloadTooLarge(
            f"payload is {len(payload)} bytes, the client's max_payload_size is {max_payload_size}"
        )
    if unique is None:
        unique_b = new_unique() if background else b""
    else:
        unique_b = check_unique(to_bytes(unique, "unique"))
    if priority.__class__ is not Priority:
        raise ArgumentError(f"priority must be a Priority, got {priority!r}")
    epoch = None
    if run_at is not None:
        if not background:
            raise ArgumentError("run_at needs background=True (SUBMIT_JOB_EPOCH)")
        if priority is not Priority.NORMAL:
            raise ArgumentError("run_at jobs are always NORMAL priority in gearmand")
        epoch = _epoch(run_at)
    reducer_b = None
    if reducer is not None:
        if run_at is not None:
            raise ArgumentError("a job cannot have both run_at and a reducer")
        if priority is not Priority.NORMAL:
            raise ArgumentError("reduce jobs have no priority variants")
        reducer_b = check_function(to_bytes(reducer, "reducer"))
        if len(reducer_b) > MAX_REDUCER:
            raise ArgumentError(f"reducer name is over {MAX_REDUCER} bytes")
    return Job(client, fn, payload, unique_b, background, priority, epoch, reducer_b, resubmit)


def encode_submit(job: Job) -> bytes:
    """The SUBMIT_* packet for a job."""
    fn = job.function
    unique = job.unique
    payload = job.payload
    if job.run_at is None and job.reducer is None:
        head = SUBMIT_HEADS[job.background, job.priority]
        size = len(fn) + len(unique) + len(payload) + 2
        return b"".join((head, size.to_bytes(4, "big"), fn, NUL, unique, NUL, payload))
    if job.run_at is not None:
        epoch = str(job.run_at).encode()
        return encode_request(_T.SUBMIT_JOB_EPOCH, fn, unique, epoch, payload)
    assert job.reducer is not None
    ptype = _T.SUBMIT_REDUCE_JOB_BACKGROUND if job.background else _T.SUBMIT_REDUCE_JOB
    # The empty "aggregate" field: gearmand waits for a 4th NUL (PROTOCOL says 3).
    return encode_request(ptype, fn, unique, job.reducer, b"", payload)
