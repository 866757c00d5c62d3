"""Typed errors raised by the sans-IO protocol layer.

Everything here subclasses :class:`GearqError`, so a caller can catch one base class for
"gearq said no" without also catching programming errors.
"""

from __future__ import annotations

__all__ = [
    "AdminError",
    "ArgumentError",
    "BadMagic",
    "GearqError",
    "MalformedPacket",
    "PacketTooLarge",
    "ProtocolError",
    "UnknownPacketType",
]


class GearqError(Exception):
    """Base class of every error gearq raises on purpose."""


class ProtocolError(GearqError):
    """The byte stream broke the Gearman protocol; the connection cannot be trusted any more."""


class BadMagic(ProtocolError):
    """A packet header did not start with ``\\0REQ`` or ``\\0RES`` (or not the one expected)."""


class UnknownPacketType(ProtocolError):
    """A packet header named a type number that the protocol does not define."""


class MalformedPacket(ProtocolError):
    """A packet's body did not hold the arguments its type requires."""


class PacketTooLarge(ProtocolError):
    """A packet (or text line) is larger than the configured limit."""


class ArgumentError(GearqError, ValueError):
    """A value cannot be sent: gearmand would reject it, truncate it, or hang on it.

    Raised before anything reaches the wire, so the connection stays usable.
    """


class AdminError(GearqError):
    """The server answered an admin (text protocol) command with ``ERR code message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
