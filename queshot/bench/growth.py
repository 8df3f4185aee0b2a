"""Growth: does the queue slow down as the database fills? Throughput with a
large backlog of waiting jobs against a small one, and on a database that
has run (and removed) many jobs against a fresh one, in one run.

The documents are written before the queue's design docs are pushed, so
that seeding pays neither validate_doc_update nor indexing per write (a
database that ran the jobs paid that long ago); the push then builds the
views over them, as an index that had followed the jobs would hold them.
A removed job is written as the tombstone a real one leaves: four
revisions (created, claimed, completed, deleted), the last deleted, in the
by-id and by-seq trees exactly like a job removed by a retention rule."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from .. import protocol
from ..couch import Database, ServerUnreachable
from ..queue import Queue
from .measures import BULK_CHUNK, drain_rate

log = logging.getLogger(__name__)

INDEX_TRIES = 20
# Revisions of a job from creation to removal: created, claimed, completed, deleted.
REMOVED_JOB_REVISIONS = 4


def seed_waiting(db: Database, queue: Queue, count: int) -> None:
    """`count` waiting jobs of `queue`, as `create_jobs` makes them."""
    for start in range(0, count, BULK_CHUNK):
        docs = [queue.new_job_doc({"i": i}) for i in range(start, min(count, start + BULK_CHUNK))]
        db.bulk_docs(docs)


def seed_removed(db: Database, count: int) -> None:
    """Tombstones of `count` removed jobs (with `new_edits=false`: one write
    each instead of four, with the same revision history)."""
    for start in range(0, count, BULK_CHUNK):
        db.bulk_docs(
            [_tombstone(f"history-{i:09d}") for i in range(start, min(count, start + BULK_CHUNK))],
            new_edits=False,
        )


def _tombstone(doc_id: str) -> dict[str, Any]:
    ids = [hashlib.md5(f"{doc_id}/{n}".encode()).hexdigest() for n in range(REMOVED_JOB_REVISIONS)]
    ids.reverse()  # newest first, as _revisions lists them
    return {
        "_id": doc_id,
        "_rev": f"{REMOVED_JOB_REVISIONS}-{ids[0]}",
        "_deleted": True,
        "_revisions": {"start": REMOVED_JOB_REVISIONS, "ids": ids},
    }


def _index(db: Database, view: str) -> None:
    """Wait for the index of a seeded database: building it may take longer
    than one request waits, and CouchDB goes on building after a timeout."""
    for _ in range(INDEX_TRIES - 1):
        try:
            return protocol.warm_up(db, view)
        except ServerUnreachable:
            log.info("still indexing %s", db.name)
    protocol.warm_up(db, view)


def measure_growth(
    phase: Callable[..., Any],
    provision: Callable[[Database], None],
    urls: list[str],
    *,
    workers: int,
    concurrency: int,
    seconds: float,
    small_backlog: int,
    large_backlog: int,
    history: int,
    server_pids: list[int],
) -> dict[str, Any]:
    """Jobs per second over `seconds` with `small_backlog` waiting jobs in a
    fresh database (measured first and last: the better counts, so that the
    ratios do not flatter; of server CPU per job, the lower), with
    `large_backlog` waiting jobs, and with
    `small_backlog` waiting jobs after `history` removed ones. `phase` gives
    a throwaway database without design docs, `provision` pushes them."""

    def run(backlog: int, removed: int) -> dict[str, Any]:
        with phase(queue_design_docs=False) as db:
            queue = Queue("bench-growth", db)
            began = time.monotonic()
            seed_removed(db, removed)
            seed_waiting(db, queue, backlog)
            provision(db)
            _index(db, queue.view)
            seeded = time.monotonic() - began
            log.info("seeded %d waiting, %d removed jobs in %.0f s", backlog, removed, seeded)
            result = drain_rate(
                urls,
                queue,
                workers=workers,
                concurrency=concurrency,
                seconds=seconds,
                server_pids=server_pids,
            )
            ran_dry = result["completed_total"] >= backlog
            return result | {
                "backlog": backlog,
                "removed": removed,
                "seed_seconds": seeded,
                "ran_dry": ran_dry,
            }

    first = run(small_backlog, 0)
    large = run(large_backlog, 0)
    old = run(small_backlog, history)
    last = run(small_backlog, 0)
    fresh = max(first["per_s"], last["per_s"])
    cpu = [run_["server_cpu_ms_per_job"] for run_ in (first, last)]
    fresh_cpu = min(cpu) if None not in cpu else None
    return {
        "fresh": [first, last],
        "large_backlog": large,
        "history": old,
        "backlog_ratio": large["per_s"] / fresh if fresh else None,
        "history_ratio": old["per_s"] / fresh if fresh else None,
        # Server CPU per job: what a busy shared machine disturbs least (its
        # other processes slow the clock, not the server's own work per job).
        "backlog_cpu_ratio": _ratio(large["server_cpu_ms_per_job"], fresh_cpu),
        "history_cpu_ratio": _ratio(old["server_cpu_ms_per_job"], fresh_cpu),
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None
