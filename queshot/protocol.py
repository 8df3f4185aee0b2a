"""The design-doc protocol in Python: the one module that names
`_design/queshot`'s update handlers and views, and says what each call sends
and gives back (everything else asks this module).

Update handlers (POST `_design/queshot/_update/<name>/<job id>`, JSON body):

- `claim` {worker_id, lease_seconds, queue}: 201 (202 on a cluster that did
  not store it on every copy) with the claimed job, or 409 (not claimable,
  not due, another queue's, lost a race).
- `heartbeat` {worker_id, rev, lease_seconds}, `log` {msg}, `progress`
  {progress}, `complete` {worker_id, rev, result?}, `fail` {worker_id, rev,
  error, retry?}, `release` {worker_id, rev}: the moves of a held job; 409
  when the job is no longer held at that revision.
- `expire` {}: takes back a running job whose lease or timeout has run out by
  the server's clock: {state, why: "stall" | "timeout", stalls}.
- `requeue` {by}: a finished job back to waiting, a fresh start. `cancel`
  {by}: a waiting job cancelled, a running one asked to stop: {state}; 409 if
  finished. Both log who did it: the account and `by` ("cli", "python"...).
- `resolve` {dependency, state, result?}: a job a blocked job waits for has
  finished: {state, changed} (idempotent).
- `unclaimable` {worker_id, reason}: a waiting job no worker can claim as
  stored fails (`Unclaimable`): {state}, never the document; 409 if not waiting.
- `arrive` {}: a waiting job that has never run, whose `created_at` is too
  far off the server's clock, gets `arrived_at`, its place in line:
  {placed: true | false}.
- `pause` {queue, paused}, on the design document itself: records (or lifts)
  a queue's pause under PAUSE_FIELD, which `claim` and the rules honour.

Views: `pending`, `leases`, `stats`, `dependents` of `_design/queshot` (for
workers, and counts); `jobs_by_*`, `activity`, `history` of `queshot-watch`
(for people, indexed when read). ARCHITECTURE.md gives their keys.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from .couch import CouchError, Database, NotFound, UnreadableAnswer, UpdateResult, rows_between
from .jobs import (
    LIMIT_DOC_PREFIX,
    PAUSE_FIELD,
    SCHEDULE_DOC_PREFIX,
    TOKEN_DOC_PREFIX,
    WORKER_DOC_PREFIX,
    WORKER_TYPE,
    NotProvisioned,
    in_queue,
    now_ms,
)

DDOC = "queshot"
DDOC_ID = f"_design/{DDOC}"
# How validate_doc_update begins every refusal about a job's own content (schema,
# bounds): such a refusal of a claim is the job's problem, any other the writer's.
INVALID_JOB = "queshot: invalid job: "
PENDING = "pending"  # the seed's `view` option names another view of the same shape
WATCH_DDOC = "queshot-watch"  # the views for people (listings, search, chart)
JOBS_BY_STATE = "jobs_by_state"
JOBS_BY_QUEUE = "jobs_by_queue"
ORIGINS = "origins"  # jobs per producer: [origin, state] -> count
DASHBOARD_PATH = f"_design/{DDOC}/index.html"
# The handlers after which a held job is no longer its worker's to write.
FINAL_HANDLERS = frozenset({"complete", "fail", "release"})
# What a worker's feed needs: jobs becoming claimable, claims (what rivals take),
# the other workers' status documents (who the rivals are), and the design
# document (which queues are paused); limits and their tokens, by id (removals come too).
LIMITS_PREFIXES = (LIMIT_DOC_PREFIX, TOKEN_DOC_PREFIX)
FEED_SELECTOR = {
    "$or": [
        {"state": {"$in": ["inactive", "active", "blocked"]}},
        {"type": WORKER_TYPE},
        {"_id": DDOC_ID},
        *({"_id": {"$gt": prefix, "$lt": prefix + "\ufff0"}} for prefix in LIMITS_PREFIXES),
    ]
}
# What a scheduler's feed needs: the schedule documents, by id so that their
# deletions (which keep only _id, _rev and _deleted) come too.
SCHEDULE_SELECTOR = {"_id": {"$gt": SCHEDULE_DOC_PREFIX, "$lt": SCHEDULE_DOC_PREFIX + "\ufff0"}}


# -- provisioning -------------------------------------------------------------------

_provisioned: set[str] = set()
_provisioned_lock = threading.Lock()


def require_design_doc(db: Database) -> None:
    """Raise NotProvisioned unless the database has `_design/queshot`: one
    `_all_docs` request per process and database (then remembered; a later
    removal goes unnoticed). It reads one copy of a cluster's shard, which may
    lack a design doc pushed a moment ago: a miss is confirmed by a quorum read."""
    if db.url in _provisioned:
        return
    try:
        rows = db.all_docs(key=f"_design/{DDOC}")["rows"]
    except NotFound:
        rows = None
    missing = not rows or "error" in rows[0] or rows[0].get("value", {}).get("deleted")
    if missing and rows is not None and db.get_or_none(f"_design/{DDOC}") is not None:
        missing = False
    if missing:
        what = "does not exist" if rows is None else f"has no _design/{DDOC}"
        raise NotProvisioned(
            f"database {db.name!r} {what}: run `queshot push --db {db.name}` first "
            "(it creates the database and the design docs that check and hand out its jobs)"
        )
    with _provisioned_lock:
        _provisioned.add(db.url)


# -- update handlers ----------------------------------------------------------------


def claim(
    db: Database,
    job_id: str,
    *,
    worker_id: str,
    lease_seconds: float,
    queue: list[str],
    w: int,
) -> UpdateResult:
    """Claim a waiting, due job of `queue` (or of a queue under it) for
    `worker_id`, stored on `w` copies before a 201."""
    body = {"worker_id": worker_id, "lease_seconds": lease_seconds, "queue": queue}
    return db.update(DDOC, "claim", job_id, body, w=w)


def unclaimable(db: Database, job_id: str, *, worker_id: str, reason: str) -> UpdateResult:
    """Fail a waiting job that no worker can claim as it is stored, saying
    why (an `Unclaimable` error). Conflict if the job is not waiting."""
    return db.update(DDOC, "unclaimable", job_id, {"worker_id": worker_id, "reason": reason})


def arrive(db: Database, job_id: str) -> bool:
    """Place a waiting job by the server's time if its `created_at` is too far
    off (`jobs.needs_place`); whether this call placed it."""
    answer = db.update(DDOC, "arrive", job_id, {}).body
    return isinstance(answer, dict) and answer.get("placed") is True


def is_invalid_job(exc: CouchError) -> bool:
    """Whether a refusal is about the job's own content (see INVALID_JOB)."""
    return exc.status == 403 and exc.reason.startswith(INVALID_JOB)


def call(db: Database, handler: str, job_id: str, body: dict[str, Any]) -> UpdateResult:
    """One of the handlers that act on a job: heartbeat, log, progress,
    complete, fail, release (see the module's docstring for their bodies)."""
    return db.update(DDOC, handler, job_id, body)


def expire(db: Database, job_id: str) -> dict[str, Any]:
    """Take back a running job whose lease or timeout has run out; what
    the handler did ({state, why, stalls}). Conflict if it has not run out."""
    answer = db.update(DDOC, "expire", job_id, {}).body
    return answer if isinstance(answer, dict) else {}


def requeue(db: Database, job_id: str, *, by: str) -> UpdateResult:
    """A failed, complete or cancelled job back to waiting, attempts and
    stalls reset; its log names the account and `by`, the tool it used."""
    return db.update(DDOC, "requeue", job_id, {"by": by})


def cancel(db: Database, job_id: str, *, by: str) -> str:
    """Cancel a job; the state it is in now: `cancelled`, or `active` for a
    running job asked to stop. Conflict for a job that already finished."""
    answer = db.update(DDOC, "cancel", job_id, {"by": by}).body
    return answer.get("state", "cancelled") if isinstance(answer, dict) else "cancelled"


def pause(db: Database, queue: list[str], paused: bool) -> UpdateResult:
    """Pause (or resume) the queue `queue` and every queue under it; needs a
    database or server admin (it writes the design document)."""
    return db.update(DDOC, "pause", DDOC_ID, {"queue": queue, "paused": paused})


def paused_queues(ddoc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The pauses a design document holds: [{queue: path, at, by}]."""
    found = (ddoc or {}).get(PAUSE_FIELD)
    return [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []


def read_paused(db: Database) -> list[dict[str, Any]]:
    return paused_queues(db.get_or_none(DDOC_ID))


def pause_of(pauses: list[dict[str, Any]], queues: Any) -> dict[str, Any] | None:
    """The pause holding back a job whose `queues` field is `queues` (or a
    worker on that path): the same rule as lib/job.js's pauseOf."""
    for entry in pauses:
        path = entry.get("queue")
        if isinstance(path, list) and in_queue(queues, path):
            return entry
    return None


def resolve(
    db: Database, job_id: str, *, dependency: str, state: str, result: Any
) -> dict[str, Any]:
    """Tell blocked job `job_id` that `dependency` finished in `state`; the
    job's answer {state, changed}."""
    body: dict[str, Any] = {"dependency": dependency, "state": state}
    if result is not None:
        body["result"] = result
    answer = db.update(DDOC, "resolve", job_id, body).body
    return answer if isinstance(answer, dict) else {}


def completed(claimed: dict[str, Any], rev: str, body: dict[str, Any]) -> dict[str, Any]:
    """The document the `complete` handler would store for a job still at its
    claimed revision (`claimed` is that stored document), with `body` as the
    handler's body: written back in `_bulk_docs` batches instead of one
    handler call each. `completed_at` is this machine's clock rather than the
    server's. tests/test_protocol.py runs the handler to keep the two equal."""
    doc = {
        name: value
        for name, value in claimed.items()
        if name in ("_id", "_attachments") or not name.startswith("_")
    }
    doc.update(_rev=rev, state="complete", completed_at=now_ms(), progress=100)
    doc.update(lease_expires_at=None)
    if "result" in body:
        doc["result"] = body["result"]
    return doc


# -- views ------------------------------------------------------------------------------


def pending_rows(
    db: Database, view: str, path: list[str], startkey: list[Any], limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` rows of a pending view for queue `path` from `startkey`:
    {id, key: [path, -priority, due], value: run_at or None}."""
    return db.view(DDOC, view, startkey=startkey, endkey=[path, {}], limit=limit, reduce=False)[
        "rows"
    ]


def dependents(db: Database, job_ids: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Blocked jobs waiting for any of `job_ids`: rows {id (the blocked job),
    key (the job it waits for)}, and how many such rows the database has in
    all (0: no job waits for anything)."""
    answer = db.view(DDOC, "dependents", keys=job_ids, reduce=False)
    return answer["rows"], answer.get("total_rows", len(answer["rows"]))


def awaited(db: Database, after: str | None, limit: int) -> list[str]:
    """Up to `limit` ids of jobs some blocked job waits for, in id order after `after`."""
    params: dict[str, Any] = {"group": True, "limit": limit}
    if after is not None:
        params.update(startkey=after, skip=1)
    return [row["key"] for row in db.view(DDOC, "dependents", **params)["rows"]]


def warm_up(db: Database, view: str = PENDING) -> None:
    """Build (or wait for) a view's index."""
    db.view(DDOC, view, limit=1, reduce=False)


def expired_leases(db: Database, limit: int) -> list[dict[str, Any]]:
    """Running jobs whose deadline (lease end or timeout) has passed by this
    machine's clock: {id, value: worker_id}; `expire` decides by the server's."""
    return db.view(DDOC, "leases", endkey=now_ms(), limit=limit)["rows"]


def unsettled(db: Database) -> int:
    """Jobs waiting or running, all queues (two view totals)."""
    pending = db.view(DDOC, PENDING, limit=0)["total_rows"]
    return pending + db.view(DDOC, "leases", limit=0)["total_rows"]


def counts(db: Database, path: list[str] | None = None) -> list[dict[str, Any]]:
    """Jobs per queue path and state ({key: [path, state], value: count}),
    of one exact path or of every queue."""
    if path is None:
        return db.view(DDOC, "stats", group_level=2)["rows"]
    return db.view(DDOC, "stats", startkey=[path], endkey=[path, {}], group_level=2)["rows"]


def queue_paths(db: Database, under: list[str] | None = None) -> list[Any]:
    """The queue paths that hold jobs (`under` a path and its subqueues, or all)."""
    span = {} if under is None else {"startkey": [under], "endkey": [[*under, {}]]}
    return [row["key"][0] for row in db.view(DDOC, "stats", group_level=1, **span)["rows"]]


def state_count(
    db: Database, path: list[str], state: str, until: float | None = None, *, after: Any = None
) -> int:
    """Jobs of exactly `path` in `state`, only those in it since `until` (epoch
    ms) or earlier, or since after `after` (a waiting job's since: when due)."""
    end = {} if until is None else until
    start = [path, state] if after is None else [path, state, after, {}]  # [.., after] < this
    rows = db.view(DDOC, "stats", startkey=start, endkey=[path, state, end])["rows"]
    return rows[0]["value"] if rows else 0


def nth_newest(db: Database, path: list[str], state: str, n: int) -> dict | None:
    """The `n`-th newest job of `path` in `state` (1 = the newest), or None."""
    span = {"startkey": [path, state, {}], "endkey": [path, state], "skip": n - 1}
    rows = db.view(DDOC, "stats", reduce=False, descending=True, limit=1, **span)["rows"]
    return rows[0] if rows else None


def oldest_in_state(
    db: Database, path: list[str], state: str, limit: int, *, end: dict, after: dict | None
) -> list[dict]:
    """Up to `limit` jobs of `path` longest in `state`, oldest first, after
    the row `after` and before the row `end` ({key, id}; `id` None: up to and
    with its key): {id, key: [path, state, since], value: the revision}."""
    span: dict[str, Any] = {"startkey": [path, state], "endkey": end["key"], "limit": limit + 1}
    if end.get("id") is not None:  # with it, then cut off: pouchdb-server ignores *_docid
        span.update(endkey_docid=end["id"])
    if after is not None:  # from it on: once deleted, it is no longer there to skip
        span.update(startkey=after["key"], startkey_docid=after["id"])
    return rows_between(db.view(DDOC, "stats", reduce=False, **span)["rows"], after, end)[:limit]


def listing_range(
    state: str | None, queue: list[str] | None, until: int | None = None, after: int | None = None
) -> tuple[str, list[Any], list[Any]]:
    """The view and key range of jobs in `state` (any, if None) of `queue`
    (exactly that path; any queue if None) that entered it no later than
    `until`, and later than `after` (each if given)."""
    prefix: list[Any] = [queue] if queue is not None else []
    if state is not None:
        prefix.append(state)
    end = [*prefix, {} if until is None else until]
    start = prefix if after is None else [*prefix, after, {}]
    return (JOBS_BY_QUEUE if queue is not None else JOBS_BY_STATE), start, end


def listing(db: Database, view: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of a watch view (jobs_by_*: {id, key: [..., since], value: summary})."""
    return db.view(WATCH_DDOC, view, **params)["rows"]


def history_queues(db: Database) -> list[Any]:
    """The queue paths the workers' history counters counted jobs of."""
    return [row["key"][0] for row in db.view(WATCH_DDOC, "history", group_level=1)["rows"]]


def history_since(db: Database, path: list[str], state: str, since: list[int]) -> int:
    """Jobs of `path` that ended in `state` from the minute `since` on
    ([day, hour, minute], each the epoch ms of its start): the history view."""
    span = {"startkey": [path, state, *since], "endkey": [path, state, {}]}
    rows = db.view(WATCH_DDOC, "history", group_level=2, **span)["rows"]
    return rows[0]["value"] if rows else 0


# -- worker status documents --------------------------------------------------------------


def status_id(worker_id: str) -> str:
    return WORKER_DOC_PREFIX + worker_id


def status_docs(db: Database) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, document) of every worker status document that can be read."""
    for doc in docs_by_prefix(db, WORKER_DOC_PREFIX):
        yield doc["_id"], doc


def docs_by_prefix(db: Database, prefix: str) -> list[dict[str, Any]]:
    """Every readable document whose id starts with `prefix` (one kind of
    the queue's own documents: rules, limits, schedules...), by id."""
    found = read_docs(db, startkey=prefix, endkey=prefix + "\ufff0")
    return [doc for doc in found.values() if doc is not None]


def read_docs(db: Database, **params: Any) -> dict[str, dict[str, Any] | None]:
    """The documents `_all_docs` finds with `params` (keys, or a range) by id;
    None for one missing, deleted or unreadable here (too deep for Python); no
    keys but strings. One request, else (unreadable as a whole) one per document."""
    try:
        rows = db.all_docs(include_docs=True, **params)["rows"]
        return {row["key"]: _doc_of(row) for row in rows if isinstance(row.get("key"), str)}
    except UnreadableAnswer:
        pass
    found: dict[str, dict[str, Any] | None] = {}
    for row in db.all_docs(**params)["rows"]:
        if not isinstance(row.get("key"), str):
            continue  # a key that is no id (one a job's waiting_for held) finds nothing
        doc = None
        if "error" not in row and not row.get("value", {}).get("deleted"):
            try:
                doc = db.get_or_none(row["id"])
            except UnreadableAnswer:
                doc = None
        found[row["key"]] = doc
    return found


def _doc_of(row: dict[str, Any]) -> dict[str, Any] | None:
    doc = row.get("doc")
    return doc if isinstance(doc, dict) else None


# -- schedules ------------------------------------------------------------------------------


def schedule_docs(db: Database) -> list[dict[str, Any]]:
    """Every schedule document (ids under the schedule prefix), by id."""
    return docs_by_prefix(db, SCHEDULE_DOC_PREFIX)
