"""The worker's status document: a small document saying that the worker is
alive, what it holds and whether it is paused, which queshot it runs and since
when (`version`, `started_at`: its first write), for `queshot workers` and the
dashboard, rewritten every third of a lease from a loop of its own. It names
the CouchDB account the worker writes as (`user`): only that account may
change or remove it."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from .. import protocol
from ..couch import Conflict, CouchError, Database, Outage, ServerError, ServerUnreachable
from ..jobs import WORKER_TYPE, now_ms, queshot_version

log = logging.getLogger(__name__)


class StatusReporter:
    """Writes the status document of the worker `worker_id`; `describe()`
    gives the fields that change (jobs held, paused). `user` is the account
    name the worker writes as (None for an admin party), set before the
    first write."""

    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        name: str,
        queues: str | list[str],
        concurrency: int,
        lease_seconds: float,
        describe: Callable[[], dict[str, Any]],
        outage: Outage,
        halt: threading.Event,
    ) -> None:
        self.db = db
        self.id = protocol.status_id(worker_id)
        self.every = max(1.0, lease_seconds / 3)
        self._fixed = {
            "type": WORKER_TYPE,
            "name": name,
            "worker_id": worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": queues,
            "concurrency": concurrency,
            "lease_seconds": lease_seconds,
            "status_every_ms": int(self.every * 1000),  # how stale its `last_seen` may be
            "version": queshot_version(),
        }
        self._describe = describe
        self._outage = outage
        self._halt = halt
        self._rev: str | None = None
        self._nudged = threading.Event()
        self.user: str | None = None
        self._started_at: int | None = None

    def run(self) -> None:
        while True:
            self._nudged.wait(self.every)
            self._nudged.clear()
            if self._halt.is_set():
                return
            self.write()

    def nudge(self) -> None:
        """Write now (a change others should see soon: the queue paused), or
        end the loop once halted."""
        self._nudged.set()

    def write(self) -> None:
        if self._started_at is None:  # the first write is the worker's start
            self._started_at = now_ms()
        doc: dict[str, Any] = {
            "_id": self.id,
            **self._fixed,
            "started_at": self._started_at,
            "user": self.user,
            **self._describe(),
            "last_seen": now_ms(),
        }
        if self._rev:
            doc["_rev"] = self._rev
        try:
            try:
                self._rev = self.db.save(doc)
            except Conflict:  # an earlier save landed but its answer was lost
                current = self.db.get_or_none(self.id)
                self._rev = current["_rev"] if current else None
            self._outage.answered()
        except (ServerUnreachable, ServerError) as exc:
            self._outage.failed(exc)
        except CouchError as exc:  # never let it end the loop
            log.warning("status document not written: %s", exc)

    def remove(self) -> None:
        """Delete the document, keeping its type in the tombstone, so that
        the rivals' feeds (filtered by type) learn that this worker left."""
        if not self._rev:
            return
        tombstone = {
            "_id": self.id,
            "_rev": self._rev,
            "_deleted": True,
            "type": WORKER_TYPE,
            "user": self.user,
        }
        try:
            self.db.save(tombstone)
        except CouchError as exc:
            log.debug("status document not removed: %s", exc)
