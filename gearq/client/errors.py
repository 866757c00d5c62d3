"""Typed errors of the client: what can happen to a job, each naming its server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..net.address import ServerAddress
from ..net.errors import ConnectionLost, ServerError
from ..protocol.errors import ArgumentError, GearqError

__all__ = [
    "BatchError",
    "BatchFailed",
    "ClientClosed",
    "JobConnectionLost",
    "JobError",
    "JobException",
    "JobFailed",
    "JobTimeout",
    "NoServerAvailable",
    "PayloadTooLarge",
    "QueueFull",
    "ServerRejected",
    "SubmitError",
]


def detail(error: BaseException, server: ServerAddress) -> str:
    """``str(error)`` without the ``host:port: `` prefix a ServerError about ``server``
    starts with, for messages that name the server themselves."""
    text = str(error)
    if isinstance(error, ServerError) and error.server == server:
        prefix = f"{server}: "
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


class JobError(GearqError):
    """A job did not produce a result. ``server`` and ``handle`` say which job, when known."""

    def __init__(
        self, message: str, *, server: ServerAddress | None = None, handle: bytes | None = None
    ) -> None:
        super().__init__(message)
        self.server = server
        self.handle = handle


class JobFailed(JobError):
    """The worker (or gearmand: ``cancel job``, retries used up) ended the job with WORK_FAIL."""


class JobException(JobError):
    """The worker ended the job with WORK_EXCEPTION; ``data`` is what it sent."""

    def __init__(
        self,
        data: bytes,
        *,
        server: ServerAddress | None = None,
        handle: bytes | None = None,
    ) -> None:
        shown = data[:200].decode("utf-8", "replace")
        super().__init__(f"job raised: {shown}", server=server, handle=handle)
        self.data = data


class JobTimeout(JobError, TimeoutError):
    """The client-side timeout ran out. The job may still run on the server."""


class ClientClosed(JobError):
    """The client was closed while the job was still waiting."""


class SubmitError(GearqError):
    """A request could not be submitted."""


class ServerRejected(SubmitError, ServerError):
    """gearmand answered a request with an ERROR packet (``code``, ``text``)."""

    def __init__(self, server: ServerAddress, code: str, text: str) -> None:
        ServerError.__init__(self, server, f"{code}: {text}")
        self.code = code
        self.text = text


class QueueFull(ServerRejected):
    """The function's queue is at its ``maxqueue`` limit ("Job queue is full")."""


class NoServerAvailable(SubmitError):
    """Every configured server is down or waiting out its recover time.

    ``errors`` maps each server to its last error (None if it never failed but was skipped),
    and ``retry_in`` to the seconds left of its recover time.
    """

    def __init__(
        self,
        errors: Mapping[ServerAddress, BaseException | None],
        retry_in: Mapping[ServerAddress, float] | None = None,
    ) -> None:
        self.errors = dict(errors)
        self.retry_in = dict(retry_in or {})
        parts = []
        for server, error in self.errors.items():
            wait = self.retry_in.get(server, 0.0)
            note = f" (retry in {wait:.1f} s)" if wait > 0 else ""
            text = "skipped" if error is None else detail(error, server)
            parts.append(f"{server}: {text}{note}")
        super().__init__("no job server available: " + "; ".join(parts))


class BatchError(SubmitError):
    """Some jobs of a :class:`BackgroundBatch` did not reach a server.

    ``errors`` maps the index of each failed job to its error (a ``JobConnectionLost``,
    ``QueueFull``, ``JobTimeout``, ...); ``handles`` holds the handles of the others, with
    None where a job failed.
    """

    def __init__(
        self, errors: Mapping[int, BaseException], handles: Sequence[bytes | None]
    ) -> None:
        self.errors = dict(errors)
        self.handles = list(handles)
        first = min(self.errors) if self.errors else None
        example = f"; job {first}: {self.errors[first]}" if first is not None else ""
        super().__init__(f"{len(self.errors)} of {len(self.handles)} jobs failed{example}")


class BatchFailed(JobError):
    """Some jobs of a ``ForegroundBatch`` (``AsyncClient.run_many``) did not complete.

    ``errors`` maps the index of each failed job to its typed error; ``results`` holds
    the others' results in input order, with None where a job failed.
    """

    def __init__(
        self, errors: Mapping[int, BaseException], results: Sequence[bytes | None]
    ) -> None:
        self.errors = dict(errors)
        self.results = list(results)
        first = min(self.errors) if self.errors else None
        example = f"; job {first}: {self.errors[first]}" if first is not None else ""
        super().__init__(f"{len(self.errors)} of {len(self.results)} jobs failed{example}")


class JobConnectionLost(ConnectionLost):
    """The connection carrying the job broke (or stopped answering heartbeats).

    The job may or may not exist on, or have run on, ``server``. ``handle`` is None when
    the server had not acknowledged the submit yet.
    """

    def __init__(
        self, server: ServerAddress, message: str, *, handle: bytes | None = None
    ) -> None:
        super().__init__(server, message)
        self.handle = handle


class PayloadTooLarge(ArgumentError):
    """The payload is over the client's ``max_payload_size``; nothing was sent."""
