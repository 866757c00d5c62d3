"""TaskWorker and countdown/eta jobs: SUBMIT_JOB_EPOCH on the task's ``@eta`` function."""

from __future__ import annotations

import time

from gearq.client import Priority
from gearq.tasks import encode_call
from gearq.testing import GearmandProcess

from .test_runner_support import caller, eventually, make_app, make_worker, run, serving


def test_epoch_job_runs_on_time_and_does_not_block_the_tasks_other_jobs(
    gearmand: GearmandProcess,
) -> None:
    app = make_app(gearmand)
    ran: dict[str, float] = {}

    @app.task
    def stamp(label: str) -> str:
        ran[label] = time.time()
        return label

    async def main() -> None:
        worker = make_worker(app, poll_interval=1.0)  # the default
        async with serving(worker), caller(gearmand) as c:
            due = int(time.time()) + 2  # gearmand's epoch has 1 s resolution
            await c.client.submit(
                stamp.delayed_function_name,
                encode_call("stamp", ("later",), eta=due),
                background=True,
                run_at=due,
            )
            grabs_before = worker.worker_stats.grabs
            # A LOW job of the same task, now: not held up by the job that is not yet due.
            started = time.monotonic()
            reply = await c.call(stamp, "now", priority=Priority.LOW)
            assert reply.value == "now"
            assert time.monotonic() - started < 1.0  # blocked, it would wait ~2 s
            assert "later" not in ran
            await eventually(lambda: "later" in ran, timeout=6)
            assert due - 0.05 <= ran["later"] <= due + 2.5
            # Waiting for it did not make the worker spin on GRAB/NO_JOB.
            assert worker.worker_stats.grabs - grabs_before < 200

    run(main())
