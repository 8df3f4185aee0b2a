"""Jobs that wait for other jobs: when a job finishes, the blocked jobs that
wait for it are told (the `resolve` handler), and those it fails are in turn
finished jobs whose own dependents are told. Used by the worker that
finished the job, by workers that see a job created blocked on jobs already
finished (a producer may not resolve), and by the worker's reconciliation (a
worker that died right after completing). Never a scan of waiting jobs: one
view query per batch of finished jobs, one write per blocked job told."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from . import protocol
from .couch import Conflict, CouchError, Database, NotFound, ServerError, ServerUnreachable
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
        except (ServerUnreachable, ServerError):
            raise  # an outage: the caller keeps the work for later
        except CouchError as exc:  # refused: this job's problem, not the others'
            log.warning("job %s: not told that %s finished: %s", job_id, dependency, exc)
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
        ids = [job_id for job_id in awaited if isinstance(job_id, str)]  # a legacy waiting_for
        finished = _finished(protocol.read_docs(db, keys=ids)) if ids else []
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


def settle_blocked(db: Database, waiting: dict[str, list[str]]) -> int:
    """Tell jobs created blocked (job id -> the ids it waits for) about those
    of their dependencies that had already finished: the producer that
    created them may not (resolving is a worker's move), so the workers whose
    feed shows such a job do. Read after the job was stored: a dependency
    finishing meanwhile is seen either here or by its own worker (which then
    finds the job in the dependents view); both telling it is harmless.
    Returns the resolve calls made."""
    awaited = sorted({dependency for ids in waiting.values() for dependency in ids})
    if not awaited:
        return 0
    finished = {
        job_id: (state, result)
        for job_id, state, result in _finished(protocol.read_docs(db, keys=awaited))
    }
    calls, failed = 0, []
    for job_id, dependencies in waiting.items():
        for dependency in dependencies:
            if dependency in finished:
                state, result = finished[dependency]
                answer = _resolve(db, job_id, dependency, state, result)
                calls += 1
                if answer.get("changed") and answer.get("state") in FINISHED_STATES:
                    failed.append((job_id, answer["state"], None))  # on to its own dependents
    return calls + (resolve_dependents(db, failed).calls if failed else 0)


def _finished(docs: dict[str, dict[str, Any] | None]) -> list[Finished]:
    """(id, state, result) of the finished jobs among `docs`."""
    return [
        (job_id, doc["state"], doc.get("result"))
        for job_id, doc in docs.items()
        if doc is not None and doc.get("state") in FINISHED_STATES
    ]


def cancel(db: Database, job_id: str, *, by: str) -> str:
    """Cancel a job (protocol.cancel; `by` names the tool in its log) and, if
    that ended it, tell the jobs that wait for it: the state it is in now."""
    state = protocol.cancel(db, job_id, by=by)
    if state == "cancelled":
        resolve_dependents(db, [(job_id, state, None)])
    return state
