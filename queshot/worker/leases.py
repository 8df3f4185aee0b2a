"""Leases: the heartbeats that keep this worker's jobs its own, and the
reaper that takes back everyone's jobs whose lease (or timeout) has run out,
as the server's clock decides (`expire`). Each has a loop of its own."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from .. import protocol
from ..couch import Conflict, CouchError, Database, NotFound, Outage, ServerError, ServerUnreachable
from ..jobs import timeout_seconds
from .job import Job, JobWriter, RunningJobs, WorkerStats
from .refusals import SkipSet, refusal
from .settling import Settler, Undecided

log = logging.getLogger(__name__)

REAP_BATCH = 50
HEARTBEAT_TICK = 0.1  # seconds between looks at which running job is due a heartbeat
MIN_BEAT_EVERY = 0.1  # seconds between two heartbeats of one job, at least


def lease_of(job: Job, lease_seconds: float) -> float:
    """The lease (s) the server gave the job when it was claimed: a job's own
    `lease_seconds` wins over the worker's there (the `claim` handler), so a
    job may hold a shorter lease than the worker asked for."""
    doc = job.claimed_doc
    try:
        granted = (doc["lease_expires_at"] - doc["claimed_at"]) / 1000
    except (KeyError, TypeError):
        return lease_seconds
    return min(lease_seconds, granted) if granted > 0 else lease_seconds


def beat_every(job: Job, lease_seconds: float) -> float:
    """Heartbeat well before the job's lease ends (a third of it), and right
    after a timeout, so that the server fails a job over its timeout promptly."""
    every = max(MIN_BEAT_EVERY, lease_of(job, lease_seconds) / 3)
    timeout = timeout_seconds(job.doc)
    if timeout is not None:
        until_timeout = job.started + timeout + 0.2 - time.monotonic()
        every = min(every, max(0.2, until_timeout))
    return every


class Heartbeats:
    """Renews the lease of every running job before it ends; a job found to
    have a conflict branch that wins over ours is abandoned."""

    def __init__(
        self,
        db: Database,
        *,
        running: RunningJobs,
        writer: JobWriter,
        settler: Settler,
        lease_seconds: float,
        outage: Outage,
        halt: threading.Event,
    ) -> None:
        self.db = db
        self.running = running
        self.writer = writer
        self.settler = settler
        self.lease_seconds = lease_seconds
        self._outage = outage
        self._halt = halt

    def run(self) -> None:
        while not self._halt.wait(HEARTBEAT_TICK):
            now = time.monotonic()
            for job in self.running.jobs():
                if job.next_beat is None:
                    job.next_beat = job.started + beat_every(job, self.lease_seconds)
                elif job.next_beat <= now:
                    self._beat(job)

    def _beat(self, job: Job) -> None:
        job.next_beat = time.monotonic() + beat_every(job, self.lease_seconds)
        try:
            body = {"lease_seconds": self.lease_seconds}
            response = self.writer.write(job, "heartbeat", body, retry=False)
            if response is not None:
                doc = self.db.get(job.id, conflicts=True)
                if doc.get("_conflicts") and self._lost_conflict(job):
                    with job.lock:
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


class Reaper:
    """Takes back running jobs whose lease or timeout has run out, every
    `interval` seconds (jittered). Waits one lease after it starts, and again
    after an outage: leases run on the server's clock even while no worker can
    renew them, so live workers get a lease to renew first. A job whose take
    back is refused (for its content) is logged once and passed over from
    then on (`skipped`), so that it neither stops the others nor costs a
    refused write every pass."""

    def __init__(
        self,
        db: Database,
        *,
        interval: float,
        lease_seconds: float,
        stats: WorkerStats,
        outage: Outage,
        halt: threading.Event,
    ) -> None:
        self.db = db
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.stats = stats
        self.skipped = SkipSet()
        self._outage = outage
        self._halt = halt

    def run(self) -> None:
        not_before = time.monotonic() + self.lease_seconds
        while not self._halt.wait(self.interval * random.uniform(0.5, 1.5)):
            waiting = time.monotonic() < not_before
            if waiting or self._outage.ended_within(self.lease_seconds):
                continue
            try:
                self.reap()
                self._outage.answered()
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)
            except CouchError as exc:
                log.warning("reaper: %s", exc)

    def reap(self) -> int:
        """Take back running jobs whose lease or timeout has run out; how many.
        The `expire` handler decides by the server's clock; this only nominates."""
        reaped = 0
        for row in protocol.expired_leases(self.db, REAP_BATCH + len(self.skipped)):
            if row["id"] in self.skipped:
                continue
            try:
                answer = protocol.expire(self.db, row["id"])
            except (Conflict, NotFound):
                continue
            except (ServerUnreachable, ServerError):
                raise
            except CouchError as exc:
                if self.skipped.add(row["id"]):
                    log.warning(
                        "job %s: its expired lease cannot be taken back (%s); "
                        "this worker's reaper passes over it from now on",
                        row["id"],
                        refusal(exc),
                    )
                continue
            reaped += 1
            log.warning("job %s: %s", row["id"], _taken_back(row["value"], answer))
        self.stats.add("reaped", reaped)
        return reaped


def _taken_back(worker_id: str, answer: dict[str, Any]) -> str:
    """What the `expire` handler did with a job, for the reaper's log line."""
    state = answer.get("state")
    if answer.get("why") == "timeout":
        then = (
            "requeued for a retry" if state == "inactive" else "failed for good (no attempts left)"
        )
        return f"ran over its timeout while held by {worker_id}; {then}"
    stalls = answer.get("stalls")
    if state == "inactive":
        return f"lease of {worker_id} ran out (stall {stalls}); requeued, no attempt used"
    return f"lease of {worker_id} ran out (stall {stalls}, more than max_stalls); failed for good"
