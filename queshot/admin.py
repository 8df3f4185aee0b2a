"""Watching and steering jobs: what `queshot stats/jobs/show/pause/workers`
report, as data (the CLI only formats it); acting on jobs (requeue, cancel,
delete, clean) is `bulk.py`. The schedules' counterpart is
`schedule_admin.py`, the dashboard's `dashboard.py`.

Listings read the `jobs_by_state` ([state, since]) and `jobs_by_queue`
([path, state, since]) views, whose rows carry a job summary, so no whole job
(data, log) is loaded to list it. `since` is when the job entered its state.
Every write goes through validate_doc_update like a Fauxton edit would.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, fields
from typing import Any

from . import protocol
from .couch import (
    Database,
    Forbidden,
    NotFound,
    Unauthorized,
    get_to_show,
)
from .jobs import (
    SHOWN_STATES,
    STATES,
    STORED_STATE_SHOWN_AS,
    WORKER_DOC_PREFIX,
    WORKER_TYPE,
    JobNotFound,
    QueueError,
    is_job,
    now_ms,
    queue_path,
    worker_gone,
)
from .readable import key_text, path_or_none

log = logging.getLogger(__name__)

# `queshot show` shows a job nested deeper than Python parses down to this depth.
SHOWN_DEPTH = 100
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in `30s`, `15m`, `12h`, `7d`, `2w` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 12h, 7d, 2w)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


# -- counts ----------------------------------------------------------------------------


@dataclass
class QueueStats:
    """Jobs of one queue path per state as people read them (SHOWN_STATES:
    waiting jobs split into due and scheduled); `oldest_waiting_since` is when
    the longest-waiting due job became due (epoch ms), None if none is
    waiting; `paused` whether a pause (of it or a queue above it) holds its
    jobs back. `queue` is the path, or, for jobs whose `queues` is not a
    queue at all, what they hold instead (see `queue_label`)."""

    queue: Any
    counts: dict[str, int]
    total: int
    oldest_waiting_since: int | None
    paused: bool = False


@dataclass
class Stats:
    queues: list[QueueStats]
    totals: dict[str, int]
    total: int
    oldest_waiting_since: int | None


def stats(db: Database) -> Stats:
    """Counts per queue and state (the `stats` view at group_level=2), waiting
    jobs split at now into due and scheduled (two range counts of the same
    view), with the age of each queue's oldest due job: the first sign of a
    stuck queue. Totals are sums of the numbers shown, so a row agrees with
    itself however the jobs moved between the reads."""
    now = now_ms()
    result = tally(protocol.counts(db), protocol.read_paused(db))
    for entry in result.queues:
        path = path_or_none(entry.queue)
        if not entry.counts["waiting"] or path is None:
            continue
        entry.counts["waiting"] = protocol.state_count(db, path, "inactive", until=now)
        entry.counts["scheduled"] = protocol.state_count(db, path, "inactive", after=now)
        entry.total = sum(entry.counts.values())
        if entry.counts["waiting"]:
            view, start, end = protocol.listing_range("inactive", path, until=now)
            rows = protocol.listing(db, view, startkey=start, endkey=end, limit=1)
            since = rows[0]["key"][-1] if rows else None
            entry.oldest_waiting_since = since if isinstance(since, int | float) else None
    waiting = [q.oldest_waiting_since for q in result.queues if q.oldest_waiting_since is not None]
    result.oldest_waiting_since = min(waiting, default=None)
    result.totals = _totals(result.queues)
    result.total = sum(result.totals.values())
    return result


def tally(rows: list[dict[str, Any]], pauses: list[dict[str, Any]]) -> Stats:
    """The `stats` view's rows ({key: [path, state], value: count}) per queue
    and state, whatever the jobs held: "a/b" and ["a", "b"] are one queue, a
    `queues` that is no queue is counted under what it holds, and a state
    that is none of STATES under its JSON text. States are named as shown
    (inactive: waiting, active: running); `stats` splits off the scheduled."""
    per_queue: dict[str, QueueStats] = {}
    for row in rows:
        key = row.get("key")
        raw, state = key if isinstance(key, list) and len(key) == 2 else (key, None)
        path = path_or_none(raw)
        queue = raw if path is None else path
        state = state if isinstance(state, str) else key_text(state)
        state = STORED_STATE_SHOWN_AS.get(state, state)
        count = row.get("value")
        count = count if isinstance(count, int) and not isinstance(count, bool) else 0
        entry = per_queue.setdefault(
            key_text(queue), QueueStats(queue, dict.fromkeys(SHOWN_STATES, 0), 0, None)
        )
        entry.counts[state] = entry.counts.get(state, 0) + count
        entry.total += count
    for entry in per_queue.values():
        entry.paused = protocol.pause_of(pauses, entry.queue) is not None
    queues = sorted(
        per_queue.values(), key=lambda q: (not isinstance(q.queue, list), key_text(q.queue))
    )
    totals = _totals(queues)
    return Stats(queues, totals, sum(totals.values()), None)


def _totals(queues: list[QueueStats]) -> dict[str, int]:
    totals = dict.fromkeys(SHOWN_STATES, 0)
    for entry in queues:
        for state, count in entry.counts.items():
            totals[state] = totals.get(state, 0) + count
    return totals


# -- listing and reading -----------------------------------------------------------


@dataclass
class JobSummary:
    """One job as listings show it (a row of the jobs_by_* views)."""

    id: str
    queues: Any
    state: Any
    since: Any
    priority: Any = 0
    attempts: Any = 0
    max_attempts: Any = None
    progress: Any = None
    worker_id: Any = None
    error: Any = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobSummary:
        """The view's summary (`_partials/listing.js`), which normalises most
        fields; `queues` and `state` are as the job holds them."""
        # rows also carry what the dashboard shows (rev, lease end): keep our fields
        names = {f.name for f in fields(cls)} - {"id", "since"}
        value = row.get("value") if isinstance(row.get("value"), dict) else {}
        key = row.get("key") if isinstance(row.get("key"), list) else [None]
        kept = {k: v for k, v in value.items() if k in names}
        kept.setdefault("queues", None)
        kept.setdefault("state", None)
        return cls(id=row["id"], since=value.get("since", key[-1]), **kept)


def list_jobs(
    db: Database,
    *,
    queue: str | list[str] | None = None,
    state: str | None = None,
    limit: int = 20,
    newest_first: bool = False,
) -> list[JobSummary]:
    """Jobs of a queue (exactly that path) and/or state (as shown, or as
    stored: see `state_range`), ordered by state, then by when they entered
    it (oldest first unless `newest_first`)."""
    if not isinstance(limit, int) or limit < 1:
        raise QueueError(f"limit must be a whole number >= 1 (got {limit!r})")
    view, start, end = state_range(state, queue_path(queue) if queue is not None else None)
    if newest_first:
        start, end = end, start
    rows = protocol.listing(
        db, view, startkey=start, endkey=end, limit=limit, descending=newest_first
    )
    return [JobSummary.from_row(row) for row in rows]


def state_range(
    state: str | None, path: list[str] | None, now: int | None = None, until: int | None = None
) -> tuple[str, list[Any], list[Any]]:
    """The listing view and key range of a state as people name it (waiting:
    due by `now`; scheduled: due later; running) or as stored (inactive:
    both); running and finished ones only if in it since `until` or earlier."""
    if state is not None and state not in SHOWN_STATES and state not in STATES:
        raise QueueError(f"unknown state {state!r}: one of {', '.join(SHOWN_STATES)}")
    now = now_ms() if now is None else now
    if state == "waiting":
        return protocol.listing_range("inactive", path, until=now)
    if state == "scheduled":
        return protocol.listing_range("inactive", path, after=now)
    stored = stored_state(state)
    return protocol.listing_range(stored, path, until=None if stored == "inactive" else until)


_STORED_AS = {shown: stored for stored, shown in STORED_STATE_SHOWN_AS.items()}


def stored_state(state: Any) -> Any:
    """The stored name of a state as shown (waiting and scheduled: inactive)."""
    return "inactive" if state == "scheduled" else _STORED_AS.get(state, state)


def get_job(db: Database, job_id: str) -> dict[str, Any]:
    """A job's whole document (data, log, errors) for `queshot show`; the
    design doc and worker status documents are refused as not jobs."""
    try:
        doc = get_to_show(db, job_id, SHOWN_DEPTH)
    except NotFound:
        raise JobNotFound(f"no job {job_id!r} in {db.name}") from None
    if not is_job(doc):
        if job_id.startswith("_design/"):
            what = "a design document"
        elif isinstance(doc, dict) and doc.get("type") == WORKER_TYPE:
            what = "a worker's status document (see `queshot workers`)"
        else:
            what = "a document with neither 'queues' nor 'state'"
        raise QueueError(f"{job_id!r} is {what}, not a job")
    return doc


# -- pausing queues ---------------------------------------------------------------------


def set_paused(db: Database, queue: str | list[str], paused: bool) -> list[str]:
    """Pause (or resume) a queue and every queue under it: its waiting jobs
    stay waiting, running ones finish. Enforced by the claim handler and
    validate_doc_update, whatever the workers' version. Needs a database or
    server admin: the pause is kept in the design document."""
    path = queue_path(queue)
    try:
        protocol.pause(db, path, paused)
    except (Forbidden, Unauthorized) as exc:
        raise QueueError(
            f"cannot {'pause' if paused else 'resume'} {'/'.join(path)}: {exc.reason} "
            "(pausing writes the design document: a database or server admin may)"
        ) from None
    return path


def paused_queues(db: Database) -> list[dict[str, Any]]:
    """The paused queues: [{queue: path, at: epoch ms, by: user name or None}]."""
    return protocol.read_paused(db)


# -- workers --------------------------------------------------------------------------


@dataclass
class WorkerStatus:
    """A worker's status document; `gone` when it has not written it for
    WORKER_GONE_AFTER_LEASES leases (killed, or cut off from CouchDB). The
    fields are as the document holds them: a document written by hand or
    by another version may hold anything there."""

    worker_id: Any
    name: Any
    host: Any
    pid: Any
    queues: Any
    concurrency: Any
    jobs: Any = field(default_factory=list)
    paused: bool = False
    last_seen: Any = 0
    lease_seconds: Any = None
    gone: bool = False
    feed: Any = None  # {"role": "own" | "leader" | "follower", "followers": n}


def workers(db: Database) -> list[WorkerStatus]:
    """Every worker that has written a status document, gone ones marked."""
    now = now_ms()
    return [worker_status(doc_id, doc, now) for doc_id, doc in protocol.status_docs(db)]


def worker_status(doc_id: str, doc: Any, now: int) -> WorkerStatus:
    """One status document as `queshot workers` reports it."""
    doc = doc if isinstance(doc, dict) else {}
    return WorkerStatus(
        worker_id=doc.get("worker_id") or doc_id[len(WORKER_DOC_PREFIX) :],
        name=doc.get("name", ""),
        host=doc.get("host"),
        pid=doc.get("pid"),
        queues=doc.get("queues"),
        concurrency=doc.get("concurrency"),
        jobs=doc.get("jobs") or [],
        paused=doc.get("paused") is True,
        last_seen=doc.get("last_seen") or 0,
        lease_seconds=doc.get("lease_seconds"),
        gone=worker_gone(doc, now),
        feed=doc.get("feed"),
    )
