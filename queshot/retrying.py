"""Riding out connection faults: every part of a worker (and the scheduler)
retries through one `Outage`, so that an outage is one log line per worker
(and one when CouchDB answers again), not one per thread or request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .couch import Outage, ServerError, ServerUnreachable

T = TypeVar("T")
MAX_RETRY_DELAY = 2.0  # cap of the backoff while CouchDB does not answer (s)


class Retrier:
    """`retrier(action)` runs `action` until it gets an answer: connection
    faults (no answer, a 5xx) are retried with capped backoff, for as long as
    `halt` is not set (then the last fault is raised). The caller's state
    (a job's result) waits in memory meanwhile."""

    def __init__(self, outage: Outage, halt: threading.Event) -> None:
        self.outage = outage
        self._halt = halt

    def __call__(self, action: Callable[[], T]) -> T:
        delay = 0.2
        while True:
            try:
                result = action()
                self.outage.answered()
                return result
            except (ServerUnreachable, ServerError) as exc:
                self.outage.failed(exc)
                if self._halt.wait(delay):
                    raise
                delay = min(delay * 2, MAX_RETRY_DELAY)
