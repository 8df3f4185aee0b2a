"""Acting on jobs: requeue, cancel and delete, by id or every job of a queue
in a state (`queshot requeue|cancel|delete --queue Q --state S --all`), and
`clean`. A set is walked in batches of the listing views, each batch acted
on at once (deletes in one `_bulk_docs`, requeues and cancels through their
handlers, which log who did it and with what); every job's refusal comes
back with the rules' reason. Every write goes through validate_doc_update
like a Fauxton edit would."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import dependencies, protocol
from .admin import state_range, stored_state
from .couch import Conflict, Database, Forbidden, NotFound, rows_between
from .jobs import QueueError, now_ms, queue_path

log = logging.getLogger(__name__)

BATCH = 500
ORIGIN = "cli"  # the tool a requeue or cancel from here names in the job's log
ACTIONS = ("requeue", "cancel", "delete")


@dataclass
class Outcome:
    """What happened to one job: `ok` (requeued/deleted), else `detail` says why not."""

    id: str
    ok: bool
    detail: str = ""


def reasons(outcomes: list[Outcome]) -> Counter[str]:
    """How many jobs each refusal's reason stopped, most frequent first."""
    return Counter(o.detail for o in outcomes if not o.ok)


def _drain(
    db: Database,
    view: str,
    start: list[Any],
    end: list[Any],
    act: Callable[[list[dict[str, Any]]], list[Outcome]],
    progress: Callable[[list[Outcome]], None] | None = None,
) -> list[Outcome]:
    """Apply `act` to every row of a key range, a batch at a time, while `act`
    moves rows out of the range (requeue, delete). Pages by the last row's key
    and id (CouchDB's documented pagination), so rows `act` could not deal
    with are neither retried nor make the walk skip others. `progress` hears
    of the outcomes so far after each batch."""
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
            if progress is not None:
                progress(outcomes)
        if len(rows) < BATCH or not fresh:
            return outcomes


def _requeue_one(db: Database, job_id: str, by: str) -> Outcome:
    try:
        protocol.requeue(db, job_id, by=by)  # the handler says which jobs it takes, and why not
    except (Forbidden, Conflict, NotFound) as exc:
        return Outcome(job_id, False, exc.reason or exc.error)
    return Outcome(job_id, True)


def requeue(db: Database, job_ids: list[str], *, by: str = ORIGIN) -> list[Outcome]:
    """Put failed (or complete) jobs back to waiting with attempts reset, as
    `Queue.requeue` does. Waiting or running jobs are left alone."""
    return [_requeue_one(db, job_id, by) for job_id in job_ids]


def cancel(db: Database, job_ids: list[str], *, by: str = ORIGIN) -> list[Outcome]:
    """Cancel jobs: waiting ones at once; running ones are asked to stop
    (`detail` says so); finished ones are refused with the handler's reason."""
    return [_cancel_one(db, job_id, by) for job_id in job_ids]


def _cancel_one(db: Database, job_id: str, by: str) -> Outcome:
    try:
        state = dependencies.cancel(db, job_id, by=by)
    except (Forbidden, Conflict, NotFound) as exc:
        return Outcome(job_id, False, exc.reason or exc.error)
    return Outcome(job_id, True, "asked to stop: it is running" if state == "active" else "")


def delete(db: Database, job_ids: list[str]) -> list[Outcome]:
    """Delete jobs by id at their current revision, in one `_bulk_docs`; the
    rules decide (a waiting or running job: queue admins only)."""
    found = protocol.read_docs(db, keys=job_ids)
    rows = [{"id": i, "value": {"rev": doc["_rev"]}} for i, doc in found.items() if doc]
    missing = [Outcome(i, False, "no such job") for i in job_ids if not found.get(i)]
    return _delete_rows(db, rows) + missing


def requeue_failed(db: Database, *, queue: str | list[str] | None = None) -> list[Outcome]:
    """Requeue every job that had failed (of one queue, or all) when called;
    jobs that fail again meanwhile are not picked up twice."""
    path = queue_path(queue) if queue is not None else None
    view, start, end = protocol.listing_range("failed", path, until=now_ms())
    return _drain(db, view, start, end, lambda rows: requeue(db, [r["id"] for r in rows]))


def matching(db: Database, queue: str | list[str], state: str, now: int) -> int:
    """How many jobs `act_on_all` would find now: for its confirmation."""
    path, stored = queue_path(queue), stored_state(state)
    if state == "scheduled":
        return protocol.state_count(db, path, stored, after=now)
    return protocol.state_count(db, path, stored, until=None if state == "inactive" else now)


def act_on_all(
    db: Database,
    action: str,
    *,
    queue: str | list[str],
    state: str,
    now: int,
    by: str = ORIGIN,
    progress: Callable[[list[Outcome]], None] | None = None,
) -> list[Outcome]:
    """`action` (requeue, cancel, delete) on every job of exactly `queue` in
    `state` since `now` or earlier (scheduled ones: due after it), a batch at
    a time: a job that comes back into the state meanwhile (failed again) is
    not acted on twice."""
    if action not in ACTIONS:
        raise QueueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    view, start, end = state_range(state, queue_path(queue), now, until=now)
    acts: dict[str, Callable[[list[dict[str, Any]]], list[Outcome]]] = {
        "requeue": lambda rows: requeue(db, [r["id"] for r in rows], by=by),
        "cancel": lambda rows: cancel(db, [r["id"] for r in rows], by=by),
        "delete": lambda rows: _delete_rows(db, rows),
    }
    return _drain(db, view, start, end, acts[action], progress)


def _delete_rows(db: Database, rows: list[dict[str, Any]]) -> list[Outcome]:
    if not rows:
        return []
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
