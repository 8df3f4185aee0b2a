"""Watching and steering jobs: what `queshot stats/jobs/show/requeue/clean/
pause/workers` report, as data (the CLI only formats it). The schedules'
counterpart is `schedule_admin.py`, the dashboard's `dashboard.py`.

Listings read the `jobs_by_state` ([state, since]) and `jobs_by_queue`
([path, state, since]) views, whose rows carry a job summary, so no whole job
(data, log) is loaded to list it. `since` is when the job entered its state.
Every write goes through validate_doc_update like a Fauxton edit would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from . import dependencies, protocol
from .couch import (
    Conflict,
    Database,
    Forbidden,
    NotFound,
    Unauthorized,
    get_to_show,
    rows_between,
)
from .jobs import (
    STATES,
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

BATCH = 500
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
    """Jobs of one queue path per state; `oldest_waiting_since` is when the
    longest-waiting due job became due (epoch ms), None if none is waiting;
    `paused` whether a pause (of it or a queue above it) holds its jobs back.
    `queue` is the path, or, for jobs whose `queues` is not a queue at all,
    what they hold instead (see `queue_label`)."""

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
    """Counts per queue and state (the `stats` view at group_level=2), with the
    age of each queue's oldest waiting job: the first sign of a stuck queue."""
    now = now_ms()
    result = tally(protocol.counts(db), protocol.read_paused(db))
    for entry in result.queues:
        path = path_or_none(entry.queue)
        if entry.counts["inactive"] and path is not None:
            view, start, end = protocol.listing_range("inactive", path, until=now)
            rows = protocol.listing(db, view, startkey=start, endkey=end, limit=1)
            since = rows[0]["key"][-1] if rows else None
            entry.oldest_waiting_since = since if isinstance(since, int | float) else None
    waiting = [q.oldest_waiting_since for q in result.queues if q.oldest_waiting_since is not None]
    result.oldest_waiting_since = min(waiting, default=None)
    return result


def tally(rows: list[dict[str, Any]], pauses: list[dict[str, Any]]) -> Stats:
    """The `stats` view's rows ({key: [path, state], value: count}) per queue
    and state, whatever the jobs held: "a/b" and ["a", "b"] are one queue, a
    `queues` that is no queue is counted under what it holds, and a state
    that is none of STATES under its JSON text."""
    per_queue: dict[str, QueueStats] = {}
    for row in rows:
        key = row.get("key")
        raw, state = key if isinstance(key, list) and len(key) == 2 else (key, None)
        path = path_or_none(raw)
        queue = raw if path is None else path
        state = state if isinstance(state, str) else key_text(state)
        count = row.get("value")
        count = count if isinstance(count, int) and not isinstance(count, bool) else 0
        entry = per_queue.setdefault(
            key_text(queue), QueueStats(queue, dict.fromkeys(STATES, 0), 0, None)
        )
        entry.counts[state] = entry.counts.get(state, 0) + count
        entry.total += count
    for entry in per_queue.values():
        entry.paused = protocol.pause_of(pauses, entry.queue) is not None
    queues = sorted(
        per_queue.values(), key=lambda q: (not isinstance(q.queue, list), key_text(q.queue))
    )
    totals = dict.fromkeys(STATES, 0)
    for entry in queues:
        for state, count in entry.counts.items():
            totals[state] = totals.get(state, 0) + count
    return Stats(queues, totals, sum(totals.values()), None)


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
    """Jobs of a queue (exactly that path) and/or state, ordered by state, then
    by when they entered it (oldest first unless `newest_first`)."""
    if state is not None and state not in STATES:
        raise QueueError(f"unknown state {state!r}: one of {', '.join(STATES)}")
    if not isinstance(limit, int) or limit < 1:
        raise QueueError(f"limit must be a whole number >= 1 (got {limit!r})")
    view, start, end = protocol.listing_range(
        state, queue_path(queue) if queue is not None else None
    )
    if newest_first:
        start, end = end, start
    rows = protocol.listing(
        db, view, startkey=start, endkey=end, limit=limit, descending=newest_first
    )
    return [JobSummary.from_row(row) for row in rows]


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


# -- requeue and clean --------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one job: `ok` (requeued/deleted), else `detail` says why not."""

    id: str
    ok: bool
    detail: str = ""


def _drain(
    db: Database,
    view: str,
    start: list[Any],
    end: list[Any],
    act: Callable[[list[dict[str, Any]]], list[Outcome]],
) -> list[Outcome]:
    """Apply `act` to every row of a key range, a batch at a time, while `act`
    moves rows out of the range (requeue, delete). Pages by the last row's key
    and id (CouchDB's documented pagination), so rows `act` could not deal
    with are neither retried nor make the walk skip others."""
    outcomes: list[Outcome] = []
    last: dict[str, Any] | None = None
    while True:
        page: dict[str, Any] = {"startkey": start, "endkey": end, "limit": BATCH}
        if last is not None:
            page.update(startkey=last["key"], startkey_docid=last["id"])
        rows = protocol.listing(db, view, **page)
        fresh = rows_between(rows, last, None)
        if fresh:
            outcomes += act(fresh)
            last = fresh[-1]
        if len(rows) < BATCH or not fresh:
            return outcomes


def _requeue_one(db: Database, job_id: str) -> Outcome:
    try:
        protocol.requeue(db, job_id)  # the handler says which jobs it takes, and why not
    except (Forbidden, Conflict, NotFound) as exc:
        return Outcome(job_id, False, exc.reason or exc.error)
    return Outcome(job_id, True)


def requeue(db: Database, job_ids: list[str]) -> list[Outcome]:
    """Put failed (or complete) jobs back to waiting with attempts reset, as
    `Queue.requeue` does. Waiting or running jobs are left alone."""
    return [_requeue_one(db, job_id) for job_id in job_ids]


def cancel(db: Database, job_ids: list[str]) -> list[Outcome]:
    """Cancel jobs: waiting ones at once; running ones are asked to stop
    (`detail` says so); finished ones are refused with the handler's reason."""
    return [_cancel_one(db, job_id) for job_id in job_ids]


def _cancel_one(db: Database, job_id: str) -> Outcome:
    try:
        state = dependencies.cancel(db, job_id)
    except (Forbidden, Conflict, NotFound) as exc:
        return Outcome(job_id, False, exc.reason or exc.error)
    return Outcome(job_id, True, "asked to stop: it is running" if state == "active" else "")


def requeue_failed(db: Database, *, queue: str | list[str] | None = None) -> list[Outcome]:
    """Requeue every job that had failed (of one queue, or all) when called;
    jobs that fail again meanwhile are not picked up twice."""
    path = queue_path(queue) if queue is not None else None
    view, start, end = protocol.listing_range("failed", path, until=now_ms())
    return _drain(db, view, start, end, lambda rows: requeue(db, [r["id"] for r in rows]))


def _delete_rows(db: Database, rows: list[dict[str, Any]]) -> list[Outcome]:
    docs = [{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True} for r in rows]
    results = {r["id"]: r for r in db.bulk_docs(docs)}  # by id: pouchdb-server reorders them
    outcomes = []
    for doc in docs:
        result = results.get(doc["_id"], {"error": "no answer"})
        detail = "" if "error" not in result else result.get("reason") or result["error"]
        outcomes.append(Outcome(doc["_id"], not detail, detail))
    return outcomes


def clean(
    db: Database,
    *,
    state: str = "complete",
    older_than: float,
    queue: str | list[str] | None = None,
) -> list[Outcome]:
    """Delete jobs that have been `state` (complete or failed) for longer than
    `older_than` seconds, in `_bulk_docs` batches. A job changed since it was
    listed is not deleted (its outcome says why)."""
    if state not in ("complete", "failed"):
        raise QueueError(f"clean removes complete or failed jobs, not {state!r}")
    path = queue_path(queue) if queue is not None else None
    view, start, end = protocol.listing_range(state, path, until=now_ms() - int(older_than * 1000))
    outcomes = _drain(db, view, start, end, lambda rows: _delete_rows(db, rows))
    log.debug("%s: deleted %d %s jobs", db.name, sum(o.ok for o in outcomes), state)
    return outcomes


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
    )
