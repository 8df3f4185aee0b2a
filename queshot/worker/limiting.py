"""The worker's side of limits (`queshot.limits`): before it claims a job
that a limit covers, a worker takes one token of each of the job's token
groups, and it gives them back when the job's run ends (or the claim is
lost). A token is taken by writing its document (fixed id, one per slot)
with `w` = n: a 201 is ownership, a 202 is settled from every copy exactly
as a claim is (`settling.Settler`), a 409 is a rival's. A job whose tokens
are all held stays waiting, unclaimed (no attempt used); the worker passes
over it (`HeldBack`) until a token may be free: a release the feed shows,
or the earliest lease or window end among the group's tokens.

Jobs of queues no limit touches cost nothing: `applies` is a look-up in
the limits the worker already holds (read at start, then from the feed)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..couch import CouchError, Database, ServerError, ServerUnreachable
from ..jobs import LIMIT_DOC_PREFIX, TOKEN_DOC_PREFIX, QueueError, now_ms, queue_path
from ..limits import Group, Limit, covering, limits, touches
from .hooks import Hook, Outcome
from .job import Job
from .refusals import SkipSet
from .settling import Settler
from .tokens import Held, TokenWriter

log = logging.getLogger(__name__)

KNOWN_JOBS = 1000  # jobs whose queue path and key are remembered (creation fields)
LOOP_WAIT = 0.5  # seconds the loop waits at most, so that it sees the worker halt
GroupKey = tuple[str, str, "str | None"]


class Limiter(Hook):
    """Takes and gives back the tokens of worker `worker_id`'s limited jobs,
    each on a lease of `lease_seconds`, renewed while the job runs. `wake`
    tells the dispatcher that a token may have come free."""

    def __init__(
        self,
        db: Database,
        *,
        worker_id: str,
        settler: Settler,
        lease_seconds: float,
        halt: threading.Event,
        wake: Callable[[], None],
    ) -> None:
        self.db = db
        self.lease_ms = int(lease_seconds * 1000)
        self.tokens = TokenWriter(db, worker_id=worker_id, settler=settler, lease_ms=self.lease_ms)
        self._halt = halt
        self._wake = wake
        self._limits: dict[tuple[str, ...], Limit] = {}
        self._known: OrderedDict[str, tuple[list[str], str | None]] = OrderedDict()
        self._held: dict[str, list[Held]] = {}
        self._full: dict[GroupKey, float] = {}  # group -> when a token may be free (epoch ms)
        self._lock = threading.Lock()
        self._nudge = threading.Event()

    # -- what the worker knows ------------------------------------------------------------

    def load(self, user: str | None) -> None:
        """Take this worker's account (`user`: tokens name it) and read the limits."""
        self.tokens.user = user
        self._read_limits()

    def _read_limits(self) -> None:
        found = {tuple(limit.queue): limit for limit in limits(self.db)}
        with self._lock:
            self._limits = found
            self._full.clear()

    def heard(self, row: dict[str, Any]) -> None:
        """A feed row of a limit or a token."""
        doc = row.get("doc") or {}
        if row["id"].startswith(LIMIT_DOC_PREFIX):
            path = tuple(queue_path(row["id"][len(LIMIT_DOC_PREFIX) :]))
            with self._lock:
                if row.get("deleted") or doc.get("_deleted"):
                    self._limits.pop(path, None)
                else:
                    self._limits[path] = Limit.from_doc(doc)
                self._full.clear()
        elif row["id"].startswith(TOKEN_DOC_PREFIX):
            if row.get("deleted"):
                with self._lock:
                    self._full.clear()
            elif doc.get("state") == "free":
                key = (str(doc.get("limit")), str(doc.get("kind")), doc.get("key"))
                self._freed(key, doc.get("free_at"))
            return
        else:
            return
        self._wake()

    def _freed(self, group: GroupKey, free_at: Any) -> None:
        """A token of `group` was given back, free from `free_at`: a full
        group is tried again then (at once: the dispatcher is woken)."""
        now = now_ms()
        later = isinstance(free_at, int | float) and free_at > now
        with self._lock:
            if group not in self._full:
                return
            if later:
                self._full[group] = min(self._full[group], free_at)
            else:
                del self._full[group]
        if later:
            self._nudge.set()  # the loop wakes the dispatcher at `free_at`
        else:
            self._wake()

    def applies(self, path: list[str]) -> bool:
        """Whether jobs a worker takes from queue `path` may be limited."""
        with self._lock:
            return bool(self._limits) and touches(self._limits, path)

    def describe(self) -> dict[str, int]:
        """Tokens held now, and jobs passed over for a full limit."""
        with self._lock:
            return {
                "tokens_held": sum(len(held) for held in self._held.values()),
                "jobs_held_back": self._held_back_count(),
            }

    # -- taking and giving back -------------------------------------------------------------

    def take(self, job_id: str, path: list[str]) -> bool:
        """Whether the job may be claimed now: True once this worker holds a
        token of each of its groups (or it needs none), False if one is full
        (the job stays waiting) or the job is no longer waiting."""
        groups = self._groups_of(job_id)
        if groups is None:
            return False
        if not groups:
            return True
        with self._lock:
            if any(self._full.get(_key(group), 0) > now_ms() for group in groups):
                return False
        taken: list[Held] = []
        try:
            for group in groups:
                held, full_until = self.tokens.take(group, job_id)
                if full_until is not None:
                    with self._lock:
                        self._full[_key(group)] = full_until
                    self._nudge.set()
                if held is None:
                    self._give_back(taken, hold=False)
                    return False
                taken.append(held)
        except BaseException:
            self._give_back(taken, hold=False)
            raise
        with self._lock:
            self._held[job_id] = taken
            self._known.pop(job_id, None)  # it is claimed now, not waiting
        return True

    def give_back(self, job_id: str) -> None:
        """The claim was lost: its tokens go back unused (no window held)."""
        with self._lock:
            taken = self._held.pop(job_id, [])
        self._give_back(taken, hold=False)

    def after_job(self, job: Job, outcome: Outcome) -> None:
        """The run ended: its tokens go back, a rate's kept for its window."""
        with self._lock:
            taken = self._held.pop(job.id, [])
        self._give_back(taken, hold=True)

    def _groups_of(self, job_id: str) -> list[Group] | None:
        with self._lock:
            known = self._known.get(job_id)
        if known is None:
            doc = self.db.get_or_none(job_id)
            if doc is None or doc.get("state") != "inactive":
                return None
            try:
                path = queue_path(doc.get("queues"))
            except QueueError:
                return []  # the claim is refused for it, and the job failed as unclaimable
            key = doc.get("limit_key")
            known = (path, key if isinstance(key, str) else None)
            with self._lock:
                self._known[job_id] = known
                while len(self._known) > KNOWN_JOBS:
                    self._known.popitem(last=False)
        with self._lock:
            return self._groups(*known)

    def _groups(self, path: list[str], key: str | None) -> list[Group]:
        return [group for limit in covering(self._limits, path) for group in limit.groups(key)]

    def _give_back(self, taken: list[Held], *, hold: bool) -> None:
        for held in taken:
            now = now_ms()
            free_at = held.group.free_after_run(now) if hold else now
            self.tokens.rewrite(held, state="free", free_at=free_at)
            self._freed(_key(held.group), free_at)
        if taken:
            self._wake()  # its slot is free: a job of another group may go

    # -- the part's loop: leases, and full groups that may have come free --------------------

    def run(self) -> None:
        reloaded = time.monotonic()
        while not self._halt.is_set():
            self._nudge.wait(self._next_wait())
            self._nudge.clear()
            try:
                self._free_passed()
                self._renew()
                if time.monotonic() - reloaded > self.lease_ms / 1000:
                    reloaded = time.monotonic()
                    self._read_limits()  # one the feed missed as it started, say
            except (ServerUnreachable, ServerError) as exc:
                log.info("limits: %s; trying again", exc)
            except CouchError as exc:
                log.warning("limits: %s", exc)

    def _next_wait(self) -> float:
        wait = min(LOOP_WAIT, self.lease_ms / 3000)
        with self._lock:
            if self._full:
                wait = min(wait, (min(self._full.values()) - now_ms()) / 1000)
        return max(0.01, wait)

    def _free_passed(self) -> None:
        now = now_ms()
        with self._lock:
            passed = [group for group, until in self._full.items() if until <= now]
            for group in passed:
                del self._full[group]
        if passed:
            self._wake()

    def _renew(self) -> None:
        """Renew tokens whose lease is a third gone (those of long jobs)."""
        with self._lock:
            held = [token for tokens in self._held.values() for token in tokens]
        renew_before = now_ms() + self.lease_ms * 2 / 3
        for token in held:
            if token.doc.get("state") == "active" and token.doc["lease_expires_at"] < renew_before:
                with contextlib.suppress(CouchError):
                    self.tokens.rewrite(token, lease_expires_at=now_ms() + self.lease_ms)

    # -- jobs passed over ---------------------------------------------------------------------

    def holds_back(self, job_id: str) -> bool:
        with self._lock:
            known = self._known.get(job_id)
            return known is not None and self._is_held_back(known)

    def _is_held_back(self, known: tuple[list[str], str | None]) -> bool:
        return bool(self._full) and any(_key(group) in self._full for group in self._groups(*known))

    def held_back_count(self) -> int:
        """How many jobs this worker knows to be held back by a full limit."""
        with self._lock:
            return self._held_back_count()

    def _held_back_count(self) -> int:
        if not self._full:
            return 0
        return sum(1 for known in self._known.values() if self._is_held_back(known))

    def skipping(self, skipped: SkipSet) -> HeldBack:
        """What pickers pass over: `skipped`, and jobs a full limit holds back."""
        return HeldBack(skipped, self)


class HeldBack:
    """The jobs a worker's pickers pass over (a `SkipSet` look-alike)."""

    def __init__(self, skipped: SkipSet, limiter: Limiter) -> None:
        self.skipped = skipped
        self.limiter = limiter

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.skipped or (
            isinstance(job_id, str) and self.limiter.holds_back(job_id)
        )

    def __len__(self) -> int:
        return len(self.skipped) + self.limiter.held_back_count()


def _key(group: Group) -> GroupKey:
    return (group.limit, group.kind, group.key)
