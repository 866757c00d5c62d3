"""Hypothesis strategies for the values each serializer carries, and an exact-type oracle."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

# Fixed UTC offsets, including odd ones (seconds, microseconds) that Python allows.
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
tzinfos = st.none() | offsets

big_ints = st.integers(min_value=-(10**60), max_value=10**60)
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1) | big_ints

hashable_scalars = (
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes(timezones=tzinfos)
    | st.dates()
    | st.times(timezones=tzinfos)
    | st.timedeltas()
    | st.decimals(allow_nan=False, allow_infinity=True)
    | st.uuids()
)

# NaNs (a signalling Decimal NaN cannot even be hashed) only where nothing hashes them.
value_scalars = hashable_scalars | st.floats() | st.decimals(allow_nan=True)

hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=8,
)

msgpack_values = st.recursive(
    value_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.sets(hashables, max_size=5)
        | st.frozensets(hashables, max_size=5)
    ),
    max_leaves=20,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)

kwarg_names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)


def typed(value: Any) -> Any:
    """A hashable fingerprint of ``value`` that differs whenever a type or value differs.

    ``1``, ``1.0``, ``True``, ``Decimal(1)`` and ``(1,)``/``[1]`` all get different
    fingerprints, so comparing fingerprints checks a round trip kept every type.
    """
    kind = type(value)
    if kind in (list, tuple):
        return (kind.__name__, tuple(typed(item) for item in value))
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(typed(item) for item in value))
    if kind is dict:
        return ("dict", frozenset((typed(k), typed(v)) for k, v in value.items()))
    if kind is float:
        return ("float", repr(value))  # tells -0.0 from 0.0
    if kind is Decimal:
        return ("Decimal", value.as_tuple())
    if kind in (datetime, time):
        return (kind.__name__, value.replace(tzinfo=None), value.utcoffset())
    if kind in (type(None), bool, int, str, bytes, date, timedelta, uuid.UUID):
        return (kind.__name__, value)
    raise AssertionError(f"unexpected type {kind!r} in a decoded value")
