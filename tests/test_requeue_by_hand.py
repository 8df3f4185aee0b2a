"""Requeueing by hand, as in Fauxton: `"state": "inactive"` saved on a failed or
complete job is enough, and the job then starts afresh (attempts, stalls,
error, failed_at/completed_at) exactly as `queshot requeue` leaves it.

The save is the PUT of the whole document that Fauxton's editor sends; the
fresh start happens at the next claim (validate_doc_update cannot change a
document). tests/test_fauxton.py does the same edit through Fauxton itself."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run_until_settled
from designdoc_js import DesignDocJS

from queshot import admin, bulk
from queshot.couch import Database
from queshot.jobs import now_ms
from queshot.queue import Queue
from queshot.worker import Job


def failing_then_fixed() -> tuple[list[int], Any]:
    """A handler that fails until `fixed[0]` is set, recording attempts seen."""
    seen: list[int] = []
    fixed = [0]

    def handler(job: Job) -> str:
        seen.append(job.attempts)
        if not fixed[0]:
            raise ValueError("mailbox full")
        return "sent"

    handler.fixed = fixed  # type: ignore[attr-defined]
    return seen, handler


def edit_as_fauxton(db: Database, job_id: str, **fields: Any) -> None:
    """GET the document, change fields, PUT it whole: what Fauxton's Save does."""
    doc = db.get(job_id)
    doc.update(fields)
    db.save(doc)


def test_state_inactive_alone_requeues_a_failed_job_as_a_fresh_start(db: Database) -> None:
    email = Queue("email", db, max_attempts=2, backoff_seconds=0.01)
    seen, handler = failing_then_fixed()
    job_id = email.create_job({"to": "ada@example.org"})
    run_until_settled(email, handler)
    failed = db.get(job_id)
    assert (failed["state"], failed["attempts"], seen) == ("failed", 2, [1, 2])

    edit_as_fauxton(db, job_id, state="inactive")
    listed = admin.list_jobs(db, state="inactive")
    assert [(j.id, j.error) for j in listed] == [(job_id, None)]  # the old error is not current

    handler.fixed[0] = 1  # type: ignore[attr-defined]
    run_until_settled(email, handler)
    done = db.get(job_id)
    assert seen == [1, 2, 1]  # the handler saw a first attempt, not "attempt 3 of 2"
    assert (done["state"], done["attempts"], done["stalls"]) == ("complete", 1, 0)
    assert done["error"] is None and done["failed_at"] is None
    assert len(done["errors"]) == 2  # the history stays
    assert "requeued by hand: a fresh start" in done["log"][-1]["msg"]


def test_a_job_requeued_by_hand_gets_all_its_attempts_again(db: Database) -> None:
    email = Queue("email", db, max_attempts=2, backoff_seconds=0.01)
    seen, handler = failing_then_fixed()
    job_id = email.create_job({})
    run_until_settled(email, handler)
    edit_as_fauxton(db, job_id, state="inactive")
    run_until_settled(email, handler)
    assert seen == [1, 2, 1, 2]  # retried once more, as the first time
    assert db.get(job_id)["state"] == "failed"


def test_a_complete_job_requeued_by_hand_runs_again_from_scratch(db: Database) -> None:
    email = Queue("email", db)
    job_id = email.create_job({})
    run_until_settled(email, lambda job: "first")
    edit_as_fauxton(db, job_id, state="inactive")
    seen: list[int] = []
    run_until_settled(email, lambda job: seen.append(job.attempts))
    doc = db.get(job_id)
    assert seen == [1]
    assert (doc["state"], doc["attempts"]) == ("complete", 1)


def test_every_manual_requeue_leaves_the_same_job(db: Database) -> None:
    """`queshot requeue` (the requeue handler) and a Fauxton edit, once claimed."""
    email = Queue("email", db)
    by_handler, by_hand = email.create_job({}), email.create_job({})
    run_until_settled(email, lambda job: 1 / 0)
    bulk.requeue(db, [by_handler])
    edit_as_fauxton(db, by_hand, state="inactive")
    run_until_settled(email, lambda job: "ok")
    fields = ("state", "attempts", "stalls", "error", "failed_at", "progress", "result")
    first, second = db.get(by_handler), db.get(by_hand)
    assert [first.get(f) for f in fields] == [second.get(f) for f in fields]
    assert first["attempts"] == 1 and first["error"] is None


# -- the rule itself, in the design doc's JavaScript -------------------------------------


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def waiting(**fields: Any) -> dict[str, Any]:
    doc = {"_id": "j", "queues": "q", "state": "inactive", "created_at": 1, "data": {}}
    return {**doc, **fields}


@pytest.mark.parametrize(
    ("fields", "by_hand"),
    [
        ({}, False),  # the seed's hand-made job
        ({"attempts": 1, "max_attempts": 3, "run_at": 5}, False),  # waiting for its retry
        ({"attempts": 0, "max_attempts": 1}, False),
        ({"attempts": 1, "failed_at": 9}, True),
        ({"attempts": 1, "completed_at": 9}, True),
        ({"attempts": 0, "cancelled_at": 9}, True),
        ({"attempts": 2, "max_attempts": 2}, True),  # no failed_at: still used up
        ({"attempts": 1}, True),  # max_attempts defaults to 1
    ],
)
def test_which_waiting_jobs_were_requeued_by_hand(
    js: DesignDocJS, fields: dict[str, Any], by_hand: bool
) -> None:
    assert js.lib("requeuedByHand", waiting(**fields)) is by_hand


def test_the_claim_of_a_job_requeued_by_hand_is_a_fresh_start(js: DesignDocJS) -> None:
    old = waiting(
        attempts=3,
        max_attempts=3,
        stalls=1,
        progress=40,
        failed_at=now_ms(),
        error={"message": "boom"},
        errors=[{"message": "boom"}],
    )
    doc, answer = js.update("claim", old, {"worker_id": "w"})
    assert answer["json"]["ok"]
    assert (doc["state"], doc["attempts"], doc["stalls"], doc["progress"]) == ("active", 1, 0, 0)
    assert doc["error"] is None and doc["failed_at"] is None and doc["completed_at"] is None
    assert doc["errors"] == [{"message": "boom"}]
