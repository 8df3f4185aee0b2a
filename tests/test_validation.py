"""validate_doc_update as a human meets it in Fauxton: every rule, with its reason.

The test server runs in admin party (everyone is `_admin`), so these are the
rules an admin sees; the per-role rules are in test_roles.py."""

from __future__ import annotations

from typing import Any

import pytest

from queshot import protocol
from queshot.couch import Conflict, Database, Forbidden
from queshot.jobs import now_ms
from queshot.queue import Queue


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def job(**fields: Any) -> dict[str, Any]:
    doc = {
        "queues": "email",
        "state": "inactive",
        "worker_id": None,
        "priority": 0,
        "log": [],
        "data": {"to": "a@example.org"},
        "created_at": now_ms(),
        "attempts": 0,
        "max_attempts": 1,
        "progress": 0,
    }
    doc.update(fields)
    return doc


@pytest.fixture
def db(module_db: Database) -> Database:
    return module_db


def refusal(db: Database, doc: dict[str, Any]) -> str:
    with pytest.raises(Forbidden) as caught:
        db.save(doc)
    return caught.value.reason


def stored(db: Database, **fields: Any) -> dict[str, Any]:
    doc = job(**fields)
    db.save(doc)
    return doc


# -- allowed ---------------------------------------------------------------------------


def test_admin_requeues_a_failed_job_by_editing_it(db: Database) -> None:
    doc = stored(
        db,
        state="failed",
        attempts=1,
        failed_at=now_ms(),
        error={"message": "boom", "type": "RuntimeError"},
    )
    doc.update(state="inactive", worker_id=None, run_at=None, lease_expires_at=None)
    db.save(doc)  # stored as saved: the next claim makes it a fresh start (test_requeue_by_hand)
    assert db.get(doc["_id"])["state"] == "inactive"
    assert db.get(doc["_id"])["attempts"] == 1


def test_set_job_state_inactive_resets_attempts(db: Database) -> None:
    doc = stored(db, state="failed", attempts=3, max_attempts=3, failed_at=now_ms())
    Queue("email", db).set_job_state(doc["_id"], "inactive")
    requeued = db.get(doc["_id"])
    assert (requeued["state"], requeued["attempts"], requeued["worker_id"]) == ("inactive", 0, None)


def test_data_of_a_waiting_job_can_be_edited(db: Database) -> None:
    doc = stored(db)
    doc["data"] = {"to": "b@example.org"}
    db.save(doc)
    assert db.get(doc["_id"])["data"] == {"to": "b@example.org"}


def test_a_job_can_be_deleted(db: Database) -> None:
    doc = stored(db, state="failed", failed_at=now_ms())
    db.delete(doc["_id"], doc["_rev"])
    assert db.get_or_none(doc["_id"]) is None


def test_seed_style_string_log_lines_are_accepted(db: Database) -> None:
    stored(db, log=["started", {"at": now_ms(), "msg": "done"}])


# -- refused, with the reason a human reads ------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"state": "queued"},
            "'state' must be one of inactive, blocked, active, complete, failed, cancelled",
        ),
        ({"state": "active", "worker_id": None, "lease_expires_at": 1}, "needs the 'worker_id'"),
        ({"state": "active", "worker_id": "w1"}, "an 'active' job needs 'lease_expires_at'"),
        ({"priority": "high"}, "'priority' must be a whole number from -1000000000 to"),
        ({"priority": 1.5}, "'priority' must be a whole number"),
        ({"progress": 150}, "'progress' must be a number from 0 to 100"),
        ({"progress": "half"}, "'progress' must be a number from 0 to 100"),
        ({"attempts": -1}, "'attempts' must be a whole number from 0 to 1000"),
        ({"attempts": "1"}, "'attempts' must be a whole number from 0 to 1000"),
        ({"lease_seconds": 1e306}, "'lease_seconds' must be a number from 1 to 86400"),
        ({"data": nested(64)}, "'data' nests deeper than 64 levels"),
        ({"created_at": "yesterday"}, "'created_at' must be a number (epoch milliseconds)"),
        ({"log": [42]}, "every 'log' entry must be a string or {at: <epoch ms>, msg: <string>}"),
        ({"log": [{"msg": "no time"}]}, "every 'log' entry must be a string or {at"),
        ({"log": "one line"}, "'log' must be an array"),
        ({"queues": ""}, "'queues': every part of a queue path must be a non-empty name"),
        ({"queues": ["email", 3]}, "'queues': every part of a queue path must be a non-empty"),
        ({"queues": "a/" * 10 + "b"}, "'queues': a queue path has at most 10 parts (got 11)"),
        ({"error": "boom"}, "'error' must be an object with a string 'message'"),
    ],
)
def test_an_invalid_job_is_refused(db: Database, fields: dict[str, Any], reason: str) -> None:
    assert refusal(db, job(**fields)).startswith("queshot: invalid job: ")
    assert reason in refusal(db, job(**fields))


def test_an_edit_that_breaks_a_stored_job_is_refused(db: Database) -> None:
    doc = stored(db)
    doc["priority"] = "urgent"
    assert "'priority' must be a whole number" in refusal(db, doc)


def test_a_document_that_is_not_a_job_is_refused(db: Database) -> None:
    reason = refusal(db, {"_id": "notes", "text": "hello"})
    assert "this database holds jobs: a document needs 'queues' and 'state'" in reason


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"state": "complete", "completed_at": 1}, {"worker_id": "w1", "lease_expires_at": 1}),
        ({"state": "inactive"}, {"completed_at": 1}),
        ({"state": "failed", "failed_at": 1}, {"state": "complete"}),
    ],
)
def test_illegal_moves_are_refused(
    db: Database, before: dict[str, Any], after: dict[str, Any]
) -> None:
    doc = stored(db, **before)
    target = {"complete": "active", "inactive": "complete", "failed": "complete"}[before["state"]]
    doc.update(after, state=target)
    reason = refusal(db, doc)
    assert reason == f"queshot: a job cannot move from '{before['state']}' to '{target}'"


def test_a_job_cannot_become_a_worker_status_document(db: Database) -> None:
    doc = stored(db)
    status = {"_id": doc["_id"], "_rev": doc["_rev"], "type": "queshot_worker"}
    status.update(name="w", last_seen=now_ms())
    assert refusal(db, status) == "queshot: a job cannot become a worker status document"


def test_a_worker_status_document_cannot_become_a_job(db: Database) -> None:
    status = {"_id": "queshot-worker:w", "type": "queshot_worker", "name": "w"}
    status["last_seen"] = now_ms()
    db.save(status)
    doc = job(_id=status["_id"], _rev=status["_rev"])
    assert refusal(db, doc) == "queshot: a document that is not a job cannot become one"


def test_a_worker_status_document_needs_name_and_last_seen(db: Database) -> None:
    reason = refusal(db, {"_id": "queshot-worker:x", "type": "queshot_worker", "name": "x"})
    assert reason.startswith("queshot: a worker status document needs 'last_seen'")
    reason = refusal(db, {"_id": "queshot-worker:x", "type": "queshot_worker", "last_seen": 1})
    assert reason == "queshot: a worker status document needs a 'name'"


# -- issue 20: one document must not stop the queue ------------------------------------


def test_a_document_nested_far_deeper_than_any_reader_allows_is_refused(db: Database) -> None:
    reason = refusal(db, job(data=nested(900)))
    assert (
        reason
        == "queshot: invalid job: 'data' nests deeper than 64 levels (the document is the first)"
    )


def test_a_lease_that_would_overflow_the_claim_is_refused(db: Database) -> None:
    reason = refusal(db, job(lease_seconds=1e306))
    assert reason == (
        "queshot: invalid job: 'lease_seconds' must be a number from 1 to 86400 (got 1e+306)"
    )


def test_a_queue_name_with_slashes_is_the_same_queue_as_its_path(db: Database) -> None:
    """Queue("mail/welcome") and the CLI's ["mail", "welcome"]: one queue in
    the views (one stats row), to a worker on "mail", and to a pause."""
    by_name = Queue("mail/welcome", db).create_job({"n": 1})
    by_path = Queue(["mail", "welcome"], db).create_job({"n": 2})
    assert db.get(by_name)["queues"] == "mail/welcome"
    rows = protocol.counts(db, ["mail", "welcome"])
    assert [(row["key"], row["value"]) for row in rows] == [([["mail", "welcome"], "inactive"], 2)]
    assert Queue("mail/welcome", db).stats()["inactive"] == 2
    protocol.pause(db, ["mail", "welcome"], True)
    try:
        for job_id in (by_name, by_path):
            with pytest.raises(Conflict):
                protocol.claim(db, job_id, worker_id="w", lease_seconds=60, queue=["mail"], w=1)
    finally:
        protocol.pause(db, ["mail", "welcome"], False)
    for job_id in (by_name, by_path):
        answer = protocol.claim(db, job_id, worker_id="w", lease_seconds=60, queue=["mail"], w=1)
        assert answer.status in (201, 202)
