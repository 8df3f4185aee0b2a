"""queshot: a job queue whose only infrastructure is Apache CouchDB.

`import queshot` is the producer's API (and `Tasks` for declaring tasks);
the worker runtime (and watchdog, for reloading) is imported only when
`Worker`, `Job`, `Hook` or `Outcome` is first used."""

from typing import Any

from .couch import Couch, CouchError, Database
from .jobs import JobCancelled, JobExists, JobFailed, JobNotFound, QueueError, ResultTimeout
from .queue import Queue
from .results import JobHandle
from .tasks import Tasks, UnknownTask, current_job

__all__ = [
    "Couch",
    "CouchError",
    "Database",
    "Hook",
    "Job",
    "JobCancelled",
    "JobExists",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "Outcome",
    "Queue",
    "QueueError",
    "ResultTimeout",
    "Tasks",
    "UnknownTask",
    "Worker",
    "current_job",
]

WORKER_NAMES = ("Hook", "Job", "Outcome", "Worker")


def __getattr__(name: str) -> Any:
    if name in WORKER_NAMES:
        from . import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'queshot' has no attribute {name!r}")
