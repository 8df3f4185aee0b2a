"""The producer and admin API: the seed's createJob, jobExists, getJobData,
setJobState, logJob, progressJob, setJobData (and its options limit, view,
autoremove, writeonly) in Pythonic form, plus tasks by name (`enqueue`),
bulk enqueue, results to wait on, requeue and cancel.

Every write goes through CouchDB's rules (validate_doc_update, update
handlers); nothing here decides what a legal job is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import dependencies, jobdoc, limits, protocol
from .clients import ForeignDatabase, as_database
from .couch import Conflict, Database, NotFound
from .jobs import (
    LEASE_SECONDS,
    STATES,
    JobExists,
    JobFailed,
    JobNotFound,
    QueueError,
    now_ms,
    queue_path,
)
from .results import JobHandle, outcome, wait_for_job
from .tasks import reference_name
from .workflow import Step

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["JobExists", "JobFailed", "JobHandle", "JobNotFound", "Queue", "QueueError"]

log = logging.getLogger(__name__)

BULK_CHUNK = 2000
ORIGIN = "python"  # what a requeue or cancel through this API logs as its tool


class Queue:
    """A named (or hierarchical) queue in one database.

    `limit` is how many pending rows a worker reads per claim round, `view`
    the pending view it reads, `autoremove` deletes jobs once complete (failed
    ones stay), `writeonly` forbids creating workers. `max_attempts`,
    `timeout`, `max_stalls`, `lease_seconds` and `backoff_seconds` are
    defaults stamped on each job created here, except `lease_seconds`: the
    default lease of this queue's workers (a job's own `lease_seconds` field
    wins over it). `max_stalls` is how many times a job may be taken back
    from a worker that stopped renewing its lease (died, hung) without using
    an attempt before it fails; unset, the design docs' default applies.
    `db` may also be a CouchDB-Python `couchdb.Database` (`clients`)."""

    def __init__(
        self,
        name: str | Sequence[str],
        db: Database | ForeignDatabase,
        *,
        limit: int = 10,
        view: str = protocol.PENDING,
        autoremove: bool = False,
        writeonly: bool = False,
        max_attempts: int = 1,
        timeout: float | None = None,
        lease_seconds: float = LEASE_SECONDS,
        backoff_seconds: float | None = None,
        max_stalls: int | None = None,
    ) -> None:
        self.name = name if isinstance(name, str) else list(name)
        self.path = queue_path(name)
        self.db = as_database(db)
        jobdoc.check_queue_defaults(
            limit=limit,
            max_attempts=max_attempts,
            lease_seconds=lease_seconds,
            backoff_seconds=backoff_seconds,
            max_stalls=max_stalls,
        )
        self.limit = limit
        self.view = view
        self.autoremove = autoremove
        self.writeonly = writeonly
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self.backoff_seconds = backoff_seconds
        self.max_stalls = max_stalls

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, {self.db!r})"

    # -- producing -----------------------------------------------------------------

    def new_job_doc(self, data: Any, **options: Any) -> dict[str, Any]:
        """The document of a new waiting job, not yet stored (`jobdoc.new_job_doc`)."""
        return jobdoc.new_job_doc(self, data, **_with_checked_ids(options))

    def create_job(self, data: Any, **options: Any) -> str:
        """Enqueue one job; returns its id. A caller-supplied `id` makes the job
        unique: enqueuing it again raises JobExists. Options: id, priority,
        delay (seconds), run_at (epoch seconds), max_attempts, timeout,
        max_stalls, limit_key. A database without queshot's design docs raises
        NotProvisioned (checked once per process and database)."""
        doc = self.new_job_doc(data, **options)
        waits = doc.get("depends_on") or []
        if waits:
            dependencies.check_exist(self.db, waits)
        try:
            job_id = self._save(doc)
        except Conflict:
            raise JobExists(
                f"a job with id {doc['_id']!r} already exists in {self.db.name}"
            ) from None
        return job_id

    def enqueue(self, task: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> JobHandle:
        """Enqueue a call of `task` (a function, or a task's name) with JSON
        `args` and `kwargs`, RQ-style; returns a handle to wait on. Keyword
        arguments named like create_job's options (priority, delay, run_at,
        id, max_attempts, timeout, max_stalls) are the job's options, the
        rest the task's: `enqueue_call` keeps the two apart."""
        options = jobdoc.job_options(kwargs)
        return self.enqueue_call(task, args=args, kwargs=kwargs, **options)

    def enqueue_call(
        self,
        task: Callable[..., Any] | str,
        *,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> JobHandle:
        """enqueue, with the task's arguments given apart from the job's options."""
        name = task if isinstance(task, str) else reference_name(task)
        return JobHandle(
            self, self.create_job(None, task=name, args=args, kwargs=kwargs, **options)
        )

    def step(self, task: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Step:
        """A call of `task` on this queue, not yet enqueued, for `workflow.chain`
        and `workflow.fan_in`; arguments split as `enqueue` splits them."""
        options = jobdoc.job_options(kwargs)
        return Step(self, task, args, kwargs, options)

    def create_jobs(self, datas: Iterable[Any], **options: Any) -> list[str]:
        """Enqueue many jobs in `_bulk_docs` round trips; returns their ids in
        order. Jobs the server refused are reported together (QueueError) after
        the others are stored."""
        docs = []
        for data in datas:
            docs.append(self.new_job_doc(data, **options))
        protocol.require_design_doc(self.db)
        waits = jobdoc.job_ids(options.get("depends_on", ()))
        if waits:
            dependencies.check_exist(self.db, waits)
        refused = []
        for start in range(0, len(docs), BULK_CHUNK):
            results = self.db.bulk_docs(docs[start : start + BULK_CHUNK])
            refused += [r for r in results if "error" in r]
        if refused:
            reasons = "; ".join(f"{r['id']}: {r.get('reason', r['error'])}" for r in refused[:5])
            raise QueueError(f"{len(refused)} of {len(docs)} jobs were refused: {reasons}")
        return [doc["_id"] for doc in docs]

    def _save(self, doc: dict[str, Any]) -> str:
        protocol.require_design_doc(self.db)  # once per process and database
        self.db.save(doc)
        return doc["_id"]

    # -- reading ---------------------------------------------------------------------

    def job_exists(self, job_id: str) -> bool:
        return self.db.get_or_none(job_id) is not None

    def get_job(self, job_id: str) -> dict[str, Any]:
        """The job's whole document."""
        with _about(self.db, job_id):
            return self.db.get(job_id)

    def get_job_data(self, job_id: str) -> Any:
        return self.get_job(job_id).get("data")

    def job(self, job_id: str) -> JobHandle:
        """A handle on a job by id (its status, result, wait, cancel)."""
        return JobHandle(self, job_id)

    def result(self, job_id: str, timeout: float | None = 30.0) -> Any:
        """Wait for a job to finish and return its result; JobFailed (with
        the job's error type, message and traceback) if it failed or was
        cancelled, ResultTimeout after `timeout` seconds."""
        return outcome(job_id, wait_for_job(self.db, job_id, timeout))

    def stats(self) -> dict[str, int]:
        """Jobs of this queue (exactly this path) per state."""
        counts = dict.fromkeys(STATES, 0)
        for row in protocol.counts(self.db, self.path):
            counts[row["key"][1]] = row["value"]
        return counts

    # -- changing ------------------------------------------------------------------

    def _edit(self, job_id: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read-modify-write under revision checks, retried when someone else
        wrote in between; validate_doc_update has the last word."""
        for _ in range(10):
            doc = self.get_job(job_id)
            change(doc)
            try:
                self.db.save(doc)
                return doc
            except Conflict:
                continue
        raise QueueError(f"job {job_id!r} kept changing under us; try again")

    def set_job_data(self, job_id: str, data: Any) -> None:
        jobdoc.check_json("job data", data)
        self._edit(job_id, lambda doc: doc.__setitem__("data", data))

    def set_job_state(self, job_id: str, state: str) -> None:
        """Move a job as an admin would. `inactive` requeues a failed or
        complete job (the `requeue` handler: a fresh start, attempts reset, no
        delay); `cancelled` is `cancel`; `failed` fails a waiting job;
        `active` only comes from a worker's claim."""
        if state not in STATES:
            raise QueueError(f"unknown state {state!r}: one of {', '.join(STATES)}")
        if state == "active":
            raise QueueError("a job becomes 'active' only by a worker's claim")
        if state == "inactive":
            self.requeue(job_id)
            return
        if state == "cancelled":
            self.cancel(job_id)
            return

        def change(doc: dict[str, Any]) -> None:
            doc["state"] = state
            finished_at = "failed_at" if state == "failed" else "completed_at"
            doc.update(worker_id=None, lease_expires_at=None, **{finished_at: now_ms()})

        self._edit(job_id, change)

    def requeue(self, job_id: str) -> None:
        """Put a failed (or completed) job back to waiting, attempts reset."""
        with _about(self.db, job_id, refused="requeued"):
            protocol.requeue(self.db, job_id, by=ORIGIN)

    def cancel(self, job_id: str) -> str:
        """Cancel a job: a waiting one at once (-> "cancelled"); a running one
        is asked to stop (-> "active"): its worker tells the handler, and the
        job ends cancelled unless it completes first. QueueError if it has
        already finished."""
        with _about(self.db, job_id, refused="cancelled"):
            return dependencies.cancel(self.db, job_id, by=ORIGIN)

    def remove_job(self, job_id: str) -> None:
        doc = self.get_job(job_id)
        self.db.delete(job_id, doc["_rev"])

    def log_job(self, job_id: str, message: str) -> None:
        """Append a line to the job's log, stamped by the server's clock."""
        self._handler(job_id, "log", {"msg": str(message)})

    def progress_job(self, job_id: str, progress: float) -> None:
        self._handler(job_id, "progress", {"progress": progress})

    def _handler(self, job_id: str, name: str, body: dict[str, Any]) -> None:
        with _about(self.db, job_id):
            protocol.call(self.db, name, job_id, body)

    def set_limit(self, **limit: Any) -> limits.Limit:
        """Limit it and queues under it across every worker (`limits.Limit`'s
        fields); `queshot.limits.remove_limit` lifts it."""
        return limits.set_limit(self.db, limits.Limit(self.path, **limit))

    # -- consuming ---------------------------------------------------------------------

    def create_worker(
        self,
        handler: Callable[..., Any] | str,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        **options: Any,
    ) -> Worker:
        """A worker that runs `handler(job)` for this queue's jobs (see Worker):
        `concurrency` jobs at once (default 1), or one per child with `processes`."""
        from .worker import Worker

        return Worker(self, handler, name=name, concurrency=concurrency, **options)


def _with_checked_ids(options: dict[str, Any]) -> dict[str, Any]:
    """A new job's options, once its own id (if the caller gives one) and the
    ids it depends on passed `check_job_id`."""
    if options.get("id") is not None:
        check_job_id(options["id"])
    for dependency in jobdoc.job_ids(options.get("depends_on", ())):
        check_job_id(dependency)
    return options


def check_job_id(job_id: Any) -> None:
    """Refuse (QueueError) an id CouchDB would not store as a plain document:
    one starting with `_` is CouchDB's own - a PUT to `_security` replaces the
    database's members, one to `_local/x` stores a document no rule checks
    and no worker sees, `_design/x` is code - and so is an empty one, a
    non-string, or a string that is not Unicode text (a lone surrogate)."""
    if not isinstance(job_id, str) or not job_id:
        raise QueueError(f"invalid job id {job_id!r}: a non-empty string")
    if job_id.startswith("_"):
        raise QueueError(
            f"invalid job id {job_id!r}: ids starting with '_' are CouchDB's own "
            "(_design/, _local/, _security, ...), never a job's"
        )
    try:
        job_id.encode()
    except UnicodeEncodeError:
        raise QueueError(f"invalid job id {job_id!r}: not Unicode text") from None


@contextmanager
def _about(db: Database, job_id: str, *, refused: str | None = None) -> Iterator[None]:
    """A request about one job: a missing job is JobNotFound, and a handler's
    refusal (a 409, with `refused` the verb) a QueueError that says why."""
    try:
        yield
    except NotFound:
        raise JobNotFound(f"no job {job_id!r} in {db.name}") from None
    except Conflict as exc:
        if refused is None:
            raise
        raise QueueError(f"job {job_id!r} not {refused}: {exc.reason}") from None
