"""A module of tasks for `queshot worker task_module` in tests, and a hook."""

from __future__ import annotations

import asyncio
import logging

from queshot import Hook, Tasks

tasks = Tasks()
log = logging.getLogger("task_module")


@tasks.task
def add(a: int, b: int) -> int:
    return a + b


@tasks.task
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@tasks.task
def fail(message: str) -> None:
    raise RuntimeError(message)


class Timing(Hook):
    """The README's example: each job's time into the log."""

    def after_job(self, job, outcome) -> None:  # type: ignore[no-untyped-def]
        log.info("timing: %s %s %s in %.3f s", job.task, job.id, outcome.state, outcome.duration)
