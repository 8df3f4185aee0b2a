"""The history counters: how many jobs ended complete or failed, per minute
and queue, kept in documents of their own so that a requeue, a delete or
`queshot clean` does not rewrite the past (the jobs' own timestamps do move
or go). Each worker counts its jobs in memory and rewrites one document per
UTC hour every few seconds (`worker/history.py`), so the writes it costs do
not grow with the jobs it runs:

    {"_id": "queshot-history:20261206T050000Z:<worker_id>",
     "type": "queshot_history", "hour": <epoch ms of the hour's start>,
     "worker_id": ..., "user": <its CouchDB account, or null>,
     "counts": {"<minute of the hour, "0".."59">": {"<queue path, a/b>": [complete, failed]}}}

validate_doc_update (`lib/history.js`) holds them to that shape: a worker
account writes only its own, whose counts only grow; any worker removes one
past HISTORY_KEEP_HOURS. The `history` view of `_design/queshot-watch` sums
them per queue, state, day, hour and minute; `history_by_minute` per minute
first, for a chart of every queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import protocol
from .couch import Database
from .jobs import DEFAULTS, now_ms

HISTORY_TYPE: str = DEFAULTS["history_type"]
HISTORY_DOC_PREFIX: str = DEFAULTS["history_doc_prefix"]
HISTORY_STATES: tuple[str, ...] = tuple(DEFAULTS["history_states"])
HISTORY_KEEP_HOURS: int = DEFAULTS["history_keep_hours"]
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
# What `queshot history` shows: the last hour, day and week, each up to now.
WINDOWS = (("hour", HOUR_MS), ("day", DAY_MS), ("week", 7 * DAY_MS))


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


def doc_id(hour: int, worker_id: str) -> str:
    """A worker's document of an hour: the id the rules expect (its UTC time
    as lib/history.js's hourStamp writes it), in time order under the prefix."""
    stamp = datetime.fromtimestamp(hour / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{HISTORY_DOC_PREFIX}{stamp}:{worker_id}"


def new_doc(hour: int, worker_id: str, user: str | None) -> dict[str, Any]:
    return {
        "_id": doc_id(hour, worker_id),
        "type": HISTORY_TYPE,
        "hour": hour,
        "worker_id": worker_id,
        "user": user,
        "counts": {},
    }


def add(doc: dict[str, Any], minute: int, queue: str, counts: list[int]) -> None:
    """Add `counts` (per HISTORY_STATES) of the minute starting at `minute`
    (epoch ms, within the document's hour) for `queue` (a path joined by /)."""
    entry = doc["counts"].setdefault(str((minute - doc["hour"]) // MINUTE_MS), {})
    before = entry.get(queue, [0] * len(HISTORY_STATES))
    entry[queue] = [a + b for a, b in zip(before, counts, strict=True)]


def expired_range() -> dict[str, str]:
    """The `_all_docs` range of every worker's documents past keeping."""
    horizon = hour_of(now_ms()) - HISTORY_KEEP_HOURS * HOUR_MS
    return {"startkey": HISTORY_DOC_PREFIX, "endkey": doc_id(horizon, "")}


@dataclass
class QueueHistory:
    """Jobs of one queue that ended in each state, per window (hour, day, week)."""

    queue: Any
    counts: dict[str, dict[str, int]]


def recent(db: Database, now: int | None = None) -> list[QueueHistory]:
    """Each counted queue's complete and failed jobs in the last hour, day and
    week (from the start of the minute that long ago), from the history view."""
    now = now_ms() if now is None else now
    found = []
    for path in protocol.history_queues(db):
        counts: dict[str, dict[str, int]] = {}
        for window, span in WINDOWS:
            minute = now - span - (now - span) % MINUTE_MS
            since = [minute - minute % DAY_MS, hour_of(minute), minute]
            counts[window] = {s: protocol.history_since(db, path, s, since) for s in HISTORY_STATES}
        found.append(QueueHistory(path, counts))
    return found
