"""The cluster claim rule (ARCHITECTURE.md, "Claiming"). A single node never answers
202 nor makes conflict branches on its own, so these tests drive those paths
directly: a claim handler variant that answers 202, and a second branch
written with new_edits=false."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import running, wait_until

from queshot import Queue
from queshot.couch import Database
from queshot.worker import Job


class RecordingDatabase(Database):
    """The real database, remembering the query parameters of each update call."""

    def __init__(self, db: Database) -> None:
        super().__init__(db.couch, db.name)
        self.update_params: list[tuple[str, dict[str, Any]]] = []

    def update(self, ddoc: str, handler: str, doc_id: str, body: Any = None, **params: Any):
        self.update_params.append((handler, params))
        return super().update(ddoc, handler, doc_id, body, **params)


def test_claims_carry_w_equal_to_the_databases_n(db: Database) -> None:
    recording = RecordingDatabase(db)
    queue = Queue("w", recording)
    job_id = queue.create_job({})
    worker = queue.create_worker(lambda job: None, poll_interval=0.2)
    with running(worker):
        wait_until(lambda: queue.get_job(job_id)["state"] == "complete")
    claims = [params for handler, params in recording.update_params if handler == "claim"]
    assert claims and all(params["w"] == db.replicas() for params in claims)
    assert worker.replicas == db.replicas()


def test_a_202_claim_is_settled_before_the_job_runs(push_variant, caplog) -> None:
    """A claim stored on fewer copies than n answers 202: ownership is only
    taken after reading every leaf and finding this worker's revision winning."""

    def answer_202(ddoc: Path) -> None:
        claim = ddoc / "updates" / "claim.js"
        text = claim.read_text()
        assert "return [doc, { json: { ok: true, job: doc } }];" in text
        claim.write_text(
            text.replace(
                "return [doc, { json: { ok: true, job: doc } }];",
                "return [doc, { code: 202, json: { ok: true, job: doc } }];",
            )
        )

    db = push_variant(answer_202)
    queue = Queue("settle", db)
    job_id = queue.create_job({"n": 1})
    caplog.set_level(logging.INFO, logger="queshot.worker")
    worker = queue.create_worker(lambda job: job.data["n"], poll_interval=0.2)
    with running(worker):
        wait_until(lambda: queue.get_job(job_id)["state"] == "complete")
    assert f"claim of {job_id} answered 202: settling" in caplog.text
    assert worker.stats.claims_won == 1
    assert queue.get_job(job_id)["result"] == 1


def without_validation(ddoc: Path) -> None:
    """pouchdb-server silently drops new_edits=false writes to a database that
    has a validate_doc_update (it answers [] and stores nothing)."""
    (ddoc / "validate_doc_update.js").unlink()


@pytest.mark.parametrize("winner", ["running worker", "other worker"])
def test_a_second_branch_ends_with_one_runner_and_no_branch(push_variant, winner: str) -> None:
    """Two workers both believe they claimed a job (a branch written with
    new_edits=false, as replication or a cluster race leaves): exactly one
    runs it to completion, the other backs off, and the document converges."""
    db = push_variant(without_validation)
    queue = Queue("branches", db)
    job_id = queue.create_job({"n": 1})
    started, finish = threading.Event(), threading.Event()

    def slow(job: Job) -> str:
        started.set()
        finish.wait(15)
        return "A"

    worker_a = queue.create_worker(slow, lease_seconds=1.5, poll_interval=0.2)
    worker_b = queue.create_worker(lambda job: "B", lease_seconds=1.5, poll_interval=0.2)
    worker_a.start()
    try:
        assert started.wait(10)
        worker_b.start()  # only now: started together, either might have claimed the job
        held = db.get(job_id, revs=True)
        base = held["_revisions"]["ids"][1]
        rev_id = "f" * 32 if winner == "other worker" else "0" * 32
        branch = {k: v for k, v in held.items() if k != "_revisions"}
        branch.update(
            _rev=f"2-{rev_id}",
            worker_id=worker_b.id,
            _revisions={"start": 2, "ids": [rev_id, base]},
        )
        db.bulk_docs([branch], new_edits=False)
        assert len(db.open_revs(job_id)) == 2, "the test could not create the second branch"

        settled = worker_b.settler.settle(job_id, branch["_rev"], sent_at=time.monotonic())
        if winner == "other worker":
            assert settled is not None and settled["worker_id"] == worker_b.id
            worker_b.runner.start(worker_b.writer.job(settled, settled["_rev"]))
            wait_until(lambda: worker_a.stats.abandoned == 1 or worker_a.running_jobs == [])
        else:
            assert settled is None
        finish.set()
        wait_until(lambda: queue.get_job(job_id)["state"] == "complete")
        wait_until(lambda: worker_a.running_jobs == [] and worker_b.running_jobs == [])
    finally:
        finish.set()
        worker_a.stop(grace=5)
        worker_b.stop(grace=5)

    doc = db.get(job_id, conflicts=True)
    assert "_conflicts" not in doc
    assert len([leaf for leaf in db.open_revs(job_id) if not leaf.get("_deleted")]) == 1
    expected = "B" if winner == "other worker" else "A"
    assert doc["result"] == expected
    loser = worker_a if winner == "other worker" else worker_b
    assert loser.stats.completed == 0
    assert worker_a.stats.completed + worker_b.stats.completed == 1
