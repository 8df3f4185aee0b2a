"""The scheduler: turns the database's schedules into jobs, one per slot,
however many schedulers run (`queshot scheduler`, `queshot worker --schedules`).

Each slot's job has an id made of the schedule and the slot time
(`Schedule.job_id`), so creating it is a once-only act: the first scheduler
gets a 201, the others a 409, which is success too. Every scheduler builds
the same bytes for a slot (the document depends only on the schedule and the
slot: `created_at` is the slot time), and CouchDB derives a revision id from
the document's content, so on a cluster two creates that raced through
different nodes store the same revision, `1-<same hash>`, on every copy: one
document, no conflict branch (ARCHITECTURE.md, "Schedules"). Creates go with
`w` = the database's `n`: a 202 (fewer copies) is checked for branches,
which only a schedule edited during that very slot can leave, and those are
resolved by CouchDB's own winner rule.

A slot whose job has already been removed (autoremove, `queshot clean`)
leaves a tombstone, and a create over a tombstone succeeds in CouchDB, so
the scheduler reads the id first and leaves a removed slot alone.

A "run now" request (`run_requested_at` on the schedule document, written by
`schedule_admin.request_run` or the dashboard) is one more slot whose job id
is made of the request's time (`Schedule.run_now_job_id`): every scheduler
that sees it creates that job, so they converge as on a slot, and a request
seen again finds its job (or tombstone) and creates nothing.

The scheduler keeps no state in the database: at each pass it enqueues the
latest due slots of each enabled schedule, at most the schedule's
`catch_up` (default 1: only the latest), never one it already handled, nor
one before `enabled_at`. A scheduler that was down thus catches up that many
slots, never a flood. It follows schedule changes on the `_changes` feed and
sleeps until the next due slot; connection faults are ridden out with the
worker's `Retrier`, and SIGTERM/SIGINT stop it between two writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import protocol
from .couch import (
    Conflict,
    CouchError,
    Database,
    Forbidden,
    NotFound,
    Outage,
    Unauthorized,
)
from .jobs import CREATION_FIELDS, SCHEDULE_DOC_PREFIX, revision_number, winning_revision
from .queue import Queue
from .retrying import MAX_RETRY_DELAY, Retrier
from .schedules import Schedule, ScheduleError, slot_stamp

log = logging.getLogger(__name__)

LONGEST_SLEEP = 300.0  # seconds; a pass at least this often, in case the clock jumped
OUTCOMES = (
    "created",
    "accepted",
    "contested",
    "existed",
    "foreign",
    "conflicts",
    "removed",
    "refused",
)


def slot_job(
    db: Database, schedule: Schedule, slot_ms: int, *, run_now: bool = False
) -> dict[str, Any]:
    """The job document of one slot (`run_now`: of the run-now request made at
    `slot_ms`), built by the queue's own job builder: the same in every
    scheduler, carrying the schedule and slot that made it."""
    return Queue(schedule.queue, db).new_job_doc(
        schedule.data,
        task=schedule.task,
        args=schedule.args or (),
        kwargs=schedule.kwargs,
        id=schedule.run_now_job_id(slot_ms) if run_now else schedule.job_id(slot_ms),
        created_at=slot_ms,
        fields={"schedule": schedule.id, "slot": slot_ms},
        **schedule.job_options,
    )


def stored_as(db: Database, doc: dict[str, Any]) -> tuple[str, list[str]]:
    """missing, existed, foreign (see `_enqueue`) or removed (a tombstone:
    `_all_docs` by key shows deleted documents, on CouchDB and
    pouchdb-server alike); for foreign, the fields a job is created with
    (and no handler changes) in which the stored one differs from `doc`."""
    [row] = db.all_docs(keys=[doc["_id"]], include_docs=True)["rows"]
    if "value" not in row:
        return "missing", []
    if row["value"].get("deleted"):
        return "removed", []
    stored = row.get("doc") or {}
    differing = [field for field in CREATION_FIELDS if stored.get(field) != doc.get(field)]
    return ("foreign" if differing else "existed"), differing


class Scheduler:
    """Enqueues the due slots of `db`'s schedules until stopped. `clock`
    (epoch seconds) is the time slots are judged by."""

    def __init__(
        self,
        db: Database,
        *,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
        feed_heartbeat: float = 10.0,
    ) -> None:
        self.db = db
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.stats: Counter[str] = Counter()
        self.error: Exception | None = None  # what stopped it, if not a stop
        self._clock = clock
        self._feed_heartbeat = feed_heartbeat
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._schedules: dict[str, Schedule] = {}
        self._refusals: dict[str, str] = {}  # schedule id -> what was last said about it
        self._done: dict[str, int] = {}  # schedule id -> latest slot handled (epoch ms)
        self._requests_done: dict[str, int] = {}  # schedule id -> run-now request handled
        self._replicas = 1
        self._outage = Outage(f"CouchDB at {db.couch.url} (scheduler {self.name})", log)
        self._retrying = Retrier(self._outage, self._halt)
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------

    def run(self) -> None:
        """Run until `stop()`, or SIGTERM/SIGINT when called from the main thread."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stop(wait=False))
        feed = None
        try:
            since = self._retrying(lambda: self.db.info()["update_seq"])
            self.load()
            feed = threading.Thread(target=self._follow, args=(since,), name="schedules-feed")
            feed.start()
            count = len(self._schedules)
            log.info("scheduler %s on %s: %d schedules", self.name, self.db.url, count)
            while not self._halt.is_set():
                self._wake.clear()
                now = self._now_ms()
                self.run_once(now)
                self._wake.wait(self._seconds_to_next_slot(now))
        except CouchError as exc:
            if not self._halt.is_set():
                self.error = exc
                log.error("scheduler %s stopped: %s", self.name, exc)
        finally:
            self._halt.set()
            if feed is not None:
                feed.join()
            counts = " ".join(f"{name}={self.stats[name]}" for name in OUTCOMES)
            log.info("scheduler %s stopped: slots=%d %s", self.name, self.stats.total(), counts)
        if self.error is not None:
            raise self.error

    def load(self) -> None:
        """Read the database's n and every schedule: what `run` does before
        following the feed (from where it stood before this read). Refuses
        (NotProvisioned) a database without the design docs that check jobs."""
        self._retrying(lambda: protocol.require_design_doc(self.db))
        self._replicas = self._retrying(self.db.replicas)
        for doc in self._retrying(lambda: protocol.schedule_docs(self.db)):
            self._heard(doc["_id"], doc)

    def start(self) -> None:
        """Run in a thread of its own (a worker's `--schedules`)."""
        self._thread = threading.Thread(target=self._run_quietly, name="scheduler", daemon=True)
        self._thread.start()

    def _run_quietly(self) -> None:
        with contextlib.suppress(CouchError):  # said in run(), kept in self.error
            self.run()

    def stop(self, *, wait: bool = True) -> None:
        self._halt.set()
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.join()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _seconds_to_next_slot(self, now_ms: int) -> float:
        with self._lock:
            enabled = [s for s in self._schedules.values() if s.enabled]
        if not enabled:
            return LONGEST_SLEEP
        due = min(s.next_slot(now_ms) for s in enabled)
        return min(max(0.0, (due - self._now_ms()) / 1000), LONGEST_SLEEP)

    # -- one pass -------------------------------------------------------------------------

    def run_once(self, now_ms: int | None = None) -> list[tuple[str, str]]:
        """Enqueue every schedule's run-now request not handled yet (paused
        ones too: a person asked), then every enabled schedule's due slots at
        `now_ms` (default: the clock); returns (job id, outcome) for each."""
        now_ms = self._now_ms() if now_ms is None else now_ms
        with self._lock:
            every_schedule = list(self._schedules.values())
        handled = self._run_requests(every_schedule)
        schedules = [s for s in every_schedule if s.enabled]
        for schedule in schedules:
            slots, skipped = schedule.due_slots(now_ms, self._done.get(schedule.id))
            if skipped:
                log.info(
                    "schedule %s: older missed slots left out (catch_up %d)",
                    schedule.name,
                    schedule.catch_up,
                )
            for slot in slots:
                if self._halt.is_set():
                    return handled
                outcome = self._enqueue(schedule, slot)
                self.stats[outcome] += 1
                self._done[schedule.id] = max(slot, self._done.get(schedule.id, slot))
                handled.append((schedule.job_id(slot), outcome))
        return handled

    def _run_requests(self, schedules: list[Schedule]) -> list[tuple[str, str]]:
        """One job per run-now request, its id fixed by the request: a request
        seen again (a restart, the feed replayed) finds its job there, or its
        tombstone, and creates nothing new."""
        handled = []
        for schedule in schedules:
            requested = schedule.run_requested_at
            if requested is None or self._requests_done.get(schedule.id) == requested:
                continue
            if self._halt.is_set():
                break
            outcome = self._enqueue(schedule, requested, run_now=True)
            self.stats[outcome] += 1
            self._requests_done[schedule.id] = requested
            handled.append((schedule.run_now_job_id(requested), outcome))
        return handled

    def _enqueue(self, schedule: Schedule, slot: int, *, run_now: bool = False) -> str:
        """Create one slot's job; what happened: created (201: stored on every
        copy), accepted (202: on fewer; one revision, as a rival's identical
        create may have been too), contested (202 and branches, resolved),
        existed (there already; `conflicts` when the create itself got the
        409), foreign (there, but not the job this schedule makes: warned
        of, not enqueued again), removed (its job was deleted since),
        refused (by validate_doc_update). A run-now job is one more slot."""
        doc = slot_job(self.db, schedule, slot, run_now=run_now)
        job_id = doc["_id"]
        seen, differing = self._retrying(lambda: stored_as(self.db, doc))
        if seen == "foreign":
            log.warning(
                "slot %s of %s: job %s is there but is not the job this schedule makes "
                "(its %s differ): written by someone else, or before the schedule changed; "
                "not enqueued again",
                slot_stamp(slot),
                schedule.name,
                job_id,
                ", ".join(differing),
            )
        if seen != "missing":
            log.debug("slot %s of %s: job %s %s", slot_stamp(slot), schedule.name, job_id, seen)
            return seen
        try:
            status = self._retrying(lambda: self.db.save_new(dict(doc), w=self._replicas))
        except Conflict:
            return "conflicts"  # a rival scheduler created it first: done
        except Forbidden as exc:
            self._refused(schedule, exc.reason)
            return "refused"
        outcome = "created"
        if status == 202:
            outcome = "contested" if self._replicas > 1 and self._converge(job_id) else "accepted"
        what = "run-now request" if run_now else "slot"
        log.info("%s %s of %s: enqueued %s", what, slot_stamp(slot), schedule.name, job_id)
        return outcome

    def _converge(self, job_id: str) -> bool:
        """After a 202: whether rival creates left branches (only schedule
        edits during the slot make them differ), each then deleted but
        CouchDB's winner, so that one job runs. A claimed branch always wins
        over an unclaimed one (higher revision number)."""
        leaves = [
            leaf
            for leaf in self._retrying(lambda: self.db.open_revs(job_id, r=self._replicas))
            if not leaf.get("_deleted")
        ]
        if len(leaves) < 2:
            return False
        winner = winning_revision(leaves)
        for leaf in leaves:
            if leaf is not winner and revision_number(leaf["_rev"]) == 1:
                with contextlib.suppress(Conflict, NotFound, Forbidden):
                    self._retrying(lambda leaf=leaf: self.db.delete(job_id, leaf["_rev"]))
        log.warning("job %s: rival creates differed; kept revision %s", job_id, winner["_rev"])
        return True

    def _refused(self, schedule: Schedule, reason: str) -> None:
        if self._refusals.get(schedule.id) != reason:
            self._refusals[schedule.id] = reason
            log.error("schedule %s: its job was refused: %s", schedule.name, reason)

    # -- following the schedules ----------------------------------------------------------

    def _heard(self, doc_id: str, doc: dict[str, Any] | None) -> None:
        """A schedule document as it is now (None: deleted)."""
        schedule = None
        if doc is not None and doc.get("type") is not None:
            try:
                schedule = Schedule.from_doc(doc)
            except ScheduleError as exc:
                if self._refusals.get(doc_id) != str(exc):
                    self._refusals[doc_id] = str(exc)
                    log.error("%s; skipping it", exc)
        with self._lock:
            if schedule is None:
                self._schedules.pop(doc_id, None)
            else:
                self._schedules[doc_id] = schedule

    def _follow(self, since: Any) -> None:
        options: dict[str, Any] = {
            "stop": self._halt,
            "outage": self._outage,
            "max_backoff": MAX_RETRY_DELAY,
        }
        try:
            filtered = self.db.filters_by_selector(protocol.SCHEDULE_SELECTOR, **options)
            for row in self.db.changes(
                since=since,
                include_docs=True,
                selector=protocol.SCHEDULE_SELECTOR if filtered else None,
                heartbeat=self._feed_heartbeat,
                **options,
            ):
                if not row["id"].startswith(SCHEDULE_DOC_PREFIX):
                    continue  # a server that does not filter by selector sends every change
                self._heard(row["id"], None if row.get("deleted") else row.get("doc"))
                self._wake.set()
        except (Unauthorized, Forbidden, CouchError) as exc:
            if not self._halt.is_set():
                self.error = exc
                log.error("scheduler %s: the changes feed ended: %s", self.name, exc)
                self.stop(wait=False)
