"""The ``gearq`` command: one sub-command (or a few related ones) per module of this package.

Each command module exposes ``register(subparsers)``, which adds its parsers and sets
``run`` (a ``Callable[[argparse.Namespace], int]``) as their default. Modules are imported
only to build the parser, and the heavy imports stay inside each module's ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from .. import __version__

__all__ = ["main"]

# In the order `gearq --help` lists them. "server" is special-cased in main(): it parses
# its own options.
_COMMAND_MODULES: tuple[str, ...] = ("demo", "worker_cmd", "admin_cmds")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearq", description="gearq: a typed, Celery-style task queue on Gearman."
    )
    parser.add_argument("--version", action="version", version=f"gearq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] = (
            module.register
        )
        register(sub)
    sub.add_parser(
        "server",
        help="run the embedded Gearman job server (for development and tests)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "server":
        # The server parses its own options, so `gearq server --help` shows them.
        from ..server.cli import main as server_main

        return server_main(args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(args)
