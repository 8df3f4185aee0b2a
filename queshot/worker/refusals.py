"""Jobs a worker cannot take as they are stored, and writes refused for a
job's own content, so that one odd job never stops or wedges a worker.

A claim refused for the job's own content (a 403 "invalid job", a 413 too
large for the server, a 400), or one whose answer cannot be read here (a
document nested too deep for Python), fails that job with the reason: the
`unclaimable` handler for a job still waiting, `fail` for one the claim took.
Every worker then goes on with the others, and the reason is on the job for
Fauxton and `queshot show`. A job that cannot even be failed (too large for
any write) is remembered in a bounded skip set that the pickers consult, and
logged once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from .. import protocol
from ..couch import Conflict, CouchError, Database, ServerError, ServerUnreachable
from .job import WorkerStats

log = logging.getLogger(__name__)

MAX_SKIPPED = 100  # ids a skip set remembers (each adds a row to a page read); oldest go first
UNCLAIMABLE = "Unclaimable"  # the error type of a job failed as unclaimable
MAX_REASON_CHARS = 500  # of CouchDB's own reason, quoted in a job's error


class SkipSet:
    """Ids a worker no longer tries, at most `size` of them. Forgetting the
    oldest costs little: a forgotten one is tried once more, refused again,
    and remembered again."""

    def __init__(self, size: int = MAX_SKIPPED) -> None:
        self.size = size
        self._ids: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: Hashable) -> bool:
        """Remember `key`; whether it is new."""
        with self._lock:
            if key in self._ids:
                return False
            self._ids[key] = None
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)
            return True

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)


def about_content(exc: CouchError) -> bool:
    """Whether a refused write is about the document's own content (its
    schema or bounds: a 403 "invalid job"; too large for the server: 413; a
    request the document makes malformed: 400), rather than about the writer."""
    return protocol.is_invalid_job(exc) or exc.status in (400, 413)


def refusal(exc: CouchError) -> str:
    """A refusal as a job's error says it: status and CouchDB's reason."""
    reason = exc.reason or exc.error or str(exc)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + "..."
    return f"{exc.status} {exc.error}: {reason}" if exc.error else f"{exc.status}: {reason}"


class Unclaimables:
    """Fails the jobs that worker `worker_id` finds it cannot take, and keeps
    the skip set (`skipped`) of those it cannot even fail. `retrying` rides
    out outages."""

    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        retrying: Callable[[Callable[[], Any]], Any],
        stats: WorkerStats,
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.retrying = retrying
        self.stats = stats
        self.skipped = SkipSet()

    def mark(self, job_id: str, reason: str) -> bool:
        """Fail waiting job `job_id`, unclaimable for `reason`; whether it was.
        Not when it is no longer waiting (a rival took it: that claim's
        answer was this refusal's cause on pouchdb-server), nor when even
        that write is refused: then it is skipped from now on."""
        try:
            self.retrying(
                lambda: protocol.unclaimable(
                    self.db, job_id, worker_id=self.worker_id, reason=reason
                )
            )
        except Conflict:
            return False
        except (ServerUnreachable, ServerError):
            raise  # still no answer as the worker stops
        except CouchError as exc:
            self.skip(job_id, f"{reason}; failing it was refused too ({refusal(exc)})")
            return False
        self._failed(job_id, reason)
        return True

    def fail_held(self, job_id: str, rev: str, reason: str) -> None:
        """Fail for good, unrun, a job this worker's claim took (at `rev`) but
        that it cannot run: its claim's answer cannot be read here."""
        error = {"type": UNCLAIMABLE, "message": reason, "traceback": None}
        body = {"worker_id": self.worker_id, "rev": rev, "error": error, "retry": False}
        try:
            self.retrying(lambda: protocol.call(self.db, "fail", job_id, body))
        except Conflict:
            return  # not this worker's after all (a contested claim it lost)
        except (ServerUnreachable, ServerError):
            raise
        except CouchError as exc:
            self.skip(job_id, f"{reason}; failing it was refused ({refusal(exc)})")
            return
        self._failed(job_id, reason)

    def skip(self, job_id: str, why: str) -> None:
        """Try `job_id` no more (while remembered); said once."""
        if self.skipped.add(job_id):
            log.warning("job %s: skipped by this worker from now on: %s", job_id, why)

    def _failed(self, job_id: str, reason: str) -> None:
        self.stats.add("unclaimable")
        log.warning("job %s: failed as unclaimable: %s", job_id, reason)
