"""How often gearmand has handed a job out: the one place a worker can learn it.

gearmand tells a worker nothing about retries. It keeps a per-job RETRIES count (shown by
the admin ``show jobs``) that grows each time the job is requeued because its worker's
connection closed, and drops the job once it reaches ``--job-retries`` (``-j N``). The
default ``-j 0`` means "never drop" on gearmand 1.1.x, so a job that crashes its worker is
handed out forever: operators should run gearmand with an explicit ``-j N``.

``show jobs`` lists every job on the server, so asking costs a reply proportional to the
queue (about 5 MB and 0.4 s for 300,000 queued jobs). It is offered for the occasional
question ("is this a poison job?"), not for every job.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl

from ..net.address import ServerAddress
from ..protocol import admin

__all__ = ["server_retries"]


async def server_retries(
    server: ServerAddress,
    handle: bytes,
    *,
    timeout: float = 5.0,
    ssl: _ssl.SSLContext | None = None,
) -> int | None:
    """RETRIES of the job ``handle`` on ``server``, or None if the server does not list it.

    Raises OSError (or TimeoutError) when the server cannot be asked.
    """

    async def ask() -> int | None:
        reader, writer = await asyncio.open_connection(server.host, server.port, ssl=ssl)
        try:
            parser = admin.AdminParser()
            writer.write(parser.send(admin.show_jobs()))
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError(f"{server}: closed during show jobs")
                replies = parser.feed(data)
                if replies:
                    wanted = handle.decode("utf-8", "surrogateescape")
                    jobs: tuple[admin.JobInfo, ...] = replies[0].result()
                    for job in jobs:
                        if job.handle == wanted:
                            return job.retries
                    return None
        finally:
            writer.close()

    return await asyncio.wait_for(ask(), timeout)
