"""The document of a new job, as a producer writes it: the seed's fields
first, then tasks, dependencies, delays and the queue's defaults.

Only the shape is built here; whether it is a legal job is for
validate_doc_update to say. The checks below are the ones a producer should
hear of before a round trip (not JSON, a wrong type), and they say which
option is wrong.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .jobs import MAX_LIMIT_KEY_CHARS, QueueError, new_job_id, now_ms
from .results import JobHandle

if TYPE_CHECKING:
    from .queue import Queue


def new_job_doc(
    queue: Queue,
    data: Any,
    *,
    task: str | None = None,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    depends_on: Sequence[str | JobHandle] = (),
    on_dependency_failure: str = "fail",
    id: str | None = None,
    priority: int = 0,
    delay: float | None = None,
    run_at: float | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    max_stalls: int | None = None,
    limit_key: str | None = None,
    created_at: int | None = None,
    fields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The document of a new waiting job of `queue` (seed fields first), with
    `queue`'s defaults. Options are create_job's; besides, `task` with its
    `args` and `kwargs` names what runs it, for a worker of tasks, and
    `created_at` (epoch ms, default now) and `fields` (more top-level fields:
    the schedule slot that made the job) let a caller write a document that
    does not depend on when or where it was built: every scheduler builds the
    same bytes for one slot."""
    check_json("job data", data)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise QueueError(f"priority must be an integer (got {priority!r})")
    created = now_ms() if created_at is None else created_at
    doc: dict[str, Any] = {
        "queues": queue.name,
        "state": "inactive",
        "worker_id": None,
        "priority": priority,
        "log": [],
        "data": data,
        "created_at": created,
        "attempts": 0,
        # 0 is not "unset": the design docs refuse it, saying why
        "max_attempts": queue.max_attempts if max_attempts is None else max_attempts,
        "progress": 0,
    }
    doc["_id"] = new_job_id() if id is None else id
    if task is not None:
        if not isinstance(task, str) or not task:
            raise QueueError(f"task must be a non-empty name (got {task!r})")
        check_json("task args", list(args))
        check_json("task kwargs", kwargs or {})
        doc.update(task=task, args=list(args), kwargs=dict(kwargs or {}))
    elif args or kwargs:
        raise QueueError("args and kwargs need a task to pass them to")
    waits = job_ids(depends_on)
    if waits:
        doc.update(state="blocked", depends_on=waits, waiting_for=list(waits))
        if on_dependency_failure not in ("fail", "run"):
            raise QueueError(
                f"on_dependency_failure must be 'fail' or 'run' (got {on_dependency_failure!r})"
            )
        if on_dependency_failure == "run":
            doc["on_dependency_failure"] = "run"
    if delay is not None and run_at is not None:
        raise QueueError("give either delay or run_at, not both")
    if delay is not None:
        if not delay >= 0:
            raise QueueError(f"delay must be >= 0 seconds (got {delay})")
        doc["run_at"] = created + int(delay * 1000)
    elif run_at is not None:
        doc["run_at"] = int(run_at * 1000)
    check_max_stalls(max_stalls)
    if limit_key is not None:
        if not (isinstance(limit_key, str) and 0 < len(limit_key) <= MAX_LIMIT_KEY_CHARS):
            raise QueueError(
                f"limit_key must be a non-empty string of at most {MAX_LIMIT_KEY_CHARS} "
                f"characters (got {limit_key!r})"
            )
        doc["limit_key"] = limit_key
    for field, value in (
        ("timeout", queue.timeout if timeout is None else timeout),
        ("backoff_seconds", queue.backoff_seconds),
        ("max_stalls", queue.max_stalls if max_stalls is None else max_stalls),
    ):
        if value is not None:
            doc[field] = value
    if fields:
        check_json("job fields", dict(fields))
        doc.update(fields)
    return doc


# The job's options, as enqueue() tells them from the task's keyword arguments:
# new_job_doc's keywords, less those that say what runs (task, args, kwargs)
# and those only a builder of exact documents passes (created_at, fields).
JOB_OPTIONS = frozenset(inspect.signature(new_job_doc).parameters) - {
    "queue",
    "data",
    "task",
    "args",
    "kwargs",
    "created_at",
    "fields",
}


def job_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the job's options out of enqueue's keyword arguments (the rest are the task's)."""
    return {name: kwargs.pop(name) for name in list(kwargs) if name in JOB_OPTIONS}


def job_ids(jobs: Sequence[str | JobHandle]) -> list[str]:
    """Job ids (or handles) as ids, each once, in order."""
    if isinstance(jobs, str | JobHandle):
        jobs = [jobs]
    return list(dict.fromkeys(job.id if isinstance(job, JobHandle) else str(job) for job in jobs))


def check_json(what: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise QueueError(f"{what} is not JSON-serialisable: {exc}") from None


def check_max_stalls(max_stalls: int | None) -> None:
    if max_stalls is not None and (not isinstance(max_stalls, int) or max_stalls < 0):
        raise QueueError(f"max_stalls must be a whole number >= 0 (got {max_stalls!r})")


def check_queue_defaults(
    *,
    limit: int,
    max_attempts: int,
    lease_seconds: float,
    backoff_seconds: float | None,
    max_stalls: int | None,
) -> None:
    """A Queue's own options, refused when it is made rather than at its first job."""
    if limit < 1:
        raise QueueError(f"limit must be >= 1 (got {limit})")
    if max_attempts < 1:
        raise QueueError(f"max_attempts must be >= 1 (got {max_attempts})")
    check_max_stalls(max_stalls)
    if lease_seconds <= 0:
        raise QueueError(f"lease_seconds must be > 0 (got {lease_seconds})")
    if backoff_seconds is not None and not backoff_seconds >= 0:
        raise QueueError(f"backoff_seconds must be >= 0 (got {backoff_seconds})")
