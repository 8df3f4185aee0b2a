"""Placing jobs in line by their arrival. Within a priority, waiting jobs
run in `created_at` order, the producer's clock; a job whose `created_at` is
far off the server's clock when this worker's feed first shows it (a device
a day behind, a producer back after a week offline) is placed by the
server's time instead, through the `arrive` handler (lib/job.js says the
rule). The feed hands such jobs here and this part's thread makes the
calls, so the feed never waits on a round trip. Only the job's first choice
among the live rivals is handed it (`FeedListener`); a rival that calls too
finds it placed, for the price of one handler call.

What fails is logged and dropped: a job not placed keeps its `created_at`
order, as before this part existed."""

from __future__ import annotations

import logging
import threading
from queue import Empty, SimpleQueue

from .. import protocol
from ..couch import Conflict, CouchError, Database, NotFound, Outage, ServerError, ServerUnreachable

log = logging.getLogger(__name__)


class Arrivals:
    def __init__(self, db: Database, *, outage: Outage, halt: threading.Event) -> None:
        self.db = db
        self._outage = outage
        self._halt = halt
        self._inbox: SimpleQueue[str] = SimpleQueue()
        self.placed = 0  # jobs this worker placed (for tests and logs)

    def seen(self, job_id: str) -> None:
        """The feed showed `job_id` waiting, never run, its `created_at` far
        off (`jobs.needs_place`)."""
        self._inbox.put(job_id)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                job_id = self._inbox.get(timeout=1.0)
            except Empty:
                continue
            self._place(job_id)

    def _place(self, job_id: str) -> None:
        try:
            if protocol.arrive(self.db, job_id):
                self.placed += 1
            self._outage.answered()
        except (NotFound, Conflict):
            pass  # removed, or changed under the call: its next change comes by the feed
        except (ServerUnreachable, ServerError) as exc:
            self._outage.failed(exc)
        except CouchError as exc:
            log.warning("could not place job %r by its arrival: %s", job_id[:200], exc)
