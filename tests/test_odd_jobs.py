"""No job stops a worker, with real `queshot worker` processes: the odd jobs
of issue 20 (stored before the rules refused them) beside normal ones. Every
normal job runs exactly once, no worker exits or stops claiming, and the odd
job ends failed with a reason that names its problem - or, where not even
that can be written, is passed over, said once in the worker's log. A
worker part whose thread dies stops the process with one clear line and a
non-zero exit, rather than leaving it alive and deaf."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REAL_COUCHDB, wait_until
from legacy import legacy_database, legacy_job, nested, padded_to, read
from recording import count_events

from queshot import Queue, protocol
from queshot.couch import Couch, Database

QUEUE = "odd"
SKIPPED = "skipped by this worker from now on"

# The odd jobs, stored before the rules (priority 5: met before the normal ones).
ODD_JOBS = {
    # claim once computed now + lease = Infinity, stored as null: refused (403)
    "lease 1e306": legacy_job("odd", QUEUE, priority=5, lease_seconds=1e306),
    # Python's json cannot read it: every feed and the claim's answer failed
    "data 1,200 deep": legacy_job("odd", QUEUE, priority=5, data=nested(1200)),
    # a claim grows it past the rules' size: 403 "invalid job"
    "7,900,000 characters": padded_to(legacy_job("odd", QUEUE, priority=5), 7_900_000),
    # CouchDB answers 413 to every write of it (its max_document_size, 8 MB)
    "8,000,000 characters": padded_to(legacy_job("odd", QUEUE, priority=5), 7_999_950),
}


def fate(db: Database, logs: list[Path]) -> str | None:
    """What became of the odd job: its state once it is finished, "skipped"
    once a worker said it passes over it, else None (for wait_until)."""
    doc = read(db, "odd")
    if doc["state"] in ("complete", "failed"):
        return doc["state"]
    if any(SKIPPED in log.read_text() for log in logs):
        return "skipped"
    return None


def completed(queue: Queue, ids: list[str]) -> bool:
    """every one of these jobs is complete"""
    rows = queue.db.all_docs(keys=ids, include_docs=True)["rows"]
    return all(row["doc"]["state"] == "complete" for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize("odd", list(ODD_JOBS))
def test_an_odd_job_stops_no_worker(
    odd: str,
    couch: Couch,
    db_name: str,
    spawn_worker: Callable[..., subprocess.Popen],
    record_file: Path,
    tmp_path: Path,
) -> None:
    db = legacy_database(couch, db_name, [ODD_JOBS[odd]])
    queue = Queue(QUEUE, db)
    first = queue.create_jobs([{"n": n} for n in range(10)])
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = []
    for log in logs:
        with log.open("w") as stderr:
            workers.append(
                spawn_worker(
                    db_name,
                    QUEUE,
                    "--concurrency",
                    "2",
                    "--poll-interval",
                    "0.5",
                    stderr=stderr,
                )  # fmt: skip
            )
    ended = wait_until(lambda: fate(db, logs), timeout=90)
    wait_until(lambda: completed(queue, first), timeout=60)
    # Still claiming: a second batch after the odd job was dealt with.
    second = queue.create_jobs([{"n": n} for n in range(10, 20)])
    wait_until(lambda: completed(queue, second), timeout=60)
    for worker in workers:
        assert worker.poll() is None, "a worker exited"
        worker.terminate()
    assert [worker.wait(30) for worker in workers] == [0, 0]

    starts = count_events(record_file, "start")
    assert {job_id: starts[job_id] for job_id in first + second} == dict.fromkeys(first + second, 1)
    text = "\n".join(log.read_text() for log in logs)
    assert "Traceback" not in text
    doc = read(db, "odd")
    if ended == "failed":
        assert doc["error"]["type"] == "Unclaimable"
        assert expected_reason(odd) in doc["error"]["message"]
    elif ended == "complete":  # the rules now bound the lease it is claimed with
        assert odd == "lease 1e306" and starts["odd"] == 1
    else:  # not even failing it can be written: passed over, said once per worker
        assert (odd, doc["state"]) == ("8,000,000 characters", "inactive")
        assert REAL_COUCHDB, "pouchdb-server has no max_document_size"
        assert all(log.read_text().count(SKIPPED) <= 1 for log in logs)
        assert "413 document_too_large" in text


def expected_reason(odd: str) -> str:
    """What the odd job's Unclaimable error names as the problem."""
    if odd == "data 1,200 deep":
        return "its document cannot be read by a worker (RecursionError"
    if odd == "lease 1e306":
        return "lease_expires_at"
    return "its claim was refused: 403 forbidden: queshot: invalid job: the document has"


def test_a_part_that_dies_stops_the_worker_with_one_clear_line(
    db: Database, spawn_worker: Callable[..., subprocess.Popen]
) -> None:
    """A bug in the claim round (the hook breaks it, as a bug would) kills
    the dispatch thread: the process exits 1 saying which part died of what,
    and its status document goes, so `queshot workers` does not show it
    alive. (It used to live on, claiming nothing.)"""
    process = spawn_worker(
        db.name, QUEUE, "--hook", "breaking_hook:DispatchBreaker", "--poll-interval", "0.2"
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    last = stderr.splitlines()[-1]
    assert last == (
        "queshot: error: the worker's dispatch thread died of RuntimeError: "
        "a bug in the claim round"
    ), stderr
    assert list(protocol.status_docs(db)) == []
