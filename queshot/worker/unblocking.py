"""Unblocking: the jobs this worker finishes are handed here, and the
blocked jobs that wait for them are told, a batch at a time (one query of
the dependents view per batch, in a thread of its own so that no job's slot
waits for it). Jobs the feed shows created blocked are checked too: those
of their dependencies that had already finished are told to them here (the
producer that created them may not). At start and every
`reconcile_interval` it also reconciles: dependencies whose worker finished
them and died before telling anyone.

While no job in the database waits for anything (the last query said so),
finished jobs are only remembered for RECENT_SECONDS, not looked up: the
feed names every job that becomes blocked (`blocked_seen`), and then the
remembered ones are looked up too, so a job blocked on one that had just
finished here is still told at once."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from queue import Empty, SimpleQueue
from typing import Any, NamedTuple

from ..couch import CouchError, Database, Outage, ServerError, ServerUnreachable
from ..dependencies import Finished, reconcile, resolve_dependents, settle_blocked
from ..retrying import MAX_RETRY_DELAY

log = logging.getLogger(__name__)

GATHER = 0.005  # seconds to wait for more finished jobs once one is there
RECENT_SECONDS = 60.0  # how long finished jobs are remembered while nothing waits
RECENT_MAX = 10_000


class CreatedBlocked(NamedTuple):
    """A job the feed showed created blocked, and the jobs it waits for."""

    job_id: str
    waiting_for: list[str]


class Unblocker:
    def __init__(
        self,
        db: Database,
        *,
        reconcile_interval: float,
        outage: Outage,
        halt: threading.Event,
    ) -> None:
        self.db = db
        self.reconcile_interval = reconcile_interval
        self._outage = outage
        self._halt = halt
        self._inbox: SimpleQueue[Finished | CreatedBlocked] = SimpleQueue()
        self._recent: deque[tuple[float, Finished]] = deque(maxlen=RECENT_MAX)
        self._anything_waits = True  # until a query says otherwise
        self._lock = threading.Lock()  # _recent and _anything_waits: the feed's thread and ours
        self._reblocked = False  # the feed saw a blocked job since the last lookup began
        self.resolved = 0  # resolve calls made (for tests and logs)

    def finished(self, job_id: str, state: str, result: Any) -> None:
        """A job of this worker finished for good (complete, failed, cancelled)."""
        self._inbox.put((job_id, state, result))

    def blocked_seen(self, job_id: str, created_waiting_for: list[str] | None = None) -> None:
        """The feed saw a job become blocked: look finished jobs up again, the
        recent ones too (it may wait for one of them). A job just created
        blocked comes with what it waits for, which is looked up: any of them
        already finished is told to it."""
        if created_waiting_for:
            self._inbox.put(CreatedBlocked(job_id, created_waiting_for))
        with self._lock:
            self._reblocked = True  # a lookup under way may have missed it
            if self._anything_waits:
                return
            self._anything_waits = True
            for _, item in self._recent:
                self._inbox.put(item)
            self._recent.clear()

    def run(self) -> None:
        pending: list[Finished] = []
        created: dict[str, list[str]] = {}
        next_reconcile = time.monotonic()  # at start: a dead worker may have left some
        backoff = 0.2
        while not self._halt.is_set():
            arrived: list[Finished | CreatedBlocked] = []
            if not pending and not created:
                wait = max(0.0, min(1.0, next_reconcile - time.monotonic()))
                try:
                    arrived.append(self._inbox.get(timeout=wait))
                    self._halt.wait(GATHER)
                except Empty:
                    pass
            finished, blocked = self._drain(arrived)
            pending += finished
            created.update(blocked)
            try:
                pending = self._tell(pending)
                if created:
                    self.resolved += settle_blocked(self.db, created)
                    created = {}
                if time.monotonic() >= next_reconcile:
                    self.resolved += reconcile(self.db)
                    next_reconcile = time.monotonic() + self._reconcile_delay()
                backoff = 0.2
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)  # kept, and told once the server answers again
                self._halt.wait(backoff)
                backoff = min(backoff * 2, MAX_RETRY_DELAY)
            except CouchError as exc:
                log.warning("unblocking: %s", exc)
                pending, created = [], {}
        try:  # at stop, once; what fails, reconciliation tells
            self._tell(pending + self._drain()[0])
        except CouchError as exc:
            log.warning("unblocking at stop: %s; reconciliation will tell them", exc)

    def _tell(self, pending: list[Finished]) -> list[Finished]:
        """Look up and tell the dependents of `pending` (or, while nothing
        waits, remember them); what is left to do: nothing."""
        if not pending:
            return []
        with self._lock:
            if not self._anything_waits:
                now = time.monotonic()
                while self._recent and self._recent[0][0] < now - RECENT_SECONDS:
                    self._recent.popleft()
                self._recent.extend((now, item) for item in pending)
                return []
        with self._lock:
            self._reblocked = False
        outcome = resolve_dependents(self.db, pending)
        self.resolved += outcome.calls
        with self._lock:
            # A job blocked meanwhile (blocked_seen) keeps lookups on.
            if not outcome.anything_waits and not self._reblocked:
                self._anything_waits = False
        return []

    def _drain(
        self, arrived: list[Finished | CreatedBlocked] | None = None
    ) -> tuple[list[Finished], dict[str, list[str]]]:
        """What arrived (`arrived`, then the inbox's): jobs finished here, and
        jobs created blocked."""
        finished: list[Finished] = []
        created: dict[str, list[str]] = {}
        items = list(arrived or [])
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except Empty:
                break
        for item in items:
            if isinstance(item, CreatedBlocked):
                created[item.job_id] = item.waiting_for
            else:
                finished.append(item)
        return finished, created

    def _reconcile_delay(self) -> float:
        return self.reconcile_interval * random.uniform(0.5, 1.5)
