"""queshot: a job queue whose only infrastructure is Apache CouchDB.

`import queshot` is the producer's API; the worker runtime (and watchdog,
for reloading) is imported only when `Worker` or `Job` is first used."""

from typing import Any

from .couch import Couch, CouchError, Database
from .jobs import JobExists, JobNotFound, QueueError
from .queue import Queue

__all__ = [
    "Couch",
    "CouchError",
    "Database",
    "Job",
    "JobExists",
    "JobNotFound",
    "Queue",
    "QueueError",
    "Worker",
]


def __getattr__(name: str) -> Any:
    if name in ("Job", "Worker"):
        from . import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'queshot' has no attribute {name!r}")
