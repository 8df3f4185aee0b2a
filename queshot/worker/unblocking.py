"""Unblocking: the jobs this worker finishes are handed here, and the
blocked jobs that wait for them are told, a batch at a time (one query of
the dependents view per batch, in a thread of its own so that no job's slot
waits for it). Every `reconcile_interval` it also reconciles: dependencies
whose worker finished them and died before telling anyone.

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
from typing import Any

from ..couch import CouchError, Database, Outage, ServerError, ServerUnreachable
from ..dependencies import Finished, reconcile, resolve_dependents
from ..retrying import MAX_RETRY_DELAY

log = logging.getLogger(__name__)

GATHER = 0.005  # seconds to wait for more finished jobs once one is there
RECENT_SECONDS = 60.0  # how long finished jobs are remembered while nothing waits
RECENT_MAX = 10_000


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
        self._finished: SimpleQueue[Finished] = SimpleQueue()
        self._recent: deque[tuple[float, Finished]] = deque(maxlen=RECENT_MAX)
        self._anything_waits = True  # until a query says otherwise
        self._lock = threading.Lock()  # _recent and _anything_waits: the feed's thread and ours
        self._reblocked = False  # the feed saw a blocked job since the last lookup began
        self.resolved = 0  # resolve calls made (for tests and logs)

    def finished(self, job_id: str, state: str, result: Any) -> None:
        """A job of this worker finished for good (complete, failed, cancelled)."""
        self._finished.put((job_id, state, result))

    def blocked_seen(self) -> None:
        """The feed saw a job become blocked: look finished jobs up again, the
        recent ones too (it may wait for one of them)."""
        with self._lock:
            self._reblocked = True  # a lookup under way may have missed it
            if self._anything_waits:
                return
            self._anything_waits = True
            for _, item in self._recent:
                self._finished.put(item)
            self._recent.clear()

    def run(self) -> None:
        pending: list[Finished] = []
        next_reconcile = time.monotonic() + self._reconcile_delay()
        backoff = 0.2
        while not self._halt.is_set():
            if not pending:
                wait = max(0.0, min(1.0, next_reconcile - time.monotonic()))
                try:
                    pending.append(self._finished.get(timeout=wait))
                    self._halt.wait(GATHER)
                except Empty:
                    pass
            pending += self._drain()
            try:
                pending = self._tell(pending)
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
                pending = []
        try:
            self._tell(pending + self._drain())  # at stop, once; what fails, reconciliation tells
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

    def _drain(self) -> list[Finished]:
        found = []
        while True:
            try:
                found.append(self._finished.get_nowait())
            except Empty:
                return found

    def _reconcile_delay(self) -> float:
        return self.reconcile_interval * random.uniform(0.5, 1.5)
