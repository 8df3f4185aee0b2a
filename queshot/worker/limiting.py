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
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..couch import (
    Conflict,
    CouchError,
    Database,
    Forbidden,
    NotFound,
    ServerError,
    ServerUnreachable,
)
from ..jobs import LIMIT_DOC_PREFIX, TOKEN_DOC_PREFIX, TOKEN_TYPE, QueueError, now_ms, queue_path
from ..limits import Group, Limit, covering, free_again_at, is_free, limits, tokens, touches
from .hooks import Hook, Outcome
from .job import Job
from .refusals import SkipSet
from .settling import Settler, Undecided

log = logging.getLogger(__name__)

SETTLE_DELAY = 0.25  # seconds to let copies sync before judging a 202 (as a claim's)
KNOWN_JOBS = 1000  # jobs whose queue path and key are remembered (creation fields)
SLOT_TRIES = 4  # slots one take writes at most (each a rival's already: the next round)
FRESH_TRIES = 32  # random picks among slots never used, before looking at every one
LOOP_WAIT = 0.5  # seconds the loop waits at most, so that it sees the worker halt
GroupKey = tuple[str, str, "str | None"]


@dataclass
class Held:
    """A token this worker holds for a job, as last written (with `_rev`)."""

    group: Group
    doc: dict[str, Any]


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
        self.worker_id = worker_id
        self.settler = settler
        self.lease_ms = int(lease_seconds * 1000)
        self.user: str | None = None
        self._halt = halt
        self._wake = wake
        self._limits: dict[tuple[str, ...], Limit] = {}
        self._known: OrderedDict[str, tuple[list[str], str | None]] = OrderedDict()
        self._held: dict[str, list[Held]] = {}
        self._full: dict[GroupKey, float] = {}  # group -> when a token may be free (epoch ms)
        self._lock = threading.Lock()
        self._nudge = threading.Event()

    # -- what the worker knows ------------------------------------------------------------

    def load(self) -> None:
        """Read the limits and this worker's account (tokens name it)."""
        self.user = self.db.couch.session_user()
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
            if not (row.get("deleted") or doc.get("state") == "free"):
                return
            with self._lock:
                self._full.pop((doc.get("limit"), doc.get("kind"), doc.get("key")), None)
                if row.get("deleted"):
                    self._full.clear()
        else:
            return
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
                held = self._take_one(group, job_id)
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

    def _take_one(self, group: Group, job_id: str) -> Held | None:
        """A token of `group`, written for `job_id`; None if none is free
        (then the group is full until its earliest token may come free)."""
        stored = {
            doc.get("slot"): doc
            for doc in tokens(self.db, group.prefix)
            if isinstance(doc.get("slot"), int)
        }
        now = now_ms()
        free = slots_to_try(group.size, stored, now)
        for slot in free[:SLOT_TRIES]:
            doc = self._token(group, slot, job_id, stored.get(slot))
            held = self._write_taken(doc)
            if held is not None:
                return Held(group, held)
        if free:  # rivals took those first: not full, tried again next round
            return None
        times = [free_again_at(doc) for slot, doc in stored.items() if slot < group.size]
        until = min(times, default=now + self.lease_ms)
        with self._lock:
            self._full[_key(group)] = max(until, now + 1)
        self._nudge.set()
        return None

    def _token(
        self, group: Group, slot: int, job_id: str, stored: dict[str, Any] | None
    ) -> dict[str, Any]:
        now = now_ms()
        doc = {
            "_id": group.token_id(slot),
            "type": TOKEN_TYPE,
            "limit": group.limit,
            "kind": group.kind,
            "key": group.key,
            "slot": slot,
            "state": "active",
            "worker_id": self.worker_id,
            "user": self.user,
            "job": job_id,
            "taken_at": now,
            "lease_expires_at": now + self.lease_ms,
        }
        if stored is not None:
            doc["_rev"] = stored["_rev"]
        return doc

    def _write_taken(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Take a token by writing it: the stored token if it is now ours."""
        sent_at = time.monotonic()
        try:
            status = self.db.save_new(doc, w=self.settler.replicas)
        except (Conflict, Forbidden):  # a rival's, or not free by the server's clock
            return None
        if status == 201:
            return doc
        time.sleep(SETTLE_DELAY)  # 202: decided from every copy, as a claim is
        try:
            return self.settler.resolve(doc["_id"], doc["_rev"], sent_at=sent_at)
        except Undecided as exc:
            log.info("token %s undecided (%s): not used, its lease frees it", doc["_id"], exc)
            return None

    def _give_back(self, taken: list[Held], *, hold: bool) -> None:
        for held in taken:
            free_at = now_ms() + (held.group.hold_ms if hold else 0)
            self._rewrite(held, state="free", free_at=free_at)
            with self._lock:
                self._full.pop(_key(held.group), None)
        if taken:
            self._wake()

    def _rewrite(self, held: Held, **fields: Any) -> bool:
        """Write the held token again (renewed, or given back); False if it is
        no longer this worker's (its lease ran out and a rival took it)."""
        for _ in range(3):
            doc = {**held.doc, **fields}
            try:
                self.db.save_new(doc, w=self.settler.replicas)
            except Conflict:
                current = self.db.get_or_none(held.doc["_id"])
                if not _still_mine(current, held.doc):
                    log.warning("token %s was taken over: its lease had run out", held.doc["_id"])
                    return False
                held.doc = current
                continue
            except (NotFound, Forbidden) as exc:
                log.warning("token %s not written (%s)", held.doc["_id"], exc)
                return False
            held.doc = doc
            return True
        return False

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
                    self.load()  # a limit the feed brought before it started, say
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
                    self._rewrite(token, lease_expires_at=now_ms() + self.lease_ms)

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


def slots_to_try(size: int, stored: dict[int, dict[str, Any]], now: float) -> list[int]:
    """Free slots, stored ones first (so a group's documents stay as many as
    it ever ran at once, whatever its size), each lot in random order, so
    that rivals reading the same tokens rarely race for one."""
    used = {n for n in stored if 0 <= n < size}
    reused = [n for n in used if is_free(stored[n], now)]
    random.shuffle(reused)
    fresh: set[int] = set()
    for _ in range(FRESH_TRIES):
        if len(fresh) >= SLOT_TRIES or len(used) + len(fresh) >= size:
            break
        slot = random.randrange(size)
        if slot not in used:
            fresh.add(slot)
    if not fresh and len(used) < size:  # nearly all stored: look at every slot
        fresh = {n for n in range(size) if n not in used}
    return reused + random.sample(sorted(fresh), len(fresh))


def _key(group: Group) -> GroupKey:
    return (group.limit, group.kind, group.key)


def _still_mine(current: dict[str, Any] | None, held: dict[str, Any]) -> bool:
    return (
        current is not None
        and current.get("state") == "active"
        and current.get("worker_id") == held.get("worker_id")
        and current.get("job") == held.get("job")
    )
