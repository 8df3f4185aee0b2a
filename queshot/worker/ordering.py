"""A worker's queues, first first (RQ's order): which of them a job belongs
to, and each claim round's candidates, taken from the first queue that has
due jobs.

One `Picker` and one `Peers` per queue (rendezvous among the rivals on that
queue); one feed, one claim pool and one status document for them all. A
round goes on to a later queue only for the slots an earlier one cannot fill,
and only once a read of the earlier queue's pending view, made in that round,
reached the end of its due jobs and held none back for a rival. So within a
round every due job that read saw in an earlier queue is tried before any
job of a later one; a job written to an earlier queue after that read (the
feed names it a moment later) waits for the next round, and a later queue's
job already claimed then is not given back.

With one queue it adds nothing: the picker's rounds are passed on as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..couch import Database
from ..jobs import QueueError, in_queue
from .peers import Peers
from .picking import PendingQueue, Picker
from .refusals import SkipSet

if TYPE_CHECKING:
    from ..queue import Queue


class QueueOrder:
    """The pickers of `queues`, in the order their jobs are taken. The
    dispatcher calls it as it would one picker; the feed asks `picker_for`
    which picker a waiting job goes to, and tells it of rivals' claims and
    status documents. `held(path)` says whether a queue is paused: a round
    passes over it as if it had no due jobs; jobs in `skipped` are never
    candidates."""

    def __init__(
        self,
        db: Database,
        queues: Sequence[PendingQueue],
        worker_id: str,
        *,
        held: Callable[[list[str]], bool] = lambda path: False,
        skipped: SkipSet | None = None,
    ) -> None:
        self.paths = [queue.path for queue in queues]
        self._held = held
        self.peers = [Peers(worker_id, path) for path in self.paths]
        self.pickers = [
            Picker(db, queue, peers, skipped)
            for queue, peers in zip(queues, self.peers, strict=True)
        ]
        self._round: dict[str, int] = {}  # the last round's candidates -> index of their queue
        self._asked: dict[int, bool] = {}  # queues asked in the last round -> from their view?

    # -- from the changes feed -------------------------------------------------------

    def index_of(self, queues: Any) -> int | None:
        """The first of this worker's queues that takes a job whose `queues`
        field is `queues`, or None."""
        for index, path in enumerate(self.paths):
            if in_queue(queues, path):
                return index
        return None

    def picker_for(self, queues: Any) -> Picker | None:
        index = self.index_of(queues)
        return None if index is None else self.pickers[index]

    def strike(self, job_id: str) -> None:
        for picker in self.pickers:
            picker.strike(job_id)

    def heard(self, doc_id: str, doc: dict[str, Any]) -> None:
        """A worker status document (or its deletion) came by."""
        for peers in self.peers:
            peers.heard(doc_id, doc)

    # -- for the dispatcher ----------------------------------------------------------

    @property
    def drained(self) -> bool:
        return all(picker.drained for picker in self.pickers)

    @property
    def next_due(self) -> int | None:
        return min((p.next_due for p in self.pickers if p.next_due is not None), default=None)

    def hint_delay(self) -> float:
        return max(picker.hint_delay() for picker in self.pickers)

    def next_hint_in(self) -> float | None:
        waits = [picker.next_hint_in() for picker in self.pickers]
        return min((wait for wait in waits if wait is not None), default=None)

    def next_round(self, free: int) -> tuple[list[str], bool]:
        """Candidates for `free` slots, the first queue's first, and whether
        any came from a view read. A queue whose candidates do not fill the
        slots is read afresh (its hints or spare rows may not be all it has)
        before the next queue is asked for the rest. A paused queue is passed
        over (a worker whose queues are all paused has no rounds)."""
        candidates: dict[str, int] = {}
        self._asked = {}
        last = len(self.pickers) - 1
        for index, picker in enumerate(self.pickers):
            if len(self.pickers) > 1 and self._held(self.paths[index]):
                continue  # paused: the claim handler would refuse its jobs
            left = free - len(candidates)
            found, from_view = picker.next_round(left)
            complete = from_view and picker.saw_all
            if len(found) < left and index < last and not complete:
                again, complete = picker.look_again(left)
                found, from_view = [*found, *again], True
            self._asked[index] = from_view
            for job_id in found:
                candidates.setdefault(job_id, index)
            if len(candidates) >= free or not complete:
                break
        self._round = candidates
        return list(candidates), any(self._asked.values())

    def path_of(self, job_id: str) -> list[str]:
        """The queue a candidate of the last round came from: its claim names it."""
        return self.paths[self._round.get(job_id, 0)]

    def still_open(self, candidates: Sequence[str]) -> list[str]:
        """The candidates the feed has not seen rivals take meanwhile."""
        if len(self.pickers) == 1:
            return self.pickers[0].still_open(candidates)
        return [job_id for job_id in candidates if self._picker_of(job_id).still_open([job_id])]

    def round_done(self, *, tried: list[str], won: list[str], unused: list[str]) -> None:
        """Tell each queue asked in the round how its own candidates fared."""
        for index, from_view in self._asked.items():
            picker = self.pickers[index]
            mine = [job_id for job_id in tried if self._round.get(job_id) == index]
            picker.round_done(
                from_view=from_view,
                attempts=len(mine),
                claimed=sum(1 for job_id in won if self._round.get(job_id) == index),
                unused=[job_id for job_id in unused if self._round.get(job_id) == index],
            )

    def _picker_of(self, job_id: str) -> Picker:
        return self.pickers[self._round.get(job_id, 0)]


def checked_queues(queue: Queue | Sequence[Queue]) -> list[Queue]:
    """The queues a worker takes, in order: one, or several of one database
    (one feed and one claim pool serve them), none writeonly, none twice."""
    queues = [queue] if not isinstance(queue, Sequence) else list(queue)
    if not queues:
        raise QueueError("a worker needs at least one queue")
    seen: list[list[str]] = []
    for q in queues:
        if q.writeonly:
            raise QueueError(f"queue {q.name!r} is writeonly: it cannot create workers")
        if q.db.url != queues[0].db.url:
            raise QueueError(
                f"queue {q.name!r} is in {q.db.url}, not {queues[0].db.url}: "
                "one worker takes the queues of one database"
            )
        if q.path in seen:
            raise QueueError(f"queue {'/'.join(q.path)!r} given twice")
        seen.append(q.path)
    return queues
