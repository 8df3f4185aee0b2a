"""Deciding a contested claim: who owns a job whose document has (or may have)
more than one leaf revision.

On a CouchDB cluster two claims of one job sent through different nodes can
both be stored, each on some of the job's copies, leaving conflict branches;
replication and `new_edits=false` writes leave them too. CouchDB picks the
same winning leaf everywhere (`jobs.winning_revision`), so ownership is decided by
reading every leaf and taking CouchDB's winner: the loser deletes its branch,
the winner deletes the others, and the document converges.

The read must see every copy of the job. With the default read quorum two
claimants may each see a different subset of the leaves while internal
replication still spreads them, and both decide they won (the job runs
twice) or both that they lost (it never runs); so leaves are read with `r` =
n. With a node down, CouchDB still answers such a read, from the copies it
can reach, without saying so: hence `/_membership` and the job's
`_shards/<id>` are checked first. A copy that is unreachable can hold a
rival's claim only if it stored it before it went away: a claim sent after
this worker saw that node gone cannot be there, nor can any rival's claim
that raced it, so it is decided from the copies that answer. A claim sent
before (the node went away during the race) is undecidable: the claimant
decides it apart, waiting for the node while its other claims go on, and if
the node does not come back within half a lease, gives the job up unrun
(its lease brings it back, no attempt used). Reading `/_membership` needs a server
admin; a worker without that right cannot tell, says so once, and decides
from the copies that answer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from ..couch import Conflict, Database, NotFound
from ..jobs import winning_revision

log = logging.getLogger(__name__)


class Undecided(Exception):
    """A copy of the job that may hold a rival's claim cannot be read."""


class Settler:
    """Decides contested claims for the worker `worker_id` on `db`, whose
    documents have `replicas` copies each; an undecidable claim waits up to
    `patience` seconds."""

    def __init__(
        self, db: Database, worker_id: str, *, patience: float, halt: threading.Event
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.replicas = 1  # the database's n, set when the worker starts
        self.patience = patience  # seconds an undecidable claim waits for its copies
        self._halt = halt
        self._gone_since: dict[str, float] = {}  # node -> when first seen unreachable
        self._lock = threading.Lock()
        self._membership_readable = True

    def settle(self, job_id: str, my_rev: str | None, *, sent_at: float) -> dict[str, Any] | None:
        """The winning revision if this worker's claim (`my_rev`, or None if its
        answer was lost) won it, else None. A claim that cannot be decided yet
        waits for the missing copies, up to `patience`; then Undecided."""
        deadline = time.monotonic() + self.patience
        said = False
        while True:
            missing = self._unsafe_missing(job_id, sent_at)
            if not missing:
                return self._decide(job_id, my_rev)
            if time.monotonic() >= deadline or self._halt.is_set():
                raise Undecided(
                    f"the copies on {', '.join(sorted(missing))} stayed unreachable for "
                    f"{self.patience:.0f} s"
                )
            if not said:
                said = True
                log.info(
                    "claim of %s: %s went away while the claim was in flight; waiting for it "
                    "rather than guessing",
                    job_id,
                    ", ".join(sorted(missing)),
                )
            self._halt.wait(0.5)

    def resolve(self, job_id: str, my_rev: str, *, sent_at: float) -> dict[str, Any] | None:
        """As `settle`, without waiting: Undecided at once if it cannot be
        decided now (a heartbeat tries again at the next beat)."""
        missing = self._unsafe_missing(job_id, sent_at)
        if missing:
            raise Undecided(f"the copies on {', '.join(sorted(missing))} are unreachable")
        return self._decide(job_id, my_rev)

    def _decide(self, job_id: str, my_rev: str | None) -> dict[str, Any] | None:
        leaves = self.db.open_revs(job_id, r=self.replicas if self.replicas > 1 else None)
        winner = winning_revision(leaves)
        mine = (
            winner is not None
            and winner.get("worker_id") == self.worker_id
            and (my_rev is None or winner["_rev"] == my_rev)
        )
        for leaf in leaves:
            if leaf.get("_deleted") or leaf is winner:
                continue
            if mine or leaf["_rev"] == my_rev:
                with contextlib.suppress(Conflict, NotFound):  # removed by another already
                    self.db.delete(job_id, leaf["_rev"])
        if mine and winner.get("state") == "active":
            return winner
        if my_rev is not None:
            log.info(
                "job %s: lost the contested claim (winner %s)",
                job_id,
                winner.get("worker_id") if winner else None,
            )
        return None

    def _unsafe_missing(self, job_id: str, sent_at: float) -> set[str]:
        """The nodes holding a copy of the job that do not answer now and were
        not already seen gone when the claim was sent (monotonic `sent_at`)."""
        if self.replicas <= 1:
            return set()
        missing = self._missing_copies(job_id)
        with self._lock:
            return {node for node in missing if self._gone_since[node] >= sent_at}

    def _missing_copies(self, job_id: str) -> set[str]:
        connected = self.db.couch.connected_nodes() if self._membership_readable else None
        if connected is None:
            if self._membership_readable:
                self._membership_readable = False
                log.warning(
                    "cannot read /_membership as %s: contested claims are decided from the "
                    "copies that answer, even while a node is down (give workers a server "
                    "admin to have them wait for it instead)",
                    self.db.couch.user or "an anonymous user",
                )
            return set()
        holders = self.db.shard_nodes(job_id)
        missing = set(holders or ()) - connected
        now = time.monotonic()
        with self._lock:
            for node in missing:
                self._gone_since.setdefault(node, now)
            for node in list(self._gone_since):
                if node not in missing and node in connected:
                    del self._gone_since[node]
        return missing
