"""Per-connection state the broker keeps: what a connection is as a client and as a worker.

Replies are buffered per peer and written once per event (see :meth:`Peer.flush`): a client
that pipelines a thousand submits in one read then costs one ``send`` instead of a thousand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .jobs import Function, Job

__all__ = ["Peer"]


class Peer:
    """One connection (client, worker, admin, or all of them at once)."""

    __slots__ = (
        "_close",
        "_dirty",
        "_write",
        "abilities",
        "attached",
        "client_id",
        "closed",
        "exceptions",
        "fd",
        "held",
        "ip",
        "out",
        "rotation",
        "sleeping",
        "timeouts",
    )

    def __init__(
        self,
        *,
        fd: int,
        ip: str,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        dirty: list[Peer],
    ) -> None:
        self.fd = fd
        self.ip = ip
        self._write = write
        self._close = close
        self._dirty = dirty
        self.out: list[bytes] = []
        self.closed = False
        self.client_id = b"-"
        self.exceptions = False
        # Functions in CAN_DO order, each once; GRAB scans them round-robin from ``rotation``.
        self.abilities: list[Function] = []
        # CAN_DO_TIMEOUT per function, in seconds.
        self.timeouts: dict[Function, float] = {}
        self.rotation = 0
        self.sleeping = False
        # Jobs assigned to this worker, by handle.
        self.held: dict[bytes, Job] = {}
        # Jobs this connection waits on as a foreground client.
        self.attached: set[Job] = set()

    def send(self, data: bytes) -> None:
        if not self.out:
            self._dirty.append(self)
        self.out.append(data)

    def flush(self) -> None:
        out = self.out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if not self.closed:
            self._write(data)

    def close(self) -> None:
        """Close the connection after what was sent so far."""
        if not self.closed:
            self.flush()
            self.closed = True
            self._close()

    def __repr__(self) -> str:
        return f"<Peer fd={self.fd} {self.ip} {self.client_id!r}>"
