"""Typed errors of the network layer; each names the server it is about."""

from __future__ import annotations

from ..protocol.errors import GearqError
from .address import ServerAddress

__all__ = ["ConnectFailed", "ConnectionLost", "HeartbeatTimeout", "ServerError"]


class ServerError(GearqError):
    """Something went wrong with one job server."""

    def __init__(self, server: ServerAddress, message: str) -> None:
        super().__init__(f"{server}: {message}")
        self.server = server


class ConnectFailed(ServerError, ConnectionError):
    """A connection to the server could not be made (refused, unreachable, timed out)."""


class ConnectionLost(ServerError, ConnectionError):
    """An open connection to the server broke: reset, closed, or a protocol violation."""


class HeartbeatTimeout(ConnectionLost):
    """The server stopped answering ECHO heartbeats, so it is treated as down."""
