"""Pausing a queue: kept in the design document (the one document the claim
handler and validate_doc_update can see), so no worker - old or new - and no
direct write starts a paused queue's jobs; workers follow it through their
feed, and `queshot push` keeps it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import running, wait_until

from queshot import admin, designdocs, protocol, sync
from queshot.cli import main
from queshot.couch import Conflict, Couch, Database, Forbidden
from queshot.jobs import PAUSE_FIELD
from queshot.queue import Queue
from queshot.worker import Job, Worker


def test_a_paused_queues_jobs_are_refused_to_every_claim_and_write(db: Database) -> None:
    email = Queue("email", db)
    welcome = email.create_job({"n": 1}, id="welcome-1")
    db.save({**db.get(welcome), "queues": ["email", "welcome"]})
    sms = Queue("sms", db).create_job({"n": 2})
    admin.set_paused(db, "email", True)

    # what an old worker does: the claim handler, which reads the pause from `this`
    for job_id in (welcome,):
        with pytest.raises(Conflict) as refused:
            protocol.claim(db, job_id, worker_id="old", lease_seconds=60, queue=["email"], w=1)
        assert "queue email is paused" in str(refused.value)
    # a direct write, as a script or Fauxton might: validate_doc_update
    doc = db.get(welcome)
    doc.update(state="active", worker_id="sneaky", lease_expires_at=doc["created_at"] + 60_000)
    with pytest.raises(Forbidden) as forbidden:
        db.save(doc)
    reason = forbidden.value.reason  # CouchDB names who paused it; pouchdb-server knows no one
    assert reason.startswith("queshot: queue email is paused")
    assert reason.endswith(": its jobs are not claimed until it is resumed")
    # other queues go on
    assert (
        protocol.claim(db, sms, worker_id="w", lease_seconds=60, queue=["sms"], w=1).status == 201
    )

    admin.set_paused(db, "email", False)
    won = protocol.claim(db, welcome, worker_id="old", lease_seconds=60, queue=["email"], w=1)
    assert won.status == 201


def test_pause_keeps_the_design_document_whole_and_push_keeps_the_pause(
    couch: Couch, db: Database
) -> None:
    before = db.get(protocol.DDOC_ID)
    admin.set_paused(db, ["reports", "daily"], True)
    admin.set_paused(db, ["reports", "daily"], True)  # twice: one entry, no new revision
    after = db.get(protocol.DDOC_ID)
    assert [p["queue"] for p in after[PAUSE_FIELD]] == [["reports", "daily"]]
    assert int(after["_rev"].split("-")[0]) == int(before["_rev"].split("-")[0]) + 1
    assert after["_attachments"].keys() == before["_attachments"].keys()
    assert "app.js" in couch.request("GET", f"/{db.name}/{protocol.DASHBOARD_PATH}").text

    # a second push writes nothing, and a push that changes the design doc keeps the pause
    results = sync.push(couch, [db.name], designdocs.load())
    assert {r.action for r in results} == {"unchanged"}
    bundle = designdocs.load()
    bundle.design_docs[0].doc["updates"]["log"] += "\n"
    [changed] = [r for r in sync.push(couch, [db.name], bundle) if r.target == protocol.DDOC_ID]
    assert changed.action == "updated"
    assert admin.paused_queues(db)[0]["queue"] == ["reports", "daily"]
    bundle.design_docs[0].doc["views"]["stats"]["map"] += "\n"
    sync.push(couch, [db.name], bundle)  # through the staged copy
    assert admin.paused_queues(db)[0]["queue"] == ["reports", "daily"]


def test_pause_needs_a_queue_and_a_flag(db: Database) -> None:
    for body in ({"paused": True}, {"queue": [""], "paused": True}, {"queue": "email"}):
        with pytest.raises(Exception) as caught:
            db.update(protocol.DDOC, "pause", protocol.DDOC_ID, body)
        assert "pause needs" in str(caught.value)


def test_workers_claim_nothing_of_a_paused_queue_while_others_go_on(db: Database) -> None:
    """A pause made while workers run: the paused queue's waiting jobs stay
    waiting (no claim even tried), the other queue's run; after the resume
    they run."""
    email, sms = Queue("email", db), Queue("sms", db)
    ran: list[str] = []
    lock = threading.Lock()

    def handler(job: Job) -> None:
        with lock:
            ran.append(job.id)

    email_worker = Worker(email, handler, poll_interval=0.2, feed_heartbeat=0.5)
    sms_worker = Worker(sms, handler, poll_interval=0.2, feed_heartbeat=0.5)
    with running(email_worker, sms_worker):
        admin.set_paused(db, "email", True)
        wait_until(lambda: email_worker.control.paused, timeout=10)
        waiting = email.create_jobs([{"n": i} for i in range(5)])
        sent = sms.create_jobs([{"n": i} for i in range(5)])
        wait_until(lambda: sms.stats()["complete"] == 5, timeout=15)
        attempts = email_worker.stats.claim_attempts
        assert email.stats()["inactive"] == 5
        assert not set(waiting) & set(ran)
        wait_until(lambda: db.get(protocol.status_id(email_worker.id)).get("paused"), timeout=10)

        admin.set_paused(db, "email", False)
        wait_until(lambda: email.stats()["complete"] == 5, timeout=15)
    assert set(ran) == set(waiting) | set(sent)
    assert attempts == 0  # it knew: not one claim wasted on the paused queue


def test_pause_and_resume_from_the_command_line(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    def run(*args: str) -> Any:
        status = main([*args, "--url", server_url, "--db", db.name])
        return status, capsys.readouterr()

    status, out = run("pause", "email/welcome")
    assert (status, out.out) == (0, "queue email/welcome paused\n")
    assert [p["queue"] for p in admin.paused_queues(db)] == [["email", "welcome"]]
    Queue(["email", "welcome"], db).create_job({})
    status, out = run("stats")
    assert "email/welcome (paused)" in out.out
    status, out = run("resume", "email/welcome")
    assert (status, out.out) == (0, "queue email/welcome resumed\n")
    assert admin.paused_queues(db) == []
