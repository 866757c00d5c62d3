"""What ``gearq worker`` runs: loading an app, the pools, signals, liveness.

* :mod:`.loader`: ``MODULE[:APP]`` to an :class:`~gearq.tasks.app.App`.
* :mod:`.supervisor`: runs a :class:`~gearq.tasks.runner.TaskWorker` with one of the
  pools (``threads``, ``asyncio``, ``prefork``), handles signals and recycles the process.
* :mod:`.prefork`: the process pool; the parent holds the Gearman connections and hands
  each job to a child (:mod:`.child`) over a socket pair (:mod:`.ipc`).
* :mod:`.health`: the health file a running worker keeps fresh, and its check.

Dependencies: this package uses ``gearq.tasks`` and ``gearq.worker``; nothing below it
imports it.
"""

from __future__ import annotations

from .loader import AppLoadError, load_app

__all__ = ["AppLoadError", "load_app"]
