"""The text admin protocol, with replies byte-compatible with gearmand 1.1.20 (reference §2).

gearmand's line endings are inconsistent and clients depend on them: ``OK``/``ERR`` lines end
in ``\\r\\n``, ``OK <value>`` lines in ``\\n``, and lists end with a ``.\\n`` line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from .broker import Broker, atoi
from .jobs import Priority

__all__ = ["AdminInfo", "execute"]

# gearmand closes the connection when a command line has more tokens than this.
MAX_TOKENS = 5

_OK = b"OK\r\n"


@dataclass(frozen=True)
class AdminInfo:
    """What ``version``, ``getpid`` and ``verbose`` report."""

    version: bytes
    verbose: bytes = b"ERROR"
    pid: int = field(default_factory=os.getpid)


def _unknown(command: bytes) -> bytes:
    return b"ERR UNKNOWN_COMMAND Unknown+server+command" + command + b"\r\n"


def _incomplete(command: bytes) -> bytes:
    return (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
        + command
        + b"\r\n"
    )


def execute(broker: Broker, info: AdminInfo, line: bytes) -> bytes | None:
    """The reply to one command line; None means: close the connection (as gearmand does)."""
    tokens = line.split()
    if len(tokens) > MAX_TOKENS:
        return None
    if not tokens:
        return _unknown(b"")
    command = tokens[0]
    handler = _COMMANDS.get(command.lower())
    if handler is None:
        return _unknown(command)
    return handler(broker, info, tokens)


def _status(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    lines = [
        b"%s\t%d\t%d\t%d\n" % (f.name, f.total, f.running, len(f.workers))
        for f in broker.function_list()
    ]
    lines.append(b".\n")
    return b"".join(lines)


def _priority_status(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    lines = [
        b"%s\t%d\t%d\t%d\t%d\n"
        % (
            f.name,
            f.queued[Priority.HIGH],
            f.queued[Priority.NORMAL],
            f.queued[Priority.LOW],
            len(f.workers),
        )
        for f in broker.function_list()
    ]
    lines.append(b".\n")
    return b"".join(lines)


def _workers(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    lines = []
    for peer in broker.peers:
        # Functions last-registered first, as gearmand lists them.
        names = b"".join(b" " + f.name for f in reversed(peer.abilities))
        lines.append(b"%d %s %s :%s\n" % (peer.fd, peer.ip.encode(), peer.client_id, names))
    lines.append(b".\n")
    return b"".join(lines)


def _show(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    what = [t.lower() for t in tokens[1:]]
    if not what:
        return _unknown(tokens[0])
    if what == [b"jobs"]:
        lines = [
            # RETRIES, IGNORE_JOB (always 0: dropped jobs are freed at once), JOB_QUEUED
            # (1 for background jobs, as gearmand shows it).
            b"%s\t%d\t0\t%d\n" % (job.handle, job.retries, job.background)
            for job in broker.jobs.values()
        ]
    elif what == [b"unique", b"jobs"]:
        lines = [job.unique + b"\n" for job in broker.jobs.values()]
    else:
        return b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    lines.append(b".\n")
    return b"".join(lines)


def _cancel(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    if len(tokens) != 3 or tokens[1].lower() != b"job":
        return _unknown(tokens[0])
    return _OK if broker.cancel(tokens[2]) else b"ERR UNKNOWN_JOB\r\n"


def _maxqueue(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    if len(tokens) < 2:
        return _incomplete(tokens[0])
    # One value sets all priorities, three set HIGH, NORMAL, LOW; no value resets to
    # unlimited. Like gearmand: atoi, negatives mean unlimited, unknown functions are
    # ignored with OK.
    values = [max(0, atoi(t)) for t in tokens[2:5]]
    limits = [0, 0, 0]
    for i in range(3):
        if values:
            limits[i] = values[min(i, len(values) - 1)]
    f = broker.functions.get(tokens[1])
    if f is not None:
        f.max_queue = limits
    return _OK


def _create(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    if len(tokens) < 3:
        return _incomplete(tokens[0])
    if tokens[1].lower() != b"function":
        return _unknown(tokens[0])
    # gearmand 1.1.20 creates the name minus its last character; this uses the name given.
    broker.create_function(tokens[2])
    return _OK


def _drop(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    if len(tokens) < 3:
        return _incomplete(tokens[0])
    if tokens[1].lower() != b"function":
        return _unknown(tokens[0])
    dropped = broker.drop_function(tokens[2])
    if dropped is None:
        return b"ERR function not found\r\n"
    if not dropped:
        return b"ERR there are still connected workers or executing clients\r\n"
    return _OK


def _version(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    return b"OK " + info.version + b"\n"


def _getpid(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    return b"OK %d\n" % info.pid


def _verbose(broker: Broker, info: AdminInfo, tokens: list[bytes]) -> bytes:
    return b"OK " + info.verbose + b"\n"


_COMMANDS: dict[bytes, Callable[[Broker, AdminInfo, list[bytes]], bytes]] = {
    b"status": _status,
    b"prioritystatus": _priority_status,
    b"workers": _workers,
    b"show": _show,
    b"cancel": _cancel,
    b"maxqueue": _maxqueue,
    b"create": _create,
    b"drop": _drop,
    b"version": _version,
    b"getpid": _getpid,
    b"verbose": _verbose,
}
