"""``gearq server`` / ``python -m gearq.server``: run the embedded job server in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..protocol.codec import DEFAULT_MAX_PACKET_SIZE
from .server import DEFAULT_MAX_CONNECTIONS, GearmanServer

__all__ = ["build_parser", "main"]

_LEVELS = ("FATAL", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
# gearmand's level names mapped onto Python logging.
_LOGGING = {
    "FATAL": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": logging.INFO,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}


def build_parser(prog: str = "gearq server") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="An in-memory Gearman job server for development and tests "
        "(speaks gearmand's protocols; use gearmand in production).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("-p", "--port", type=int, default=4730, help="port (0: pick one)")
    parser.add_argument(
        "-j",
        "--job-retries",
        type=int,
        default=0,
        help="hand a job out at most this often when workers die on it (0: unlimited)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        nargs="?",
        const="INFO",
        default="ERROR",
        type=str.upper,
        choices=_LEVELS,
        help="log level (without a value: INFO)",
    )
    parser.add_argument("--max-packet-size", type=int, default=DEFAULT_MAX_PACKET_SIZE)
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    parser.add_argument("--handle-prefix", default=None, help="job handle prefix (H:<host>:)")
    parser.add_argument("--version", action="version", version=f"gearq {__version__}")
    return parser


async def _serve(server: GearmanServer) -> None:
    await server.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, lambda: loop.create_task(server.stop()))
    print(f"gearq server listening on {server.address}", file=sys.stderr, flush=True)
    await server.serve_forever()


def main(argv: Sequence[str] | None = None, *, prog: str = "gearq server") -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    if args.job_retries < 0:
        print("--job-retries must be >= 0", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=_LOGGING[args.verbose],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        server = GearmanServer(
            args.host,
            args.port,
            job_retries=args.job_retries,
            max_packet_size=args.max_packet_size,
            max_connections=args.max_connections,
            handle_prefix=args.handle_prefix,
            verbose=args.verbose,
        )
        asyncio.run(_serve(server))
    except OSError as exc:
        print(f"gearq server: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"gearq server: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
