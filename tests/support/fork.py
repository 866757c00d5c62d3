"""Run a check in a forked child and get its verdict back through a pipe."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable


def in_forked_child(check: Callable[[], bool]) -> bytes:
    """Fork; the child runs ``check()`` and leaves without any cleanup. Returns b"ok" if it
    returned True, b"fail" if False, else the repr of what it raised."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:
        status = b"fail"
        try:
            os.close(read_fd)
            if check():
                status = b"ok"
        except BaseException as exc:
            status = repr(exc).encode()
        finally:
            os.write(write_fd, status)
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        status = pipe.read()
    os.waitpid(pid, 0)
    return status
