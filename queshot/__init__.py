"""queshot: a job queue whose only infrastructure is Apache CouchDB."""

from .couch import Couch, CouchError, Database
from .queue import JobExists, JobNotFound, Queue, QueueError
from .worker import Job, Worker

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
