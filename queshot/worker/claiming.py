"""One claim, start to finish: the `claim` update handler with `w` = the
database's `n`; any 409 is "not yours"; only a 201 is ownership; a 202, or a
claim whose answer was lost, is settled from every copy (`settling.py`)
before the job may run. A claim refused for the job's own content, or whose
answer cannot be read here, fails that job (`refusals.py`); a refusal about
this worker (credentials, roles) is raised: it is fatal."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import protocol
from ..couch import (
    Conflict,
    CouchError,
    Database,
    Forbidden,
    NotFound,
    ServerError,
    ServerUnreachable,
    UnreadableAnswer,
)
from ..retrying import Retrier
from .control import QueueControl
from .job import Job, JobWriter, WorkerStats
from .limiting import Limiter
from .refusals import Unclaimables, about_content, refusal
from .settling import Settler, Undecided

log = logging.getLogger(__name__)

SETTLE_DELAY = 0.25  # seconds to let copies sync before judging a 202


class Claimer:
    """Claims jobs for the worker `writer.worker_id`, each naming its queue, with
    leases of `lease_seconds`. A claim decided only later (a node holding a
    copy went away while it was in flight) is handed to `start` once won."""

    def __init__(
        self,
        db: Database,
        *,
        writer: JobWriter,
        lease_seconds: float,
        settler: Settler,
        retrying: Retrier,
        stats: WorkerStats,
        start: Callable[[Job], None],
        unclaimables: Unclaimables,
        control: QueueControl,
        limiter: Limiter,
    ) -> None:
        self.db = db
        self.writer = writer
        self.lease_seconds = lease_seconds
        self.settler = settler
        self.retrying = retrying
        self.stats = stats
        self.unclaimables = unclaimables
        self.control = control
        self.limiter = limiter
        self._start = start
        self._apart: set[str] = set()  # claims decided apart, which keep their tokens

    def claim(self, job_id: str, path: list[str]) -> Job | None:
        """The job of queue `path`, if this worker now holds it; None if not
        (or not yet). A job a limit covers is claimed only once this worker
        holds its tokens (`limiting.py`): none free, it stays waiting."""
        if not self.limiter.applies(path):
            return self._claim(job_id, path)
        if not self.limiter.take(job_id, path):
            self.stats.add("limited")
            return None
        job = None
        try:
            job = self._claim(job_id, path)
        finally:
            if job is None and job_id not in self._apart:
                self.limiter.give_back(job_id)
        return job

    def _claim(self, job_id: str, path: list[str]) -> Job | None:
        self.stats.add("claim_attempts")
        sent_at = time.monotonic()
        try:
            result = protocol.claim(
                self.db,
                job_id,
                worker_id=self.writer.worker_id,
                lease_seconds=self.lease_seconds,
                queue=path,  # the handler refuses other queues' jobs
                w=self.settler.replicas,  # the database's n
            )
        except (Conflict, NotFound):
            self.stats.add("claim_conflicts")
            return None
        except (ServerUnreachable, ServerError) as exc:
            # The answer is lost, not necessarily the claim. Left unsettled, a
            # stored claim would keep the job held by this worker, unrun, until
            # its lease ran out.
            self.retrying.outage.failed(exc)
            result = None
        except CouchError as exc:
            return self._refused(job_id, exc)
        if result is not None and result.unreadable:
            return self._unreadable(job_id, result.new_rev, result.unreadable)
        if result is None:
            log.info("claim of %s: answer lost; settling once CouchDB answers", job_id)
        elif result.status == 201 and isinstance(result.body, dict) and "job" in result.body:
            self.stats.add("claims_won")
            return self.writer.job(result.body["job"], result.new_rev)
        else:  # 202: stored, but not on every copy; ownership unknown until settled.
            log.info("claim of %s answered %d: settling", job_id, result.status)
            time.sleep(SETTLE_DELAY)
        my_rev = result.new_rev if result else None
        try:
            doc = self.retrying(lambda: self.settler.resolve(job_id, my_rev, sent_at=sent_at))
        except UnreadableAnswer as exc:
            return self._unreadable(job_id, my_rev, exc.reason)
        except Undecided as exc:
            # Claims sent from now on can be decided: let them go on, and
            # decide this one once its copies answer (or give it up).
            log.info("claim of %s cannot be decided yet (%s); deciding it apart", job_id, exc)
            self._apart.add(job_id)
            threading.Thread(
                target=self._settle_apart, args=(job_id, my_rev, sent_at), daemon=True
            ).start()
            return None
        return self._settled(doc)

    def _refused(self, job_id: str, exc: CouchError) -> None:
        """A claim CouchDB refused. For the job's own content: the job is
        failed as unclaimable. Other 403s: pouchdb-server runs
        validate_doc_update against the newest revision rather than the one
        the handler read, so a claim that lost the race to a claim *and* a
        completion is refused as "complete -> active" (403) where CouchDB
        answers 409; and a pause that reached the server before this worker
        heard of it is refused too (then the pause is heard now, and the job
        left for later). Fatal only if the job is still waiting and not
        paused: then the refusal is about this worker."""
        if about_content(exc):
            self.unclaimables.mark(job_id, f"its claim was refused: {refusal(exc)}")
            return None
        if not isinstance(exc, Forbidden):
            raise exc
        try:
            current = self.db.get_or_none(job_id)
        except UnreadableAnswer as unreadable:
            return self._unreadable(job_id, None, unreadable.reason)
        if current is not None and current.get("state") == "inactive":
            self.control.heard(self.db.get_or_none(protocol.DDOC_ID))
            if not self.control.holds(current.get("queues")):
                raise exc
            log.info("claim of %s refused: its queue is paused", job_id)
        self.stats.add("claim_conflicts")
        return None

    def _unreadable(self, job_id: str, rev: str | None, why: str) -> None:
        """A claim whose answer cannot be read here: the job cannot be run by
        any worker, so it is failed (held at `rev` if the claim was stored)."""
        reason = f"its document cannot be read by a worker ({why}): nested too deep?"
        if rev:
            self.unclaimables.fail_held(job_id, rev, reason)
        else:
            self.unclaimables.mark(job_id, reason)
        return None

    def _settled(self, doc: dict[str, Any] | None) -> Job | None:
        if doc is None:
            self.stats.add("claim_conflicts")
            return None
        self.stats.add("claims_won")
        return self.writer.job(doc, doc["_rev"])

    def _settle_apart(self, job_id: str, my_rev: str | None, sent_at: float) -> None:
        """Decide a claim that was in flight as a node holding a copy of the
        job went away: wait for the node (up to the settler's patience), and
        run the job if the claim won. Meanwhile its slot went to other claims,
        so the worker may run one job more than its concurrency for a while."""
        job = None
        try:
            job = self._settled(
                self.retrying(lambda: self.settler.settle(job_id, my_rev, sent_at=sent_at))
            )
        except Undecided as exc:
            self.stats.add("claim_conflicts")
            log.warning(
                "claim of %s undecided (%s): not run, its lease brings it back", job_id, exc
            )
            return
        except Exception as exc:  # a thread of its own: nothing above it to tell
            log.warning("claim of %s not settled (%s): its lease brings it back", job_id, exc)
            return
        finally:
            self._apart.discard(job_id)
            if job is None:
                self.limiter.give_back(job_id)
        if job is not None:
            self._start(job)
