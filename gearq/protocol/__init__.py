"""The Gearman protocol as data: packets and admin commands in, bytes out, and back.

No sockets here (sans-IO, in the manner of h11): the network layers feed bytes to a
:class:`Decoder` and get :class:`Packet` events, and call :func:`encode_request` to send.
"""

from . import admin, limits
from .admin import AdminCommand, AdminParser, AdminReply
from .codec import (
    DEFAULT_MAX_PACKET_SIZE,
    Decoder,
    RequestDecoder,
    TextCommand,
    encode,
    encode_request,
    encode_response,
)
from .errors import (
    AdminError,
    ArgumentError,
    BadMagic,
    GearqError,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    UnknownPacketType,
)
from .packets import ARG_COUNTS, Magic, Packet, PacketType

__all__ = [
    "ARG_COUNTS",
    "DEFAULT_MAX_PACKET_SIZE",
    "AdminCommand",
    "AdminError",
    "AdminParser",
    "AdminReply",
    "ArgumentError",
    "BadMagic",
    "Decoder",
    "GearqError",
    "Magic",
    "MalformedPacket",
    "Packet",
    "PacketTooLarge",
    "PacketType",
    "ProtocolError",
    "RequestDecoder",
    "TextCommand",
    "UnknownPacketType",
    "admin",
    "encode",
    "encode_request",
    "encode_response",
    "limits",
]
