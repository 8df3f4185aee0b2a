"""Jobs that wait for other jobs: when a job finishes, the blocked jobs that
wait for it are told (the `resolve` handler), and those it fails are in turn
finished jobs whose own dependents are told. Used by the worker that
finished the job, by the producer that finds a dependency already finished,
and by the worker's reconciliation (a worker that died right after
completing). Never a scan of waiting jobs: one view query per batch of
finished jobs, one write per blocked job told."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from . import protocol
from .couch import Conflict, Database, NotFound
from .jobs import FINISHED_STATES, QueueError

log = logging.getLogger(__name__)

BATCH = 500  # finished jobs looked up in one query of the dependents view
RESOLVE_TRIES = 20  # a fan-in job is told by many finishing jobs at once: 409s are retried

Finished = tuple[str, str, Any]  # (job id, its finished state, its result)


class Resolved(NamedTuple):
    calls: int
    anything_waits: bool


def resolve_dependents(db: Database, finished: Iterable[Finished]) -> Resolved:
    """Tell the blocked jobs that wait for any of `finished`: how many
    `resolve` calls were made, and whether any job in the database was
    waiting for anything at all (one view query per batch answers both)."""
    todo = list(finished)
    calls, anything_waits = 0, False
    while todo:
        batch, todo = todo[:BATCH], todo[BATCH:]
        outcome = {job_id: (state, result) for job_id, state, result in batch}
        rows, edges = protocol.dependents(db, list(outcome))
        anything_waits = anything_waits or edges > 0
        for row in rows:
            state, result = outcome[row["key"]]
            answer = _resolve(db, row["id"], row["key"], state, result)
            calls += 1
            if answer.get("changed") and answer.get("state") in FINISHED_STATES:
                todo.append((row["id"], answer["state"], None))  # it failed too: on to its own
    return Resolved(calls, anything_waits)


def _resolve(db: Database, job_id: str, dependency: str, state: str, result: Any) -> dict:
    for attempt in range(RESOLVE_TRIES):
        try:
            return protocol.resolve(db, job_id, dependency=dependency, state=state, result=result)
        except Conflict:
            time.sleep(min(0.2, 0.002 * 2**attempt))
        except NotFound:
            return {}
    log.warning(
        "job %s: could not record that %s finished; reconciliation will", job_id, dependency
    )
    return {}


def reconcile(db: Database, page: int = 1000) -> int:
    """Tell blocked jobs about dependencies that finished without telling them
    (their worker died right after completing them): the jobs anything waits
    for, a page at a time from the dependents view (grouped), those finished
    among them resolved. Costs a view query and a document read per page of
    awaited jobs, whatever the number of waiting jobs; returns resolve calls."""
    calls, after = 0, None
    while True:
        awaited = protocol.awaited(db, after, page)
        if not awaited:
            return calls
        rows = db.all_docs(keys=awaited, include_docs=True)["rows"]
        finished = [
            (row["id"], doc["state"], doc.get("result"))
            for row in rows
            if (doc := row.get("doc")) and doc.get("state") in FINISHED_STATES
        ]
        if finished:
            calls += resolve_dependents(db, finished).calls
        if len(awaited) < page:
            return calls
        after = awaited[-1]


def check_exist(db: Database, job_ids: list[str]) -> None:
    """QueueError naming the jobs of `job_ids` that are not in the database."""
    rows = db.all_docs(keys=job_ids)["rows"]
    missing = [row["key"] for row in rows if "error" in row or row.get("value", {}).get("deleted")]
    if missing:
        raise QueueError(f"no job {', '.join(map(repr, missing))} to depend on in {db.name}")


def settle_new(db: Database, new_ids: list[str], depends_on: list[str]) -> None:
    """Tell jobs just created blocked about the jobs they wait for that had
    already finished. Read after they were stored: a dependency finishing
    meanwhile is seen either here or by its worker (which then finds them in
    the dependents view); both telling them is harmless."""
    rows = db.all_docs(keys=depends_on, include_docs=True)["rows"]
    for row in rows:
        doc = row.get("doc") or {}
        if doc.get("state") in FINISHED_STATES:
            for job_id in new_ids:
                _resolve(db, job_id, row["id"], doc["state"], doc.get("result"))


def cancel(db: Database, job_id: str) -> str:
    """Cancel a job (protocol.cancel) and, if that ended it, tell the jobs
    that wait for it: the state it is in now."""
    state = protocol.cancel(db, job_id)
    if state == "cancelled":
        resolve_dependents(db, [(job_id, state, None)])
    return state
