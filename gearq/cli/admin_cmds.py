"""The admin commands: ``gearq status``, ``workers``, ``ping``, ``cancel``, ``call``, ``top``.

Each asks every configured server on its own, so one server being down is reported (and
turns the exit status non-zero) without hiding what the others said. Exit statuses are
those of :mod:`gearq.cli._common`: 0 fine, 1 a server down or the task failed, 2 bad usage,
3 no server reachable.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    CommandError,
    add_app_option,
    add_server_options,
    error_text,
    fail,
    load_app,
    positive_float,
    resolve_servers,
    server_error,
    to_json,
)

if TYPE_CHECKING:
    from ..client.admin import AsyncAdminClient
    from ..net.address import ServerAddress
    from ..tasks.app import App

__all__ = ["register"]

_EXIT_HELP = (
    "exit status: 0 every server answered; 1 some server is down or failed (the others are "
    "still shown); 2 bad usage; 3 no server reachable"
)


def _command(name: str, body: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Wrap a command body: a CommandError becomes its line on stderr and its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except CommandError as exc:
            return fail(name, exc)
        except KeyboardInterrupt:
            return 130

    return run


def _admin(servers: list[ServerAddress], args: argparse.Namespace) -> AsyncAdminClient:
    from ..client.admin import AsyncAdminClient

    timeout: float = args.admin_timeout
    return AsyncAdminClient(servers, timeout=timeout, connect_timeout=timeout)


def _run_admin(coro: Coroutine[Any, Any, int]) -> int:
    import asyncio

    return asyncio.run(coro)


def _app_and_servers(args: argparse.Namespace) -> tuple[App | None, list[ServerAddress]]:
    app = load_app(args.app) if getattr(args, "app", None) else None
    return app, resolve_servers(args.servers, app)


def _outcome(up: int, total: int) -> int:
    if up == total:
        return EXIT_OK
    return EXIT_UNREACHABLE if up == 0 else EXIT_FAILED


def _warn_down(command: str, lines: list[str]) -> None:
    for line in lines:
        print(f"gearq {command}: {line}", file=sys.stderr)


# --- status --------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from ._status import (
        app_functions,
        down_lines,
        fetch_snapshot,
        render_per_server,
        render_table,
        snapshot_json,
    )

    app, servers = _app_and_servers(args)
    only, optional = app_functions(app) if app is not None else (None, set[str]())

    async def go() -> int:
        async with _admin(servers, args) as admin:
            snapshot = await fetch_snapshot(admin, only=only, optional=optional)
        up = len(snapshot.servers) - len(snapshot.down)
        if args.json:
            print(to_json(snapshot_json(snapshot), indent=2))
        elif snapshot.all_down:
            pass  # the lines below say it all
        elif args.per_server:
            print("\n".join(render_per_server(snapshot)))
        else:
            print("\n".join(render_table(snapshot)))
        if snapshot.all_down:
            reasons = "; ".join(down_lines(snapshot))
            print(f"gearq status: no server reachable ({reasons})", file=sys.stderr)
        else:
            _warn_down("status", down_lines(snapshot))
        return _outcome(up, len(snapshot.servers))

    return _run_admin(go())


# --- workers -------------------------------------------------------------------------------


def _workers(args: argparse.Namespace) -> int:
    _app, servers = _app_and_servers(args)

    async def go() -> int:
        async with _admin(servers, args) as admin:
            results = await admin.workers()
        rows: list[tuple[str, Any]] = []
        report: list[dict[str, Any]] = []
        down: list[str] = []
        for server, result in results.items():
            if result.error is not None:
                reason = server_error(server, result.error)
                down.append(f"{server} is down: {reason}")
                entry = {"server": str(server), "up": False, "error": reason, "workers": None}
                report.append(entry)
                continue
            shown = [w for w in result.value or () if args.all or w.functions]
            if args.function:
                shown = [w for w in shown if args.function in w.functions]
            report.append({
                "server": str(server), "up": True, "error": None,
                "workers": [{"fd": w.fd, "ip": w.ip, "client_id": w.client_id,
                             "functions": list(w.functions)} for w in shown],
            })  # fmt: skip
            rows.extend((str(server), w) for w in sorted(shown, key=lambda w: w.fd))
        if args.json:
            print(to_json(report, indent=2))
        elif len(down) < len(results):
            table = [("SERVER", "FD", "IP", "CLIENT ID", "FUNCTIONS")] + [
                (s, str(w.fd), w.ip, w.client_id or "-", " ".join(sorted(w.functions)) or "-")
                for s, w in rows
            ]
            widths = [max(len(r[i]) for r in table) for i in range(4)]
            for r in table:
                print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:4])) + "  " + r[4])
            if not rows:
                what = "connections" if args.all else "workers (connections with functions)"
                print(f"(no {what})")
        if len(down) == len(results):
            print(f"gearq workers: no server reachable ({'; '.join(down)})", file=sys.stderr)
        else:
            _warn_down("workers", down)
        return _outcome(len(results) - len(down), len(results))

    return _run_admin(go())


# --- ping ----------------------------------------------------------------------------------


def _ping(args: argparse.Namespace) -> int:
    import asyncio

    from ..protocol.admin import version

    _app, servers = _app_and_servers(args)
    count: int = args.count

    async def one(admin: AsyncAdminClient, server: ServerAddress) -> dict[str, Any]:
        # The first command opens the connection; the round trips timed are the ones after,
        # so the figure is the server's answer time and not TCP setup.
        first = (await admin.command(version(), server))[server]
        if first.error is not None:
            return {"server": str(server), "up": False, "error": server_error(server, first.error)}
        times: list[float] = []
        for _ in range(count):
            started = time.perf_counter()
            answer = (await admin.command(version(), server))[server]
            if answer.error is not None:
                return {
                    "server": str(server),
                    "up": False,
                    "error": server_error(server, answer.error),
                }
            times.append((time.perf_counter() - started) * 1000)
        return {
            "server": str(server), "up": True, "error": None, "version": first.value,
            "rtt_ms": {"min": round(min(times), 3), "avg": round(sum(times) / len(times), 3),
                       "max": round(max(times), 3)},
        }  # fmt: skip

    async def go() -> int:
        async with _admin(servers, args) as admin:
            report = await asyncio.gather(*(one(admin, s) for s in servers))
        up = sum(1 for r in report if r["up"])
        if args.json:
            print(to_json(report, indent=2))
        else:
            width = max(len("SERVER"), *(len(r["server"]) for r in report))
            rtt_head = "RTT (min/avg/max)" if count > 1 else "RTT"
            print(f"{'SERVER'.ljust(width)}  {'STATUS':6}  {rtt_head:26}  VERSION")
            for r in report:
                if not r["up"]:
                    print(f"{r['server'].ljust(width)}  {'down':6}  {'-':26}  {r['error']}")
                    continue
                rtt = r["rtt_ms"]
                if count > 1:
                    text = f"{rtt['min']:.2f}/{rtt['avg']:.2f}/{rtt['max']:.2f} ms"
                else:
                    text = f"{rtt['min']:.2f} ms"
                print(f"{r['server'].ljust(width)}  {'up':6}  {text:26}  {r['version']}")
        return _outcome(up, len(report))

    return _run_admin(go())


# --- cancel --------------------------------------------------------------------------------


def _cancel(args: argparse.Namespace) -> int:
    from ..net.address import ServerAddress
    from ..protocol.errors import AdminError, ArgumentError

    try:
        server = ServerAddress.parse(args.server)
    except ArgumentError as exc:
        raise CommandError(f"SERVER: {exc}") from None

    async def go() -> int:
        status = EXIT_OK
        async with _admin([server], args) as admin:
            for handle in args.handles:
                try:
                    await admin.cancel_job(handle, server)
                except AdminError as exc:
                    status = max(status, EXIT_FAILED)
                    reason = "no such job" if exc.code == "UNKNOWN_JOB" else error_text(exc)
                    print(f"gearq cancel: {server} {handle}: {reason}", file=sys.stderr)
                    continue
                except ArgumentError as exc:
                    raise CommandError(f"HANDLE {handle!r}: {exc}") from None
                except (OSError, ConnectionError, TimeoutError) as exc:
                    down = f"{server} is down: {server_error(server, exc)}"
                    raise CommandError(down, EXIT_UNREACHABLE) from None
                print(f"cancelled {server} {handle}")
        return status

    return _run_admin(go())


# --- call and top: their own modules -------------------------------------------------------


def _call(args: argparse.Namespace) -> int:
    from ._call import run_call

    return run_call(args)


def _top(args: argparse.Namespace) -> int:
    from .top import run_top

    return run_top(args)


# --- the parsers ---------------------------------------------------------------------------

_CALL_EPILOG = """\
arguments: each ARG is a JSON literal where it parses (1, 2.5, true, null, "text",
[1,2], {"a":1}), else the plain string; NAME=VALUE (NAME a Python identifier) is a
keyword argument, its VALUE read the same way. To pass a string that looks like JSON or
holds "=", quote it as JSON: '"42"', '"a=b"'. --kwargs takes a JSON object of keyword
arguments, --args a JSON array of positional ones (prepended). Options go before TASK
or after all the ARGs.

output: streamed chunks one JSON line each, then the result as JSON (on a terminal, a
progress bar on stderr while the task runs). exit status: 0 success; 1 the task failed
(one line on stderr), timed out or was refused; 2 bad usage or unknown task; 3 no server
reachable.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def parser(name: str, help: str, description: str, epilog: str | None = _EXIT_HELP) -> Any:
        # Raw, so the call epilog keeps its layout; the rest is wrapped here.
        return sub.add_parser(
            name,
            help=help,
            description=textwrap.fill(description, 88),
            epilog=epilog if epilog is None or "\n" in epilog else textwrap.fill(epilog, 88),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    status = parser(
        "status",
        "queued, running and workers of every function, summed and per server",
        "Show every function the servers know: jobs queued, running, and workers, summed "
        "over the servers, with a queued/running/workers column per server when there are "
        "several. Servers that are down are marked, not fatal.",
    )
    add_server_options(status)
    add_app_option(status, "show only this app's tasks (zeros for those no server knows)")
    status.add_argument(
        "--per-server", action="store_true", help="one table per server instead of columns"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=_command("status", _status))

    workers = parser(
        "workers",
        "the workers connected to each server",
        "List the connections that registered functions (workers) on each server: file "
        "descriptor, peer address, client id and functions.",
    )
    add_server_options(workers)
    add_app_option(workers, "use this app's servers")
    workers.add_argument(
        "--all", action="store_true", help="every connection, clients and admin ones too"
    )
    workers.add_argument("--function", metavar="NAME", help="only workers that serve NAME")
    workers.add_argument("--json", action="store_true", help="machine-readable output")
    workers.set_defaults(run=_command("workers", _workers))

    ping = parser(
        "ping",
        "each server's round trip and version",
        "Send the admin 'version' command to each server and time the answer (after "
        "connecting, so TCP setup is not counted).",
    )
    add_server_options(ping)
    add_app_option(ping, "use this app's servers")
    ping.add_argument(
        "-c", "--count", type=int, default=1, choices=range(1, 1001), metavar="N",
        help="round trips per server (default 1; min/avg/max when more)",
    )  # fmt: skip
    ping.add_argument("--json", action="store_true", help="machine-readable output")
    ping.set_defaults(run=_command("ping", _ping))

    cancel = parser(
        "cancel",
        "cancel queued jobs by handle on one server",
        "Cancel jobs by their handles on SERVER (handles repeat across servers, so the "
        "server is always named). gearmand drops a cancelled job before a worker gets it; "
        "a job already running is not stopped.",
        "exit status: 0 all cancelled; 1 some handle unknown to the server; 2 bad usage; "
        "3 the server is down",
    )
    cancel.add_argument("server", metavar="SERVER", help="host:port of the job's server")
    cancel.add_argument("handles", metavar="HANDLE", nargs="+", help="job handle(s), H:host:N")
    cancel.add_argument(
        "--admin-timeout", type=positive_float, default=5.0, metavar="SECONDS",
        help="seconds the server gets to connect and answer (default 5)",
    )  # fmt: skip
    cancel.set_defaults(run=_command("cancel", _cancel))

    call = parser(
        "call",
        "run a task from the shell and print its result",
        "Call TASK on a worker and print what it sends back. With -A the task's own options "
        "(serializer, queue) are used; without, the task is addressed by name (a "
        "'queue:name' TASK routes to a queue) with the default msgpack envelope.",
        _CALL_EPILOG,
    )
    call.add_argument("task", metavar="TASK", help="task name (as registered with @app.task)")
    call.add_argument("arguments", metavar="ARG", nargs="*", help="positional or NAME=VALUE")
    add_server_options(call, timeout=None)
    add_app_option(call, "the app defining TASK (its servers, serializer and routing)")
    call.add_argument("--args", dest="json_args", metavar="JSON", help="JSON array of arguments")
    call.add_argument("--kwargs", metavar="JSON", help="JSON object of keyword arguments")
    call.add_argument("--queue", help="route the call to this queue")
    call.add_argument("--priority", choices=("high", "normal", "low"), help="job priority")
    call.add_argument(
        "--serializer", choices=("msgpack", "json"),
        help="envelope serializer without -A (default msgpack)",
    )  # fmt: skip
    call.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS",
        help="give up after SECONDS (exit 1); the job itself may still run",
    )  # fmt: skip
    call.add_argument(
        "--background", action="store_true",
        help="submit a durable background job; print its server, handle and unique",
    )  # fmt: skip
    call.add_argument(
        "--require-worker", action="store_true",
        help="fail at once when no server lists a worker for the task",
    )  # fmt: skip
    call.add_argument(
        "--no-progress", action="store_true", help="no progress bar even on a terminal"
    )
    call.add_argument(
        "--traceback", action="store_true", help="print the remote traceback of a failure"
    )
    call.set_defaults(run=_command("call", _call))

    top = parser(
        "top",
        "live view of every function's queue and workers across servers",
        "A live view of the servers' functions, refreshed every --interval seconds: "
        "queued, running and workers summed over the servers, and per server. q or Ctrl-C "
        "quits. --once prints one frame and exits (for scripts).",
        "exit status: 0 on quit; with --once as gearq status (1 some server down, 3 none "
        "reachable); 2 bad usage (or not a terminal without --once)",
    )
    add_server_options(top)
    add_app_option(top, "show only this app's tasks")
    top.add_argument(
        "-n", "--interval", type=positive_float, default=1.0, metavar="SECONDS",
        help="seconds between refreshes (default 1)",
    )  # fmt: skip
    top.add_argument("--once", action="store_true", help="print one frame, no terminal UI")
    top.add_argument(
        "--sort", choices=("name", "queued", "running", "workers"), default="name",
        help="row order (default name; the others largest first)",
    )  # fmt: skip
    top.set_defaults(run=_command("top", _top))
