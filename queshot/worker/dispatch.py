"""The dispatch loop: while slots are free, the worker is not paused or
asleep and not all its queues are paused (`control.py`), pick candidates
(`ordering.py`, from each queue's `picking.py`), claim them (`claiming.py`)
and hand the jobs won to the runner. The seed's controls (wake up, go to
sleep, pause, resume) act here."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..couch import (
    CouchError,
    Forbidden,
    NotFound,
    Outage,
    ServerError,
    ServerUnreachable,
    Unauthorized,
)
from ..jobs import now_ms
from ..retrying import MAX_RETRY_DELAY
from .claiming import Claimer
from .control import QueueControl
from .job import Job, RunningJobs
from .ordering import QueueOrder

log = logging.getLogger(__name__)

ROUND_GATHER = 0.005  # seconds a dispatcher waits for more slots once one is free
# An idle worker whose feed is live reads its queues at most this many poll
# intervals apart: every read costs the server (2.5 ms of CPU a queue on
# CouchDB 3.5, more when it brings the index up to date), and the feed names
# every job that becomes claimable; the reads are its safety net.
IDLE_POLL_FACTOR = 8


class Dispatcher:
    """Claims for `running`'s free slots until `stopping` is set. `start_jobs`
    runs the jobs won; `on_fatal` is told of an error no retry can mend
    (credentials refused, design docs missing), after which the loop ends.
    `feed_live` says whether the changes feed is still being read (else the
    view is read every `poll_interval`, not less often when idle)."""

    def __init__(
        self,
        *,
        picker: QueueOrder,
        claimer: Claimer,
        running: RunningJobs,
        control: QueueControl,
        start_jobs: Callable[..., None],
        outage: Outage,
        poll_interval: float,
        stopping: threading.Event,
        halt: threading.Event,
        on_fatal: Callable[[Exception], None],
        feed_live: Callable[[], bool] = lambda: False,
    ) -> None:
        self.picker = picker
        self.claimer = claimer
        self.running = running
        self.control = control
        self.poll_interval = poll_interval
        self._start_jobs = start_jobs
        self._outage = outage
        self._stopping = stopping
        self._halt = halt
        self._on_fatal = on_fatal
        self._feed_live = feed_live
        self._quiet_polls = 0  # idle polls in a row that found nothing, nothing woke in between
        self._wake = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._asleep = False
        self._claims = ThreadPoolExecutor(running.concurrency, thread_name_prefix="queshot-claim")

    # -- the seed's controls ----------------------------------------------------------

    def wake_up(self) -> None:
        self._asleep = False
        self._wake.set()

    def go_to_sleep(self) -> None:
        self._asleep = True
        self._wake.clear()

    def pause(self) -> None:
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()
        self.wake_up()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    def job_offered(self) -> None:
        """The feed saw a job of one of its queues become claimable."""
        self._asleep = False
        self._wake.set()

    def stop(self) -> None:
        """No more claims: the loop (its `stopping` set) ends at its next turn."""
        self._resumed.set()
        self._wake.set()

    def close(self) -> None:
        self._claims.shutdown(wait=False)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            if not self._resumed.is_set():
                self._resumed.wait(0.5)
                continue
            if self.control.paused:  # the feed wakes us when the queue is resumed
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            free = self.running.free
            if free <= 0:
                self.running.slot_freed.wait(1.0)
                self.running.slot_freed.clear()
                if len(self.running):
                    # Jobs completed in one batch free their slots one by one:
                    # a moment's wait lets one round claim for all of them.
                    self._halt.wait(ROUND_GATHER)
                continue
            if self._asleep:
                self._wake.wait(self.poll_interval)
                self._asleep = False
                continue
            self._wake.clear()
            try:
                delay = self.picker.hint_delay()
                if delay:
                    self._halt.wait(delay)
                candidates, from_view = self.picker.next_round(free)
                claimed = self._claim_some(candidates, free)
                self._outage.answered()
                backoff = 0.2
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)
                self._halt.wait(backoff)
                backoff = min(backoff * 2, MAX_RETRY_DELAY)
                continue
            except (Unauthorized, Forbidden) as exc:
                self._on_fatal(exc)
                return
            except NotFound as exc:
                self._on_fatal(CouchError(f"{exc} - are the design docs pushed? (`queshot push`)"))
                return
            except CouchError as exc:  # refused, not for a job (each job's own are handled)
                log.warning("claim round: %s; trying again in %.1f s", exc, backoff)
                self._halt.wait(backoff)
                backoff = min(backoff * 2, MAX_RETRY_DELAY)
                continue
            if claimed:
                self._quiet_polls = 0
            elif not candidates or (not from_view and self.picker.drained):
                # Nothing to claim, or only hints that rivals won since a read
                # found nothing (the feed would have named anything newer).
                wait = self._idle_wait()
                next_due = self.picker.next_due
                if next_due is not None:
                    wait = max(0.01, min(wait, (next_due - now_ms()) / 1000))
                next_hint = self.picker.next_hint_in()
                if next_hint is not None:
                    wait = max(0.001, min(wait, next_hint))
                woken = self._wake.wait(wait)
                self._quiet_polls = 0 if woken else self._quiet_polls + 1

    def _idle_wait(self) -> float:
        """The poll interval, doubled for each idle poll in a row that found
        nothing while the feed was live, up to IDLE_POLL_FACTOR times."""
        if not self._feed_live():
            self._quiet_polls = 0
        return self.poll_interval * min(IDLE_POLL_FACTOR, 2**self._quiet_polls)

    def _claim_some(self, candidates: list[str], free: int) -> int:
        """Claim candidates until `free` jobs are won, as many claims at once
        as slots are free; the jobs won in one go start together, so that
        short ones also finish together and share a completion batch. A batch
        lost whole ends the round: the rest of the page is likely taken too,
        and the feed has not said so yet."""
        tried: list[str] = []
        claimed: list[str] = []
        rest = list(candidates)
        failure: Exception | None = None
        while rest and len(claimed) < free and failure is None:
            if self._stopping.is_set() or not self._resumed.is_set() or self.control.paused:
                break
            rest = self.picker.still_open(rest)
            if not rest:
                break
            left = free - len(claimed)
            batch, rest = rest[:left], rest[left:]
            tried += batch
            won: list[Job] = []
            claims = [
                self._claims.submit(self.claimer.claim, job_id, self.picker.path_of(job_id))
                for job_id in batch
            ]
            for future in claims:
                try:
                    job = future.result()
                except Exception as exc:  # raised below, once every won job is started
                    failure = failure or exc
                    continue
                if job is not None:
                    won.append(job)
            self._start_jobs(*won)
            claimed += [job.id for job in won]
            if not won:  # rivals are ahead of the feed on these rows: read afresh
                rest = []
        self.picker.round_done(tried=tried, won=claimed, unused=rest if failure is None else [])
        if failure is not None:
            raise failure
        return len(claimed)
