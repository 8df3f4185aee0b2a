"""Handlers in child processes (`--processes N`): the worker (the parent)
keeps everything that talks to CouchDB, and each of N children runs one job
at a time (`child.py`). Children are started with `spawn`, which is safe
beside the parent's threads (a `fork` would copy locks held by them).

Because the handler runs in a process of its own, the parent can stop it for
real: past the job's `timeout` the child is killed (SIGKILL) and the job
fails as TimeoutError; asked to cancel, the child is told at once (the
handler's `check_cancelled()`, `cancelled`, `on_cancel`, an async task's
cancellation) and killed if it has not ended `cancel_grace` seconds later.
A child that dies (a signal, `os._exit`, a segfault) fails only its job,
the error naming the signal or the exit code. A child is replaced after
`max_jobs` jobs, or once its peak memory passes `max_memory_mb`, or when
the handler's code was reloaded (new children import the new code)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import pickle
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..jobs import JobCancelled, QueueError, timed_out, timeout_seconds
from .child import BROKEN, CANCEL, DONE, FAILED, JOB, LOG, PROGRESS, READY, STOP, child_main
from .eventloop import InThreads
from .handlers import Execution, HandlerSource
from .job import Job

log = logging.getLogger(__name__)

START_METHOD = "spawn"
CANCEL_GRACE = 5.0  # seconds a child has to obey a cancel before it is killed
READY_SECONDS = 60.0  # how long a new child may take to import the handler
LONGEST_WAIT = 0.5  # seconds between looks at a job's deadlines while its child is quiet


class ChildFailed(Exception):
    """The handler raised in its child: `error` is what it raised, as the
    job's error; `stopped` says it obeyed a cancel."""

    def __init__(self, error: dict[str, Any], stopped: bool) -> None:
        super().__init__(error.get("message", ""))
        self.error = error
        self.stopped = stopped


class ChildProcessDied(Exception):
    """The child running the job died under it (killed, crashed, exited)."""


class Child:
    """One child process, its pipe, and what it has run."""

    def __init__(self, process: Any, conn: Connection, generation: int) -> None:
        self.process = process
        self.conn = conn
        self.generation = generation
        self.pid: int = process.pid
        self.jobs_done = 0
        self.peak_rss_kb = 0
        self._sending = threading.Lock()

    def send(self, message: tuple) -> None:
        with self._sending:
            self.conn.send(message)

    def cancel(self, seq: int) -> None:
        with contextlib.suppress(OSError, ValueError):  # gone: the job's thread hears of it
            self.send((CANCEL, seq))

    def kill(self) -> None:
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def retire(self) -> None:
        """Ask it to stop once idle; joined in the background."""
        with contextlib.suppress(OSError, ValueError):
            self.send((STOP,))
        threading.Thread(target=self._join_or_kill, daemon=True).start()

    def _join_or_kill(self) -> None:
        self.process.join(10)
        self.kill()

    def death(self) -> str:
        """How the child ended, for the job's error."""
        self.process.join(5)
        code = self.process.exitcode
        if code is None:
            return f"the job's process (pid {self.pid}) stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the job's process (pid {self.pid}) was killed by signal {name}"
        return f"the job's process (pid {self.pid}) exited with code {code}"


class ProcessPool:
    """Runs each job's handler in a child process, in the job's own thread
    of the parent (which waits for the child's messages and writes them).
    `handler` is what children load: a "module:callable" spec, or a picklable
    callable; `handlers` is the parent's source, whose `reloads` count tells
    when children must be replaced."""

    def __init__(
        self,
        handler: str | Callable[..., Any],
        handlers: HandlerSource,
        *,
        processes: int,
        max_jobs: int | None = None,
        max_memory_mb: float | None = None,
        cancel_grace: float = CANCEL_GRACE,
    ) -> None:
        self.handler = handler
        self.handlers = handlers
        self.processes = processes
        self.max_jobs = max_jobs
        self.max_memory_mb = max_memory_mb
        self.cancel_grace = cancel_grace
        self.started = 0  # children started so far
        self._context = multiprocessing.get_context(START_METHOD)
        self._idle: list[Child] = []
        self._busy: set[Child] = set()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # a child became idle
        self._starting = 0  # children being started in the background
        self._seq = itertools.count(1)
        self._closed = False

    def start(self) -> None:
        """Start every child now, so that the first jobs do not wait for imports."""
        children = [self._spawn() for _ in range(self.processes)]
        for child in children:
            self._await_ready(child)
        with self._lock:
            self._idle.extend(children)
        log.info("handlers run in %d child processes (%s)", self.processes, START_METHOD)

    def run(self, job: Job) -> Any:
        """Run the job's handler in a child; its result, or what it raised
        (`ChildFailed`), TimeoutError past its timeout, JobCancelled when a
        cancel was not obeyed in time, `ChildProcessDied`."""
        child = self._take()
        seq = next(self._seq)
        cancel_at: list[float | None] = [None]

        def cancelled() -> None:
            cancel_at[0] = time.monotonic() + self.cancel_grace
            child.cancel(seq)

        try:
            child.send((JOB, seq, job.doc))
            job.on_cancel(cancelled)
            message = self._await_outcome(job, child, seq, cancel_at)
        except BaseException:
            self._drop(child)
            raise
        child.jobs_done += 1
        child.peak_rss_kb = message[-1]
        self._give_back(child)
        if message[0] == FAILED:
            raise ChildFailed(message[2], message[3])
        return message[2]

    def _await_outcome(
        self, job: Job, child: Child, seq: int, cancel_at: list[float | None]
    ) -> tuple:
        timeout = timeout_seconds(job.doc)
        timeout_at = None if timeout is None else job.started + timeout
        while True:
            now = time.monotonic()
            if timeout_at is not None and now >= timeout_at:
                child.kill()
                log.warning("job %s: over its timeout; its process %d killed", job.id, child.pid)
                raise timed_out(job.doc)
            if job.abandoned:  # no longer this worker's (a change by someone else, a release)
                child.kill()
                raise ChildProcessDied(f"its process was killed: {job.abandoned}")
            if cancel_at[0] is not None and now >= cancel_at[0]:
                child.kill()
                log.warning("job %s: cancel not obeyed; its process %d killed", job.id, child.pid)
                raise JobCancelled(f"job {job.id} was cancelled (its process was killed)")
            deadlines = [d for d in (timeout_at, cancel_at[0]) if d is not None]
            wait = min([LONGEST_WAIT, *(d - now for d in deadlines)])
            try:
                if not child.conn.poll(max(0.0, wait)):
                    continue
                message = child.conn.recv()
            except (EOFError, OSError):
                raise ChildProcessDied(child.death()) from None
            if message[1] != seq:
                continue
            if message[0] == LOG:
                job.log(message[2])
            elif message[0] == PROGRESS:
                job.progress(message[2])
            elif message[0] in (DONE, FAILED):
                return message

    # -- the children ---------------------------------------------------------------

    def _take(self) -> Child:
        """An idle child running the current code, else one being started
        (waited for), else a new one."""
        generation = self.handlers.reloads
        with self._changed:
            while True:
                while self._idle:
                    child = self._idle.pop()
                    if child.generation == generation and child.process.exitcode is None:
                        self._busy.add(child)
                        return child
                    self._retire(child)
                if not self._starting:
                    break
                self._changed.wait()
        child = self._spawn()
        try:
            self._await_ready(child)
        except BaseException:
            child.kill()
            raise
        with self._lock:
            self._busy.add(child)
        return child

    def _replace(self) -> None:
        """Start a child in the background for one that ended, so that the
        next job does not wait for its imports (a job's timeout runs from
        its claim)."""
        with self._lock:
            if self._closed:
                return
            self._starting += 1
        threading.Thread(target=self._start_one, name="queshot-child-start", daemon=True).start()

    def _start_one(self) -> None:
        child: Child | None = None
        try:
            child = self._spawn()
            self._await_ready(child)
        except Exception as exc:
            log.warning("a replacement child process did not start: %s", exc)
            child = None
        with self._changed:
            self._starting -= 1
            if child is not None:
                if self._closed:
                    child.kill()
                else:
                    self._idle.append(child)
            self._changed.notify_all()

    def _spawn(self) -> Child:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=child_main, args=(theirs, self.handler), name="queshot-child"
        )
        process.start()
        theirs.close()
        self.started += 1
        return Child(process, ours, self.handlers.reloads)

    def _await_ready(self, child: Child) -> None:
        if not child.conn.poll(READY_SECONDS):
            child.kill()
            raise ChildProcessDied(f"a new process took over {READY_SECONDS:g} s to start")
        try:
            message = child.conn.recv()
        except (EOFError, OSError):
            raise ChildProcessDied(f"a new process could not start: {child.death()}") from None
        if message[0] == BROKEN:
            child.kill()
            raise ChildFailed(message[1], stopped=False)
        assert message[0] == READY
        log.debug("child process %d ready", child.pid)

    def _give_back(self, child: Child) -> None:
        """A child whose job ended: idle again, or retired if it is spent."""
        spent = self.max_jobs is not None and child.jobs_done >= self.max_jobs
        grown = self.max_memory_mb is not None and child.peak_rss_kb > self.max_memory_mb * 1024
        with self._changed:
            self._busy.discard(child)
            if not (spent or grown or self._closed):
                self._idle.append(child)
                self._changed.notify_all()
                return
        reason = f"{child.jobs_done} jobs" if spent else f"{child.peak_rss_kb // 1024} MB"
        log.info("child process %d retired after %s", child.pid, reason)
        self._retire(child)

    def _retire(self, child: Child) -> None:
        child.retire()
        self._replace()

    def _drop(self, child: Child) -> None:
        with self._lock:
            self._busy.discard(child)
        child.kill()
        self._replace()

    @property
    def pids(self) -> list[int]:
        """The children alive now."""
        with self._lock:
            return [c.pid for c in (*self._idle, *self._busy) if c.process.exitcode is None]

    def close(self) -> None:
        """Kill every child (the worker stops: jobs still running were given back)."""
        with self._changed:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
            self._changed.notify_all()
        for child in children:
            child.kill()


def at_least_one(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise QueueError(f"{name} must be >= 1 (got {value})")
    return value


def slots(concurrency: int | None, processes: int | None) -> int:
    """Jobs at once: `concurrency` (default 1), or with `processes` one per
    child, since each child runs one job at a time."""
    at_least_one("concurrency", concurrency)
    if at_least_one("processes", processes) is None:
        return concurrency or 1
    if concurrency is not None and concurrency != processes:
        raise QueueError(
            f"concurrency {concurrency} with processes {processes}: each child process "
            "runs one job at a time, so concurrency is the number of processes"
        )
    return processes


def _for_children(handler: Callable[[Job], Any] | str) -> Callable[[Job], Any] | str:
    """What child processes load: the spec, or the callable itself, which
    they must be able to import (pickle sends it by reference)."""
    if isinstance(handler, str):
        return handler
    try:
        pickle.dumps(handler)
    except Exception as exc:
        raise QueueError(
            f"handler {handler!r} cannot be sent to a child process ({exc}): with processes, "
            "give a 'module:callable' spec or a module-level function"
        ) from None
    return handler


def execution(
    handler: Callable[..., Any] | str,
    handlers: HandlerSource,
    *,
    processes: int | None,
    max_jobs: int | None,
    max_memory_mb: float | None,
    cancel_grace: float,
) -> Execution:
    """Where a worker runs its handlers: in threads, or in `processes` children."""
    if processes is None:
        if max_jobs is not None or max_memory_mb is not None:
            raise QueueError("max_jobs_per_child and max_memory_per_child need processes")
        return InThreads(handlers)
    return ProcessPool(
        _for_children(handler),
        handlers,
        processes=processes,
        max_jobs=at_least_one("max_jobs_per_child", max_jobs),
        max_memory_mb=max_memory_mb,
        cancel_grace=cancel_grace,
    )
