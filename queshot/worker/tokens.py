"""A limit's tokens as documents (see `limiting.py`, ARCHITECTURE.md "Limits"):
taking one by writing it with `w` = n (201 ownership, 202 settled from every
copy by the claim's own `Settler`, 409 a rival's), writing it again to renew
or give it back."""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from ..couch import Conflict, Database, Forbidden, NotFound
from ..jobs import TOKEN_TYPE, now_ms
from ..limits import Group, tokens
from .settling import Settler, Undecided

log = logging.getLogger(__name__)

SETTLE_DELAY = 0.25  # seconds to let copies sync before judging a 202 (as a claim's)
SLOT_TRIES = 4  # slots one take writes at most (each a rival's already: the next round)
FRESH_TRIES = 32  # random picks among slots never used, before looking at every one


@dataclass
class Held:
    """A token this worker holds for a job, as last written (with `_rev`)."""

    group: Group
    doc: dict[str, Any]


class TokenWriter:
    """Writes the tokens of worker `worker_id` (account `user`), each on a
    lease of `lease_ms`, with `w` = the settler's replicas."""

    def __init__(self, db: Database, *, worker_id: str, settler: Settler, lease_ms: int) -> None:
        self.db = db
        self.worker_id = worker_id
        self.settler = settler
        self.lease_ms = lease_ms
        self.user: str | None = None

    def take(self, group: Group, job_id: str) -> tuple[Held | None, float | None]:
        """A token of `group`, written for `job_id`, or None; and if none is
        free, when one may be (epoch ms): the group is full until then. The
        job's own slot first (one read; rivals taking other jobs rarely race
        for it), else the group's free ones."""
        first = own_slot(group.size, job_id)
        current = self.db.get_or_none(group.token_id(first))
        if current is None or group.is_free(current, now_ms()):
            held = self._write_taken(self._token(group, first, job_id, current))
            if held is not None:
                return Held(group, held), None
        stored = {
            doc.get("slot"): doc
            for doc in tokens(self.db, group.prefix)
            if isinstance(doc.get("slot"), int)
        }
        now = now_ms()
        free = [slot for slot in slots_to_try(group, stored, now) if slot != first]
        for slot in free[:SLOT_TRIES]:
            doc = self._token(group, slot, job_id, stored.get(slot))
            held = self._write_taken(doc)
            if held is not None:
                return Held(group, held), None
        if free:  # rivals took those first: not full, tried again next round
            return None, None
        times = [group.free_again_at(doc) for slot, doc in stored.items() if slot < group.size]
        return None, max(min(times, default=now + self.lease_ms), now + 1)

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

    def rewrite(self, held: Held, **fields: Any) -> bool:
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


def own_slot(size: int, job_id: str) -> int:
    """The slot a job tries first: spread by its id, the same for every worker."""
    digest = hashlib.blake2b(job_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % size


def slots_to_try(group: Group, stored: dict[int, dict[str, Any]], now: float) -> list[int]:
    """When the job's own slot is taken: the group's free slots, stored ones
    first, each lot in random order, so that rivals reading the same tokens
    rarely race for one."""
    size = group.size
    used = {n for n in stored if 0 <= n < size}
    reused = [n for n in used if group.is_free(stored[n], now)]
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


def _still_mine(current: dict[str, Any] | None, held: dict[str, Any]) -> bool:
    return (
        current is not None
        and current.get("state") == "active"
        and current.get("worker_id") == held.get("worker_id")
        and current.get("job") == held.get("job")
    )
