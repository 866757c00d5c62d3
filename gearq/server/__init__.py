"""An embedded Gearman job server in pure Python asyncio, for development, tests and demos.

It speaks gearmand's binary and text (admin) protocols, so any Gearman client or worker
works against it. Production deployments should use gearmand.

* :class:`GearmanServer`: ``async with GearmanServer(port=0) as server: server.address``
* :class:`EmbeddedServer`: the same in a daemon thread, for synchronous code and tests.
* :func:`main`: the command line (``python -m gearq.server --port 4730``).
"""

from .broker import Broker
from .cli import main
from .embedded import EmbeddedServer
from .jobs import Priority
from .server import DEFAULT_MAX_CONNECTIONS, GearmanServer

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "Broker",
    "EmbeddedServer",
    "GearmanServer",
    "Priority",
    "main",
]
