"""The worker's history counters (`queshot.history`): a hook that counts each
job ending complete or failed per minute and queue in memory, and a loop
that writes them every `interval` seconds, and once more when the worker
stops, into its document of the hour. The writes do not grow with the jobs:
one `_bulk_docs` per interval at most, whatever ran in it. The first write
of each hour also removes every worker's documents past keeping, a hundred
at a time."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .. import history
from ..couch import CouchError, Database, Outage, ServerError, ServerUnreachable
from ..jobs import QueueError, now_ms, queue_path
from .hooks import Hook, Outcome

if TYPE_CHECKING:
    from . import Worker
    from .job import Job

log = logging.getLogger(__name__)

PRUNE_BATCH = 100


class HistoryCounter(Hook):
    """Counts this worker's finished jobs; `run` is its loop, `flush` one write.
    Also keeps how many runs ended here and when the last did (`described`),
    for the worker's status document: a worker of short jobs holds none at
    most instants, yet is busy."""

    def __init__(
        self,
        db: Database,
        worker_id: str,
        *,
        interval: float,
        outage: Outage,
        halt: threading.Event,
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.interval = interval
        self.user: str | None = None  # the worker's account, set as it starts
        self._outage = outage
        self._halt = halt
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, str], list[int]] = {}  # (minute, queue) -> per state
        self._docs: dict[int, dict] = {}  # hour -> its document as last stored
        self._refusal_said = False
        self._finished = 0  # runs that ended here, whatever their outcome
        self._last_finished_at: int | None = None

    def described(self) -> dict[str, Any]:
        with self._lock:
            return {"finished": self._finished, "last_finished_at": self._last_finished_at}

    def after_job(self, job: Job, outcome: Outcome) -> None:
        with self._lock:
            self._finished += 1
            self._last_finished_at = now_ms()
        if outcome.state not in history.HISTORY_STATES:
            return
        try:
            queue = "/".join(queue_path(job.claimed_doc.get("queues")))  # as stored
        except QueueError:
            return  # a job with no queue path is counted nowhere
        now = now_ms()
        minute = now - now % history.MINUTE_MS
        with self._lock:
            counts = self._counts.setdefault((minute, queue), [0] * len(history.HISTORY_STATES))
            counts[history.HISTORY_STATES.index(outcome.state)] += 1

    def on_stop(self, worker: Worker) -> None:
        self.flush()  # the loop has ended: the last counts

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.flush()
                self._outage.answered()
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)

    def flush(self) -> None:
        """Write what was counted since the last flush; on a connection fault
        the counts are kept for the next one."""
        with self._lock:
            taken, self._counts = self._counts, {}
        if not taken:
            return
        per_hour: dict[int, list[tuple[int, str, list[int]]]] = defaultdict(list)
        for (minute, queue), counts in taken.items():
            per_hour[history.hour_of(minute)].append((minute, queue, counts))
        new_hour = any(hour not in self._docs for hour in per_hour)
        docs = []
        for hour, entries in sorted(per_hour.items()):
            doc = dict(self._docs.get(hour) or history.new_doc(hour, self.worker_id, self.user))
            doc["counts"] = {minute: dict(queues) for minute, queues in doc["counts"].items()}
            for minute, queue, counts in entries:
                history.add(doc, minute, queue, counts)
            docs.append(doc)
        try:
            results = {r.get("id"): r for r in self.db.bulk_docs(docs)}
        except CouchError:
            self._keep(taken)
            raise
        for doc in docs:
            self._stored(doc, results.get(doc["_id"], {"error": "no answer"}), taken)
        latest = max(self._docs, default=0)  # the hours before the last two take no more counts
        self._docs = {h: d for h, d in self._docs.items() if h >= latest - history.HOUR_MS}
        if new_hour:
            self._prune()

    def _stored(self, doc: dict, result: dict, taken: dict[tuple[int, str], list[int]]) -> None:
        hour = doc["hour"]
        if "rev" in result:
            self._docs[hour] = {**doc, "_rev": result["rev"]}
            return
        if result.get("error") == "conflict":  # written meanwhile (a lost answer): read, add again
            self._docs[hour] = self.db.get_or_none(doc["_id"]) or history.new_doc(
                hour, self.worker_id, self.user
            )
            self._keep({k: v for k, v in taken.items() if history.hour_of(k[0]) == hour})
            return
        if not self._refusal_said:  # e.g. a design doc from before the history rules
            self._refusal_said = True
            log.warning(
                "history: counts not stored (%s); `queshot push` the design docs (said once)",
                result.get("reason") or result.get("error"),
            )

    def _keep(self, taken: dict[tuple[int, str], list[int]]) -> None:
        with self._lock:
            for key, counts in taken.items():
                now = self._counts.setdefault(key, [0] * len(counts))
                self._counts[key] = [a + b for a, b in zip(now, counts, strict=True)]

    def _prune(self) -> None:
        """Remove up to PRUNE_BATCH documents past keeping (any worker's)."""
        rows = self.db.all_docs(limit=PRUNE_BATCH, **history.expired_range())["rows"]
        gone = [{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True} for r in rows]
        if gone:
            self.db.bulk_docs(gone)  # a rival's removal of the same is a conflict: fine
            log.info("history: removed %d documents past keeping", len(gone))
