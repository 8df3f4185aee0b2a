"""What runs inside a worker's child process (`--processes`): the handler,
one job at a time, and nothing else. The child never talks to CouchDB: the
job's log and progress lines, and its outcome, go to the parent over the
child's pipe, and the parent (`processes.ProcessPool`) writes them. The
parent tells it to run a job, to cancel it, or to stop.

Messages are tuples whose first item is one of the names below. Parent to
child: (JOB, seq, doc), (CANCEL, seq), (STOP,). Child to parent: (READY, pid)
or (BROKEN, error) once, then per job (LOG, seq, line), (PROGRESS, seq, pct)
and one of (DONE, seq, result, peak_rss_kb) or (FAILED, seq, error,
stopped, peak_rss_kb). `seq` numbers the parent's runs, so that a late
cancel never reaches the next job the child runs."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import queue
import resource
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..jobs import HandlerJob, JobCancelled
from ..reload import load_handler
from ..tasks import running_as

JOB, CANCEL, STOP = "job", "cancel", "stop"
READY, BROKEN, LOG, PROGRESS, DONE, FAILED = "ready", "broken", "log", "progress", "done", "failed"


class ChildJob(HandlerJob):
    """The job as a handler in a child process sees it: the same reading API
    as the worker's `Job`. `log` and `progress` are sent to the parent, which
    writes them in order, before the outcome; they never raise here. What
    stays with the parent: the revision held and the writes."""

    def __init__(self, seq: int, doc: dict[str, Any], send: Callable[[tuple], None]) -> None:
        super().__init__(doc)
        self.seq = seq
        self._send = send

    def cancel(self) -> None:
        """The parent passed on a cancel request (on the child's reader thread)."""
        with self.lock:
            callbacks = self._mark_cancelled()
        for callback in callbacks or []:
            with contextlib.suppress(Exception):
                callback()

    def log(self, message: str) -> None:
        self._send((LOG, self.seq, str(message)))

    def progress(self, percent: float) -> None:
        self._send((PROGRESS, self.seq, percent))


def child_main(conn: Connection, handler: str | Callable[..., Any]) -> None:
    """The child's life: load the handler, then run the jobs the parent sends
    until told to stop. Signals meant for the worker (SIGINT from a terminal,
    SIGTERM to its process group) are the parent's to act on; a parent gone
    (its end of the pipe closed) ends the child at once, its job with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sending = threading.Lock()

    def send(message: tuple) -> None:
        with sending:
            conn.send(message)

    try:
        run = load_handler(handler) if isinstance(handler, str) else handler
    except Exception as exc:
        send((BROKEN, error_of(exc)))
        return
    inbox: queue.Queue[ChildJob | None] = queue.Queue()
    current: list[ChildJob | None] = [None]
    reader = threading.Thread(target=_read, args=(conn, send, inbox, current), daemon=True)
    reader.start()
    send((READY, os.getpid()))
    while (job := inbox.get()) is not None:
        outcome = _run(run, job)
        current[0] = None  # before the outcome: a cancel read after it is for no job
        send((*outcome, _peak_rss_kb()))


def _read(
    conn: Connection,
    send: Callable[[tuple], None],
    inbox: queue.Queue[ChildJob | None],
    current: list[ChildJob | None],
) -> None:
    """The child's reader thread: a job becomes the current one as it is
    read (so that a cancel right behind it reaches it), cancels go to it at
    once; a closed pipe (the parent died) ends the process."""
    try:
        while True:
            message = conn.recv()
            if message[0] == JOB:
                current[0] = ChildJob(message[1], message[2], send)
                inbox.put(current[0])
            elif message[0] == CANCEL:
                job = current[0]
                if job is not None and job.seq == message[1]:
                    job.cancel()
            else:
                inbox.put(None)
    except (EOFError, OSError):
        os._exit(1)


def _run(handler: Callable[..., Any], job: ChildJob) -> tuple:
    """(DONE, seq, result) or (FAILED, seq, error, stopped): what the job's
    handler did, `stopped` telling a cancel it obeyed from any other error."""
    running_as(job)
    try:
        result = handler(job)
        if inspect.iscoroutine(result):
            result = asyncio.run(_cancellable(job, result))
        json.dumps(result, allow_nan=False)
        return DONE, job.seq, result
    except (Exception, JobCancelled, asyncio.CancelledError) as exc:
        stopped = isinstance(exc, JobCancelled | asyncio.CancelledError)
        return FAILED, job.seq, error_of(exc), stopped


async def _cancellable(job: ChildJob, coroutine: Any) -> Any:
    """Run an async handler as a task that a cancel request cancels."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coroutine)
    job.on_cancel(lambda: loop.call_soon_threadsafe(task.cancel))
    return await task


def error_of(exc: BaseException) -> dict[str, Any]:
    """An exception as a job's error (type, message, traceback): what crosses the pipe."""
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _peak_rss_kb() -> int:
    """The child's peak resident memory so far (KiB on Linux), for --max-memory-per-child."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
