"""The worker's asyncio event loop, for `async def` handlers and tasks: one
loop in a thread of its own, started at the first coroutine. Each async job
is a task on it; the job's own thread waits for the outcome, so sync and
async jobs share the runner, its slots (`--concurrency` is then the number
of tasks in flight) and how outcomes are written."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Coroutine
from typing import Any

from ..jobs import timed_out, timeout_seconds
from ..tasks import running_as
from .handlers import HandlerSource
from .job import Job


class EventLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="queshot-asyncio", daemon=True
                ).start()
                self._loop = loop
            return self._loop

    def run(self, job: Job, coroutine: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
        """Run a job's coroutine to its end and return its result, raising what
        it raises: TimeoutError past `timeout` seconds, asyncio.CancelledError
        once the job is cancelled (both cancel the task)."""
        future = asyncio.run_coroutine_threadsafe(
            _as_job(job, coroutine, timeout), self._running_loop()
        )
        job.on_cancel(future.cancel)
        return future.result()

    def close(self) -> None:
        """Stop the loop; tasks still on it (jobs given back at shutdown) end with it."""
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None


class InThreads:
    """Handlers in the job's own thread; coroutines on the worker's event loop."""

    def __init__(self, handlers: HandlerSource) -> None:
        self.handlers = handlers
        self.loop = EventLoop()

    def run(self, job: Job) -> Any:
        result = self.handlers.get()(job)
        if inspect.iscoroutine(result):
            result = self.loop.run(job, result, self._time_left(job))
        return result

    @staticmethod
    def _time_left(job: Job) -> float | None:
        """Seconds an async job may still run by its timeout (None: no timeout)."""
        timeout = timeout_seconds(job.doc)
        return None if timeout is None else max(0.0, timeout - (time.monotonic() - job.started))

    def start(self) -> None:
        pass

    def close(self) -> None:
        self.loop.close()


async def _as_job(job: Job, coroutine: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
    running_as(job)  # this task's own context: current_job() inside it
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await coroutine
    except TimeoutError:
        if not scope.expired():  # the job's own TimeoutError
            raise
        raise timed_out(job.doc) from None
