"""Workers: claim jobs through the `claim` update handler, run a Python
handler on each, and write the outcome back under the same rules.

`Worker` only builds, starts, stops and connects its parts, each a room of
its own with its own loop where it has a thread (ARCHITECTURE.md's table of
the worker's parts). Connection faults are never fatal: every part retries
through one `Outage` (`retrying.Retrier`). Nor is one job: what cannot be
claimed or written for its own content is that job's failure
(`refusals.Unclaimables`). A part whose thread dies of anything else stops
the worker (`parts.PartDied`), rather than leave it alive and deaf."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..couch import Outage
from ..jobs import QueueError, worker_queues
from ..protocol import DDOC_ID
from ..retrying import Retrier
from .arrivals import Arrivals
from .claiming import Claimer
from .completions import CompletionWriter
from .control import QueueControl
from .dispatch import Dispatcher
from .feed import FeedListener, OwnFeed
from .handlers import handler_source
from .history import HistoryCounter
from .hooks import Hook, Hooks, Outcome
from .hostfeed import HostFeed
from .job import Job, JobWriter, RunningJobs, WorkerStats
from .leases import Heartbeats, Reaper
from .limiting import Limiter
from .ordering import QueueOrder, checked_queues
from .parts import PartDied, start_part
from .processes import CANCEL_GRACE, execution, slots
from .refusals import Unclaimables
from .retention import RetentionDuty
from .running import JobRunner
from .settling import Settler
from .signals import StopSignals
from .status import StatusReporter
from .unblocking import Unblocker

if TYPE_CHECKING:
    from ..queue import Queue

__all__ = ["Hook", "Job", "Outcome", "PartDied", "Worker", "WorkerStats"]

log = logging.getLogger(__name__)

OUTCOME_GIVE_UP_SECONDS = 1.0  # how long a stop waits for halted outcome writers to say so


class Worker:
    """Runs `handler(job)` for the jobs of `queue`, up to `concurrency` at once.
    The handler is a function (sync or `async def`), a `Tasks` registry that
    runs each job's task by name, or a "module:callable" / "module" spec of
    either; `hooks` (see `Hook`) hear of the worker's and each job's events.

    `queue` may be a list of queues of one database, taken in order (RQ's):
    `Worker([high, default], handler)` claims a `default` job only for a slot
    no due `high` job can fill (see `ordering.py` for the exact rule). One
    feed, one claim pool and one status document serve them all; the lease
    is the first queue's, `autoremove` and `view` each queue's own.

    Seed controls: `wake_up()` (look for jobs now), `go_to_sleep()` (stop
    looking until woken or a job arrives), `pause()` / `resume()` (claim
    nothing until resumed; running jobs go on). `run()` blocks and handles
    SIGTERM/SIGINT; `start()` / `stop()` are the non-blocking pair.

    `processes=N` runs handlers in N child processes, one job each at a
    time (see `processes.py`); the handler must then be importable.
    `share_feed=True` shares one `_changes` feed with the host's other
    workers on this database and account (see `hostfeed.py`)."""

    def __init__(
        self,
        queue: Queue | Sequence[Queue],
        handler: Callable[[Job], Any] | str,
        *,
        reload: bool = False,
        name: str | None = None,
        concurrency: int | None = None,
        processes: int | None = None,
        max_jobs_per_child: int | None = None,
        max_memory_per_child: float | None = None,
        cancel_grace: float = CANCEL_GRACE,
        lease_seconds: float | None = None,
        poll_interval: float = 5.0,
        reap_interval: float | None = None,
        retention_interval: float = 60.0,
        history_interval: float = 5.0,
        shutdown_grace: float = 30.0,
        feed_heartbeat: float = 2.0,
        share_feed: bool = False,
        hooks: Iterable[Hook] = (),
    ) -> None:
        self.queues = checked_queues(queue)
        concurrency = slots(concurrency, processes)
        self.queue = queue = self.queues[0]
        self.db = queue.db
        self.handlers = handler_source(handler, reload)
        self.execution = execution(
            handler,
            self.handlers,
            processes=processes,
            max_jobs=max_jobs_per_child,
            max_memory_mb=max_memory_per_child,
            cancel_grace=cancel_grace,
        )
        host = socket.gethostname()
        self.name = name or f"{host}-{os.getpid()}"
        self.id = f"{self.name}:{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds or queue.lease_seconds
        if not (isinstance(self.lease_seconds, int | float) and 0 < self.lease_seconds < math.inf):
            # A claim carrying an unusable lease would be refused as a bad request,
            # which the worker takes to be the job's problem.
            raise QueueError(f"lease_seconds must be a number > 0 (got {self.lease_seconds})")
        self.poll_interval = poll_interval
        self.reap_interval = reap_interval or max(1.0, self.lease_seconds / 2)
        self.shutdown_grace = shutdown_grace
        self.feed_heartbeat = feed_heartbeat
        self.stats = WorkerStats()
        self.fatal: Exception | None = None

        self._stopping = threading.Event()  # no more claims
        self._halt = threading.Event()  # background threads end
        self._signals = StopSignals(
            lambda within: self.runner.release_all(within=within), shutdown_grace
        )
        self._outage = Outage(f"worker {self.name}: CouchDB at {self.db.couch.url}", log)
        self._retrying = Retrier(self._outage, self._halt)
        self.history = HistoryCounter(
            self.db, self.id, interval=history_interval, outage=self._outage, halt=self._halt
        )
        self.hooks = Hooks([*hooks, self.history])
        self.running = RunningJobs(concurrency)
        self.writer = JobWriter(self.db, self.id, self._retrying)
        self.unclaimables = Unclaimables(
            self.db, worker_id=self.id, retrying=self._retrying, stats=self.stats
        )
        self.unblocker = Unblocker(
            self.db, reconcile_interval=self.reap_interval, outage=self._outage, halt=self._halt
        )
        self.arrivals = Arrivals(self.db, outage=self._outage, halt=self._halt)
        self.settler = Settler(self.db, self.id, patience=self.lease_seconds / 2, halt=self._halt)
        self.limiter = Limiter(
            self.db,
            worker_id=self.id,
            settler=self.settler,
            lease_seconds=self.lease_seconds,
            halt=self._halt,
            wake=lambda: self.dispatcher.wake_up(),
        )
        self.hooks.add(self.limiter)  # gives a job's tokens back when its run ends
        paths = [q.path for q in self.queues]
        self.control = QueueControl(paths, on_change=self._queue_paused_or_resumed)
        self.picker = QueueOrder(
            self.db,
            self.queues,
            self.id,
            held=self.control.holds,
            skipped=self.limiter.skipping(self.unclaimables.skipped),
        )
        self.peers = self.picker.peers[0]  # the first queue's rivals (each queue has its own)
        self.runner = JobRunner(
            self.db,
            execution=self.execution,
            writer=self.writer,
            completions=CompletionWriter(
                self.db, retrying=self._retrying, halt=self._halt, running=self.running.__len__
            ),
            running=self.running,
            stats=self.stats,
            autoremove=self._autoremove,
            on_done=self.wake_up,
            on_finished=self.unblocker.finished,
            hooks=self.hooks,
        )
        self.claimer = Claimer(
            self.db,
            writer=self.writer,
            lease_seconds=self.lease_seconds,
            settler=self.settler,
            retrying=self._retrying,
            stats=self.stats,
            start=self.runner.start,
            unclaimables=self.unclaimables,
            control=self.control,
            limiter=self.limiter,
        )
        self.dispatcher = Dispatcher(
            picker=self.picker,
            claimer=self.claimer,
            running=self.running,
            control=self.control,
            start_jobs=self.runner.start,
            outage=self._outage,
            poll_interval=poll_interval,
            stopping=self._stopping,
            halt=self._halt,
            on_fatal=self._fail_fatally,
            feed_live=lambda: self._feed.live,
        )
        self.reaper = Reaper(
            self.db,
            interval=self.reap_interval,
            lease_seconds=self.lease_seconds,
            stats=self.stats,
            outage=self._outage,
            halt=self._halt,
        )
        self.retention = RetentionDuty(
            self.db, paths, interval=retention_interval, outage=self._outage, halt=self._halt
        )
        self._heartbeats = Heartbeats(
            self.db,
            running=self.running,
            writer=self.writer,
            settler=self.settler,
            lease_seconds=self.lease_seconds,
            outage=self._outage,
            halt=self._halt,
        )
        own = OwnFeed(self.db, heartbeat=feed_heartbeat, outage=self._outage, halt=self._halt)
        self._feed = FeedListener(
            self.db,
            worker_id=self.id,
            queues=self.picker,
            control=self.control,
            source=HostFeed(own, wake=self.dispatcher.job_offered) if share_feed else own,
            wake=self.dispatcher.job_offered,
            cancel_requested=self.runner.cancel_requested,
            blocked_seen=self.unblocker.blocked_seen,
            arrived=self.arrivals.seen,
            limits_heard=self.limiter.heard,
            poll_interval=poll_interval,
            retrying=self._retrying,
            halt=self._halt,
            on_fatal=self._fail_fatally,
        )
        self._status = StatusReporter(
            self.db,
            worker_id=self.id,
            name=self.name,
            queues=worker_queues([q.path for q in self.queues]),
            concurrency=concurrency,
            lease_seconds=self.lease_seconds,
            describe=lambda: {
                "jobs": self.running_jobs,
                "paused": self.paused or self.control.paused,
                "feed": self._feed.source.describe(),
                "limits": self.limiter.describe(),  # tokens held, jobs held back
                **self.history.described(),  # runs ended here, the last when
            },
            outage=self._outage,
            halt=self._halt,
        )
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"Worker({self.id!r}, queue={self.queue_names!r})"

    @property
    def queue_names(self) -> str:
        """The worker's queues in order, as one line: "high, email/welcome"."""
        return ", ".join("/".join(q.path) for q in self.queues)

    def _autoremove(self, job: Job) -> bool:
        index = self.picker.index_of(job.doc.get("queues"))
        return index is not None and self.queues[index].autoremove

    # -- seed controls ---------------------------------------------------------------

    def wake_up(self) -> None:
        self.dispatcher.wake_up()

    def go_to_sleep(self) -> None:
        self.dispatcher.go_to_sleep()

    def pause(self) -> None:
        self.dispatcher.pause()

    def resume(self) -> None:
        self.dispatcher.resume()

    @property
    def paused(self) -> bool:
        return self.dispatcher.paused

    def _queue_paused_or_resumed(self) -> None:
        self.wake_up()
        self._status.nudge()

    @property
    def replicas(self) -> int:
        """The database's `n`, as read when the worker started (claims carry w = n)."""
        return self.settler.replicas

    @property
    def running_jobs(self) -> list[str]:
        return self.running.ids()

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming in background threads; returns at once."""
        self.settler.replicas = self.db.replicas()
        self.control.heard(self.db.get_or_none(DDOC_ID))  # before the first claim; then the feed
        user = self.db.couch.session_user()  # the account tokens, status and counts name
        self.limiter.load(user)  # likewise
        self._status.user = self.history.user = user
        self._status.write()
        self.handlers.start()
        self.execution.start()
        self.hooks.call("on_start", self)  # before the first claim, as Hook promises
        # The feed is not joined on stop: it ends at its next heartbeat.
        self._threads = [
            start_part(part.run, name, self._fail_fatally)
            for part, name in (
                (self.dispatcher, "dispatch"),
                (self._heartbeats, "heartbeat"),
                (self.reaper, "reaper"),
                (self.retention, "retention"),
                (self.history, "history"),
                (self.runner.completions, "complete"),
                (self._status, "status"),
                (self.unblocker, "unblock"),
                (self.arrivals, "arrivals"),
                (self.limiter, "limits"),
            )
        ]
        start_part(self._feed.run, "changes", self._fail_fatally)
        log.info(
            "worker %s on %s %s (concurrency %d, lease %ss, n=%d)",
            self.id,
            "queues" if len(self.queues) > 1 else "queue",
            self.queue_names,
            self.concurrency,
            self.lease_seconds,
            self.replicas,
        )

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within `grace` seconds, give
        back (release) those that cannot, and end the background threads."""
        grace = self.shutdown_grace if grace is None else grace
        self._stopping.set()
        self.dispatcher.stop()
        deadline = time.monotonic() + grace
        while len(self.running) and time.monotonic() < deadline:
            self.running.slot_freed.wait(0.1)
            self.running.slot_freed.clear()
        # Halt first: a job thread retrying its outcome through an outage holds
        # the job's lock until halted, and releasing needs that lock.
        self._halt.set()
        self._status.nudge()
        self.runner.release_all()
        # Jobs whose handler returned stop retrying their outcome once halted.
        self.running.wait_while(lambda job: job.returned, OUTCOME_GIVE_UP_SECONDS)
        self.dispatcher.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._status.remove()
        self.handlers.close()
        self.execution.close()
        self.hooks.call("on_stop", self)
        log.info("worker %s stopped: %s", self.id, self.stats.summary())

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (graceful; a second signal gives the running
        jobs back and exits) or a fatal error (wrong credentials, missing
        design doc), which is raised."""
        self._signals.install()
        self.start()
        self._signals.wait()
        self.stop()
        if self.fatal is not None:
            raise self.fatal

    def reap(self) -> int:
        """Take back expired jobs now (the reaper does it every `reap_interval`)."""
        return self.reaper.reap()

    def _fail_fatally(self, exc: Exception) -> None:
        log.error("worker %s cannot go on: %s", self.id, exc)
        self.fatal = exc
        self._stopping.set()
        self._signals.request()
