"""Unit tests for the sans-IO admin protocol (gearq.protocol.admin).

Reply bytes are copied from gearmand 1.1.20 (reference doc §2 and our own probes).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.protocol.admin import (
    MAX_COMMAND_LINE,
    AdminCommand,
    AdminParser,
    AdminReply,
    FunctionStatus,
    JobInfo,
    PriorityStatus,
    ReplyKind,
    WorkerInfo,
    cancel_job,
    create_function,
    drop_function,
    getpid,
    maxqueue,
    parse_reply,
    priority_status,
    show_jobs,
    show_unique_jobs,
    status,
    verbose,
    version,
    workers,
)
from gearq.protocol.errors import AdminError, ArgumentError, PacketTooLarge, ProtocolError

# --------------------------------------------------------------------------------------------
# Encoding


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (status(), b"status\n"),
        (priority_status(), b"prioritystatus\n"),
        (workers(), b"workers\n"),
        (show_jobs(), b"show jobs\n"),
        (show_unique_jobs(), b"show unique jobs\n"),
        (version(), b"version\n"),
        (getpid(), b"getpid\n"),
        (verbose(), b"verbose\n"),
        (cancel_job("H:vm:1"), b"cancel job H:vm:1\n"),
        (cancel_job(b"H:vm:2"), b"cancel job H:vm:2\n"),
        (maxqueue("fa"), b"maxqueue fa\n"),
        (maxqueue("fa", 0), b"maxqueue fa 0\n"),
        (maxqueue("fa", 10), b"maxqueue fa 10\n"),
        (maxqueue("fa", (1, 2, 3)), b"maxqueue fa 1 2 3\n"),
        # CRLF on purpose: gearmand 1.1.20 cuts 2 bytes off the name (see create_function).
        (create_function("newf"), b"create function newf\r\n"),
        (drop_function("newf"), b"drop function newf\n"),
        # Tabs are no separator for gearmand; non-ASCII names travel as UTF-8.
        (drop_function("f\tg"), b"drop function f\tg\n"),
        (drop_function("été"), b"drop function \xc3\xa9t\xc3\xa9\n"),
    ],
)
def test_encode(command: AdminCommand[Any], line: bytes) -> None:
    assert command.line == line
    assert bytes(command) == line


def test_reply_kinds() -> None:
    assert status().kind is ReplyKind.STATUS
    assert priority_status().kind is ReplyKind.PRIORITY_STATUS
    assert workers().kind is ReplyKind.WORKERS
    assert show_jobs().kind is ReplyKind.JOBS
    assert show_unique_jobs().kind is ReplyKind.UNIQUE_JOBS
    assert version().kind is ReplyKind.TEXT
    assert verbose().kind is ReplyKind.TEXT
    assert getpid().kind is ReplyKind.INT
    for command in (cancel_job("h"), maxqueue("f", 1), create_function("f"), drop_function("f")):
        assert command.kind is ReplyKind.OK


def test_undecodable_bytes_round_trip() -> None:
    # A name read back from a reply (surrogateescape) must encode to the same bytes.
    name = parse_reply(status(), b"\xff\xfe\t0\t0\t0\n.\n")[0].function
    assert drop_function(name).line == b"drop function \xff\xfe\n"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("two words", "space"),
        ("cr\r", "CR"),
        ("lf\n", "LF"),
        ("nul\0", "NUL"),
        (b"bytes space", "space"),
        ("", "empty"),
        (b"", "empty"),
        ("\ud800", "UTF-8"),
    ],
)
def test_bad_tokens(value: str | bytes, fragment: str) -> None:
    for build in (cancel_job, drop_function, create_function, maxqueue):
        with pytest.raises(ArgumentError, match=fragment):
            build(value)


def test_bad_token_type() -> None:
    with pytest.raises(ArgumentError, match="str or bytes"):
        drop_function(12)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "line", [b"status", b"status\nversion\n", b"sta\rtus\n", b"x" * MAX_COMMAND_LINE + b"\n"]
)
def test_hand_built_command_must_be_one_line(line: bytes) -> None:
    with pytest.raises(ArgumentError):
        AdminCommand(line, ReplyKind.OK)


def test_hand_built_commands() -> None:
    assert AdminCommand(b"shutdown\r\n", ReplyKind.OK).line == b"shutdown\r\n"
    assert AdminCommand(b"\n", ReplyKind.OK).line == b"\n"


def test_argument_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        cancel_job("a b")


@pytest.mark.parametrize(
    "size",
    [-1, 2**31, True, 1.5, "3", (1, 2), (1, 2, 3, 4), (1, -2, 3), (1, 2, False)],
)
def test_bad_maxqueue_sizes(size: Any) -> None:
    with pytest.raises(ArgumentError):
        maxqueue("fa", size)


def test_maxqueue_largest_size() -> None:
    assert maxqueue("fa", 2**31 - 1).line == b"maxqueue fa 2147483647\n"


def test_command_line_limit() -> None:
    # gearmand answers a line of exactly 8192 bytes including "\n" and drops longer ones.
    prefix = len(b"drop function ") + 1
    assert len(drop_function("x" * (MAX_COMMAND_LINE - prefix)).line) == MAX_COMMAND_LINE
    with pytest.raises(ArgumentError, match="8192"):
        drop_function("x" * (MAX_COMMAND_LINE - prefix + 1))
    # create function carries one more byte (its CR).
    assert len(create_function("x" * (MAX_COMMAND_LINE - prefix - 3)).line) == MAX_COMMAND_LINE
    with pytest.raises(ArgumentError):
        create_function("x" * (MAX_COMMAND_LINE - prefix - 2))


# --------------------------------------------------------------------------------------------
# Parsing the reference examples


def test_status() -> None:
    got = parse_reply(status(), b"fc\t0\t0\t1\nfb\t1\t1\t1\nfa\t3\t0\t2\n.\n")
    assert got == (
        FunctionStatus("fc", 0, 0, 1),
        FunctionStatus("fb", 1, 1, 1),
        FunctionStatus("fa", 3, 0, 2),
    )
    assert [s.queued for s in got] == [0, 0, 3]


def test_status_queued_never_negative() -> None:
    assert FunctionStatus("f", 1, 3, 0).queued == 0


def test_status_odd_function_names() -> None:
    # `create function a` on gearmand 1.1.20 creates "" (see create_function); names may
    # contain tabs, start with ERR, or be ".".
    got = parse_reply(status(), b"\t0\t0\t0\nf\tg\t1\t0\t0\nERR x\t2\t0\t1\n.\t0\t0\t0\n.\n")
    assert [s.function for s in got] == ["", "f\tg", "ERR x", "."]


def test_empty_lists() -> None:
    commands: list[AdminCommand[Any]] = [
        status(),
        priority_status(),
        workers(),
        show_jobs(),
        show_unique_jobs(),
    ]
    for command in commands:
        assert parse_reply(command, b".\n") == ()


def test_priority_status() -> None:
    got = parse_reply(priority_status(), b"fb\t0\t0\t0\t1\nfa\t1\t2\t0\t2\n.\n")
    assert got == (PriorityStatus("fb", 0, 0, 0, 1), PriorityStatus("fa", 1, 2, 0, 2))
    assert got[1].queued == 3


def test_workers() -> None:
    data = (
        b"37 127.0.0.1 worker-one : fb fa\n"
        b"39 127.0.0.1 worker two with spaces : fa\n"
        b"38 127.0.0.1 - :\n"
        b"40 ::1 - : f\n"
        b".\n"
    )
    assert parse_reply(workers(), data) == (
        WorkerInfo(37, "127.0.0.1", "worker-one", ("fb", "fa")),
        WorkerInfo(39, "127.0.0.1", "worker two with spaces", ("fa",)),
        WorkerInfo(38, "127.0.0.1", None, ()),
        WorkerInfo(40, "::1", None, ("f",)),
    )


def test_workers_empty_client_id() -> None:
    # SET_CLIENT_ID "" shows as an empty column, not as "-".
    got = parse_reply(workers(), b"39 127.0.0.1  : fq\n.\n")
    assert got == (WorkerInfo(39, "127.0.0.1", "", ("fq",)),)


def test_workers_client_id_with_colons() -> None:
    got = parse_reply(workers(), b"41 127.0.0.1 a : b : fa :x\n.\n")
    assert got == (WorkerInfo(41, "127.0.0.1", "a : b", ("fa", ":x")),)


def test_workers_ambiguity_is_resolved_by_last_separator() -> None:
    # Real gearmand output for client id "a : b" with functions ":" and "fq": the format
    # cannot tell, and the documented rule (last " :" before a space or the end) puts the
    # function ":" into the client id.
    got = parse_reply(workers(), b"40 127.0.0.1 a : b : : fq\n.\n")
    assert got == (WorkerInfo(40, "127.0.0.1", "a : b :", ("fq",)),)


def test_show_jobs() -> None:
    got = parse_reply(show_jobs(), b"H:vm:1\t0\t0\t1\nH:vm:2\t3\t1\t0\n.\n")
    assert got == (JobInfo("H:vm:1", 0, False, True), JobInfo("H:vm:2", 3, True, False))


def test_show_unique_jobs_with_empty_unique() -> None:
    assert parse_reply(show_unique_jobs(), b"\nu1\nu2\n.\n") == ("", "u1", "u2")


def test_show_unique_jobs_lookalikes() -> None:
    # Only an upper-case code makes a first line an error; later lines are always data.
    got = parse_reply(show_unique_jobs(), b"ERR lower case\nERR X\nERRX\n.\n")
    assert got == ("ERR lower case", "ERR X", "ERRX")
    with pytest.raises(AdminError) as info:
        parse_reply(show_unique_jobs(), b"ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n")
    assert info.value.code == "UNKNOWN_COMMAND"


def test_version_getpid_verbose() -> None:
    assert parse_reply(version(), b"OK 1.1.20+ds\n") == "1.1.20+ds"
    assert parse_reply(getpid(), b"OK 8786\n") == 8786
    assert parse_reply(verbose(), b"OK INFO\n") == "INFO"
    assert parse_reply(verbose(), b"OK ERROR\n") == "ERROR"
    assert parse_reply(version(), b"OK\r\n") == ""


@pytest.mark.parametrize(
    "command", [cancel_job("H:vm:1"), maxqueue("fa", 1), create_function("f"), drop_function("f")]
)
def test_ok_commands(command: AdminCommand[None]) -> None:
    assert parse_reply(command, b"OK\r\n") is None
    assert parse_reply(command, b"OK\n") is None


@pytest.mark.parametrize(
    ("command", "data", "code", "message"),
    [
        (cancel_job("H:nope:99"), b"ERR UNKNOWN_JOB\r\n", "UNKNOWN_JOB", ""),
        (
            AdminCommand(b"maxqueue\n", ReplyKind.OK),
            b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this"
            b"+command+maxqueue\r\n",
            "INVALID_ARGUMENTS",
            "An incomplete set of arguments was sent to this command maxqueue",
        ),
        (
            AdminCommand(b"shutdown\n", ReplyKind.OK),
            b"ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n",
            "UNKNOWN_COMMAND",
            "Unknown server commandshutdown",
        ),
        (
            AdminCommand(b"\n", ReplyKind.OK),
            b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n",
            "UNKNOWN_COMMAND",
            "Unknown server command",
        ),
        (
            AdminCommand(b"show foo\n", ReplyKind.JOBS),
            b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n",
            "UNKNOWN_SHOW_ARGUMENTS",
            "",
        ),
        (
            drop_function("nosuch"),
            b"ERR function not found\r\n",
            "FUNCTION_NOT_FOUND",
            "function not found",
        ),
        (
            drop_function("fa"),
            b"ERR there are still connected workers or executing clients\r\n",
            "FUNCTION_IN_USE",
            "there are still connected workers or executing clients",
        ),
        (drop_function("fa"), b"ERR some+new text\r\n", "UNSPECIFIED", "some new text"),
        (version(), b"ERR\r\n", "UNSPECIFIED", ""),
        (status(), b"ERR UNKNOWN_COMMAND Unknown+server+commandstatus\n", "UNKNOWN_COMMAND", None),
        (workers(), b"ERR UNKNOWN_ERROR\r\n", "UNKNOWN_ERROR", ""),
    ],
)
def test_errors(command: AdminCommand[Any], data: bytes, code: str, message: str | None) -> None:
    with pytest.raises(AdminError) as info:
        parse_reply(command, data)
    assert info.value.code == code
    if message is not None:
        assert info.value.message == message


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("convert", [_lf, _crlf], ids=["LF", "CRLF"])
@pytest.mark.parametrize(
    ("command", "data", "expected"),
    [
        (status(), b"fa\t3\t0\t2\n.\n", (FunctionStatus("fa", 3, 0, 2),)),
        (priority_status(), b"fa\t1\t2\t0\t2\n.\n", (PriorityStatus("fa", 1, 2, 0, 2),)),
        (workers(), b"38 127.0.0.1 - :\n.\n", (WorkerInfo(38, "127.0.0.1", None, ()),)),
        (show_jobs(), b"H:vm:1\t0\t0\t1\n.\n", (JobInfo("H:vm:1", 0, False, True),)),
        (show_unique_jobs(), b"\nu1\n.\n", ("", "u1")),
        (version(), b"OK 1.1.20+ds\n", "1.1.20+ds"),
        (getpid(), b"OK 42\n", 42),
        (cancel_job("H:vm:1"), b"OK\r\n", None),
    ],
)
def test_line_endings(
    convert: Any, command: AdminCommand[Any], data: bytes, expected: object
) -> None:
    assert parse_reply(command, convert(data)) == expected


def test_parse_reply_tolerates_missing_final_newline() -> None:
    assert parse_reply(version(), b"OK 1.1.20+ds") == "1.1.20+ds"
    assert parse_reply(status(), b"fa\t1\t0\t0\n.") == (FunctionStatus("fa", 1, 0, 0),)


@pytest.mark.parametrize(
    ("command", "data"),
    [
        (status(), b"fa\t1\t0\t0\n"),  # no terminating "."
        (status(), b""),
        (version(), b"OK 1\nOK 2\n"),  # a second reply nobody asked for
        (status(), b".\nxyz"),
    ],
)
def test_parse_reply_wants_exactly_one_reply(command: AdminCommand[Any], data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_reply(command, data)


@pytest.mark.parametrize(
    ("command", "data"),
    [
        (status(), b"fa\t1\t0\n.\n"),
        (status(), b"fa\t1\tx\t0\n.\n"),
        (priority_status(), b"fa\t1\t0\t0\n.\n"),
        (show_jobs(), b"H:vm:1\t0\t2\t1\n.\n"),
        (show_jobs(), b"H:vm:1 0 0 1\n.\n"),
        (workers(), b"x 127.0.0.1 - :\n.\n"),
        (workers(), b"38 127.0.0.1 no separator\n.\n"),
        (workers(), b"38 127.0.0.1\n.\n"),
        (getpid(), b"OK abc\n"),
        (getpid(), b"OK\r\n"),
        (version(), b"HELLO\n"),
        (cancel_job("h"), b"\n"),
        (cancel_job("h"), b"OKAY\r\n"),
    ],
)
def test_garbage_raises_protocol_error(command: AdminCommand[Any], data: bytes) -> None:
    with pytest.raises(ProtocolError, match="cannot parse"):
        parse_reply(command, data)


# --------------------------------------------------------------------------------------------
# The incremental parser


def _summary(replies: list[AdminReply[Any]]) -> list[tuple[bytes, object, object]]:
    # AdminError compares by identity, so compare its code and message instead.
    return [
        (
            r.command.line,
            r.value,
            None if r.error is None else (r.error.code, r.error.message),
        )
        for r in replies
    ]


PIPELINE: list[tuple[AdminCommand[Any], bytes]] = [
    (status(), b"fc\t0\t0\t1\nfb\t1\t1\t1\nfa\t3\t0\t2\n.\n"),
    (version(), b"OK 1.1.20+ds\n"),
    (
        AdminCommand(b"shutdown\n", ReplyKind.OK),
        b"ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n",
    ),
    (priority_status(), b"fa\t1\t2\t0\t2\n.\n"),
    (cancel_job("H:vm:9"), b"ERR UNKNOWN_JOB\r\n"),
    (workers(), b"39 127.0.0.1 worker two with spaces : fa\n38 127.0.0.1 - :\n.\n"),
    (show_jobs(), b"H:vm:1\t0\t0\t1\n.\n"),
    (AdminCommand(b"show foo\n", ReplyKind.JOBS), b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"),
    (show_unique_jobs(), b"\nu1\n.\n"),
    (getpid(), b"OK 8786\n"),
    (maxqueue("fa", 1), b"OK\r\n"),
    (status(), b".\n"),
    (drop_function("fz"), b"ERR function not found\r\n"),
    (verbose(), b"OK INFO\n"),
]
STREAM = b"".join(data for _, data in PIPELINE)


def _whole_stream_replies(stream: bytes) -> list[AdminReply[Any]]:
    parser = AdminParser()
    for command, _ in PIPELINE:
        parser.expect(command)
    return parser.feed(stream)


def test_pipelined_stream() -> None:
    replies = _whole_stream_replies(STREAM)
    assert [r.command for r in replies] == [c for c, _ in PIPELINE]
    assert [r.ok for r in replies] == [
        True, True, False, True, False, True, True, False, True, True, True, True, False, True,
    ]  # fmt: skip
    assert replies[1].result() == "1.1.20+ds"
    assert replies[5].result()[0].client_id == "worker two with spaces"
    with pytest.raises(AdminError, match="UNKNOWN_JOB"):
        replies[4].result()
    assert replies[12].error is not None and replies[12].error.code == "FUNCTION_NOT_FOUND"


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40), st.booleans())
def test_any_split_gives_the_same_replies(cuts: list[int], crlf: bool) -> None:
    stream = _crlf(STREAM) if crlf else STREAM
    cuts = sorted(min(c, len(stream)) for c in cuts)
    expected = _summary(_whole_stream_replies(stream))
    parser = AdminParser()
    for command, _ in PIPELINE:
        parser.expect(command)
    got: list[AdminReply[Any]] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += parser.feed(stream[start:end])
    assert _summary(got) == expected
    assert parser.pending == ()
    assert parser.buffered == 0


_names = st.text(st.characters(exclude_characters="\r\n\t", exclude_categories=["Cs"]), max_size=20)
_counts = st.integers(min_value=0, max_value=2**32 - 1)


@given(st.lists(st.tuples(_names, _counts, _counts, _counts), max_size=30))
def test_status_round_trip(rows: list[tuple[str, int, int, int]]) -> None:
    data = b"".join(
        f"{name}\t{total}\t{running}\t{count}\n".encode() for name, total, running, count in rows
    )
    got = parse_reply(status(), data + b".\n")
    assert got == tuple(FunctionStatus(*row) for row in rows)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=65535),
            st.text(st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=8),
            # "-" alone means "no client id" and is covered elsewhere.
            st.text(st.characters(categories=["Ll", "Lu", "Nd", "Pd", "Zs"]), max_size=12).filter(
                lambda s: s != "-"
            ),
            st.lists(st.text(st.characters(categories=["Ll", "Nd"]), min_size=1, max_size=8)),
        ),
        max_size=8,
    )
)
def test_workers_round_trip(rows: list[tuple[int, str, str, list[str]]]) -> None:
    # Client ids with spaces but no " :" parse unambiguously.
    lines = []
    for fd, ip, client_id, functions in rows:
        lines.append(f"{fd} {ip} {client_id or '-'} :" + "".join(" " + f for f in functions))
    got = parse_reply(workers(), ("\n".join([*lines, "."]) + "\n").encode())
    assert got == tuple(
        WorkerInfo(fd, ip, client_id or None, tuple(functions))
        for fd, ip, client_id, functions in rows
    )


def test_expect_and_send() -> None:
    parser = AdminParser()
    assert parser.send(version()) == b"version\n"
    parser.expect(getpid())
    assert list(parser.pending) == [version(), getpid()]
    assert parser.feed(b"OK 1.1") == []
    assert parser.buffered == 6
    (reply,) = parser.feed(b".20+ds\nOK 7")
    assert reply.result() == "1.1.20+ds"
    assert list(parser.pending) == [getpid()]
    (reply,) = parser.feed(b"7\n")
    assert reply.result() == 77
    assert not parser.pending
    assert parser.buffered == 0
    assert parser.feed(b"") == []


def test_list_reply_split_over_feeds_counts_as_buffered() -> None:
    parser = AdminParser()
    parser.expect(status())
    assert parser.feed(b"fa\t1\t0\t0\nfb\t0") == []
    assert parser.pending == (status(),)
    assert parser.buffered == len(b"fa\t1\t0\t0\nfb\t0")
    (reply,) = parser.feed(b"\t0\t0\n.\n")
    assert reply.result() == (FunctionStatus("fa", 1, 0, 0), FunctionStatus("fb", 0, 0, 0))


def test_cr_split_from_its_lf() -> None:
    parser = AdminParser()
    parser.expect(cancel_job("h"))
    parser.expect(version())
    assert parser.feed(b"OK\r") == []
    replies = parser.feed(b"\nOK 1.1.20+ds\r")
    assert [r.value for r in replies] == [None]
    (reply,) = parser.feed(b"\n")
    assert reply.value == "1.1.20+ds"


def test_data_with_nothing_pending() -> None:
    with pytest.raises(ProtocolError, match="no admin command pending"):
        AdminParser().feed(b"OK\r\n")


def test_extra_reply_after_the_pending_ones() -> None:
    parser = AdminParser()
    parser.expect(version())
    with pytest.raises(ProtocolError, match="no command pending"):
        parser.feed(b"OK 1\nOK 2\n")


def test_partial_bytes_after_the_pending_ones() -> None:
    parser = AdminParser()
    parser.expect(version())
    with pytest.raises(ProtocolError, match="after the last pending"):
        parser.feed(b"OK 1\nOK")


def test_parser_refuses_use_after_an_error() -> None:
    parser = AdminParser()
    parser.expect(getpid())
    with pytest.raises(ProtocolError):
        parser.feed(b"OK nope\n")
    with pytest.raises(ProtocolError, match="out of step"):
        parser.feed(b"OK 1\n")
    with pytest.raises(ProtocolError, match="out of step"):
        parser.expect(getpid())


def test_err_reply_does_not_break_the_parser() -> None:
    parser = AdminParser()
    parser.expect(cancel_job("h"))
    (reply,) = parser.feed(b"ERR UNKNOWN_JOB\r\n")
    assert not reply.ok
    parser.expect(version())
    (reply,) = parser.feed(b"OK 1.1.20+ds\n")
    assert reply.result() == "1.1.20+ds"


def test_reply_result() -> None:
    ok = AdminReply(version(), "1.1.20+ds")
    assert ok.ok and ok.result() == "1.1.20+ds"
    failed: AdminReply[str] = AdminReply(version(), None, AdminError("UNKNOWN_COMMAND", "x"))
    assert not failed.ok
    with pytest.raises(AdminError):
        failed.result()


# --------------------------------------------------------------------------------------------
# Limits


def test_partial_line_over_limit() -> None:
    parser = AdminParser(max_line=100)
    parser.expect(show_unique_jobs())
    assert parser.feed(b"x" * 100) == []
    with pytest.raises(PacketTooLarge):
        parser.feed(b"x")


def test_complete_line_over_limit() -> None:
    parser = AdminParser(max_line=100)
    parser.expect(show_unique_jobs())
    assert parser.feed(b"x" * 100 + b"\n") == []
    with pytest.raises(PacketTooLarge):
        parser.feed(b"a\n" + b"y" * 101 + b"\n.\n")


def test_single_line_reply_over_limit() -> None:
    parser = AdminParser(max_line=16)
    parser.expect(version())
    with pytest.raises(PacketTooLarge):
        parser.feed(b"OK " + b"1" * 20 + b"\n")


def test_list_reply_over_total_limit() -> None:
    parser = AdminParser(max_reply=1000)
    parser.expect(show_jobs())
    line = b"H:vm:1\t0\t0\t1\n"
    assert parser.feed(line * (1000 // len(line))) == []
    with pytest.raises(PacketTooLarge):
        for _ in range(10):
            parser.feed(line)


def test_total_limit_is_per_reply() -> None:
    parser = AdminParser(max_reply=100)
    line = b"H:vm:1\t0\t0\t1\n"
    for _ in range(5):
        parser.expect(show_jobs())
    replies = parser.feed((line * 7 + b".\n") * 5)
    assert [len(r.result()) for r in replies] == [7] * 5


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        AdminParser(max_line=0)
    with pytest.raises(ValueError):
        AdminParser(max_reply=0)


def test_show_jobs_300k_lines_is_linear() -> None:
    # gearmand sends about 5.3 MB for 300k jobs. Fed in small chunks, a parser that
    # re-scanned or re-copied its buffer would take minutes; this one takes about a second.
    data = b"".join(b"H:vm:%d\t0\t0\t1\n" % i for i in range(300_000)) + b".\n"
    parser = AdminParser()
    parser.expect(show_jobs())
    started = time.perf_counter()
    replies: list[AdminReply[Any]] = []
    for i in range(0, len(data), 4096):
        replies += parser.feed(data[i : i + 4096])
    elapsed = time.perf_counter() - started
    (reply,) = replies
    jobs = reply.result()
    assert len(jobs) == 300_000
    assert jobs[-1] == JobInfo("H:vm:299999", 0, False, True)
    assert elapsed < 20
