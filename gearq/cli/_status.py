"""The queue picture ``gearq status`` and ``gearq top`` show: gathered, summed, laid out.

A :class:`Snapshot` is one round of admin ``status`` on every server, with the servers that
did not answer kept as "down" rather than dropped, so every view can say so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..client.admin import AsyncAdminClient
    from ..tasks.app import App

__all__ = [
    "Counts",
    "ServerState",
    "Snapshot",
    "app_functions",
    "fetch_snapshot",
    "render_per_server",
    "render_table",
    "snapshot_json",
    "sorted_snapshot",
]


@dataclass(frozen=True, slots=True)
class Counts:
    queued: int = 0
    running: int = 0
    workers: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.queued + other.queued,
            self.running + other.running,
            self.workers + other.workers,
        )

    def cell(self) -> str:
        return f"{self.queued}/{self.running}/{self.workers}"

    def as_dict(self) -> dict[str, int]:
        return {"queued": self.queued, "running": self.running, "workers": self.workers}


@dataclass(frozen=True, slots=True)
class ServerState:
    server: str
    #: One line saying why the server is down; None when it answered.
    error: str | None
    functions: dict[str, Counts] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Snapshot:
    servers: tuple[ServerState, ...]
    #: Function names in display order.
    functions: tuple[str, ...]
    taken_at: float

    @property
    def down(self) -> tuple[ServerState, ...]:
        return tuple(s for s in self.servers if not s.up)

    @property
    def all_down(self) -> bool:
        return all(not s.up for s in self.servers)

    def total(self, function: str) -> Counts:
        out = Counts()
        for state in self.servers:
            out += state.functions.get(function, Counts())
        return out

    def grand_total(self) -> Counts:
        out = Counts()
        for function in self.functions:
            out += self.total(function)
        return out


def app_functions(app: App) -> tuple[list[str], set[str]]:
    """The Gearman functions of an app's tasks: those always shown, and those shown only
    when a server knows them (the countdown/eta functions, rarely used)."""
    shown = sorted({t.function_name.decode() for t in app.tasks.values()})
    optional = {t.delayed_function_name.decode() for t in app.tasks.values()}
    return shown, optional


def build_snapshot(
    results: Iterable[tuple[str, Sequence[Any] | None, str | None]],
    *,
    only: Sequence[str] | None = None,
    optional: Iterable[str] = (),
    taken_at: float | None = None,
) -> Snapshot:
    """A snapshot from ``(server, status records or None, error or None)`` triples.

    ``only``: show just these functions (zeros where no server knows one), plus the
    ``optional`` ones some server knows.
    """
    servers: list[ServerState] = []
    seen: set[str] = set()
    for server, records, error in results:
        functions: dict[str, Counts] = {}
        for record in records or ():
            counts = Counts(record.queued, record.running, record.workers)
            functions[record.function] = functions.get(record.function, Counts()) + counts
        seen.update(functions)
        servers.append(ServerState(server, error, functions))
    if only is None:
        names = sorted(seen)
    else:
        extra = set(optional) & seen
        names = sorted(set(only) | extra)
    return Snapshot(tuple(servers), tuple(names), time.time() if taken_at is None else taken_at)


async def fetch_snapshot(
    admin: AsyncAdminClient,
    *,
    only: Sequence[str] | None = None,
    optional: Iterable[str] = (),
) -> Snapshot:
    from ._common import server_error

    results = await admin.status()
    triples = [
        (str(server), r.value, None if r.error is None else server_error(server, r.error))
        for server, r in results.items()
    ]
    return build_snapshot(triples, only=only, optional=optional)


def sorted_snapshot(snapshot: Snapshot, key: str) -> Snapshot:
    """The snapshot with its functions ordered by ``key``: ``name``, or ``queued``,
    ``running``, ``workers`` (largest first, then by name)."""
    if key == "name":
        return snapshot
    totals = {f: snapshot.total(f) for f in snapshot.functions}
    order = sorted(snapshot.functions, key=lambda f: (-getattr(totals[f], key), f))
    return Snapshot(snapshot.servers, tuple(order), snapshot.taken_at)


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """The ``--json`` form of a snapshot (documented in docs/admin-commands.md)."""
    functions = []
    for name in snapshot.functions:
        per_server: dict[str, Any] = {}
        for state in snapshot.servers:
            if state.up:
                counts = state.functions.get(name)
                per_server[state.server] = None if counts is None else counts.as_dict()
        totals = snapshot.total(name).as_dict()
        functions.append({"function": name, **totals, "servers": per_server})
    return {
        "taken_at": round(snapshot.taken_at, 3),
        "servers": [
            {
                "server": s.server,
                "up": s.up,
                "error": s.error,
                "totals": sum(s.functions.values(), Counts()).as_dict() if s.up else None,
            }
            for s in snapshot.servers
        ],
        "functions": functions,
        "totals": snapshot.grand_total().as_dict(),
    }


# --- text layout ---------------------------------------------------------------------------

_HEAD = ("QUEUED", "RUNNING", "WORKERS")
_SEP = " | "
_NAME_KEEP = 20
_NAME_MIN = 8


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text.ljust(width)
    return text[: max(width - 1, 0)] + "~"


def render_table(
    snapshot: Snapshot,
    *,
    width: int | None = None,
    max_rows: int | None = None,
    per_server: bool | None = None,
) -> list[str]:
    """The status table: one row per function with its totals, then one ``q/r/w`` column
    per server (when there are several servers, or ``per_server=True``), then TOTAL.

    ``width`` trims the table to a terminal: function names are cut first, then server
    columns are dropped from the right (a note says how many). ``max_rows`` caps the
    function rows (a note says how many more there are).
    """
    servers = snapshot.servers
    show_servers = len(servers) > 1 if per_server is None else per_server
    numbers = [snapshot.total(f) for f in snapshot.functions]
    grand = snapshot.grand_total()
    num_width = max([len(h) for h in _HEAD] + [len(str(v)) for c in [grand] for v in
                    (c.queued, c.running, c.workers)])  # fmt: skip
    up = sum(1 for s in servers if s.up)
    total_label = "TOTAL" if up == len(servers) else f"TOTAL ({up}/{len(servers)} up)"
    name_width = max([len("FUNCTION"), len(total_label)] + [len(f) for f in snapshot.functions])

    cells: list[list[str]] = []
    if show_servers:
        for state in servers:
            if not state.up:
                column = ["down"] * (len(snapshot.functions) + 1)
            else:
                column = [
                    state.functions[f].cell() if f in state.functions else "-"
                    for f in snapshot.functions
                ]
                column.append(sum(state.functions.values(), Counts()).cell())
            cells.append(column)
    col_widths = [
        max([len(s.server)] + [len(c) for c in column])
        for s, column in zip(servers if show_servers else (), cells, strict=False)
    ]

    def fixed(ncols: int) -> int:
        base = 3 * (num_width + 2)
        if ncols:
            base += len(_SEP) + sum(col_widths[:ncols]) + 2 * (ncols - 1)
        return base

    ncols = len(cells)
    if width is not None:
        # Names stay readable (up to _NAME_KEEP characters) before server columns go;
        # then the names get whatever room is left.
        keep = min(name_width, _NAME_KEEP)
        while ncols and keep + 2 + fixed(ncols) > width:
            ncols -= 1
        name_width = max(min(name_width, width - 2 - fixed(ncols)), _NAME_MIN)

    def row(name: str, counts: Counts, index: int) -> str:
        text = (
            _fit(name, name_width)
            + "  "
            + "  ".join(
                str(v).rjust(num_width) for v in (counts.queued, counts.running, counts.workers)
            )
        )
        if ncols:
            text += (
                _SEP
                + "  ".join(cells[c][index].ljust(col_widths[c]) for c in range(ncols)).rstrip()
            )
        return text

    head = _fit("FUNCTION", name_width) + "  " + "  ".join(h.rjust(num_width) for h in _HEAD)
    if ncols:
        head += (
            _SEP + "  ".join(servers[c].server.ljust(col_widths[c]) for c in range(ncols)).rstrip()
        )
    lines = [head]
    rows = list(enumerate(snapshot.functions))
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        hidden = len(rows) - max(max_rows - 1, 0)
        rows = rows[: max(max_rows - 1, 0)]
    if not snapshot.functions:
        lines.append("(no functions known to the servers that answered)")
    for index, name in rows:
        lines.append(row(name, numbers[index], index))
    if hidden:
        lines.append(f"... {hidden} more function(s)")
    lines.append(row(total_label, grand, len(snapshot.functions)))
    notes = []
    if ncols < len(cells):
        notes.append(f"{len(cells) - ncols} server column(s) hidden: too narrow")
    if ncols:
        notes.append("per server: queued/running/workers")
    if notes:
        lines.append("(" + "; ".join(notes) + ")")
    return lines


def render_per_server(snapshot: Snapshot) -> list[str]:
    """One block per server, each a table of its own functions."""
    lines: list[str] = []
    for state in snapshot.servers:
        if lines:
            lines.append("")
        if not state.up:
            lines.append(f"{state.server}  DOWN: {state.error}")
            continue
        only = Snapshot((state,), tuple(sorted(state.functions)), snapshot.taken_at)
        lines.append(state.server)
        lines.extend("  " + line for line in render_table(only, per_server=False))
    return lines


def down_lines(snapshot: Snapshot) -> list[str]:
    return [f"{s.server} is down: {s.error}" for s in snapshot.down]
