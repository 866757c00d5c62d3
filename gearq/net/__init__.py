"""Connections to job servers: addresses, sockets, TLS, heartbeats, and their errors."""

from .address import DEFAULT_PORT, ServerAddress, ServerSpec, parse_servers
from .connection import Connection, ConnectionOptions
from .errors import ConnectFailed, ConnectionLost, HeartbeatTimeout, ServerError
from .recover import RecoverPolicy, ServerHealth

__all__ = [
    "DEFAULT_PORT",
    "ConnectFailed",
    "Connection",
    "ConnectionLost",
    "ConnectionOptions",
    "HeartbeatTimeout",
    "RecoverPolicy",
    "ServerAddress",
    "ServerError",
    "ServerHealth",
    "ServerSpec",
    "parse_servers",
]
