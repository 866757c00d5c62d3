"""Decoder.feed_jobs' one step for what a lone job's probe brings back in one read (a
JOB_ASSIGN_UNIQ, then a NO_JOB): the same items and the same errors as the general loop (and
as feed), for that shape and for the reads that only look like it."""

from __future__ import annotations

from typing import Any

import pytest

from gearq.protocol import Decoder, Magic, Packet, PacketType, encode_response
from gearq.protocol.errors import ProtocolError

P = PacketType
NO_JOB = encode_response(P.NO_JOB)


def _assign(*args: bytes) -> bytes:
    """A JOB_ASSIGN_UNIQ of these arguments (of any number of them)."""
    body = b"\0".join(args)
    head = int(P.JOB_ASSIGN_UNIQ).to_bytes(4, "big") + len(body).to_bytes(4, "big")
    return Magic.RES.value + head + body


def _as_packets(items: list[Any]) -> list[Packet]:
    """feed_jobs' items in feed's terms."""
    return [
        Packet(Magic.RES, P.JOB_ASSIGN_UNIQ, tuple(item)) if isinstance(item, list) else item
        for item in items
    ]


def _outcome(feed: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", feed(data)
    except ProtocolError as exc:
        return type(exc).__name__, str(exc)


READS = {
    "job then NO_JOB": _assign(b"H:1", b"f", b"u", b"pay\0load") + NO_JOB,
    "empty payload": _assign(b"H:1", b"f", b"", b"") + NO_JOB,
    "a job whose payload ends like a NO_JOB": _assign(b"H:1", b"f", b"", b"x" + NO_JOB),
    "that job, then a NO_JOB": _assign(b"H:1", b"f", b"", NO_JOB) + NO_JOB,
    "two NO_JOBs": NO_JOB + NO_JOB,
    "NOOP, job, NO_JOB": encode_response(P.NOOP) + _assign(b"H:1", b"f", b"", b"p") + NO_JOB,
    "two jobs, NO_JOB": (
        _assign(b"H:1", b"f", b"", b"a") + _assign(b"H:2", b"f", b"", b"b") + NO_JOB
    ),
    "a job of three arguments": _assign(b"H:1", b"f", b"p") + NO_JOB,
    "a job over the size limit": _assign(b"H:1", b"f", b"", b"x" * 200) + NO_JOB,
}


@pytest.mark.parametrize("name", list(READS))
def test_a_probe_read_decodes_as_feed_and_the_general_loop_do(name: str) -> None:
    data = READS[name]
    jobs = Decoder(max_packet_size=100)
    kind, got = _outcome(jobs.feed_jobs, data)
    ref_kind, ref = _outcome(Decoder(max_packet_size=100).feed, data)
    assert kind == ref_kind
    if kind == "ok":
        assert _as_packets(got) == ref
        assert jobs.buffered == 0
        # Then the decoder goes on as usual: a NOOP after it is one NOOP.
        assert jobs.feed_jobs(encode_response(P.NOOP)) == [Packet(Magic.RES, P.NOOP, ())]
    else:
        assert got == ref


def test_a_probe_read_in_pieces_decodes_the_same() -> None:
    data = READS["job then NO_JOB"]
    for cut in range(1, len(data)):
        decoder = Decoder()
        items = decoder.feed_jobs(data[:cut]) + decoder.feed_jobs(data[cut:])
        assert items == [[b"H:1", b"f", b"u", b"pay\0load"], Decoder().feed(NO_JOB)[0]], cut
        assert decoder.buffered == 0
