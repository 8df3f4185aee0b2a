"""A job as its worker holds it: what the handler sees (`Job`), the writes made
for it against the revision held (`JobWriter`), the jobs running now
(`RunningJobs`) and the worker's counters (`WorkerStats`)."""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import protocol
from ..couch import Conflict, CouchError, Database, NotFound, ServerError, ServerUnreachable
from ..jobs import HandlerJob, is_cancel_request_of, revision_number

log = logging.getLogger(__name__)

CANCEL_ADOPTIONS = 3  # cancel requests a write follows before it gives the job up


@dataclass
class WorkerStats:
    """Counters for logs, the demo and the benchmark, safe to update from
    every thread of the worker (`add`)."""

    claim_attempts: int = 0
    claims_won: int = 0
    claim_conflicts: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    abandoned: int = 0
    released: int = 0
    reaped: int = 0
    unclaimable: int = 0
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def summary(self) -> str:
        s = self.as_dict()
        return (
            f"{s['completed']} complete, {s['retried']} retried, {s['failed']} failed, "
            f"{s['cancelled']} cancelled, "
            f"{s['abandoned']} abandoned, {s['released']} released; claims {s['claims_won']}/"
            f"{s['claim_attempts']} won, {s['claim_conflicts']} conflicts"
        )


class Job(HandlerJob):
    """A claimed job, as the handler sees it (`HandlerJob`), with `log(msg)`
    and `progress(pct)`. Writes go against the revision this worker holds;
    if someone else changed the job (a human in Fauxton, the reaper), the
    job is abandoned: its result will not overwrite theirs. A cancel request
    is the one change of another that the worker follows rather than gives
    up on (`JobWriter`)."""

    def __init__(self, writer: JobWriter, doc: dict[str, Any], rev: str) -> None:
        super().__init__(doc)
        self.rev = rev
        # While `rev` is still the claim's, the stored document is this copy
        # (`doc` is the handler's to change): see JobRunner's batched completion.
        self.claimed_rev = rev
        self.claimed_doc = copy.deepcopy(doc)
        self.abandoned: str | None = None
        self.returned = False  # the handler is done: its outcome is being written
        self.finished = False  # its outcome (or release) is written: no more writes
        self.started = time.monotonic()
        self.next_beat: float | None = None  # set by the heartbeats
        self._writer = writer

    def cancel_requested(self, rev: str) -> None:
        """The stored job (at `rev`, still held by this worker) carries a
        cancel request: writes go on against `rev`, the handler is told.
        Called with the job's lock held."""
        if revision_number(rev) > revision_number(self.rev):
            self.rev = rev
        callbacks = self._mark_cancelled()
        if callbacks is None:
            return
        log.info("job %s: asked to cancel", self.id)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("job %s: a cancel callback failed", self.id)

    def log(self, message: str) -> None:
        """Append a line to the job's log (server-stamped). A line the
        database refuses is dropped, with a warning in the worker's log."""
        self._writer.note(self, "log", {"msg": str(message)})

    def progress(self, percent: float) -> None:
        """Report progress, 0-100 (a value the database refuses is dropped,
        with a warning)."""
        self._writer.note(self, "progress", {"progress": percent})


class JobWriter:
    """Calls the lifecycle handlers for the jobs `worker_id` holds, against
    the revision held. A 409 means someone else changed the job: it is
    abandoned, never overwritten. `retrying` retries through outages."""

    def __init__(
        self, db: Database, worker_id: str, retrying: Callable[[Callable[[], Any]], Any]
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.retrying = retrying

    def job(self, doc: dict[str, Any], rev: str) -> Job:
        """The Job for a document this worker has just claimed at `rev`."""
        return Job(self, doc, rev)

    def write(self, job: Job, handler: str, body: dict[str, Any], *, retry: bool = True) -> Any:
        """The handler's answer, or None if the job is abandoned (or done)."""
        with job.lock:
            if job.abandoned or job.finished:
                log.debug("job %s is %s: %s not written", job.id, job.abandoned or "done", handler)
                return None
            payload = {**body, "worker_id": self.worker_id, "rev": job.rev}

            def send() -> Any:
                return protocol.call(self.db, handler, job.id, payload)

            for _ in range(CANCEL_ADOPTIONS + 1):
                try:
                    response = self.retrying(send) if retry else send()
                    break
                except (Conflict, NotFound) as exc:
                    if isinstance(exc, Conflict):
                        what, answer = self.after_conflict(
                            job, body, completing=handler == "complete"
                        )
                        if what == "own":
                            return answer
                        if what == "cancel":
                            payload["rev"] = job.rev
                            continue
                    reason = exc.reason or exc.error or "changed by someone else"
                    self.abandon(job, reason, handler)
                    return None
            else:
                self.abandon(job, "asked to cancel again and again", handler)
                return None
            job.rev = response.new_rev or job.rev
            job.finished = handler in protocol.FINAL_HANDLERS
            return response

    def note(self, job: Job, handler: str, body: dict[str, Any]) -> None:
        """A write that only informs (log, progress): one the database refuses
        (too long, not a number...) is dropped with a warning, rather than
        fail the handler that made it."""
        try:
            self.write(job, handler, body)
        except (ServerUnreachable, ServerError):
            raise  # still no answer as the worker stops
        except CouchError as exc:
            reason = exc.reason or exc.error or str(exc)
            log.warning("job %s: %s not written, dropped: %s", job.id, handler, reason[:500])

    def after_conflict(
        self, job: Job, body: dict[str, Any], *, completing: bool
    ) -> tuple[str, Any]:
        """After a 409 on a write for a held job, one read of the stored job
        says what happened: ("own", answer) when completing, and it is this
        worker's own completion, written by an attempt whose answer was lost
        (its retry then met the revision that attempt made); ("cancel", None)
        a cancel request on a job still held by this worker, whose writes go
        on against the new revision; ("other", None) someone else's change,
        which the caller abandons the job to. Called with the job's lock held."""
        try:
            doc = self.db.get(job.id)
        except CouchError:
            return "other", None
        if completing and self._is_own_completion(job, body, doc):
            job.rev, job.finished = doc["_rev"], True
            log.info("job %s: completed by an attempt whose answer was lost", job.id)
            return "own", {"rev": doc["_rev"]}
        if is_cancel_request_of(doc, self.worker_id):
            job.cancel_requested(doc["_rev"])
            return "cancel", None
        return "other", None

    def _is_own_completion(self, job: Job, body: dict[str, Any], doc: dict[str, Any]) -> bool:
        return (
            revision_number(doc["_rev"]) == revision_number(job.rev) + 1
            and doc.get("state") == "complete"
            and doc.get("worker_id") == self.worker_id
            and doc.get("result") == body.get("result")
        )

    def abandon(self, job: Job, reason: str, handler: str) -> None:
        """Give up the job's result: someone else changed it. Called with its lock held."""
        job.abandoned = reason
        log.warning("job %s: %s refused (%s); abandoning its result", job.id, handler, reason)


class RunningJobs:
    """The jobs a worker runs now, keyed by the Job object, not its id: after
    a timeout the same worker may claim the job's retry while the first
    attempt's code still runs. `slot_freed` is set whenever one ends."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.slot_freed = threading.Event()
        self._jobs: set[Job] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def free(self) -> int:
        return self.concurrency - len(self._jobs)

    def add(self, jobs: tuple[Job, ...]) -> None:
        with self._lock:
            self._jobs.update(jobs)

    def discard(self, job: Job) -> None:
        with self._lock:
            self._jobs.discard(job)
        self.slot_freed.set()

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def ids(self) -> list[str]:
        return [job.id for job in self.jobs()]

    def wait_while(self, busy: Callable[[Job], bool], seconds: float) -> None:
        """Wait up to `seconds` while any running job is `busy`."""
        deadline = time.monotonic() + seconds
        while any(busy(job) for job in self.jobs()) and time.monotonic() < deadline:
            self.slot_freed.wait(0.05)
            self.slot_freed.clear()
