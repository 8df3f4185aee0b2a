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

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import protocol
from ..couch import Database, ServerUnreachable
from ..queue import Queue
from .measures import BULK_CHUNK, Drainers, best_of, ratio

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


@contextlib.contextmanager
def seeded(
    phase: Callable[..., Any],
    provision: Callable[[Database], None],
    queue_name: str,
    backlog: int,
    removed: int = 0,
) -> Iterator[Queue]:
    """A throwaway database (`phase`, then `provision` pushes the design
    docs) holding `backlog` waiting jobs of `queue_name` after `removed`
    removed ones, indexed: the queue, for as long as the phase lasts."""
    with phase(queue_design_docs=False) as db:
        queue = Queue(queue_name, db)
        began = time.monotonic()
        seed_removed(db, removed)
        seed_waiting(db, queue, backlog)
        provision(db)
        _index(db, queue.view)
        log.info(
            "seeded %d waiting, %d removed jobs in %.0f s",
            backlog,
            removed,
            time.monotonic() - began,
        )
        yield queue


def measure_growth(
    phase: Callable[..., Any],
    provision: Callable[[Database], None],
    drainers: Drainers,
    *,
    small_backlog: int,
    large_backlog: int,
    history: int,
) -> dict[str, Any]:
    """Jobs per second with `small_backlog` waiting jobs in a fresh
    database (measured first and last: the better counts, so that the
    ratios do not flatter; of server CPU per job, the lower), with
    `large_backlog` waiting jobs, and with `small_backlog` waiting jobs
    after `history` removed ones. `phase` gives a throwaway database without
    design docs, `provision` pushes them."""

    def run(backlog: int, removed: int) -> dict[str, Any]:
        with seeded(phase, provision, "bench-growth", backlog, removed) as queue:
            return drainers.rate(queue, backlog) | {"backlog": backlog, "removed": removed}

    first = run(small_backlog, 0)
    large = run(large_backlog, 0)
    old = run(small_backlog, history)
    last = run(small_backlog, 0)
    fresh, fresh_cpu = best_of([first, last])
    return {
        "fresh": [first, last],
        "large_backlog": large,
        "history": old,
        "backlog_ratio": ratio(large["per_s"], fresh),
        "history_ratio": ratio(old["per_s"], fresh),
        "backlog_cpu_ratio": ratio(large["server_cpu_ms_per_job"], fresh_cpu),
        "history_cpu_ratio": ratio(old["server_cpu_ms_per_job"], fresh_cpu),
    }
