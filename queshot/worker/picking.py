"""Which jobs a worker tries to claim next: the read side of its claim rounds.

Claims are writes the server pays for, and every lost claim is one wasted, so
a worker picks candidates that rivals are unlikely to be claiming too:

- hints: jobs its changes feed saw become claimable, as long as they fit the
  free slots (no pending-view read at all);
- otherwise a page of the pending view, in its order (priority, then oldest
  first); after a lost race, or in a burst that every rival saw, shuffled
  within each priority, so that rivals spread over the page while higher
  priorities still go first;
- the rows of the last page a round did not need, minus those the feed saw
  rivals claim: one read serves many rounds.

A worker on several queues has a picker per queue (`ordering.QueueOrder`
asks them in order); `look_again` and `saw_all` tell it whether a queue has
due jobs beyond the candidates it gave.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from queue import Empty, SimpleQueue
from typing import Any, Protocol

from .. import protocol
from ..couch import Database
from ..jobs import now_ms
from .peers import Peers
from .refusals import SkipSet

MAX_SKIP_SCANS = 8
MAX_PAGE = 400  # pending rows read per claim round, at most
SPARE_TTL = 10.0  # seconds the unused rows of a page are worth trying, at most
MAX_HINT_DELAY = 0.02  # seconds a worker that keeps losing hint races waits, at most
HINT_DEFER = 0.05  # seconds a job's second choice lets its first take it (third: twice...)
MAX_HINT_DEFER = 0.15  # seconds a hint waits for rivals at most, however many there are
SPREAD_SECONDS = 10.0  # after a lost claim race, spread claims within priorities this long
MAX_GONE = 10_000  # jobs remembered as taken; beyond, forget them and the spare rows


class PendingQueue(Protocol):
    """What picking needs of a Queue: its path, pending view and page size."""

    path: list[str]
    view: str
    limit: int


class Picker:
    """Candidates for one worker's claim rounds on `queue`. The changes feed
    calls `offer` and `strike`; the dispatcher calls `next_round`, `still_open`
    before each batch of claims, and `round_done` after the round. Jobs in
    `skipped` (ones this worker cannot take: `refusals.py`) are never offered."""

    def __init__(
        self,
        db: Database,
        queue: PendingQueue,
        peers: Peers,
        skipped: SkipSet | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.peers = peers
        self.skipped = skipped if skipped is not None else SkipSet(0)
        self.page = queue.limit
        self.drained = False  # the last view read found nothing, no hint dropped since
        self.saw_all = False  # the last view read reached the end of the queue's due jobs
        self.next_due: int | None = None  # earliest not-due job of that read (epoch ms)
        self._hints: SimpleQueue[str] = SimpleQueue()
        self._deferred: dict[str, float] = {}  # hints for others first: job id -> when (monotonic)
        self._spare: list[str] = []  # rows of the last page not tried yet
        self._spare_until = 0.0  # when they are no longer worth it (monotonic)
        self._gone: set[str] = set()  # jobs the feed saw claimed or removed since that read
        self._hint_delay = 0.0  # seconds to wait before claiming hints
        self._spread_until = 0.0  # shuffle candidates until then (monotonic)

    @property
    def hints(self) -> bool:
        """Whether the feed may hand this picker jobs: not for a queue on a
        custom pending view (the seed's `view` option), whose selection the
        feed cannot tell; its worker is only woken and the view read decides."""
        return self.queue.view == protocol.PENDING

    # -- from the changes feed -------------------------------------------------------

    def offer(self, job_id: str) -> None:
        """A job of this queue became claimable and is due: a hint now if this
        worker is the job's first choice among its live peers, else once its
        betters have had their moment. Beyond a page of them it is a burst,
        which the view serves: no need to keep more."""
        self._gone.discard(job_id)  # taken before, waiting again (lease over, requeued)
        if job_id in self.skipped:
            return
        place = self.peers.place(job_id)
        if place:
            if len(self._deferred) < MAX_PAGE:
                wait = min(HINT_DEFER * place, MAX_HINT_DEFER)
                self._deferred[job_id] = time.monotonic() + wait
        elif self._hints.qsize() < MAX_PAGE:
            self._hints.put(job_id)

    def strike(self, job_id: str) -> None:
        """A job was claimed, finished or removed: no longer worth a claim.
        Remembered until the next page read; a worker that reads none (paused,
        or living on hints) forgets them all at MAX_GONE, with the spare rows
        they were kept to filter."""
        if len(self._gone) >= MAX_GONE:
            self._gone.clear()
            self._spare_until = 0.0
        self._gone.add(job_id)

    # -- for the dispatcher ----------------------------------------------------------

    def hint_delay(self) -> float:
        """How long to let the usual winner of hint races go first (meanwhile
        a burst shows as more hints than slots, which then go to the view)."""
        return 0.0 if self._hints.empty() else self._hint_delay

    def next_hint_in(self) -> float | None:
        """Seconds until the next hint deferred to other workers is due, if
        any: the dispatcher waits for that, or for a wake-up, whichever first."""
        if not self._deferred:
            return None
        return max(0.0, min(self._deferred.values()) - time.monotonic())

    def next_round(self, free: int) -> tuple[list[str], bool]:
        """Candidates for `free` slots, and whether they come from the view.
        Hints that other workers took meanwhile are no reason to read the
        view when its last read found nothing."""
        had_hints = not self._hints.empty() or bool(self._deferred)
        hints = self.still_open(self._take_hints(free))
        if hints or (had_hints and self.drained):
            return hints, False
        candidates = self._read_page(free)
        self.drained = not candidates
        return candidates, True

    def look_again(self, free: int) -> tuple[list[str], bool]:
        """A fresh read of the pending view (not the spare rows), less the jobs
        whose hint waits for a rival's first claim; and whether that is every
        due job of the queue (the read reached the end of them, holding none
        back). For a worker on several queues, which may take a later queue's
        jobs only once this one has no more to give."""
        self._spare_until = 0.0
        found = self._read_page(free)
        self.drained = not found
        deferred = set(self._deferred)  # a copy: the feed adds to it meanwhile
        candidates = [job_id for job_id in found if job_id not in deferred]
        return candidates, self.saw_all and len(candidates) == len(found)

    def still_open(self, candidates: Sequence[str]) -> list[str]:
        """The candidates the feed has not seen rivals take meanwhile (nor
        this worker given up on)."""
        return [
            job_id
            for job_id in candidates
            if job_id not in self._gone and job_id not in self.skipped
        ]

    def round_done(
        self, *, from_view: bool, attempts: int, claimed: int, unused: list[str]
    ) -> None:
        """Learn from a round. Rows it did not try are kept for the next ones.
        More than one lost claim in ten from a page means rivals pick from the
        same rows, so the next page is four times as large (random picks then
        collide less); rounds without a loss shrink it back slowly towards
        the queue's `limit`. Who keeps losing the race for hints lets the
        winner go first."""
        lost = attempts - claimed
        if lost:
            self._spread_until = time.monotonic() + SPREAD_SECONDS
        if from_view:
            self._spare = unused
            if lost * 10 > attempts:
                self.page = min(MAX_PAGE, self.page * 4)
            elif attempts and not lost:
                self.page = max(self.queue.limit, self.page - self.page // 16)
        elif claimed:
            self._hint_delay /= 2
        elif attempts:  # hints were tried and lost (not merely taken by their first choice)
            self._hint_delay = min(MAX_HINT_DELAY, self._hint_delay * 2 + 0.002)

    def _take_hints(self, free: int) -> list[str]:
        """Hints, if they fit the free slots. A burst (more hints than slots)
        is left to the view, read as a page as large as the burst and picked
        at random, so that rivals spread over it from the start."""
        hints: dict[str, None] = {}
        with contextlib.suppress(Empty):
            while True:
                hints[self._hints.get_nowait()] = None
        now = time.monotonic()
        for job_id, due in list(self._deferred.items()):
            if due <= now:
                hints[job_id] = None
                del self._deferred[job_id]
        if len(hints) > free:
            self.drained, self._spare_until = False, 0.0  # the burst may outrank the spare
            self.page = max(self.page, min(MAX_PAGE, len(hints)))
            self._spread_until = time.monotonic() + SPREAD_SECONDS
            return []
        return list(hints)

    def _place_among(self, workers: list[str]) -> Callable[[str], int]:
        return lambda job_id: self.peers.place(job_id, workers)

    def _read_page(self, free: int) -> list[str]:
        """Due job ids: the spare rows while fresh (until SPARE_TTL, a job
        falls due, or a burst arrives), else a page of the pending view. Jobs
        not yet due sort after the due ones of their priority, so a not-due
        row skips the scan to the next priority. A read also notes the
        earliest not-due time it saw (`next_due`). A page has at least as many
        rows as slots are free (the queue's `limit` may be fewer)."""
        spare, self._spare = self.still_open(self._spare), []
        if spare and time.monotonic() < self._spare_until:
            self.saw_all = False
            return spare
        self._gone.clear()
        read_at = time.monotonic()
        path = self.queue.path
        # Never fewer rows than free slots, nor than skipped jobs could hide.
        size = min(MAX_PAGE, max(self.page, free)) + len(self.skipped)
        startkey: list[Any] = [path]
        now = now_ms()
        due: list[tuple[Any, str]] = []
        next_due = None
        self.saw_all = False
        for _ in range(MAX_SKIP_SCANS):
            rows = protocol.pending_rows(self.db, self.queue.view, path, startkey, size)
            page_due, not_due = due_rows(rows, now)
            due += [row for row in page_due if row[1] not in self.skipped]
            # The queue's rows ran out (not merely the page, or a priority's due ones).
            self.saw_all = not_due is None and len(rows) < size
            if not_due is not None:
                run_at, priority = not_due
                next_due = run_at if next_due is None else min(next_due, run_at)
                startkey = [path, priority, {}]  # on to the next priority
            if not_due is None or len(due) >= free or len(rows) == 0:
                break
        if time.monotonic() < self._spread_until:
            due = spread(due, self._place_among(self.peers.live()))
        fresh_for = SPARE_TTL if next_due is None else min(SPARE_TTL, (next_due - now) / 1000)
        self._spare_until = read_at + fresh_for
        self.next_due = next_due
        return [job_id for _, job_id in due]


def due_rows(
    rows: list[dict[str, Any]], now: float
) -> tuple[list[tuple[Any, str]], tuple[float, Any] | None]:
    """The (-priority, id) of pending rows that are due at `now` (epoch ms), in
    view order, up to the first row that is not; and that row's (run_at,
    -priority), or None if every row is due. In the pending view a not-due
    row sorts after the due ones of its priority, so nothing due follows it
    within that priority."""
    due = []
    for row in rows:
        run_at = row["value"]
        if isinstance(run_at, int | float) and run_at > now:
            return due, (run_at, row["key"][1])
        due.append((row["key"][1], row["id"]))
    return due, None


def spread(due: list[tuple[Any, str]], place: Callable[[str], int]) -> list[tuple[Any, str]]:
    """Rows by priority (higher first), then by this worker's `place` in each
    job's order of preference among its rivals (its first choices first), in
    random order within that: rivals then start on different rows."""
    shuffled = random.sample(due, len(due))
    return sorted(shuffled, key=lambda row: (row[0], place(row[1])))  # stable: random within
