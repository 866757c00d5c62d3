"""The ``gearq`` command: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearq", description="gearq: a typed, Celery-style task queue on Gearman."
    )
    parser.add_argument("--version", action="version", version=f"gearq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="show gearq at work (embedded server unless GEARQ_SERVERS is set)",
        description="Start a job server (the embedded one unless GEARQ_SERVERS names "
        "servers), a worker and a client, and show what gearq does.",
    )
    demo.add_argument("--servers", help="comma-separated host:port list (default: embedded)")
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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.servers)
    parser.print_help()
    return 2
