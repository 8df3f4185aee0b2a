"""A worker never goes deaf or loses a job over one document: feed rows it
cannot read, results, log lines and progress the database refuses, a lease
that cannot be taken back, a job whose own lease is shorter than the
worker's, and status documents that would hold its claims back. In-process
workers on a real server; the rank arithmetic without one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import running, wait_until
from legacy import legacy_database, legacy_job, nested, put_nested

from queshot import Queue, protocol
from queshot.couch import Couch, Database
from queshot.jobs import WORKER_TYPE, now_ms
from queshot.worker.peers import MAX_PEERS, Peers
from queshot.worker.picking import MAX_HINT_DEFER, Picker

# -- claims --------------------------------------------------------------------------------------


def claim_ignoring_pauses(folder: Path) -> None:
    """The claim handler without its own pause check: the validator's 403 is
    then the refusal (as on pouchdb-server, or a pause made mid-claim)."""
    claim = folder / "updates" / "claim.js"
    claim.write_text(claim.read_text().replace("if (pause) return", "if (false) return"))


def test_a_claim_refused_for_a_pause_the_worker_had_not_heard_of_is_left_for_later(
    push_variant: Callable[..., Database],
) -> None:
    db = push_variant(claim_ignoring_pauses)
    queue = Queue("held", db)
    job_id = queue.create_job({})
    worker = queue.create_worker(lambda job: None)  # not started: it has heard of no pause
    protocol.pause(db, ["held"], True)
    assert worker.claimer.claim(job_id, ["held"]) is None  # not fatal, not the job's fault
    assert worker.control.paused  # heard now
    assert queue.get_job(job_id)["state"] == "inactive"


# -- the changes feed ------------------------------------------------------------------------


def feed_alive() -> bool:
    return any(t.name == "queshot-changes" and t.is_alive() for t in threading.enumerate())


def test_the_feed_passes_over_documents_it_cannot_read(
    couch: Couch, server_url: str, db_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A status document (read as the feed starts) and a change (a design
    document shaped like a waiting job, which the feed's selector lets
    through) nest 1,200 deep: Python cannot read them. Both used to kill
    the feed thread, leaving the worker to its poll: here the poll is 30 s,
    and a job must still be claimed as soon as the feed shows it."""
    phantom = {
        "_id": "queshot-worker:phantom",
        "type": WORKER_TYPE,
        "name": "phantom",
        "last_seen": now_ms(),
        "extra": nested(1200),
    }
    db = legacy_database(couch, db_name, [phantom])
    queue = Queue("feed", db)
    ran: list[str] = []
    worker = queue.create_worker(lambda job: ran.append(job.id), poll_interval=30)
    with caplog.at_level(logging.WARNING), running(worker):
        odd = {"_id": "_design/odd", "state": "inactive", "queues": "feed"}
        put_nested(server_url, db_name, odd, "x", 1200)  # a design document: only an admin's
        wait_until(lambda: "'_design/odd' passed over" in caplog.text, timeout=10)
        job_id = queue.create_job({})
        wait_until(lambda: ran == [job_id], timeout=10)
        assert feed_alive()
    assert "its document cannot be read here (RecursionError" in caplog.text


def test_reconciliation_passes_over_dependencies_it_cannot_read(couch: Couch, db_name: str) -> None:
    """A finished dependency nested too deep to read, and a blocked job whose
    `waiting_for` holds no ids (both stored before the rules): the other
    blocked jobs are still told, as the worker starts."""
    done = legacy_job("done", "deps", state="complete", completed_at=now_ms(), result=7)
    deep = legacy_job("deep", "deps", state="complete", completed_at=now_ms(), data=nested(1200))
    waiting = {"state": "blocked", "depends_on": ["done"], "waiting_for": ["done"]}
    docs = [
        done,
        deep,
        legacy_job("on-deep", "deps", state="blocked", depends_on=["deep"], waiting_for=["deep"]),
        legacy_job("odd", "deps", state="blocked", depends_on=[5], waiting_for=[5, {"x": 1}]),
        legacy_job("after", "deps", **waiting),
    ]
    db = legacy_database(couch, db_name, docs)
    queue = Queue("deps", db)
    worker = queue.create_worker(lambda job: job.dependency_results, poll_interval=0.2)
    with running(worker):
        wait_until(lambda: queue.get_job("after")["state"] == "complete", timeout=20)
    assert queue.get_job("after")["result"] == {"done": 7}
    assert queue.get_job("odd")["state"] == "blocked"


# -- refused writes of a held job -------------------------------------------------------------


def test_a_result_the_database_refuses_fails_the_job_saying_why(db: Database) -> None:
    """A result nested deeper than the rules allow is refused (403 "invalid
    job"): the attempt fails with ResultRefused, naming the refusal, instead
    of the job waiting, held, for its lease to run out."""
    queue = Queue("results", db)
    deep_id = queue.create_job({"deep": True})
    fine_id = queue.create_job({"deep": False})
    worker = queue.create_worker(
        lambda job: nested(100) if job.data["deep"] else "fine", poll_interval=0.2
    )
    with running(worker):
        wait_until(lambda: queue.get_job(deep_id)["state"] == "failed", timeout=20)
        wait_until(lambda: queue.get_job(fine_id)["state"] == "complete", timeout=20)
    error = queue.get_job(deep_id)["error"]
    assert error["type"] == "ResultRefused"
    assert error["message"].startswith(
        "the handler's result was not stored: the database refused it (403 forbidden: "
        "queshot: invalid job: 'result' nests deeper than"
    )
    assert "result" not in queue.get_job(deep_id)
    assert queue.get_job(fine_id)["result"] == "fine"


def test_a_refused_progress_is_dropped_not_the_job(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    queue = Queue("notes", db)
    job_id = queue.create_job({})

    def handler(job: Any) -> str:
        job.progress("half")  # not a number: the progress handler answers 400
        job.log("went on")
        return "done"

    with caplog.at_level(logging.WARNING), running(queue.create_worker(handler, poll_interval=0.2)):
        wait_until(lambda: queue.get_job(job_id)["state"] == "complete", timeout=20)
    doc = queue.get_job(job_id)
    assert doc["result"] == "done"
    assert [line["msg"] for line in doc["log"]] == ["went on"]
    assert f"job {job_id}: progress not written, dropped: progress needs a number" in caplog.text


# -- leases --------------------------------------------------------------------------------------


def refuse_expiring_stuck_jobs(folder: Path) -> None:
    """A rule that refuses taking back a job whose data says "stuck", as the
    rules refuse a write for a job's own content."""
    vdu = folder / "validate_doc_update.js"
    rule = (
        "if (oldDoc && oldDoc.state === 'active' && newDoc.state === 'inactive' && "
        "newDoc.data && newDoc.data.stuck) "
        "throw {forbidden: 'queshot: invalid job: stuck (a test rule)'};"
    )
    vdu.write_text(vdu.read_text().replace("{", "{ " + rule, 1))


def test_a_lease_that_cannot_be_taken_back_holds_up_no_other(
    push_variant: Callable[..., Database], caplog: pytest.LogCaptureFixture
) -> None:
    """The reaper's `expire` of one job is refused: it takes the others back
    all the same, says so once, and passes over that job from then on."""
    db = push_variant(refuse_expiring_stuck_jobs)
    queue = Queue("reap", db)
    stuck, other = queue.create_job({"stuck": True}), queue.create_job({})
    for job_id in (stuck, other):  # claimed by a worker that died: leases of 1 s
        protocol.claim(db, job_id, worker_id="gone", lease_seconds=1, queue=["reap"], w=1)
    wait_until(lambda: len(protocol.expired_leases(db, 10)) == 2, timeout=10)
    time.sleep(0.1)  # this machine's clock said so; let the server's agree
    worker = queue.create_worker(lambda job: None)
    with caplog.at_level(logging.WARNING):
        assert worker.reap() == 1
        assert worker.reap() == 0
    assert queue.get_job(other)["state"] == "inactive"
    assert queue.get_job(stuck)["state"] == "active"
    said = [r.getMessage() for r in caplog.records if "cannot be taken back" in r.getMessage()]
    assert said == [
        f"job {stuck}: its expired lease cannot be taken back (403 forbidden: queshot: "
        "invalid job: stuck (a test rule)); this worker's reaper passes over it from now on"
    ]


@pytest.mark.slow
def test_a_job_with_a_shorter_lease_than_its_worker_is_renewed_in_time(db: Database) -> None:
    """The job's own lease (1 s) is what the claim gives it, not the worker's
    (6 s): heartbeats every third of the worker's lease let it lapse, and a
    rival's reaper took it back while it ran (it then ran again, at once)."""
    queue = Queue("short", db)
    job = queue.new_job_doc({})
    job["lease_seconds"] = 1  # a field of the job (the seed's), no option of create_job
    job_id = job["_id"]
    db.save(job)
    runs: list[int] = []

    def handler(job: Any) -> str:
        runs.append(job.attempts)
        time.sleep(3)
        return "held"

    holder = queue.create_worker(handler, concurrency=2, lease_seconds=6, poll_interval=0.2)
    reaper = Queue("elsewhere", db).create_worker(
        lambda job: None, lease_seconds=1, reap_interval=0.2
    )
    with running(holder, reaper):
        wait_until(lambda: queue.get_job(job_id)["state"] == "complete", timeout=30)
    doc = queue.get_job(job_id)
    assert (runs, doc["attempts"], doc.get("stalls", 0)) == ([1], 1, 0)
    assert reaper.stats.reaped == 0


# -- peers -----------------------------------------------------------------------------------------


def status(worker_id: str, **fields: Any) -> dict[str, Any]:
    doc = {"type": WORKER_TYPE, "name": worker_id, "queues": "q", "last_seen": now_ms()}
    return {**doc, **fields}


def test_a_status_document_from_the_far_future_is_no_live_peer() -> None:
    """300 phantoms seen at 1e15 (year 33658) once ranked a real worker
    behind them all: 50 ms per rank before it claimed a job the feed offered."""
    peers = Peers("me", ["q"])
    for n in range(300):
        peers.heard(f"queshot-worker:phantom-{n}", status(f"phantom-{n}", last_seen=1e15))
    peers.heard("queshot-worker:real", status("real"))
    assert peers.live() == ["me", "real"]


def test_no_number_of_rivals_holds_a_hint_back_longer_than_the_bound() -> None:
    """Plausible phantoms count as peers, but a rank defers a hint at most
    MAX_HINT_DEFER seconds, and a worker ranks itself among MAX_PEERS."""
    peers = Peers("me", ["q"])
    for n in range(300):
        peers.heard(f"queshot-worker:phantom-{n}", status(f"phantom-{n}"))
    assert len(peers.live()) == 1 + MAX_PEERS
    queue = SimpleNamespace(path=["q"], view="pending", limit=10)
    picker = Picker(None, queue, peers)  # type: ignore[arg-type]  # offers read nothing
    offered_at = time.monotonic()
    for n in range(50):
        picker.offer(f"job-{n}")
    deferred = [due - offered_at for due in picker._deferred.values()]
    assert deferred, "some job ranks this worker below a phantom"
    assert max(deferred) <= MAX_HINT_DEFER + (time.monotonic() - offered_at)


def test_the_status_document_names_the_account(db: Database) -> None:
    worker = Queue("who", db).create_worker(lambda job: None)
    with running(worker):
        doc = db.get(protocol.status_id(worker.id))
    assert "user" in doc
    assert doc["user"] == db.couch.user  # admin party (pouchdb-server): None
