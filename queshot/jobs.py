"""The job vocabulary: what every part of queshot means by a job, a queue and
its defaults, with no other queshot module imported.

The defaults and constants (states, lease, stalls, backoff, the worker
status documents) are read from the design docs' render context
(`designdocs/context.json`), which also renders the JavaScript CouchDB runs
and the dashboard's settings: one source for all three.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def _design_docs_folder() -> Path:
    """The queue's own design docs: inside the wheel, or the checkout's `designdocs/`."""
    here = Path(__file__).resolve().parent
    packaged = here / "designdocs"
    return packaged if packaged.is_dir() else here.parent / "designdocs"


DESIGN_DOCS = _design_docs_folder()
DEFAULTS: dict[str, Any] = json.loads((DESIGN_DOCS / "context.json").read_text())

STATES: tuple[str, ...] = tuple(DEFAULTS["states"])
FINISHED_STATES: tuple[str, ...] = tuple(DEFAULTS["finished_states"])
# What people read (CLI, metrics, dashboard): `inactive` is shown as waiting
# when due, scheduled when its due time (run_at, a retry's backoff) is ahead;
# `active` as running. The stored names stay the seed's.
SHOWN_STATES: tuple[str, ...] = tuple(DEFAULTS["shown_states"])
STORED_STATE_SHOWN_AS: dict[str, str] = DEFAULTS["stored_state_shown_as"]
LEASE_SECONDS: float = float(DEFAULTS["lease_seconds"])
WORKER_TYPE: str = DEFAULTS["worker_type"]
WORKER_DOC_PREFIX: str = DEFAULTS["worker_doc_prefix"]
WORKER_GONE_AFTER_LEASES: int = DEFAULTS["worker_gone_after_leases"]
# Where a design doc keeps its paused queues ([{queue: path, at, by}]): written
# by its `pause` handler, read by `claim` and validate_doc_update as `this`.
PAUSE_FIELD: str = DEFAULTS["pause_field"]
SCHEDULE_TYPE: str = DEFAULTS["schedule_type"]
SCHEDULE_DOC_PREFIX: str = DEFAULTS["schedule_doc_prefix"]
RETENTION_TYPE: str = DEFAULTS["retention_type"]
RETENTION_DOC_PREFIX: str = DEFAULTS["retention_doc_prefix"]
MAX_RETENTION_AGE_SECONDS: float = DEFAULTS["max_retention_age_seconds"]
MAX_RETENTION_COUNT: int = DEFAULTS["max_retention_count"]
LIMIT_TYPE: str = DEFAULTS["limit_type"]
LIMIT_DOC_PREFIX: str = DEFAULTS["limit_doc_prefix"]
TOKEN_TYPE: str = DEFAULTS["token_type"]
TOKEN_DOC_PREFIX: str = DEFAULTS["token_doc_prefix"]
LIMIT_KINDS: tuple[str, ...] = tuple(DEFAULTS["limit_kinds"])
# How a rate counts its window: the first is what a rate without `window` means.
RATE_WINDOWS: tuple[str, ...] = tuple(DEFAULTS["rate_windows"])
MAX_LIMIT: int = DEFAULTS["max_limit"]
MAX_LIMIT_KEY_CHARS: int = DEFAULTS["max_limit_key_chars"]

# The bounds validate_doc_update holds every queshot document to (and the
# handlers their own writes to): the README lists them for people.
MAX_JOB_CHARS: int = DEFAULTS["max_job_chars"]  # JSON characters of any document, any write
MAX_NEW_JOB_CHARS: int = DEFAULTS["max_new_job_chars"]  # ... of a job as created
MAX_DEPTH: int = DEFAULTS["max_depth"]  # nesting levels, the document being the first
MAX_QUEUE_PARTS: int = DEFAULTS["max_queue_parts"]
MAX_QUEUE_PART_CHARS: int = DEFAULTS["max_queue_part_chars"]
MAX_LOG_MSG_CHARS: int = DEFAULTS["max_log_msg_chars"]
MAX_ERROR_MESSAGE_CHARS: int = DEFAULTS["max_error_message_chars"]
MAX_TRACEBACK_CHARS: int = DEFAULTS["max_traceback_chars"]
MIN_LEASE_SECONDS: float = DEFAULTS["min_lease_seconds"]
MAX_LEASE_SECONDS: float = DEFAULTS["max_lease_seconds"]
MAX_TIMEOUT_SECONDS: float = DEFAULTS["max_timeout_seconds"]
MAX_PRIORITY: int = DEFAULTS["max_priority"]  # either way: priorities from -MAX to MAX
MAX_ATTEMPTS_BOUND: int = DEFAULTS["max_attempts_bound"]
MAX_STALLS_BOUND: int = DEFAULTS["max_stalls_bound"]
MAX_BACKOFF_SECONDS_BOUND: float = DEFAULTS["max_backoff_seconds_bound"]
MAX_EPOCH_MS: int = DEFAULTS["max_epoch_ms"]  # 9999-12-31T23:59:59.999Z: datetime.max
MAX_LAST_SEEN_AHEAD_MS: int = DEFAULTS["max_last_seen_ahead_ms"]  # a status document's clock
# How far a new job's `created_at` may lie from the server's clock and still be its place in line.
ARRIVAL_TOLERANCE_MS: int = DEFAULTS["arrival_tolerance_ms"]
# The fields a job is created with that no handler changes: only a queue admin
# may change them (and a scheduler compares them to know a slot's job as its own).
CREATION_FIELDS: tuple[str, ...] = tuple(DEFAULTS["creation_fields"])


class QueueError(Exception):
    """A queue operation that cannot be done as asked; the message says why."""


class JobExists(QueueError):
    """A job with the caller-supplied id is already in the queue."""


class NotProvisioned(QueueError):
    """The database has no queue design docs (or does not exist): nothing
    would check its jobs, and no worker could claim them."""


class JobNotFound(QueueError, KeyError):
    """No job with that id."""

    def __str__(self) -> str:
        return str(self.args[0])


class JobFailed(QueueError):
    """A job waited on ended failed or cancelled: its state, and its last
    error's type, message and traceback (None where it had none)."""

    def __init__(self, job_id: str, doc: dict[str, Any]) -> None:
        error = doc.get("error") if isinstance(doc.get("error"), dict) else {}
        self.job_id = job_id
        self.state: str = doc.get("state", "failed")
        self.error_type: str | None = error.get("type")
        self.error_message: str | None = error.get("message")
        self.traceback: str | None = error.get("traceback")
        why = f"{self.error_type}: {self.error_message}" if error else "no error recorded"
        super().__init__(f"job {job_id} {self.state}: {why}")


class ResultTimeout(QueueError, TimeoutError):
    """A job waited on did not finish in time."""


class JobCancelled(BaseException):
    """Raised inside a handler by `job.check_cancelled()` once the job is asked
    to stop. A BaseException, as asyncio's CancelledError is, so that a
    handler's `except Exception` does not swallow it."""


class HandlerJob:
    """A job as its handler reads it, in the worker's process or in a child
    (`--processes`): `id`, `data`, `doc`, `task`, `args`, `kwargs`,
    `attempts`, the results of the jobs it waited for (`dependency_results`,
    by job id), and the cancel request: `cancelled`, `check_cancelled()`,
    `on_cancel()`. Where its `log`, `progress` and outcome go is the
    subclass's; `lock` guards the cancel request and what the subclass adds."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.id: str = doc["_id"]
        self.doc = doc
        self.data: Any = doc.get("data")
        self.task: str | None = doc.get("task")
        self.args: list[Any] = doc.get("args") or []
        self.kwargs: dict[str, Any] = doc.get("kwargs") or {}
        self.dependency_results: dict[str, Any] = doc.get("dependency_results") or {}
        self.attempts: int = doc.get("attempts", 1)
        self.lock = threading.Lock()
        self._cancel = threading.Event()
        self._on_cancel: list[Callable[[], Any]] = []

    def __repr__(self) -> str:
        return f"Job({self.id!r}, attempts={self.attempts})"

    @property
    def cancelled(self) -> bool:
        """Whether someone asked this job to stop (`queshot cancel`)."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise JobCancelled if the job was asked to stop: call it between
        steps of a long sync handler (an async one is cancelled for you)."""
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.id} was cancelled")

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        """Call `callback` once the job is asked to stop (now, if it was)."""
        with self.lock:
            if not self._cancel.is_set():
                self._on_cancel.append(callback)
                return
        callback()

    def _mark_cancelled(self) -> list[Callable[[], Any]] | None:
        """Note the cancel request (with `lock` held): the callbacks to call
        now, or None if it was already noted."""
        if self._cancel.is_set():
            return None
        self._cancel.set()
        callbacks, self._on_cancel = self._on_cancel, []
        return callbacks


def queshot_version() -> str:
    """The installed queshot's version (`queshot --version`, the workers'
    status documents)."""
    try:
        return metadata.version("queshot")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def now_ms() -> int:
    return int(time.time() * 1000)


class _JobIds:
    """Job ids that sort by creation: microseconds since the epoch (strictly
    increasing within a process), then random hex. The pending view orders
    jobs of one priority by `created_at` (ms), then by id, so the jobs of one
    bulk enqueue run in the order given; and CouchDB writes ordered ids into
    its b-tree more cheaply than random ones (its own default UUIDs are
    sequential too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def new(self) -> str:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            stamp = self._last
        return f"{stamp:014x}{secrets.token_hex(9)}"


new_job_id = _JobIds().new


def is_job(doc: Any) -> bool:
    """Whether a document is a job rather than a design, worker status or
    limit token document. The same rule as the design docs' isJob."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("_id"), str)
        and not doc["_id"].startswith("_design/")
        and doc.get("type") not in (WORKER_TYPE, TOKEN_TYPE)
        and ("queues" in doc or "state" in doc)
    )


def queue_path(name: Any) -> list[str]:
    """A queue name as its path, by the one rule the design docs' queuePath
    follows too: a '/' separates the parts of a name, so "email/welcome" and
    ["email", "welcome"] are one queue; a part is a non-empty name without
    '/'; at most MAX_QUEUE_PARTS parts of MAX_QUEUE_PART_CHARS characters.
    QueueError saying which rule it breaks otherwise."""
    path = name.split("/") if isinstance(name, str) else name
    if not isinstance(path, list | tuple) or not path:
        problem = "a queue is a name or a non-empty list of names"
    elif len(path) > MAX_QUEUE_PARTS:
        problem = f"a queue path has at most {MAX_QUEUE_PARTS} parts (got {len(path)})"
    elif not all(isinstance(part, str) and part for part in path):
        problem = "every part of a queue path must be a non-empty name"
    elif any("/" in part for part in path):
        problem = "a part of a queue path cannot hold '/' (it separates the parts)"
    elif any(len(part) > MAX_QUEUE_PART_CHARS for part in path):
        problem = f"a part of a queue path has at most {MAX_QUEUE_PART_CHARS} characters"
    else:
        return list(path)
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    raise QueueError(f"invalid queue name {shown}: {problem}")


def worker_queues(paths: Sequence[list[str]]) -> str | list[str] | list[list[str]]:
    """The `queues` field of a worker's status document. One queue: its name,
    the shape every version writes ("email", or the path ["email", "welcome"]).
    Several: their paths in the worker's order ([["high"], ["default"]]), a
    list of lists, which no single queue's name can look like."""
    if len(paths) == 1:
        [path] = paths
        return path[0] if len(path) == 1 else list(path)
    return [list(path) for path in paths]


def worker_queue_paths(queues: Any) -> list[list[str]]:
    """The queue paths, in order, of a status document's `queues` field in
    either shape (see `worker_queues`); QueueError if it is neither."""
    if isinstance(queues, list) and queues and all(isinstance(q, list) for q in queues):
        return [queue_path(q) for q in queues]
    if not isinstance(queues, str | list):
        raise QueueError(f"not a queue name, path or list of paths: {queues!r}")
    return [queue_path(queues)]


def in_queue(queues: Any, path: list[str]) -> bool:
    """Whether a job whose `queues` field is `queues` belongs to the queue
    `path`: its own path starts with it (a worker on ["email"] also takes
    ["email", "welcome"] jobs). The same rule as the design docs' inQueue."""
    try:
        own = queue_path(queues)
    except QueueError:
        return False
    return 0 < len(path) <= len(own) and own[: len(path)] == path


def is_due(doc: dict[str, Any], now: float) -> bool:
    """Whether a waiting job may run at `now` (epoch ms): its `run_at`, if
    it has one, has come. The same rule as the claim handler's."""
    run_at = doc.get("run_at")
    return not _is_number(run_at) or run_at <= now


def needs_place(doc: dict[str, Any], now: float) -> bool:
    """Whether a waiting job that has never run has no place in line yet at
    `now` (epoch ms): no `arrived_at` or `run_at`, and a `created_at` more than
    ARRIVAL_TOLERANCE_MS off. The `arrive` handler decides by the server's
    clock (lib/job.js's needsPlace); this only spares it the other jobs."""
    if doc.get("state") != "inactive":
        return False
    if any(_is_number(doc.get(field)) for field in ("arrived_at", "run_at", "claimed_at")):
        return False
    created = doc.get("created_at")
    return not (_is_number(created) and abs(now - created) <= ARRIVAL_TOLERANCE_MS)


def shown_state(state: Any, since: Any, now: float) -> Any:
    """The state people read for a stored one (see SHOWN_STATES): a waiting
    job whose due time `since` (its stats/listing key) is after `now` is
    scheduled. A state no job should hold is given back as it is."""
    if state == "inactive" and _is_number(since) and since > now:
        return "scheduled"
    return STORED_STATE_SHOWN_AS.get(state, state) if isinstance(state, str) else state


def timeout_seconds(doc: dict[str, Any]) -> float | None:
    """A job's `timeout` (seconds a run may take), or None without one."""
    timeout = doc.get("timeout")
    return timeout if _is_number(timeout) and timeout > 0 else None


def timed_out(doc: dict[str, Any]) -> TimeoutError:
    """The error of a run over its `timeout`, worded as the server's
    (lib/job.js timeoutError), whichever of the two ends the run first."""
    return TimeoutError(f"job ran over its timeout of {doc.get('timeout')} s")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_cancel_request_of(doc: dict[str, Any], worker_id: str) -> bool:
    """Whether a stored job is running for `worker_id` and asked to stop."""
    return (
        doc.get("state") == "active"
        and doc.get("worker_id") == worker_id
        and _is_number(doc.get("cancel_requested_at"))
    )


def worker_gone(status: dict[str, Any], now: float) -> bool:
    """Whether the worker of a status document is gone (killed, or cut off
    from CouchDB): it has not rewritten the document for
    WORKER_GONE_AFTER_LEASES of its leases (the dashboard's rule too)."""
    last_seen = status.get("last_seen")
    lease = status.get("lease_seconds")
    lease = lease if _is_number(lease) and lease > 0 else LEASE_SECONDS
    seen = last_seen if _is_number(last_seen) else 0
    return now - seen > WORKER_GONE_AFTER_LEASES * lease * 1000


def revision_number(rev: str) -> int:
    """The revision number: 3 for "3-abc..."."""
    return int(rev.partition("-")[0])


def winning_revision(leaves: list[dict[str, Any]]) -> dict[str, Any] | None:
    """CouchDB's deterministic winner among leaf revisions: not deleted, then the
    highest revision number, then the highest revision id."""

    def rank(doc: dict[str, Any]) -> tuple[bool, int, str]:
        number, _, rev_id = doc["_rev"].partition("-")
        return (not doc.get("_deleted", False), int(number), rev_id)

    return max(leaves, key=rank) if leaves else None
