"""Gearman binary packet types, their argument layouts, and the packet event class."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ARG_COUNTS", "HEADER_SIZE", "REQ", "RES", "Magic", "Packet", "PacketType"]

HEADER_SIZE = 12
REQ = b"\0REQ"
RES = b"\0RES"


class Magic(enum.Enum):
    """Which way a packet travels: REQ goes to the server, RES comes from it."""

    REQ = REQ
    RES = RES


class PacketType(enum.IntEnum):
    """Every packet type of the Gearman binary protocol (5 was never assigned)."""

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


_T = PacketType

# Number of NUL-separated arguments on the wire, as gearmand 1.1.20 parses them. The last
# argument runs to the end of the body and is the only one that may hold NUL bytes.
# The reduce submits take 4 NUL-terminated fields plus the workload: the PROTOCOL file says
# 3, but gearmand waits for the 4th ("aggregate", normally empty) and desyncs without it.
ARG_COUNTS: dict[PacketType, int] = {
    _T.CAN_DO: 1,
    _T.CANT_DO: 1,
    _T.RESET_ABILITIES: 0,
    _T.PRE_SLEEP: 0,
    _T.NOOP: 0,
    _T.SUBMIT_JOB: 3,
    _T.JOB_CREATED: 1,
    _T.GRAB_JOB: 0,
    _T.NO_JOB: 0,
    _T.JOB_ASSIGN: 3,
    _T.WORK_STATUS: 3,
    _T.WORK_COMPLETE: 2,
    _T.WORK_FAIL: 1,
    _T.GET_STATUS: 1,
    _T.ECHO_REQ: 1,
    _T.ECHO_RES: 1,
    _T.SUBMIT_JOB_BG: 3,
    _T.ERROR: 2,
    _T.STATUS_RES: 5,
    _T.SUBMIT_JOB_HIGH: 3,
    _T.SET_CLIENT_ID: 1,
    _T.CAN_DO_TIMEOUT: 2,
    _T.ALL_YOURS: 0,
    _T.WORK_EXCEPTION: 2,
    _T.OPTION_REQ: 1,
    _T.OPTION_RES: 1,
    _T.WORK_DATA: 2,
    _T.WORK_WARNING: 2,
    _T.GRAB_JOB_UNIQ: 0,
    _T.JOB_ASSIGN_UNIQ: 4,
    _T.SUBMIT_JOB_HIGH_BG: 3,
    _T.SUBMIT_JOB_LOW: 3,
    _T.SUBMIT_JOB_LOW_BG: 3,
    _T.SUBMIT_JOB_SCHED: 8,
    _T.SUBMIT_JOB_EPOCH: 4,
    _T.SUBMIT_REDUCE_JOB: 5,
    _T.SUBMIT_REDUCE_JOB_BACKGROUND: 5,
    _T.GRAB_JOB_ALL: 0,
    _T.JOB_ASSIGN_ALL: 5,
    _T.GET_STATUS_UNIQUE: 1,
    _T.STATUS_RES_UNIQUE: 6,
}


@dataclass(frozen=True, slots=True)
class Packet:
    """One binary packet: which way it goes, its type, and its arguments as raw bytes.

    Arguments stay bytes end to end; decoding names or numbers is the caller's business.
    """

    magic: Magic
    type: PacketType
    args: tuple[bytes, ...] = ()

    def __repr__(self) -> str:
        shown = ", ".join(repr(a if len(a) <= 40 else a[:37] + b"...") for a in self.args)
        return f"Packet({self.magic.name}, {self.type.name}, ({shown}))"
