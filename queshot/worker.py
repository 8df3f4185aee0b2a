"""Workers: claim jobs through the `claim` update handler, run a Python
handler on each, and write the outcome back under the same rules.

The claim protocol (ARCHITECTURE.md): candidates are spread so that workers
do not all fight over the first rows (`picking.py`); any 409 means "not
yours"; claims carry `w` = the database's `n`, only a 201 is ownership, a 202
is settled (`settling.py`) by reading every leaf from every copy after a
short wait and owning the job only if CouchDB's winning revision names this
worker; the loser deletes its branch. While a job runs, a heartbeat extends its lease and checks for
conflict branches (replication, `new_edits=false`), resolved the same way.

Threads: one dispatcher claims, one thread per running job (daemon, so a
handler that never returns cannot keep the process alive after shutdown),
one heartbeat/status thread, one lease reaper, one `_changes` listener that
wakes the dispatcher when a job becomes claimable (and tells the picker what
rivals took), one writer of batched completions (`completions.py`).

Connection faults (no answer, or a 5xx) are never fatal: running jobs keep
running, finished ones keep their outcome in memory, every thread retries with
capped backoff, and all of them report to one `Outage`, so that an outage is
one log line per worker (and one when CouchDB answers again).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from .completions import CompletionWriter
from .couch import (
    BadRequest,
    Conflict,
    CouchError,
    Forbidden,
    NotFound,
    Outage,
    ServerError,
    ServerUnreachable,
    Unauthorized,
)
from .picking import Picker
from .queue import DDOC, DEFAULT_VIEW, Queue, QueueError, now_ms
from .reload import ReloadingHandler, load_handler
from .settling import Settler, Undecided

log = logging.getLogger(__name__)

WORKER_DOC_PREFIX = "queshot-worker:"
SETTLE_DELAY = 0.25  # seconds to let copies sync before judging a 202
REAP_BATCH = 50
ROUND_GATHER = 0.005  # seconds a dispatcher waits for more slots once one is free
FINAL_HANDLERS = frozenset({"complete", "fail", "release"})
# What a worker's feed needs: jobs becoming claimable, and claims (what rivals take).
FEED_SELECTOR = {"state": {"$in": ["inactive", "active"]}}
MAX_RETRY_DELAY = 2.0  # cap of the backoff while CouchDB does not answer (s)
LAST_RELEASE_SECONDS = 1.5  # what a second signal leaves for giving running jobs back


class HandlerSource(Protocol):
    """Where a worker gets its handler for each job (reloading in dev mode)."""

    def get(self) -> Callable[[Job], Any]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class _Static:
    def __init__(self, handler: Callable[[Job], Any]) -> None:
        self._handler = handler

    def get(self) -> Callable[[Job], Any]:
        return self._handler

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def _handler_source(handler: Callable[[Job], Any] | str, reload: bool) -> HandlerSource:
    """A handler given as a callable or as "package.module:callable"; with
    `reload`, its module (and the project modules it imports) are re-imported
    on change: running jobs keep the code they started with."""
    if not reload:
        return _Static(load_handler(handler) if isinstance(handler, str) else handler)
    if not isinstance(handler, str):
        handler = f"{handler.__module__}:{handler.__qualname__}"
    return ReloadingHandler(handler)


def _taken_back(worker_id: str, answer: Any) -> str:
    """What the `expire` handler did with a job, for the reaper's log line."""
    answer = answer if isinstance(answer, dict) else {}
    state = answer.get("state")
    if answer.get("why") == "timeout":
        then = "a retry is scheduled" if state == "inactive" else "failed"
        return f"ran over its timeout while held by {worker_id}; {then}"
    stalls = answer.get("stalls")
    if state == "inactive":
        return f"lease of {worker_id} ran out (stall {stalls}); waiting again, no attempt used"
    return f"lease of {worker_id} ran out (stall {stalls}, more than max_stalls); failed"


def _generation(rev: str) -> int:
    """The revision number: 3 for "3-abc..."."""
    return int(rev.partition("-")[0])


class Job:
    """A claimed job, as the handler sees it: `id`, `data`, `doc`, `attempts`,
    `log(msg)` and `progress(pct)`. Writes go against the revision this worker
    holds; if someone else changed the job (a human in Fauxton, the reaper),
    the job is abandoned: its result will not overwrite theirs."""

    def __init__(self, worker: Worker, doc: dict[str, Any], rev: str) -> None:
        self.id: str = doc["_id"]
        self.doc = doc
        self.data: Any = doc.get("data")
        self.attempts: int = doc.get("attempts", 1)
        self.rev = rev
        # While `rev` is still the claim's, the stored document is this copy
        # (`doc` is the handler's to change): see Worker._complete.
        self.claimed_rev = rev
        self._claimed_doc = copy.deepcopy(doc)
        self.abandoned: str | None = None
        self.finished = False  # its outcome (or release) is written: no more writes
        self.started = time.monotonic()
        self.next_beat = self.started
        self._worker = worker
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Job({self.id!r}, attempts={self.attempts})"

    def log(self, message: str) -> None:
        """Append a line to the job's log (server-stamped)."""
        self._worker._write(self, "log", {"msg": str(message)})

    def progress(self, percent: float) -> None:
        """Report progress, 0-100."""
        self._worker._write(self, "progress", {"progress": percent})


@dataclass
class WorkerStats:
    """Counters for logs, the demo and the benchmark."""

    claim_attempts: int = 0
    claims_won: int = 0
    claim_conflicts: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    abandoned: int = 0
    released: int = 0
    reaped: int = 0


class Worker:
    """Runs `handler(job)` for the jobs of `queue`, up to `concurrency` at once.

    Seed controls: `wake_up()` (look for jobs now), `go_to_sleep()` (stop
    looking until woken or a job arrives), `pause()` / `resume()` (claim
    nothing until resumed; running jobs go on). `run()` blocks and handles
    SIGTERM/SIGINT; `start()` / `stop()` are the non-blocking pair."""

    def __init__(
        self,
        queue: Queue,
        handler: Callable[[Job], Any] | str,
        *,
        reload: bool = False,
        name: str | None = None,
        concurrency: int = 1,
        lease_seconds: float | None = None,
        poll_interval: float = 5.0,
        reap_interval: float | None = None,
        shutdown_grace: float = 30.0,
        feed_heartbeat: float = 2.0,
    ) -> None:
        if queue.writeonly:
            raise QueueError(f"queue {queue.name!r} is writeonly: it cannot create workers")
        if concurrency < 1:
            raise QueueError(f"concurrency must be >= 1 (got {concurrency})")
        self.queue = queue
        self.db = queue.db
        self.handlers = _handler_source(handler, reload)
        host = socket.gethostname()
        self.name = name or f"{host}-{os.getpid()}"
        self.id = f"{self.name}:{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds or queue.lease_seconds
        self.poll_interval = poll_interval
        self.reap_interval = reap_interval or max(1.0, self.lease_seconds / 2)
        self.shutdown_grace = shutdown_grace
        self.feed_heartbeat = feed_heartbeat
        self.stats = WorkerStats()
        self.fatal: Exception | None = None
        self.replicas = 1

        # Keyed by the Job object, not its id: after a timeout the same worker
        # may claim the job's retry while the first attempt's code still runs.
        self._running: set[Job] = set()
        self._running_lock = threading.Lock()
        self._wake = threading.Event()
        self._slot_free = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._asleep = False
        self._stopping = threading.Event()  # no more claims
        self._halt = threading.Event()  # background threads end
        self._stop_requested = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_rev: str | None = None
        self._completions = CompletionWriter(
            self.db, retrying=self._retrying, halt=self._halt, running=lambda: len(self._running)
        )
        self._picker = Picker(self.db, queue)
        self._claimer = ThreadPoolExecutor(concurrency, thread_name_prefix="queshot-claim")
        self._reap_after = 0.0  # no reaping before then (monotonic)
        self._outage = Outage(f"worker {self.name}: CouchDB at {self.db.couch.url}", log)

    def __repr__(self) -> str:
        return f"Worker({self.id!r}, queue={self.queue.name!r})"

    # -- seed controls ---------------------------------------------------------------

    def wake_up(self) -> None:
        self._asleep = False
        self._wake.set()

    def go_to_sleep(self) -> None:
        self._asleep = True
        self._wake.clear()

    def pause(self) -> None:
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()
        self.wake_up()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @property
    def running_jobs(self) -> list[str]:
        with self._running_lock:
            return [job.id for job in self._running]

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming in background threads; returns at once."""
        self.replicas = self.db.replicas()
        self.settler = Settler(
            self.db,
            self.id,
            replicas=self.replicas,
            patience=self.lease_seconds / 2,
            halt=self._halt,
        )
        self._reap_after = time.monotonic() + self.lease_seconds
        self._write_status()
        self.handlers.start()
        for target, name in (
            (self._dispatch_loop, "dispatch"),
            (self._heartbeat_loop, "heartbeat"),
            (self._reap_loop, "reaper"),
            (self._feed_loop, "changes"),
            (self._completions.run, "complete"),
        ):
            thread = threading.Thread(target=target, name=f"queshot-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info(
            "worker %s on queue %s (concurrency %d, lease %ss, n=%d)",
            self.id,
            self.queue.name,
            self.concurrency,
            self.lease_seconds,
            self.replicas,
        )

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within `grace` seconds, give
        back (release) those that cannot, and end the background threads."""
        grace = self.shutdown_grace if grace is None else grace
        self._stopping.set()
        self._resumed.set()
        self._wake.set()
        deadline = time.monotonic() + grace
        while self.running_jobs and time.monotonic() < deadline:
            self._slot_free.wait(0.1)
            self._slot_free.clear()
        # Halt first: a job thread retrying its outcome through an outage holds
        # the job's lock until halted, and releasing needs that lock.
        self._halt.set()
        with self._running_lock:
            unfinished = list(self._running)
        for job in unfinished:
            self._release(job)
        self._claimer.shutdown(wait=False)
        for thread in self._threads:
            if thread.name != "queshot-changes":  # ends at its next feed heartbeat
                thread.join(timeout=5)
        self._remove_status()
        self.handlers.close()
        log.info("worker %s stopped: %s", self.id, self._summary())

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (graceful; a second signal exits at once) or
        a fatal error (wrong credentials, missing design doc), which is raised."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        self.start()
        while not self._stop_requested.wait(0.5):
            pass
        self.stop()
        if self.fatal is not None:
            raise self.fatal

    def request_stop(self) -> None:
        self._stop_requested.set()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_requested.is_set():
            log.warning("second signal: giving back the running jobs, then exiting")
            self._give_back_running(within=LAST_RELEASE_SECONDS)
            os._exit(1)
        log.info("signal %d: finishing running jobs (up to %ss)", signum, self.shutdown_grace)
        self._stop_requested.set()

    def _give_back_running(self, *, within: float) -> None:
        """Release every running job at once, for at most `within` seconds
        (as container runtimes kill soon after their second signal); a job not
        released by then comes back by its lease."""
        with self._running_lock:
            jobs = list(self._running)
        threads = [threading.Thread(target=self._release, args=(job,), daemon=True) for job in jobs]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + within
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _fail_fatally(self, exc: Exception) -> None:
        log.error("worker %s cannot go on: %s", self.id, exc)
        self.fatal = exc
        self._stopping.set()
        self._stop_requested.set()

    def _summary(self) -> str:
        s = self.stats
        return (
            f"{s.completed} complete, {s.retried} retried, {s.failed} failed, "
            f"{s.abandoned} abandoned, {s.released} released; claims {s.claims_won}/"
            f"{s.claim_attempts} won, {s.claim_conflicts} conflicts"
        )

    # -- connection trouble ------------------------------------------------------------

    # Every thread reports to one Outage, so that an outage is one log line per
    # worker (and one when CouchDB answers again), not one per thread or request.

    def _retrying(self, action: Callable[[], Any]) -> Any:
        """Run `action` until it gets an answer: connection faults are retried
        with capped backoff (the job's result waits in memory), for as long as
        the worker is not halted."""
        delay = 0.2
        while True:
            try:
                result = action()
                self._outage.answered()
                return result
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)
                if self._halt.wait(delay):
                    raise
                delay = min(delay * 2, MAX_RETRY_DELAY)

    # -- claiming ------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            if not self._resumed.is_set():
                self._resumed.wait(0.5)
                continue
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_free.wait(1.0)
                self._slot_free.clear()
                if self.concurrency - len(self._running) < self.concurrency:
                    # Jobs completed in one batch free their slots one by one:
                    # a moment's wait lets one round claim for all of them.
                    self._halt.wait(ROUND_GATHER)
                continue
            if self._asleep:
                self._wake.wait(self.poll_interval)
                self._asleep = False
                continue
            self._wake.clear()
            try:
                delay = self._picker.hint_delay()
                if delay:
                    self._halt.wait(delay)
                candidates, from_view = self._picker.next_round(free)
                claimed = self._claim_some(candidates, free, from_view=from_view)
                self._outage.answered()
                backoff = 0.2
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)
                self._halt.wait(backoff)
                backoff = min(backoff * 2, MAX_RETRY_DELAY)
                continue
            except (Unauthorized, Forbidden) as exc:
                self._fail_fatally(exc)
                return
            except NotFound as exc:
                self._fail_fatally(
                    CouchError(f"{exc} - are the design docs pushed? (`queshot push`)")
                )
                return
            if not claimed and (not candidates or (not from_view and self._picker.drained)):
                # Nothing to claim, or only hints that rivals won since a read
                # found nothing (the feed would have named anything newer).
                wait = self.poll_interval
                next_due = self._picker.next_due
                if next_due is not None:
                    wait = max(0.01, min(wait, (next_due - now_ms()) / 1000))
                self._wake.wait(wait)

    def _claim_some(self, candidates: list[str], free: int, *, from_view: bool) -> int:
        """Claim candidates until `free` jobs are won, as many claims at once
        as slots are free; the jobs won in one go start together, so that
        short ones also finish together and share a completion batch. A batch
        lost whole ends the round: the rest of the page is likely taken too,
        and the feed has not said so yet."""
        claimed = attempts = 0
        rest = list(candidates)
        failure: Exception | None = None
        while rest and claimed < free and failure is None:
            if self._stopping.is_set() or not self._resumed.is_set():
                break
            rest = self._picker.still_open(rest)
            if not rest:
                break
            batch, rest = rest[: free - claimed], rest[free - claimed :]
            attempts += len(batch)
            won = []
            for future in [self._claimer.submit(self._claim, job_id) for job_id in batch]:
                try:
                    job = future.result()
                except Exception as exc:  # raised below, once every won job is started
                    failure = failure or exc
                    continue
                if job is not None:
                    won.append(job)
            self._start_job(*won)
            claimed += len(won)
            if not won:  # rivals are ahead of the feed on these rows: read afresh
                rest = []
        self._picker.round_done(
            from_view=from_view,
            attempts=attempts,
            claimed=claimed,
            unused=rest if failure is None else [],
        )
        if failure is not None:
            raise failure
        return claimed

    def _claim(self, job_id: str) -> Job | None:
        self.stats.claim_attempts += 1
        sent_at = time.monotonic()
        try:
            result = self.db.update(
                DDOC,
                "claim",
                job_id,
                {
                    "worker_id": self.id,
                    "lease_seconds": self.lease_seconds,
                    "queue": self.queue.path,  # the handler refuses other queues' jobs
                },
                w=self.replicas,
            )
        except (Conflict, NotFound):
            self.stats.claim_conflicts += 1
            return None
        except Forbidden:
            # pouchdb-server runs validate_doc_update against the newest revision
            # rather than the one the handler read, so a claim that lost the race
            # to a claim *and* a completion is refused as "complete -> active"
            # (403) where CouchDB answers 409. Refused either way; fatal only if
            # the job is still waiting (then the refusal is about us).
            current = self.db.get_or_none(job_id)
            if current is not None and current.get("state") == "inactive":
                raise
            self.stats.claim_conflicts += 1
            return None
        except (ServerUnreachable, ServerError) as exc:
            # The answer is lost, not necessarily the claim. Left unsettled, a
            # stored claim would keep the job held by this worker, unrun, until
            # its lease ran out - and count as a failed attempt.
            self._outage.failed(exc)
            result = None
        if result is None:
            log.info("claim of %s: answer lost; settling once CouchDB answers", job_id)
        elif result.status == 201 and isinstance(result.body, dict) and "job" in result.body:
            self.stats.claims_won += 1
            return Job(self, result.body["job"], result.new_rev)
        else:  # 202: stored, but not on every copy; ownership unknown until settled.
            log.info("claim of %s answered %d: settling", job_id, result.status)
            time.sleep(SETTLE_DELAY)
        my_rev = result.new_rev if result else None
        try:
            doc = self._retrying(lambda: self.settler.resolve(job_id, my_rev, sent_at=sent_at))
        except Undecided as exc:
            # Claims sent from now on can be decided: let them go on, and
            # decide this one once its copies answer (or give it up).
            log.info("claim of %s cannot be decided yet (%s); deciding it apart", job_id, exc)
            threading.Thread(
                target=self._settle_apart, args=(job_id, my_rev, sent_at), daemon=True
            ).start()
            return None
        return self._settled(doc)

    def _settled(self, doc: dict[str, Any] | None) -> Job | None:
        if doc is None:
            self.stats.claim_conflicts += 1
            return None
        self.stats.claims_won += 1
        return Job(self, doc, doc["_rev"])

    def _settle_apart(self, job_id: str, my_rev: str | None, sent_at: float) -> None:
        """Decide a claim that was in flight as a node holding a copy of the
        job went away: wait for the node (up to the settler's patience), and
        run the job if the claim won. Meanwhile its slot went to other claims,
        so the worker may run one job more than its concurrency for a while."""
        try:
            job = self._settled(
                self._retrying(lambda: self.settler.settle(job_id, my_rev, sent_at=sent_at))
            )
        except Undecided as exc:
            self.stats.claim_conflicts += 1
            log.warning(
                "claim of %s undecided (%s): not run, its lease brings it back", job_id, exc
            )
            return
        except CouchError as exc:
            log.warning("claim of %s not settled (%s): its lease brings it back", job_id, exc)
            return
        if job is not None:
            self._start_job(job)

    # -- running -------------------------------------------------------------------------

    def _start_job(self, *jobs: Job) -> None:
        """Run jobs, each in its own thread; all are registered as running
        first (the completion batch counts on it)."""
        with self._running_lock:
            for job in jobs:
                job.next_beat = job.started + self._beat_every(job)
                self._running.add(job)
        for job in jobs:
            threading.Thread(
                target=self._run_job, args=(job,), name=f"queshot-job-{job.id}", daemon=True
            ).start()

    def _beat_every(self, job: Job) -> float:
        """Heartbeat well before the lease ends, and right after a timeout, so
        that the server fails a job over its timeout promptly."""
        every = max(0.5, self.lease_seconds / 3)
        timeout = job.doc.get("timeout")
        if isinstance(timeout, int | float) and timeout > 0:
            until_timeout = job.started + timeout + 0.2 - time.monotonic()
            every = min(every, max(0.2, until_timeout))
        return every

    def _run_job(self, job: Job) -> None:
        outcome = "abandoned"
        try:
            handler = self.handlers.get()
            try:
                result = handler(job)
                json.dumps(result, allow_nan=False)
            except Exception as exc:  # the handler's failure is the job's outcome
                error = {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                }
                outcome = self._finish(job, "fail", {"error": error})
            else:
                body = {} if result is None else {"result": result}
                outcome = self._finish(job, "complete", body)
        except CouchError as exc:  # e.g. still unreachable when the worker stopped
            log.error("job %s: outcome not recorded (%s); its lease brings it back", job.id, exc)
        except Exception:
            log.exception("job %s: could not record its outcome", job.id)
        finally:
            duration = time.monotonic() - job.started
            with self._running_lock:
                self._running.discard(job)
            self._slot_free.set()
            self._wake.set()
            log.info("job %s %s in %.3f s", job.id, outcome, duration)

    def _finish(self, job: Job, handler: str, body: dict[str, Any]) -> str:
        if handler == "complete":
            response = self._complete(job, body)
        else:
            response = self._write(job, handler, body)
        if response is None:
            self.stats.abandoned += 1
            return f"abandoned ({job.abandoned or 'released at shutdown'})"
        if handler == "complete":
            self.stats.completed += 1
            if self.queue.autoremove:
                try:
                    self._retrying(lambda: self.db.delete(job.id, job.rev))
                except Conflict:
                    log.info("job %s changed after completing; not removed", job.id)
            return "complete"
        if isinstance(response.body, dict) and response.body.get("state") == "inactive":
            self.stats.retried += 1
            return f"failed, retry {job.attempts + 1} scheduled"
        self.stats.failed += 1
        return "failed"

    def _write(self, job: Job, handler: str, body: dict[str, Any], *, retry: bool = True) -> Any:
        """Call a lifecycle handler for a held job against the revision held.
        A 409 means someone else changed the job: abandon it, never overwrite."""
        with job._lock:
            if job.abandoned or job.finished:
                log.debug("job %s is %s: %s not written", job.id, job.abandoned or "done", handler)
                return None
            payload = {**body, "worker_id": self.id, "rev": job.rev}

            def send() -> Any:
                return self.db.update(DDOC, handler, job.id, payload)

            try:
                response = self._retrying(send) if retry else send()
            except (Conflict, NotFound) as exc:
                if handler == "complete" and isinstance(exc, Conflict):
                    own = self._own_completion(job, body)
                    if own is not None:
                        return own
                job.abandoned = exc.reason or exc.error or "changed by someone else"
                log.warning(
                    "job %s: %s refused (%s); abandoning its result", job.id, handler, job.abandoned
                )
                return None
            job.rev = response.new_rev or job.rev
            job.finished = handler in FINAL_HANDLERS
            return response

    def _complete(self, job: Job, body: dict[str, Any]) -> Any:
        """Complete a held job. If nothing was written to it since the claim
        (no heartbeat, log or progress: the common short job), the stored
        document is known, so the completed document is written back through
        `_bulk_docs`, batched with other jobs', against the claim's revision: a
        job someone else changed still answers 409 (abandoned, as with the
        handler), and validate_doc_update still rules. One round trip per batch
        instead of one handler call per job. Otherwise, or if the batch refused
        it for another reason, or if the worker halts before the batch is
        written (a job claimed during shutdown), the `complete` handler."""
        with job._lock:
            if not job.abandoned and job.rev == job.claimed_rev:
                result = self._completions.write(self._completed_doc(job, body))
                if result.get("rev") and not result.get("error"):
                    job.rev, job.finished = result["rev"], True
                    return result
                if result.get("error") == "conflict":
                    own = self._own_completion(job, body)
                    if own is not None:
                        return own
                    job.abandoned = "changed by someone else"
                    log.warning(
                        "job %s: complete refused (conflict); abandoning its result", job.id
                    )
                    return None
                log.info("job %s: batched completion not written (%s); via handler", job.id, result)
        return self._write(job, "complete", body)

    def _own_completion(self, job: Job, body: dict[str, Any]) -> dict[str, Any] | None:
        """After a 409 on completing a job: the stored revision, if it is this
        worker's own completion, written by an attempt whose answer was lost
        (its retry then met the revision that attempt made). Called with the
        job's lock held."""
        try:
            doc = self.db.get(job.id)
        except CouchError:
            return None
        next_revision = _generation(doc["_rev"]) == _generation(job.rev) + 1
        if not (
            next_revision
            and doc.get("state") == "complete"
            and doc.get("worker_id") == self.id
            and doc.get("result") == body.get("result")
        ):
            return None
        job.rev, job.finished = doc["_rev"], True
        log.info("job %s: completed by an attempt whose answer was lost", job.id)
        return {"rev": doc["_rev"]}

    def _completed_doc(self, job: Job, body: dict[str, Any]) -> dict[str, Any]:
        """What the `complete` handler would store (completed_at by this
        machine's clock instead of the server's), on the claimed revision."""
        doc = {
            name: value
            for name, value in job._claimed_doc.items()
            if name in ("_id", "_attachments") or not name.startswith("_")
        }
        doc.update(_rev=job.rev, state="complete", completed_at=now_ms(), progress=100)
        doc.update(lease_expires_at=None, **body)
        return doc

    def _release(self, job: Job) -> None:
        try:
            if self._write(job, "release", {}, retry=False) is not None:
                self.stats.released += 1
                log.info("job %s released unfinished", job.id)
        except CouchError as exc:
            log.warning("job %s: release failed (%s); its lease will bring it back", job.id, exc)
        with job._lock:
            job.abandoned = job.abandoned or "released at shutdown"

    # -- heartbeats, status, reaping, wake-ups -----------------------------------------

    def _heartbeat_loop(self) -> None:
        status_every = max(1.0, self.lease_seconds / 3)
        next_status = time.monotonic() + status_every
        while not self._halt.wait(0.2):
            now = time.monotonic()
            with self._running_lock:
                due = [job for job in self._running if job.next_beat <= now]
            for job in due:
                self._beat(job)
            if now >= next_status:
                self._write_status()
                next_status = now + status_every

    def _beat(self, job: Job) -> None:
        job.next_beat = time.monotonic() + self._beat_every(job)
        try:
            response = self._write(
                job, "heartbeat", {"lease_seconds": self.lease_seconds}, retry=False
            )
            if response is not None:
                doc = self.db.get(job.id, conflicts=True)
                if doc.get("_conflicts") and self._lost_conflict(job):
                    with job._lock:
                        job.abandoned = "lost a conflict to another worker's claim"
                    log.warning("job %s: %s", job.id, job.abandoned)
            self._outage.answered()
        except (ServerUnreachable, ServerError) as exc:
            self._outage.failed(exc)
            job.next_beat = time.monotonic() + 1.0
        except CouchError as exc:
            log.warning("job %s: heartbeat failed: %s", job.id, exc)

    def _lost_conflict(self, job: Job) -> bool:
        """Whether a conflict branch found while running the job wins over
        ours; undecidable now (a copy unreachable) counts as not lost: the
        next heartbeat looks again."""
        try:
            return self.settler.resolve(job.id, job.rev, sent_at=job.started) is None
        except Undecided as exc:
            log.info("job %s: conflict not resolved yet (%s)", job.id, exc)
            return False

    def _reap_loop(self) -> None:
        while not self._halt.wait(self.reap_interval * random.uniform(0.5, 1.5)):
            # Leases run on the server's clock even while no worker can renew
            # them: after an outage - or a start, which may follow one unseen -
            # give live workers one lease to renew before taking jobs back.
            if time.monotonic() < self._reap_after or self._outage.ended_within(self.lease_seconds):
                continue
            try:
                self.reap()
                self._outage.answered()
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)
            except CouchError as exc:
                log.warning("reaper: %s", exc)

    def reap(self) -> int:
        """Take back running jobs whose lease or timeout has run out. The
        `expire` handler decides by the server's clock; this only nominates."""
        rows = self.db.view(DDOC, "leases", endkey=now_ms(), limit=REAP_BATCH)["rows"]
        reaped = 0
        for row in rows:
            try:
                answer = self.db.update(DDOC, "expire", row["id"], {}).body
            except (Conflict, NotFound):
                continue
            reaped += 1
            log.warning("job %s: %s", row["id"], _taken_back(row["value"], answer))
        self.stats.reaped += reaped
        return reaped

    def _feed_loop(self) -> None:
        """Wake the dispatcher when a job of this worker's queue becomes
        claimable, handing it the id as a hint if the job is due, and tell
        the picker which jobs rivals take. State and queue are checked here;
        CouchDB pre-filters with a Mango selector (no JavaScript), where the
        server can (`_feed_selector`). Not a `_view` filter: that runs the map
        function for every change in every worker's feed (on pouchdb-server in
        a fresh JS context each time: 10 ms of server CPU per job with four
        workers, twice the claim). A worker on a custom pending view (the
        seed's `view` option) cannot tell what that view selects, so it is
        only woken and the view read decides. One feed for the worker's life:
        pouchdb-server keeps serving (and paying for) every continuous feed a
        client ever closed."""
        hint = self.queue.view == DEFAULT_VIEW
        try:
            for row in self.db.changes(
                since="now",
                include_docs=True,
                selector=self._feed_selector(),
                heartbeat=self.feed_heartbeat,
                stop=self._halt,
                max_backoff=MAX_RETRY_DELAY,
                outage=self._outage,
            ):
                doc = row.get("doc") or {}
                mine = self._in_queue(doc.get("queues"))
                if doc.get("state") != "inactive":
                    if mine or row.get("deleted"):
                        self._picker.strike(row["id"])  # taken, finished or removed
                    continue
                if not mine:
                    continue
                run_at = doc.get("run_at")
                if hint and (not isinstance(run_at, int | float) or run_at <= now_ms()):
                    self._picker.offer(row["id"])
                self._asleep = False
                self._wake.set()
        except (Unauthorized, Forbidden) as exc:
            self._fail_fatally(exc)
        except CouchError as exc:
            log.warning("changes feed ended (%s); polling every %s s", exc, self.poll_interval)

    def _feed_selector(self) -> dict[str, Any] | None:
        """FEED_SELECTOR if the server filters `_changes` by selector, else
        None (pouchdb-server does not take the POST body CouchDB documents,
        and answers 404): then every change comes, and is checked here."""
        try:
            for _ in self.db.changes(
                feed="normal",
                limit=1,
                selector=FEED_SELECTOR,
                stop=self._halt,
                max_backoff=MAX_RETRY_DELAY,
                outage=self._outage,
            ):
                pass
        except (BadRequest, NotFound) as exc:
            log.debug("changes feed not filtered by selector (%s); checking each change", exc)
            return None
        return FEED_SELECTOR

    def _in_queue(self, queues: Any) -> bool:
        """Whether a job's `queues` falls under this worker's queue path."""
        path = [queues] if isinstance(queues, str) else queues
        return isinstance(path, list) and path[: len(self.queue.path)] == self.queue.path

    # -- worker status document ------------------------------------------------------

    @property
    def status_id(self) -> str:
        return WORKER_DOC_PREFIX + self.id

    def _write_status(self) -> None:
        """Keep a small document saying this worker is alive and what it holds,
        for `queshot workers` and the dashboard."""
        doc: dict[str, Any] = {
            "_id": self.status_id,
            "type": "queshot_worker",
            "name": self.name,
            "worker_id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queue.name,
            "concurrency": self.concurrency,
            "jobs": self.running_jobs,
            "paused": self.paused,
            "last_seen": now_ms(),
            "lease_seconds": self.lease_seconds,
        }
        if self._status_rev:
            doc["_rev"] = self._status_rev
        try:
            try:
                self._status_rev = self.db.save(doc)
            except Conflict:  # an earlier save landed but its answer was lost
                current = self.db.get_or_none(self.status_id)
                self._status_rev = current["_rev"] if current else None
            self._outage.answered()
        except (ServerUnreachable, ServerError) as exc:
            self._outage.failed(exc)
        except CouchError as exc:  # never let it end the heartbeat thread
            log.warning("status document not written: %s", exc)

    def _remove_status(self) -> None:
        if not self._status_rev:
            return
        try:
            self.db.delete(self.status_id, self._status_rev)
        except CouchError as exc:
            log.debug("status document not removed: %s", exc)
