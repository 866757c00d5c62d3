"""Protocol codec benchmark: gearq's encoder and decoder beside a bare ``struct`` loop.

Both run in the same process on the same data, so the ratio gearq/baseline is what to read;
absolute rates move from machine to machine.

* encode: a realistic mix (SUBMIT_JOB with a 100-byte payload, JOB_CREATED, WORK_COMPLETE
  with 100 bytes, JOB_ASSIGN_UNIQ with 100 bytes, NOOP, GRAB_JOB_UNIQ), packets per second.
  Baseline: ``struct.pack(">4sII", ...) + b"\\0".join(args)``, no checks.
* decode: the same mix as one stream cut into 64 KiB chunks, packets per second.
  Baseline: unpack_from the header, slice the body, split on NUL, tuples, no validation.
* big: 1 MiB WORK_COMPLETE packets in 64 KiB chunks, MB/s (10**6 bytes) of stream decoded.

    python -m benchmarks.bench_protocol                # defaults
    python -m benchmarks.bench_protocol --quick        # small sizes, 3 repetitions
    python -m benchmarks.bench_protocol --reps 9 --packets 120000
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from gearq.protocol import (
    ARG_COUNTS,
    Decoder,
    Magic,
    Packet,
    PacketType,
    encode_request,
    encode_response,
)

T = PacketType
CHUNK = 64 * 1024
PAYLOAD = bytes(range(100))
HANDLE = b"H:gearq-bench:123456"
FUNCTION = b"resize_image"
UNIQUE = b"0f8c6d2e-3b5a-4c1e-9d7f-2a6b8e4c1d3f"

# (magic, type, args): one of each kind per round of the mix.
MIX: list[tuple[Magic, PacketType, tuple[bytes, ...]]] = [
    (Magic.REQ, T.SUBMIT_JOB, (FUNCTION, UNIQUE, PAYLOAD)),
    (Magic.RES, T.JOB_CREATED, (HANDLE,)),
    (Magic.RES, T.WORK_COMPLETE, (HANDLE, PAYLOAD)),
    (Magic.RES, T.JOB_ASSIGN_UNIQ, (HANDLE, FUNCTION, UNIQUE, PAYLOAD)),
    (Magic.RES, T.NOOP, ()),
    (Magic.REQ, T.GRAB_JOB_UNIQ, ()),
]


# --------------------------------------------------------------------------- baseline


_HDR = struct.Struct(">4sII")
_ARGC = {int(t): n for t, n in ARG_COUNTS.items()}


def baseline_encode(magic: bytes, ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return _HDR.pack(magic, ptype, len(body)) + body


class BaselineDecoder:
    """The least a decoder can do: header, slice, split. No checks at all."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[bytes, int, list[bytes]]]:
        buf = self._buf + data if self._buf else data
        unpack = _HDR.unpack_from
        argc = _ARGC
        out: list[tuple[bytes, int, list[bytes]]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 12:
            magic, ptype, size = unpack(buf, pos)
            stop = pos + 12 + size
            if stop > end:
                break
            n = argc[ptype]
            body = buf[pos + 12 : stop]
            out.append((magic, ptype, body.split(b"\0", n - 1) if n > 1 else [body]))
            pos = stop
        self._buf = buf[pos:]
        return out


class BaselineBigDecoder(BaselineDecoder):
    """Baseline for big packets: collect chunks in a list and join once the packet is whole
    (concatenating on every feed would be quadratic)."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 12

    def feed(self, data: bytes) -> list[tuple[bytes, int, list[bytes]]]:
        self._chunks.append(data)
        self._have += len(data)
        if self._have < self._need:
            return []
        self._buf = b"".join(self._chunks)
        self._chunks.clear()
        out = super().feed(b"")
        rest = self._buf
        self._buf = b""
        self._chunks.append(rest)
        self._have = len(rest)
        self._need = 12 + (_HDR.unpack_from(rest)[2] if len(rest) >= 12 else 0)
        return out


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def chunks_of(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def mix_items(n_packets: int) -> list[tuple[Magic, PacketType, tuple[bytes, ...]]]:
    rounds = max(1, n_packets // len(MIX))
    return MIX * rounds


def gearq_encode_all(items: Sequence[tuple[Magic, PacketType, tuple[bytes, ...]]]) -> int:
    n = 0
    for magic, ptype, args in items:
        if magic is Magic.REQ:
            n += len(encode_request(ptype, *args))
        else:
            n += len(encode_response(ptype, *args))
    return n


def baseline_encode_all(items: Sequence[tuple[bytes, int, tuple[bytes, ...]]]) -> int:
    n = 0
    for magic, ptype, args in items:
        n += len(baseline_encode(magic, ptype, *args))
    return n


def gearq_decode_all(chunks: Sequence[bytes]) -> int:
    decoder = Decoder(expect=None)
    n = 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    return n


def baseline_decode_all(chunks: Sequence[bytes], big: bool = False) -> int:
    decoder = BaselineBigDecoder() if big else BaselineDecoder()
    n = 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    return n


def median(times: Sequence[float]) -> float:
    return statistics.median(times)


def row(name: str, unit: str, gearq: float, base: float) -> str:
    return f"{name:<28} {gearq:>14,.0f} {base:>14,.0f}  {unit:<10} {gearq / base:>6.2f}x"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=60_000, help="packets in the mix")
    parser.add_argument("--big", type=int, default=64, help="number of 1 MiB packets")
    parser.add_argument("--reps", type=int, default=7, help="repetitions (median reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repetitions")
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.packets, opts.big, opts.reps = 12_000, 16, 3

    items = mix_items(opts.packets)
    raw_items = [(m.value, int(t), a) for m, t, a in items]
    n = len(items)

    # Same bytes both ways, and the same packets back out.
    stream = b"".join(
        encode_request(t, *a) if m is Magic.REQ else encode_response(t, *a) for m, t, a in items
    )
    assert stream == b"".join(baseline_encode(m, t, *a) for m, t, a in raw_items)
    chunks = chunks_of(stream, CHUNK)
    decoded = Decoder(expect=None).feed(stream)
    assert decoded == [Packet(m, t, a) for m, t, a in items]
    assert gearq_decode_all(chunks) == baseline_decode_all(chunks) == n

    big_payload = bytes(range(256)) * 4096  # 1 MiB
    big_packet = encode_response(T.WORK_COMPLETE, HANDLE, big_payload)
    big_stream = big_packet * opts.big
    big_chunks = chunks_of(big_stream, CHUNK)
    assert gearq_decode_all(big_chunks) == baseline_decode_all(big_chunks, big=True) == opts.big

    # Interleave gearq and baseline repetitions so drift hits both alike.
    enc_g: list[float] = []
    enc_b: list[float] = []
    dec_g: list[float] = []
    dec_b: list[float] = []
    big_g: list[float] = []
    big_b: list[float] = []
    for _ in range(opts.reps):
        enc_g.append(timed(lambda: gearq_encode_all(items)))
        enc_b.append(timed(lambda: baseline_encode_all(raw_items)))
        dec_g.append(timed(lambda: gearq_decode_all(chunks)))
        dec_b.append(timed(lambda: baseline_decode_all(chunks)))
        big_g.append(timed(lambda: gearq_decode_all(big_chunks)))
        big_b.append(timed(lambda: baseline_decode_all(big_chunks, big=True)))

    mb = len(big_stream) / 1e6
    print(
        f"gearq protocol codec vs struct-only baseline; Python {sys.version.split()[0]}, "
        f"{n:,} packets in the mix ({len(stream):,} bytes, {len(chunks)} chunks of 64 KiB), "
        f"{opts.big} x 1 MiB big packets; medians of {opts.reps}"
    )
    print(f"{'':<28} {'gearq':>14} {'baseline':>14}  {'unit':<10} {'ratio':>7}")
    print(row("encode mix", "packets/s", n / median(enc_g), n / median(enc_b)))
    print(row("decode mix (64 KiB chunks)", "packets/s", n / median(dec_g), n / median(dec_b)))
    print(row("decode 1 MiB packets", "MB/s", mb / median(big_g), mb / median(big_b)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
