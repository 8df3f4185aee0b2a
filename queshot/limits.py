"""Limits that hold across every worker: how many jobs of a queue (or of one
`limit_key` in it) run at once, and how many start in any window of time.

A limit is a document per queue (`queshot-limit:<path>`, its schema checked
by validate_doc_update in `lib/limits.js`, queue admins only), covering the
queue and the queues under it. Workers read the limits at start and follow
them through their feed, so a change needs no restart. A limited job runs
only while its worker holds one token of each limit that covers it: a token
is one of a limit's N slot documents, whose id the rule fixes
(`token_id`), taken by writing it (ARCHITECTURE.md, "Limits"; the worker's
side is worker/limiting.py). This module is the model both share."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

from . import admin_docs, protocol
from .couch import Database
from .jobs import (
    LIMIT_DOC_PREFIX,
    LIMIT_KINDS,
    LIMIT_TYPE,
    MAX_LEASE_SECONDS,
    MAX_LIMIT,
    RATE_WINDOWS,
    TOKEN_DOC_PREFIX,
    TOKEN_TYPE,
    QueueError,
    queue_path,
)
from .readable import key_text

log = logging.getLogger(__name__)

RATE_KINDS = ("rate", "key_rate")
KEYED_KINDS = ("key_concurrency", "key_rate")
SLIDING, FIXED = RATE_WINDOWS  # a rate without `window` is sliding
Window = Literal["sliding", "fixed"]


@dataclass(frozen=True)
class Rate:
    """At most `count` job starts per `seconds`: in any window of that length
    ("sliding", the default), or in each window aligned on the epoch,
    [k * seconds, (k + 1) * seconds) ("fixed": calendar buckets, up to twice
    `count` in a stretch across an edge, as fixed windows go)."""

    count: int
    seconds: float
    window: Window = "sliding"


@dataclass(frozen=True)
class Limit:
    """A queue's limits: jobs running at once (`concurrency`), the same per
    job `limit_key` (`key_concurrency`), and starts per window for the
    queue (`rate`) and per key (`key_rate`). Unset ones do not limit."""

    queue: list[str]
    concurrency: int | None = None
    key_concurrency: int | None = None
    rate: Rate | None = None
    key_rate: Rate | None = None

    @property
    def id(self) -> str:
        return limit_id(self.queue)

    @property
    def name(self) -> str:
        return "/".join(self.queue)

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"_id": self.id, "type": LIMIT_TYPE, "queue": self.queue}
        for kind in LIMIT_KINDS:
            value = getattr(self, kind)
            if isinstance(value, Rate):
                doc[kind] = {"count": value.count, "seconds": value.seconds}
                if value.window != SLIDING:  # as stored before windows had a choice
                    doc[kind]["window"] = value.window
            elif value is not None:
                doc[kind] = value
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Limit:
        """A stored limit. validate_doc_update checks its schema, but one
        stored before the rules may break it: QueueError then."""
        values: dict[str, Any] = {}
        for kind in LIMIT_KINDS:
            value = doc.get(kind)
            if kind in RATE_KINDS and isinstance(value, dict):
                window = value.get("window", SLIDING)
                values[kind] = Rate(value.get("count"), float(value.get("seconds")), window)
            elif value is not None:
                values[kind] = value
        return cls(queue_path(doc["queue"]), **values).checked()

    def checked(self) -> Limit:
        """This limit, if every number in it is one the rules allow; else
        QueueError naming the first that is not."""
        for kind in LIMIT_KINDS:
            value = getattr(self, kind)
            count = value.count if isinstance(value, Rate) else value
            whole = isinstance(count, int) and not isinstance(count, bool)
            if count is not None and not (whole and 1 <= count <= MAX_LIMIT):
                raise QueueError(
                    f"{kind} must be a whole number from 1 to {MAX_LIMIT} (got {count!r})"
                )
            if isinstance(value, Rate) and not 0 < value.seconds <= MAX_LEASE_SECONDS:
                raise QueueError(
                    f"{kind}'s window must be above 0 and at most {MAX_LEASE_SECONDS} s"
                )
            if isinstance(value, Rate) and value.window not in RATE_WINDOWS:
                raise QueueError(
                    f"{kind}'s window must be {' or '.join(map(repr, RATE_WINDOWS))}"
                    f" (got {value.window!r})"
                )
        return self

    def groups(self, key: str | None) -> list[Group]:
        """The token groups a job with `key` needs a token of, one per limit set."""
        found = []
        for kind in LIMIT_KINDS:
            value = getattr(self, kind)
            if value is None or (kind in KEYED_KINDS and key is None):
                continue
            rate = value if isinstance(value, Rate) else None
            found.append(
                Group(
                    limit=self.name,
                    kind=kind,
                    key=key if kind in KEYED_KINDS else None,
                    size=rate.count if rate else value,
                    window_ms=max(1, int(rate.seconds * 1000)) if rate else 0,
                    fixed=rate is not None and rate.window == FIXED,
                )
            )
        return found


@dataclass(frozen=True)
class Group:
    """One limit's tokens for one key: `size` slots, and a rate's window
    (`window_ms`, 0 for a concurrency limit), aligned on the epoch if `fixed`."""

    limit: str
    kind: str
    key: str | None
    size: int
    window_ms: int = 0
    fixed: bool = False

    def free_after_run(self, now: int) -> int:
        """When a token given back at `now` (epoch ms), its job's run over,
        may be taken again: at once for a concurrency limit, a window after
        the run ended for a sliding rate, at the start of the next aligned
        window for a fixed one (why each is exact: ARCHITECTURE.md, "Limits")."""
        if not self.fixed:
            return now + self.window_ms
        return (now // self.window_ms + 1) * self.window_ms

    def free_again_at(self, token: dict[str, Any]) -> float:
        """When a stored token of the group may be taken (epoch ms): given
        back, from its `free_at`; held, once its lease ran out, and then as if
        its job's run ended at that moment: a dead holder's job may have
        started, and a rate counts its start."""
        if token.get("state") == "free":
            return _number(token.get("free_at"))
        lease_end = _number(token.get("lease_expires_at"))
        return self.free_after_run(int(lease_end)) if math.isfinite(lease_end) else lease_end

    def is_free(self, token: dict[str, Any], now: float) -> bool:
        return self.free_again_at(token) <= now

    @property
    def prefix(self) -> str:
        """What every token id of the group starts with (an `_all_docs` range)."""
        return token_id(self.limit, self.kind, self.key, 0)[: -len("0]")]

    def token_id(self, slot: int) -> str:
        return token_id(self.limit, self.kind, self.key, slot)


def limit_id(queue: str | list[str]) -> str:
    return LIMIT_DOC_PREFIX + "/".join(queue_path(queue))


def token_id(limit: str, kind: str, key: str | None, slot: int) -> str:
    """As lib/limits.js `tokenId` makes it: JSON of [limit, kind, key, slot]."""
    return TOKEN_DOC_PREFIX + json.dumps(
        [limit, kind, key, slot], separators=(",", ":"), ensure_ascii=False
    )


def is_held(token: dict[str, Any], now: float) -> bool:
    """Whether a stored token is held at `now` (epoch ms): on a lease not run out."""
    return token.get("state") == "active" and _number(token.get("lease_expires_at")) > now


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else math.inf


def covering(limits: dict[tuple[str, ...], Limit], path: list[str]) -> list[Limit]:
    """The limits over a job of queue `path`: its own and its ancestors'."""
    return [limits[tuple(path[:n])] for n in range(1, len(path) + 1) if tuple(path[:n]) in limits]


def touches(limits: dict[tuple[str, ...], Limit], path: list[str]) -> bool:
    """Whether any job a worker of queue `path` takes can be limited: a
    limit on it, above it or under it."""
    size = len(path)
    return any(tuple(key[:size]) == tuple(path) or tuple(path[: len(key)]) == key for key in limits)


# -- what queue admins do -------------------------------------------------------------------


def set_limit(db: Database, limit: Limit) -> Limit:
    """Write (or replace) a queue's limit; the rules check it, and only queue
    admins may."""
    doc = limit.checked().as_doc()
    if len(doc) == 3:
        raise QueueError("a limit needs at least one of " + ", ".join(LIMIT_KINDS))
    admin_docs.write_over(db, doc)
    return limit


def remove_limit(db: Database, queue: str | list[str]) -> None:
    """Remove a queue's limit: its jobs run as workers' concurrency allows."""
    missing = f"no limit for queue {'/'.join(queue_path(queue))!r}"
    admin_docs.remove(db, limit_id(queue), LIMIT_TYPE, missing)


def limits(db: Database) -> list[Limit]:
    """Every queue's limit. One that cannot be read is left out, with a warning."""
    found = []
    for doc in protocol.docs_by_prefix(db, LIMIT_DOC_PREFIX):
        try:
            found.append(Limit.from_doc(doc))
        except (QueueError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("limit %s cannot be read, left out: %s", doc.get("_id"), exc)
    return found


def tokens(db: Database, prefix: str = TOKEN_DOC_PREFIX) -> list[dict[str, Any]]:
    """The stored tokens whose id starts with `prefix` (every one by default)."""
    return [doc for doc in protocol.docs_by_prefix(db, prefix) if doc.get("type") == TOKEN_TYPE]


def in_use(db: Database, now: float) -> dict[tuple[str, str, str | None], int]:
    """Tokens held now, by (limit, kind, key): what runs under each limit."""
    counts: dict[tuple[str, str, str | None], int] = {}
    for token in tokens(db):
        if is_held(token, now):
            key = token.get("key")  # a string or null, unless stored before the rules
            key = key if key is None or isinstance(key, str) else key_text(key)
            group = (str(token.get("limit")), str(token.get("kind")), key)
            counts[group] = counts.get(group, 0) + 1
    return counts


def held_count(group_tokens: list[dict[str, Any]], group: Group, now: float) -> int:
    """How many of the group's slots are held or not yet free again at `now`."""
    slots = {t.get("slot") for t in group_tokens if not group.is_free(t, now)}
    return sum(1 for slot in slots if isinstance(slot, int) and 0 <= slot < group.size)


def waits_on(db: Database, doc: dict[str, Any], now: float) -> list[str]:
    """For a waiting job, each limit whose tokens are all taken now, in words
    ("api: concurrency 3, 3 taken"); empty for any other job."""
    try:
        path = queue_path(doc.get("queues"))
    except QueueError:
        return []
    if doc.get("state") != "inactive":
        return []
    key = doc.get("limit_key") if isinstance(doc.get("limit_key"), str) else None
    by_path = {tuple(limit.queue): limit for limit in limits(db)}
    full = []
    for limit in covering(by_path, path):
        for group in limit.groups(key):
            taken = held_count(tokens(db, group.prefix), group, now)
            if taken >= group.size:
                of_key = f" of key {group.key}" if group.key is not None else ""
                full.append(f"{group.limit}: {group.kind} {group.size}{of_key}, {taken} taken")
    return full
