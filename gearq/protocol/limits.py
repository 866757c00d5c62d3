"""Checks on values before they are sent, for what gearmand 1.1.20 mishandles.

gearmand answers some bad values with silence or a dropped connection instead of an ERROR
packet. A client that matches replies in order would then pair later replies with the wrong
requests, so every such value is refused here, before it reaches the wire.
"""

from __future__ import annotations

from .errors import ArgumentError

__all__ = [
    "MAX_CLIENT_ID",
    "MAX_EPOCH",
    "MAX_FUNCTION",
    "MAX_HANDLE",
    "MAX_SMALL_PACKET",
    "MAX_UNIQUE",
    "check_client_id",
    "check_epoch",
    "check_function",
    "check_handle",
    "check_unique",
]

# 64 bytes are stored truncated and corrupt the job's payload; 65 and more are refused.
MAX_UNIQUE = 63
MAX_HANDLE = 63
# libgearman's GEARMAN_FUNCTION_MAX_SIZE; gearmand itself drops the connection near 8 KiB.
MAX_FUNCTION = 512
# gearmand truncates client ids to 127 bytes.
MAX_CLIENT_ID = 127
# Year 9999: far beyond any real schedule, far below where gearmand's strtoll overflows and
# the submit gets no reply at all.
MAX_EPOCH = 253_402_300_799
# Packets without a data part must fit gearmand's 8 KiB receive buffer with their header.
MAX_SMALL_PACKET = 8192 - 12


def check_function(name: bytes) -> bytes:
    """A function name gearmand will accept and list: 1 to 512 bytes, no NUL or whitespace."""
    if not name:
        raise ArgumentError("function name is empty")
    if len(name) > MAX_FUNCTION:
        raise ArgumentError(f"function name is {len(name)} bytes, the limit is {MAX_FUNCTION}")
    # Whitespace would make the admin protocol's space-separated replies ambiguous.
    if 0 in name or any(c in name for c in b" \t\r\n"):
        raise ArgumentError(f"function name {name!r} contains NUL or whitespace")
    return name


def check_unique(unique: bytes) -> bytes:
    """A unique id of at most 63 bytes without NUL (the empty unique means none)."""
    if len(unique) > MAX_UNIQUE:
        raise ArgumentError(
            f"unique id is {len(unique)} bytes, gearmand keeps at most {MAX_UNIQUE}"
            " (hash longer keys)"
        )
    if 0 in unique:
        raise ArgumentError(f"unique id {unique!r} contains a NUL byte")
    return unique


def check_handle(handle: bytes) -> bytes:
    """A job handle: 1 to 63 bytes, no NUL or whitespace."""
    if not handle or len(handle) > MAX_HANDLE:
        raise ArgumentError(f"job handle must be 1 to {MAX_HANDLE} bytes, got {len(handle)}")
    if 0 in handle or any(c in handle for c in b" \t\r\n"):
        raise ArgumentError(f"job handle {handle!r} contains NUL or whitespace")
    return handle


def check_epoch(epoch: int) -> int:
    """A run-at time in whole seconds since 1970, within what gearmand can parse."""
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ArgumentError(f"epoch must be whole seconds as an int, got {epoch!r}")
    if not 0 <= epoch <= MAX_EPOCH:
        raise ArgumentError(f"epoch {epoch} is outside 0..{MAX_EPOCH}")
    return epoch


def check_client_id(client_id: bytes) -> bytes:
    """A client id that shows up readably in the admin ``workers`` list."""
    if not client_id or len(client_id) > MAX_CLIENT_ID:
        raise ArgumentError(f"client id must be 1 to {MAX_CLIENT_ID} bytes")
    if 0 in client_id or any(c in client_id for c in b" \t\r\n"):
        raise ArgumentError(f"client id {client_id!r} contains NUL or whitespace")
    return client_id
