"""What the admin commands share: exit codes, server lists, ``-A`` apps, one-line errors.

Nothing heavy is imported at module level: ``gearq --help`` imports this module.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ..net.address import ServerAddress
    from ..tasks.app import App

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CommandError",
    "add_app_option",
    "add_server_options",
    "error_text",
    "load_app",
    "positive_float",
    "positive_int",
    "resolve_servers",
    "server_error",
    "to_json",
]

#: Everything worked (every server answered, the task succeeded).
EXIT_OK = 0
#: Something failed but the command ran: a server is down (the others are still shown),
#: the task raised, timed out, or the server refused the cancel.
EXIT_FAILED = 1
#: Bad usage: unknown option or task, arguments that do not parse, an app that won't load.
EXIT_USAGE = 2
#: No configured server could be reached at all.
EXIT_UNREACHABLE = 3

ENV_SERVERS = "GEARQ_SERVERS"


class CommandError(Exception):
    """Ends a command with one line on stderr and ``code`` as its exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def add_server_options(parser: argparse.ArgumentParser, *, timeout: float | None = 5.0) -> None:
    """``-s/--servers``, and ``--admin-timeout`` unless ``timeout`` is None."""
    parser.add_argument(
        "-s",
        "--servers",
        metavar="LIST",
        help="comma-separated host:port list (default: the -A app's servers, else "
        f"${ENV_SERVERS}, else localhost:4730)",
    )
    if timeout is None:
        return
    parser.add_argument(
        "--admin-timeout",
        type=positive_float,
        default=timeout,
        metavar="SECONDS",
        help=f"seconds a server gets to connect and to answer (default {timeout:g}); past "
        "it the server counts as down",
    )


def add_app_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-A", "--app", metavar="MODULE[:APP]", help=what)


def error_text(exc: BaseException) -> str:
    """An exception as one readable line.

    gearq's own errors already say what went wrong and where; others get their type name.
    """
    from ..protocol.errors import GearqError

    text = " ".join(str(exc).split())
    if isinstance(exc, GearqError) and text:
        return text
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def server_error(server: object, exc: BaseException) -> str:
    """Why ``server`` failed, in one line, without repeating the server's name."""
    text = error_text(exc)
    prefix = f"{server}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def load_app(ref: str) -> App:
    """The :class:`App` named by ``MODULE[:ATTRIBUTE]``, by the rules of ``gearq worker``
    (:func:`gearq.runtime.loader.load_app`)."""
    from ..runtime.loader import AppLoadError
    from ..runtime.loader import load_app as find_app

    try:
        return find_app(ref)[0]
    except AppLoadError as exc:
        raise CommandError(f"-A {ref}: {exc}") from None


def resolve_servers(option: str | None, app: App | None = None) -> list[ServerAddress]:
    """``--servers``, else the app's servers (which honour ``$GEARQ_SERVERS`` unless the
    app fixes its own), else ``$GEARQ_SERVERS``, else localhost:4730."""
    from ..net.address import parse_servers
    from ..protocol.errors import ArgumentError

    if option is not None and option.strip():
        spec, where = option, "--servers"
    elif app is not None:
        return list(app.servers)
    else:
        spec, where = os.environ.get(ENV_SERVERS, "").strip(), f"${ENV_SERVERS}"
    try:
        return parse_servers(spec or None)
    except ArgumentError as exc:
        raise CommandError(f"{where}: {exc}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def to_json(value: Any, *, indent: int | None = None) -> str:
    """JSON text of a task value; what JSON lacks (bytes, sets, dates...) is approximated."""
    return json.dumps(value, default=_jsonable, ensure_ascii=False, indent=indent)


def fail(command: str, error: CommandError) -> int:
    print(f"gearq {command}: {error.message}", file=sys.stderr, flush=True)
    return error.code


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    raise CommandError(message, code)


def server_names(servers: Sequence[ServerAddress]) -> list[str]:
    return [str(s) for s in servers]
