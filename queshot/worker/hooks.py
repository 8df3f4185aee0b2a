"""Worker hooks: small extension points for metrics, tracing and error
reporting, in the spirit of Dramatiq's middleware. Subclass `Hook` and
override what you need; pass instances as `Worker(..., hooks=[...])` or
`queshot worker ... --hook module:factory`.

A hook runs in the worker's own threads (before/after a job: that job's
thread). One that raises is logged and skipped: it is never fatal, and a
job's outcome is written before `after_job` and the outcome hooks run, so
a hook cannot lose it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import Worker
    from .job import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `state` is complete, failed (for good), retrying,
    cancelled, or abandoned (the worker gave the job up: someone else changed
    it, or it was released at shutdown); `error` as stored on the job
    ({type, message, traceback}); `run_at` (epoch ms) when a retry is due."""

    state: str
    duration: float
    result: Any = None
    error: dict[str, Any] | None = None
    run_at: int | None = None


class Hook:
    """Every method is optional; each runs once per event."""

    def on_start(self, worker: Worker) -> None:
        """The worker has started (before its first claim)."""

    def on_stop(self, worker: Worker) -> None:
        """The worker has stopped (its running jobs finished or released)."""

    def before_job(self, job: Job) -> None:
        """A claimed job is about to run, in its own thread."""

    def after_job(self, job: Job, outcome: Outcome) -> None:
        """A job's run ended, whatever the outcome; it is already written."""

    def on_failure(self, job: Job, outcome: Outcome) -> None:
        """A job failed for good (no attempts left, or not retried)."""

    def on_retry(self, job: Job, outcome: Outcome) -> None:
        """A run failed and a retry is scheduled at `outcome.run_at`."""


OUTCOME_HOOKS = {"failed": "on_failure", "retrying": "on_retry"}


class Hooks:
    """The hooks of one worker, each call guarded."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self._hooks = list(hooks)

    def add(self, hook: Hook) -> None:
        self._hooks.append(hook)

    def call(self, event: str, *args: Any) -> None:
        for hook in self._hooks:
            try:
                getattr(hook, event)(*args)
            except Exception:
                log.exception("hook %s.%s failed (ignored)", type(hook).__name__, event)

    def finished(self, job: Job, outcome: Outcome) -> None:
        """after_job, then on_failure / on_retry where the outcome is one."""
        self.call("after_job", job, outcome)
        if outcome.state in OUTCOME_HOOKS:
            self.call(OUTCOME_HOOKS[outcome.state], job, outcome)
