"""Unblocking: the jobs this worker finishes are handed here, and the
blocked jobs that wait for them are told, a batch at a time (one query of
the dependents view per batch, in a thread of its own so that no job's slot
waits for it). Every `reconcile_interval` it also reconciles: dependencies
whose worker finished them and died before telling anyone."""

from __future__ import annotations

import logging
import random
import threading
import time
from queue import Empty, SimpleQueue
from typing import Any

from ..couch import CouchError, Database, Outage, ServerError, ServerUnreachable
from ..dependencies import Finished, reconcile, resolve_dependents
from .connection import MAX_RETRY_DELAY

log = logging.getLogger(__name__)

GATHER = 0.005  # seconds to wait for more finished jobs once one is there


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
        self.resolved = 0  # resolve calls made (for tests and logs)

    def finished(self, job_id: str, state: str, result: Any) -> None:
        """A job of this worker finished for good (complete, failed, cancelled)."""
        self._finished.put((job_id, state, result))

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
                if pending:
                    self.resolved += resolve_dependents(self.db, pending)
                    pending = []
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
        self._flush(pending + self._drain())

    def _flush(self, pending: list[Finished]) -> None:
        """At stop: tell what is left, once; what fails, reconciliation tells."""
        if not pending:
            return
        try:
            self.resolved += resolve_dependents(self.db, pending)
        except CouchError as exc:
            log.warning("unblocking at stop: %s; reconciliation will tell them", exc)

    def _drain(self) -> list[Finished]:
        found = []
        while True:
            try:
                found.append(self._finished.get_nowait())
            except Empty:
                return found

    def _reconcile_delay(self) -> float:
        return self.reconcile_interval * random.uniform(0.5, 1.5)
