"""Function names and Gearman uniques: the 63-byte limit, namespaces, attempts, hashing."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.protocol.errors import ArgumentError
from gearq.protocol.limits import check_unique
from gearq.tasks import (
    SAME_ARGS,
    SerializationError,
    args_unique,
    function_name,
    key_unique,
    make_unique,
    new_task_id,
    split_function_name,
)

from .strategies import msgpack_values


def test_function_names() -> None:
    assert function_name("app.add") == b"app.add"
    assert function_name("app.add", "math") == b"math:app.add"
    assert split_function_name(b"math:app.add") == ("math", "app.add")
    assert split_function_name("app.add") == (None, "app.add")
    assert split_function_name("q:ns:task") == ("q", "ns:task")
    for bad_task, queue in (("", None), ("has space", None), ("t", "a:b"), ("t", "")):
        with pytest.raises(ArgumentError):
            function_name(bad_task, queue)


def test_new_task_id() -> None:
    ids = {new_task_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_key_unique_literal_form_and_namespaces() -> None:
    assert key_unique("report-2024", background=True) == b"b:report-2024"
    assert key_unique(b"report-2024", background=False) == b"f:report-2024"
    assert key_unique("report-2024", background=True, attempt=2) == b"b:report-2024#2"
    task_id = new_task_id()
    assert key_unique(task_id, background=True) == b"b:" + task_id.encode()


def test_key_unique_golden_hashed_form() -> None:
    # Byte-exact, so other clients that compute uniques stay compatible: BLAKE2b with a
    # 16-byte digest (libsodium's crypto_generichash(key, '', 16)).
    digest = b"7945aa8e149e9e0341cdf4065f93da46"
    assert hashlib.blake2b(b"x" * 80, digest_size=16).hexdigest().encode() == digest
    assert key_unique("x" * 80, background=False, attempt=3) == (
        b"f~" + b"x" * 26 + b"~" + digest + b"#3"
    )
    assert key_unique("x" * 80, background=True) == b"b~" + b"x" * 28 + b"~" + digest
    assert key_unique("a key with spaces", background=True) == (
        b"b~a~bb4aa5ff8f678e6a01b965486d9e2f1a"
    )


def test_args_unique_golden() -> None:
    # Changing the canonical form would stop coalescing across gearq versions mid-upgrade.
    assert args_unique("app.add", (1, 2), {}, background=True) == (
        b"b=app.add~b57309e07a76aaced8fe73fd146fb962"
    )


@pytest.mark.parametrize(
    "key",
    ["with space", "hash#tag", "nul\0", "é", "tab\t", "x" * 62, b"\xff\xfe"],
    ids=repr,
)
def test_keys_that_cannot_be_literal_are_hashed(key: str | bytes) -> None:
    unique = key_unique(key, background=True)
    assert unique.startswith(b"b~")
    assert len(unique) <= 63
    check_unique(unique)


def test_hash_separates_long_keys_with_the_same_prefix() -> None:
    a = key_unique("p" * 100 + "a", background=True)
    b = key_unique("p" * 100 + "b", background=True)
    assert a != b
    assert a[:30] == b[:30]


def test_literal_and_attempt_suffix_never_collide() -> None:
    # "x#2" as a key must not equal key "x" at attempt 2.
    assert key_unique("x#2", background=True) != key_unique("x", background=True, attempt=2)


def test_bad_keys_and_attempts() -> None:
    for key in ("", b""):
        with pytest.raises(ArgumentError):
            key_unique(key, background=True)
    with pytest.raises(ArgumentError):
        key_unique(5, background=True)  # type: ignore[arg-type]
    for attempt in (0, -1, True, 1.5):
        with pytest.raises(ArgumentError):
            key_unique("k", background=True, attempt=attempt)  # type: ignore[arg-type]


keys = st.text(min_size=1) | st.binary(min_size=1)


@given(keys, st.booleans(), st.integers(min_value=1, max_value=10**12))
def test_every_unique_fits_gearmand(key: str | bytes, background: bool, attempt: int) -> None:
    unique = key_unique(key, background=background, attempt=attempt)
    check_unique(unique)  # <= 63 bytes, no NUL
    assert unique[:1] == (b"b" if background else b"f")
    assert unique == key_unique(key, background=background, attempt=attempt)
    if attempt > 1:
        assert unique.endswith(b"#%d" % attempt)


@given(keys, keys, st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=5))
def test_distinct_keys_or_attempts_give_distinct_uniques(
    a: str | bytes, b: str | bytes, att_a: int, att_b: int
) -> None:
    raw_a = a.encode() if isinstance(a, str) else a
    raw_b = b.encode() if isinstance(b, str) else b
    same = raw_a == raw_b and att_a == att_b
    ua = key_unique(a, background=True, attempt=att_a)
    ub = key_unique(b, background=True, attempt=att_b)
    assert (ua == ub) == same
    assert key_unique(a, background=True) != key_unique(a, background=False)


def test_args_unique_ignores_dict_and_set_order() -> None:
    first = args_unique("t", ({"a": 1, "b": {2, 3}},), {"x": 1, "y": 2}, background=True)
    second = args_unique("t", ({"b": {3, 2}, "a": 1},), {"y": 2, "x": 1}, background=True)
    assert first == second
    # Sets whose iteration order differs (-1 and -2 share a hash).
    assert list({-1, -2}) != list({-2, -1})
    assert args_unique("t", ({-1, -2},), {}, background=True) == args_unique(
        "t", ({-2, -1},), {}, background=True
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((1,), (1.0,)),
        ((1,), (True,)),
        (([1],), ((1,),)),
        (({1},), (frozenset({1}),)),
        (("1",), (b"1",)),
        ((1, 2), (2, 1)),
        (({"a": 1},), ({"a": 2},)),
        (([1, [2]],), ([[1], 2],)),
    ],
    ids=repr,
)
def test_args_unique_tells_different_calls_apart(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert args_unique("t", a, {}, background=True) != args_unique("t", b, {}, background=True)


def test_args_unique_layout() -> None:
    unique = args_unique("app.add", (1, 2), {}, background=True)
    assert unique.startswith(b"b=app.add~")
    assert len(unique) == len(b"b=app.add~") + 32
    assert args_unique("app.add", (1, 2), {}, background=False).startswith(b"f=app.add~")
    assert args_unique("other", (1, 2), {}, background=True)[-32:] != unique[-32:]
    retry = args_unique("app.add", (1, 2), {}, background=True, attempt=12)
    assert retry == unique + b"#12"
    long_name = args_unique("t" * 300, (), {}, background=True, attempt=99)
    check_unique(long_name)


@given(st.lists(msgpack_values, max_size=3), st.text(min_size=1, max_size=100))
def test_args_unique_always_fits(args: list[Any], task: str) -> None:
    check_unique(args_unique(task, args, {}, background=True, attempt=7))


def test_args_unique_refuses_unsupported_types() -> None:
    with pytest.raises(SerializationError):
        args_unique("t", (object(),), {}, background=True)


def test_make_unique() -> None:
    common: dict[str, Any] = {"task_name": "t", "args": (1, 2), "kwargs": {"k": 3}}
    assert make_unique("key", background=True, **common) == b"b:key"
    assert make_unique(b"key", background=False, attempt=2, **common) == b"f:key#2"
    assert make_unique(SAME_ARGS, background=True, **common) == args_unique(
        "t", (1, 2), {"k": 3}, background=True
    )
    seen: list[Any] = []

    def by_first(*args: Any, **kwargs: Any) -> str:
        seen.append((args, kwargs))
        return f"first-{args[0]}"

    assert make_unique(by_first, background=True, **common) == b"b:first-1"
    assert seen == [((1, 2), {"k": 3})]
    with pytest.raises(ArgumentError, match="returned int"):
        make_unique(lambda *a, **k: 5, background=True, **common)  # type: ignore[arg-type]
