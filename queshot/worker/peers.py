"""The other live workers on this worker's queue, from their status documents,
so that rivals can agree without a word on who tries which job first.

Each job has an order of preference over the live workers that take it:
highest `hash(job id, worker id)` first (rendezvous hashing). A worker claims
a job that the feed offers at once if it is the job's first choice, and a
moment later otherwise (when the first choice, if free, has taken it); from a
page it tries its first-choice jobs first. Rivals then rarely collide, and a
collision costs a claim the server pays for (and, on a cluster, a 202 to
settle). It only orders attempts: every claim is still decided by the server.

Status documents are written by other accounts, so none may cost a worker
much: one whose `last_seen` lies further ahead of this clock than the rules
allow (MAX_LAST_SEEN_AHEAD_MS: a phantom stored before them) is not a live
peer, a worker ranks itself among at most MAX_PEERS rivals, and however
many there are, a rank holds a job back by at most `picking.MAX_HINT_DEFER`.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from ..jobs import (
    MAX_LAST_SEEN_AHEAD_MS,
    WORKER_DOC_PREFIX,
    WORKER_TYPE,
    QueueError,
    now_ms,
    worker_gone,
    worker_queue_paths,
)

MAX_PEERS = 64  # rivals a worker ranks itself among: those first by id


class Peers:
    """Live workers with a queue that takes the jobs of queue `path` (its own
    path or a shorter prefix of it), this one (`worker_id`) included. A
    worker on several queues has one `Peers` per queue: a rival on ["high",
    "default"] is a rival for the jobs of both."""

    def __init__(self, worker_id: str, path: list[str]) -> None:
        self.worker_id = worker_id
        self.path = path
        self._seen: dict[str, dict[str, Any]] = {}  # worker id -> its status document
        self._lock = threading.Lock()

    def heard(self, doc_id: str, doc: dict[str, Any]) -> None:
        """A worker status document (or its deletion) came by."""
        worker_id = doc_id.removeprefix(WORKER_DOC_PREFIX)
        if worker_id == self.worker_id:
            return
        if doc.get("_deleted") or doc.get("type") != WORKER_TYPE:
            with self._lock:
                self._seen.pop(worker_id, None)
            return
        try:
            theirs = worker_queue_paths(doc.get("queues"))
        except QueueError:
            return
        if not any(self.path[: len(path)] == path for path in theirs):
            return  # it does not take this queue's jobs
        with self._lock:
            self._seen[worker_id] = doc

    def live(self) -> list[str]:
        """This worker and its live rivals (at most MAX_PEERS of them, by id)."""
        now = now_ms()
        with self._lock:
            alive = sorted(w for w, status in self._seen.items() if _alive(status, now))
        return [self.worker_id, *alive[:MAX_PEERS]]

    def place(self, job_id: str, workers: list[str] | None = None) -> int:
        """This worker's place in the job's order of preference (0: first)."""
        workers = workers or self.live()
        mine = _score(job_id, self.worker_id)
        return sum(1 for other in workers if _score(job_id, other) > mine)


def _alive(status: dict[str, Any], now: int) -> bool:
    """Whether a status document says its worker is alive: seen lately, and
    not at a time this clock has not reached (give or take a skew)."""
    last_seen = status.get("last_seen")
    ahead = isinstance(last_seen, int | float) and last_seen - now > MAX_LAST_SEEN_AHEAD_MS
    return not ahead and not worker_gone(status, now)


def _score(job_id: str, worker_id: str) -> int:
    digest = hashlib.blake2b(f"{job_id}\0{worker_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
