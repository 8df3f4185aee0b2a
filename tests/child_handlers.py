"""Handlers for workers with --processes in tests: each does what its job's
`data.do` says, and records its start (with the child's pid) through
tests/recording.py, so that the test can count children and executions."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from typing import Any

from recording import record

from queshot import Tasks, current_job

BALLAST: list[bytearray] = []  # what "grow" keeps, so that the child's memory grows
tasks = Tasks()


def handle(job: Any) -> Any:
    record(job.id, "start", attempt=job.attempts)
    do = (job.data or {}).get("do", "return")
    if do == "hang":
        while True:
            time.sleep(1)
    if do == "exit":
        os._exit(3)
    if do == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if do == "segfault":
        ctypes.string_at(0)
    if do == "spin":
        return spin(job.data["start"], job.data["end"])
    if do == "grow":
        BALLAST.append(bytearray(job.data["mb"] * 1024 * 1024))
    if do == "cooperate":
        while True:
            job.check_cancelled()
            time.sleep(0.05)
    if do == "describe":
        job.log("a line from the child")
        job.progress(42)
        return describe(job)
    return {"pid": os.getpid()}


def spin(start: float, end: float) -> dict[str, Any]:
    """Burn CPU from epoch `start` to `end` (the same window for every job of
    a test); say how much CPU time this thread got in it."""
    late = time.time() > start
    time.sleep(max(0.0, start - time.time()))
    cpu = time.thread_time()
    while time.time() < end:
        pass
    return {"pid": os.getpid(), "cpu": time.thread_time() - cpu, "late": late}


def describe(job: Any) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "id": job.id,
        "data": job.data,
        "attempts": job.attempts,
        "cancelled": job.cancelled,
        "current": current_job().id,
    }


async def handle_async(job: Any) -> Any:
    record(job.id, "start", attempt=job.attempts)
    if (job.data or {}).get("do") == "hang":
        await asyncio.sleep(3600)
    await asyncio.sleep(0)
    return describe(job)


@tasks.task
def described(word: str) -> dict[str, Any]:
    job = current_job()
    job.log(f"task says {word}")
    return {**describe(job), "word": word}
