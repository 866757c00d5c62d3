"""The client connection's fast path frames packets exactly like the generic decoder."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given
from hypothesis import strategies as st

from gearq.client.wire import ClientConnection
from gearq.net import ConnectionOptions, ServerAddress
from gearq.protocol import PacketType as P
from gearq.protocol import encode_response


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def write(self, data):
        pass

    def abort(self):
        self.aborted = True

    def close(self):
        self.aborted = True

    def get_extra_info(self, name, default=None):
        return default


handles = st.binary(min_size=1, max_size=20).filter(lambda b: b"\0" not in b)
packets = st.one_of(
    st.tuples(st.just(P.JOB_CREATED), handles),
    st.tuples(st.just(P.WORK_COMPLETE), handles, st.binary(max_size=300)),
    st.tuples(st.just(P.WORK_DATA), handles, st.binary(max_size=50)),
    st.tuples(st.just(P.STATUS_RES), handles, *(st.just(v) for v in (b"1", b"0", b"1", b"2"))),
    st.tuples(st.just(P.ERROR), st.just(b"CODE"), st.binary(max_size=10)),
    st.tuples(st.just(P.ECHO_RES), st.binary(max_size=40)),
)


def _run_stream(items, cuts, *, fast=True):
    events = []
    lost = []

    async def main():
        conn = ClientConnection(
            ServerAddress("127.0.0.1", 1),
            ConnectionOptions(heartbeat_interval=None, max_packet_size=4096),
            lambda p: events.append((p.type, *p.args)),
            lambda c, e: lost.append(e),
        )
        conn.connection_made(FakeTransport())
        if fast:
            conn.on_created = lambda hs: events.extend((P.JOB_CREATED, h) for h in hs)
            conn.on_complete = lambda h, r: events.append((P.WORK_COMPLETE, h, r))
        stream = b"".join(encode_response(t, *args) for t, *args in items)
        points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
        for a, b in itertools.pairwise(points):
            conn.data_received(stream[a:b])
        return conn

    asyncio.run(main())
    return events, lost


@given(st.lists(packets, max_size=30), st.lists(st.integers(0, 3000), max_size=20))
def test_fast_path_delivers_what_the_decoder_does_in_order(items, cuts):
    fast, fast_lost = _run_stream(items, cuts, fast=True)
    generic, generic_lost = _run_stream(items, cuts, fast=False)
    expected = [(t, *args) for t, *args in items]
    assert fast == generic == expected
    assert fast_lost == generic_lost == []


def test_one_byte_at_a_time():
    items = [(P.JOB_CREATED, b"H:1"), (P.WORK_COMPLETE, b"H:1", b"res\0ult"), (P.ECHO_RES, b"e")]
    stream_len = sum(len(encode_response(t, *a)) for t, *a in items)
    events, lost = _run_stream(items, list(range(stream_len)))
    assert events == [(t, *a) for t, *a in items] and not lost


def test_bad_magic_and_oversize_fail_the_connection():
    oversize = b"\0RES" + (13).to_bytes(4, "big") + (10**6).to_bytes(4, "big")
    for raw in (b"\0REQ" + bytes(8), oversize):

        async def main(raw=raw):
            lost = []
            conn = ClientConnection(
                ServerAddress("127.0.0.1", 1),
                ConnectionOptions(heartbeat_interval=None, max_packet_size=4096),
                lambda p: None,
                lambda c, e: lost.append(e),
            )
            conn.connection_made(FakeTransport())
            conn.on_created = lambda hs: None
            conn.on_complete = lambda h, r: None
            conn.data_received(encode_response(P.JOB_CREATED, b"H:1") + raw)
            return lost

        lost = asyncio.run(main())
        assert len(lost) == 1 and "protocol error" in str(lost[0])


def test_a_failing_handler_does_not_lose_the_following_packets():
    seen = []

    def created(handles):
        if b"bad" in handles:
            raise RuntimeError("bug")
        seen.extend(handles)

    def complete(handle, result):
        seen.append(result)

    async def main():
        conn = ClientConnection(
            ServerAddress("127.0.0.1", 1),
            ConnectionOptions(heartbeat_interval=None),
            lambda p: None,
            lambda c, e: None,
        )
        conn.connection_made(FakeTransport())
        conn.on_created = created
        conn.on_complete = complete
        conn.data_received(
            encode_response(P.JOB_CREATED, b"a")
            + encode_response(P.WORK_COMPLETE, b"a", b"r1")
            + b"".join(encode_response(P.JOB_CREATED, h) for h in (b"b", b"bad", b"c"))
            + encode_response(P.WORK_COMPLETE, b"b", b"r2")
            + encode_response(P.JOB_CREATED, b"d")
        )

    asyncio.run(main())
    assert seen == [b"a", b"r1", b"r2", b"d"]


def test_consecutive_job_created_packets_come_as_one_run():
    runs = []

    async def main():
        conn = ClientConnection(
            ServerAddress("127.0.0.1", 1),
            ConnectionOptions(heartbeat_interval=None),
            lambda p: None,
            lambda c, e: None,
        )
        conn.connection_made(FakeTransport())
        conn.on_created = runs.append
        conn.on_complete = lambda h, r: runs.append([b"complete " + h])
        stream = b"".join(encode_response(P.JOB_CREATED, b"H:%d" % i) for i in range(5))
        stream += encode_response(P.WORK_COMPLETE, b"H:0", b"")
        stream += encode_response(P.JOB_CREATED, b"H:5")
        conn.data_received(stream[:-3])  # the last packet arrives in two reads
        conn.data_received(stream[-3:])

    asyncio.run(main())
    assert runs == [[b"H:%d" % i for i in range(5)], [b"complete H:0"], [b"H:5"]]
