"""Waiting for a job's outcome: on the `_changes` feed of that one document
(filter `_doc_ids`), not a polling loop, so a result arrives as soon as the
worker writes it. `JobHandle` is what `Queue.enqueue` gives back."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from .couch import Database, NotFound
from .jobs import FINISHED_STATES, JobFailed, JobNotFound, ResultTimeout

if TYPE_CHECKING:
    from .queue import Queue


def wait_for_job(db: Database, job_id: str, timeout: float | None) -> dict[str, Any]:
    """The job's document once it has finished (complete, failed or
    cancelled); ResultTimeout after `timeout` seconds (None: no limit),
    JobNotFound if there is no such job or it is deleted meanwhile."""
    since = db.info()["update_seq"]  # pinned before the read: no change falls between
    doc = _read(db, job_id)
    if doc.get("state") in FINISHED_STATES:
        return doc
    stop = threading.Event()
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, stop.set)
        timer.daemon = True
        timer.start()
    heartbeat = 1.0 if timeout is None else max(0.1, min(1.0, timeout / 4))
    try:
        for row in db.changes(
            since=since,
            filter="_doc_ids",
            doc_ids=json.dumps([job_id]),
            include_docs=True,
            heartbeat=heartbeat,
            stop=stop,
        ):
            if row.get("deleted"):
                raise JobNotFound(f"job {job_id!r} was deleted while waited on")
            doc = row.get("doc") or {}
            if doc.get("state") in FINISHED_STATES:
                return doc
    finally:
        if timer is not None:
            timer.cancel()
    raise ResultTimeout(f"job {job_id} not finished after {timeout:g} s (it is {doc.get('state')})")


def outcome(job_id: str, doc: dict[str, Any]) -> Any:
    """A finished job's result, or JobFailed for a failed or cancelled one."""
    if doc.get("state") == "complete":
        return doc.get("result")
    raise JobFailed(job_id, doc)


def _read(db: Database, job_id: str) -> dict[str, Any]:
    try:
        return db.get(job_id)
    except NotFound:
        raise JobNotFound(f"no job {job_id!r} in {db.name}") from None


class JobHandle:
    """A job by id, to look at or wait for: `status`, `result` and `error`
    read the stored job now; `wait(timeout)` blocks until it finishes and
    returns its result (JobFailed if it failed or was cancelled,
    ResultTimeout if it took longer); `cancel()` cancels it."""

    def __init__(self, queue: Queue, job_id: str) -> None:
        self.queue = queue
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def __str__(self) -> str:
        return self.id

    @property
    def doc(self) -> dict[str, Any]:
        return _read(self.queue.db, self.id)

    @property
    def status(self) -> str:
        return self.doc.get("state", "unknown")

    @property
    def result(self) -> Any:
        """The stored result (None until it is complete)."""
        doc = self.doc
        return doc.get("result") if doc.get("state") == "complete" else None

    @property
    def error(self) -> dict[str, Any] | None:
        """The last error ({type, message, traceback}), if any."""
        return self.doc.get("error")

    def wait(self, timeout: float | None = 30.0) -> Any:
        return outcome(self.id, wait_for_job(self.queue.db, self.id, timeout))

    def cancel(self) -> str:
        return self.queue.cancel(self.id)
