"""The worker's retention duty: every `interval` seconds (jittered, so that
workers started together spread out) it removes the finished jobs of its
queues that their retention rules no longer keep (`queshot.retention`), at
most `budget` per pass. Any number of workers may do it at once: a job one
removed is a conflict for the others, not an error."""

from __future__ import annotations

import logging
import random
import threading

from .. import retention
from ..couch import CouchError, Database, Outage, ServerError, ServerUnreachable

log = logging.getLogger(__name__)


class RetentionDuty:
    def __init__(
        self,
        db: Database,
        paths: list[list[str]],
        *,
        interval: float,
        budget: int = retention.BUDGET,
        outage: Outage,
        halt: threading.Event,
    ) -> None:
        self.db = db
        self.paths = paths
        self.interval = interval
        self.budget = budget
        self._outage = outage
        self._halt = halt
        self._refusals_said = False

    def run(self) -> None:
        while not self._halt.wait(self.interval * random.uniform(0.5, 1.5)):
            try:
                self.apply()
                self._outage.answered()
            except (ServerUnreachable, ServerError) as exc:
                self._outage.failed(exc)
            except CouchError as exc:
                log.warning("retention: %s", exc)

    def apply(self) -> retention.Removal:
        """One pass over the worker's queues."""
        done = retention.apply(self.db, under=self.paths, budget=self.budget)
        if done.removed:
            log.info(
                "retention: removed %d finished jobs%s",
                done.removed,
                " (more next pass)" if done.more else "",
            )
        if done.refused and not self._refusals_said:
            self._refusals_said = True  # the same refusals would come every pass
            log.warning(
                "retention: %d jobs could not be removed, e.g. %s (said once)",
                len(done.refused),
                done.refused[0],
            )
        return done
