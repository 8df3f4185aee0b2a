"""Running jobs and writing their outcomes: each claimed job has a thread of
its own (daemon, so a handler that never returns cannot keep the process
alive after shutdown), in which its handler runs (`InThreads`, the default)
or waits for the child process that runs it (`processes.ProcessPool`); its
result or failure is written back under the design doc's rules. This part
does no claiming and no listening."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError as FutureCancelled
from datetime import datetime
from typing import Any

from .. import protocol
from ..couch import Conflict, CouchError, Database
from ..jobs import FINISHED_STATES, JobCancelled
from ..tasks import running_as
from .child import error_of
from .completions import CompletionWriter
from .handlers import Execution
from .hooks import Hooks, Outcome
from .job import Job, JobWriter, RunningJobs, WorkerStats
from .processes import ChildFailed
from .refusals import about_content, refusal

log = logging.getLogger(__name__)


class JobRunner:
    """Runs claimed jobs through `execution` (in threads, or in child
    processes) and records each outcome: `complete`
    (batched through `completions` while the job is untouched since its
    claim), `fail`, or `release` when given back unfinished. `on_done` is
    called as each job's slot frees; `hooks` hear of each run."""

    def __init__(
        self,
        db: Database,
        *,
        execution: Execution,
        writer: JobWriter,
        completions: CompletionWriter,
        running: RunningJobs,
        stats: WorkerStats,
        autoremove: Callable[[Job], bool],
        on_done: Callable[[], None],
        on_finished: Callable[[str, str, Any], None] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.db = db
        self.execution = execution
        self.writer = writer
        self.completions = completions
        self.running = running
        self.stats = stats
        self.autoremove = autoremove
        self.hooks = hooks or Hooks()
        self._on_done = on_done
        self._on_finished = on_finished

    def start(self, *jobs: Job) -> None:
        """Run jobs, each in its own thread; all are registered as running
        first (the completion batch counts on it)."""
        self.running.add(jobs)
        for job in jobs:
            threading.Thread(
                target=self._run, args=(job,), name=f"queshot-job-{job.id}", daemon=True
            ).start()

    def _run(self, job: Job) -> None:
        outcome = Outcome("abandoned", 0.0)
        running_as(job)  # this thread is the job's: current_job() inside its task
        try:
            self.hooks.call("before_job", job)
            try:
                result = self.execution.run(job)
                job.returned = True
                json.dumps(result, allow_nan=False)
            except (Exception, JobCancelled, asyncio.CancelledError) as exc:
                job.returned = True  # the handler's failure is the job's outcome
                outcome = self._fail(job, exc)
            else:
                body = {} if result is None else {"result": result}
                outcome = self._finish(job, "complete", body, result=result)
        except CouchError as exc:  # e.g. still unreachable when the worker stopped
            log.error("job %s: outcome not recorded (%s); its lease brings it back", job.id, exc)
        except Exception:
            log.exception("job %s: could not record its outcome", job.id)
        finally:
            duration = time.monotonic() - job.started
            outcome = dataclasses.replace(outcome, duration=duration)
            self.running.discard(job)
            self._on_done()
            if outcome.state in FINISHED_STATES and self._on_finished is not None:
                self._on_finished(job.id, outcome.state, outcome.result)
            log.info("job %s %s; ran %.3f s", job.id, describe(outcome, job), duration)
            self.hooks.finished(job, outcome)

    def _fail(self, job: Job, exc: BaseException) -> Outcome:
        """Record a run that raised: a cancel the job was asked for ends it
        cancelled (never retried); anything else is a failed attempt."""
        stopped = isinstance(exc, JobCancelled | asyncio.CancelledError | FutureCancelled)
        stopped = stopped or (isinstance(exc, ChildFailed) and exc.stopped)
        if job.cancelled and stopped:
            error = {"type": "Cancelled", "message": "stopped on request while running"}
            return self._finish(job, "fail", {"error": error, "retry": False})
        error = exc.error if isinstance(exc, ChildFailed) else error_of(exc)
        return self._finish(job, "fail", {"error": error})

    def _finish(
        self, job: Job, handler: str, body: dict[str, Any], *, result: Any = None
    ) -> Outcome:
        if handler == "complete":
            try:
                response = self._complete(job, body)
            except CouchError as exc:
                if not about_content(exc):
                    raise
                return self._finish(job, "fail", {"error": result_refused(exc)})
        else:
            response = self.writer.write(job, handler, body)
        if response is None:
            self.stats.add("abandoned")
            return Outcome("abandoned", 0.0, error={"message": job.abandoned or "released"})
        if handler == "complete":
            self.stats.add("completed")
            if self.autoremove(job):
                try:
                    self.writer.retrying(lambda: self.db.delete(job.id, job.rev))
                except Conflict:
                    log.info("job %s changed after completing; not removed", job.id)
            return Outcome("complete", 0.0, result=result)
        answer = response.body if isinstance(response.body, dict) else {}
        state = answer.get("state", "failed")
        if state == "inactive":
            self.stats.add("retried")
            return Outcome("retrying", 0.0, error=body["error"], run_at=answer.get("run_at"))
        self.stats.add("cancelled" if state == "cancelled" else "failed")
        return Outcome(state, 0.0, error=body["error"])

    def _complete(self, job: Job, body: dict[str, Any]) -> Any:
        """Complete a held job. If nothing was written to it since the claim
        (no heartbeat, log or progress: the common short job), the stored
        document is known, so the completed document is written back through
        `_bulk_docs`, batched with other jobs', against the claim's revision: a
        job someone else changed still answers 409 (abandoned, as with the
        handler, unless the change is a cancel request: then the handler, at
        the new revision), and validate_doc_update still rules. One round trip per batch
        instead of one handler call per job. Otherwise, or if the batch refused
        it for another reason, or if the worker halts before the batch is
        written (a job claimed during shutdown), the `complete` handler."""
        with job.lock:
            if not job.abandoned and job.rev == job.claimed_rev:
                doc = protocol.completed(job.claimed_doc, job.rev, body)
                result = self.completions.write(doc)
                if result.get("rev") and not result.get("error"):
                    job.rev, job.finished = result["rev"], True
                    return result
                if result.get("error") == "conflict":
                    what, answer = self.writer.after_conflict(job, body, completing=True)
                    if what == "own":
                        return answer
                    if what == "other":  # "cancel": on to the handler, at the new revision
                        self.writer.abandon(job, "changed by someone else", "complete")
                        return None
                else:
                    log.info(
                        "job %s: batched completion not written (%s); via handler", job.id, result
                    )
        return self.writer.write(job, "complete", body)

    def cancel_requested(self, job_id: str, rev: str) -> None:
        """The feed saw a job this worker runs asked to stop, at `rev`."""
        for job in self.running.jobs():
            if job.id == job_id:
                with job.lock:
                    if not (job.abandoned or job.finished):
                        job.cancel_requested(rev)

    def release(self, job: Job) -> None:
        """Give a job back unrun (its attempt not counted); it is abandoned here
        either way. A job whose handler has returned is left to its own thread,
        which is writing its outcome (or says why it could not)."""
        if job.returned:
            return
        try:
            if self.writer.write(job, "release", {}, retry=False) is not None:
                self.stats.add("released")
                log.info("job %s released unfinished", job.id)
        except CouchError as exc:
            log.warning("job %s: release failed (%s); its lease will bring it back", job.id, exc)
        with job.lock:
            job.abandoned = job.abandoned or "released at shutdown"

    def release_all(self, *, within: float | None = None) -> None:
        """Release every running job, all at once, waiting at most `within`
        seconds (None: until done); a job not released by then comes back
        by its lease."""
        threads = [
            threading.Thread(target=self.release, args=(job,), daemon=True)
            for job in self.running.jobs()
        ]
        for thread in threads:
            thread.start()
        deadline = None if within is None else time.monotonic() + within
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


def result_refused(exc: CouchError) -> dict[str, Any]:
    """The error of a job whose result the database refused to store (too
    large, nested too deep): the attempt fails, saying so, instead of being
    lost; the result itself is not kept."""
    return {
        "type": "ResultRefused",
        "message": f"the handler's result was not stored: the database refused it ({refusal(exc)})",
        "traceback": None,
    }


def describe(outcome: Outcome, job: Job) -> str:
    """An outcome as the worker's log says it."""
    error = outcome.error or {}
    message = str(error.get("message") or "").strip()
    message = message.splitlines()[0][:200] if message else "no message"
    why = f"{error.get('type', 'Error')}: {message}"  # one line: `queshot show` has the rest
    if outcome.state == "retrying":
        when = "now"
        if outcome.run_at is not None:
            at = datetime.fromtimestamp(outcome.run_at / 1000).strftime("%H:%M:%S")
            when = f"at {at} (in {max(0.0, outcome.run_at / 1000 - time.time()):.1f} s)"
        of = job.doc.get("max_attempts")
        attempt = f"attempt {job.attempts + 1}" + (f" of {of}" if of else "")
        return f"failed ({why}); {attempt} {when}"
    if outcome.state == "failed":
        return f"failed ({why})"
    if outcome.state == "abandoned":
        return f"abandoned ({error.get('message')})"
    return outcome.state
