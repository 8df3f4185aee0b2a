"""The seed's API and options in Pythonic form, and seed compatibility."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import run_until_settled, running, wait_until

from queshot import JobExists, JobNotFound, Queue, QueueError
from queshot.couch import Database, Forbidden


def test_create_job_writes_a_seed_shaped_document(db: Database) -> None:
    queue = Queue("email", db)
    job_id = queue.create_job({"to": "a@example.org"}, priority=3)
    doc = queue.get_job(job_id)
    for field, value in {
        "queues": "email",
        "state": "inactive",
        "worker_id": None,
        "priority": 3,
        "log": [],
        "data": {"to": "a@example.org"},
    }.items():
        assert doc[field] == value
    assert isinstance(doc["created_at"], int)
    assert queue.job_exists(job_id)
    assert not queue.job_exists("nope")
    assert queue.get_job_data(job_id) == {"to": "a@example.org"}


def test_caller_supplied_id_makes_a_job_unique(db: Database) -> None:
    queue = Queue("email", db)
    assert queue.create_job({"n": 1}, id="welcome-42") == "welcome-42"
    with pytest.raises(JobExists, match="welcome-42"):
        queue.create_job({"n": 2}, id="welcome-42")
    assert queue.get_job_data("welcome-42") == {"n": 1}


def test_create_jobs_is_one_bulk_write_with_ids_in_order(db: Database) -> None:
    queue = Queue("bulk", db)
    ids = queue.create_jobs([{"n": i} for i in range(25)], priority=1)
    assert len(set(ids)) == 25
    assert [queue.get_job_data(i)["n"] for i in ids] == list(range(25))
    assert queue.stats()["inactive"] == 25


def test_bad_input_is_refused_with_a_clear_error(db: Database) -> None:
    queue = Queue("email", db)
    with pytest.raises(QueueError, match="not JSON-serialisable"):
        queue.create_job({"when": object()})
    with pytest.raises(QueueError, match="priority must be an integer"):
        queue.create_job({}, priority="high")
    with pytest.raises(QueueError, match="invalid queue name"):
        Queue(["email", ""], db)
    with pytest.raises(TypeError, match="limt"):
        Queue("email", db, limt=3)
    with pytest.raises(JobNotFound, match="no job 'missing'"):
        queue.get_job("missing")


def test_set_job_data_log_and_progress(db: Database) -> None:
    queue = Queue("email", db)
    job_id = queue.create_job({"v": 1})
    queue.set_job_data(job_id, {"v": 2})
    queue.log_job(job_id, "queued by test")
    queue.progress_job(job_id, 40)
    doc = queue.get_job(job_id)
    assert doc["data"] == {"v": 2}
    assert doc["progress"] == 40
    assert doc["log"][-1]["msg"] == "queued by test"
    assert isinstance(doc["log"][-1]["at"], int)


def test_set_job_state_follows_the_rules(db: Database) -> None:
    queue = Queue("email", db)
    job_id = queue.create_job({})
    with pytest.raises(QueueError, match="only by a worker's claim"):
        queue.set_job_state(job_id, "active")
    with pytest.raises(QueueError, match="unknown state"):
        queue.set_job_state(job_id, "done")
    queue.set_job_state(job_id, "failed")  # an admin cancels a waiting job
    assert queue.get_job(job_id)["state"] == "failed"
    queue.requeue(job_id)
    doc = queue.get_job(job_id)
    assert (doc["state"], doc["attempts"], doc["worker_id"]) == ("inactive", 0, None)
    with pytest.raises(Forbidden, match="cannot move from 'inactive' to 'complete'"):
        queue.set_job_state(job_id, "complete")


def test_worker_runs_jobs_with_log_progress_and_result(db: Database) -> None:
    queue = Queue("email", db)
    job_id = queue.create_job({"to": "b@example.org"})

    def handler(job):
        job.log(f"sending to {job.data['to']}")
        job.progress(50)
        return {"sent": True, "id": job.id}

    run_until_settled(queue, handler)
    doc = queue.get_job(job_id)
    assert doc["state"] == "complete"
    assert doc["result"] == {"sent": True, "id": job_id}
    assert doc["progress"] == 100
    assert doc["attempts"] == 1
    assert doc["log"][0]["msg"] == "sending to b@example.org"
    assert isinstance(doc["completed_at"], int)


def test_a_raising_handler_fails_the_job_with_type_message_and_traceback(db: Database) -> None:
    queue = Queue("email", db)
    job_id = queue.create_job({})

    def handler(job):
        raise ValueError("no such mailbox")

    run_until_settled(queue, handler)
    doc = queue.get_job(job_id)
    assert doc["state"] == "failed"
    assert doc["error"]["type"] == "ValueError"
    assert doc["error"]["message"] == "no such mailbox"
    assert "Traceback" in doc["error"]["traceback"] and "handler" in doc["error"]["traceback"]


def test_a_result_that_is_not_json_fails_the_job(db: Database) -> None:
    queue = Queue("email", db)
    job_id = queue.create_job({})
    run_until_settled(queue, lambda job: {"when": object()})
    assert queue.get_job(job_id)["error"]["type"] == "TypeError"


def test_seed_shaped_document_is_claimed_and_run(db: Database) -> None:
    """A job written by the original JavaScript queshot, field for field."""
    db.save(
        {
            "_id": "seed-job",
            "worker_id": None,
            "queues": "email",
            "state": "inactive",
            "priority": 0,
            "log": ["created by the seed"],
            "data": {"x": 1},
            "created_at": 1,
        }
    )
    queue = Queue("email", db)
    run_until_settled(queue, lambda job: job.data["x"] + 1)
    doc = queue.get_job("seed-job")
    assert (doc["state"], doc["result"], doc["log"][0]) == ("complete", 2, "created by the seed")


def test_our_jobs_show_in_the_seeds_own_view(db: Database) -> None:
    db.save(
        {
            "_id": "_design/seed",
            "views": {
                "inactive": {
                    "map": (
                        "function (doc) { if (doc.state === 'inactive') "
                        "emit([doc.queues, doc.created_at], doc); }"
                    )
                }
            },
        }
    )
    job_id = Queue("email", db).create_job({"n": 1})
    rows = db.view("seed", "inactive")["rows"]
    assert [row["id"] for row in rows] == [job_id]
    assert rows[0]["key"][0] == "email"


def test_jobs_run_in_the_order_they_were_enqueued(db: Database) -> None:
    """Jobs of one bulk call share a millisecond `created_at`; their ids,
    which sort by creation, keep them first in, first out."""
    queue = Queue("fifo", db)
    first = queue.create_jobs([{"n": i} for i in range(30)])
    then = [queue.create_job({"n": i}) for i in range(30, 35)]
    assert first + then == sorted(first + then)
    order: list[int] = []
    run_until_settled(queue, lambda job: order.append(job.data["n"]), concurrency=1)
    assert order == list(range(35))


def test_a_worker_on_a_queue_takes_its_sub_queues(db: Database) -> None:
    welcome = Queue(["email", "welcome"], db).create_job({"n": 1})
    other = Queue(["sms"], db).create_job({"n": 2})
    email = Queue(["email"], db)
    worker = email.create_worker(lambda job: "done", poll_interval=0.2)
    with running(worker):
        wait_until(lambda: email.get_job(welcome)["state"] == "complete", timeout=20)
    assert email.get_job(other)["state"] == "inactive"
    assert worker.stats.claim_attempts == 1


def test_limit_pages_through_all_jobs(db: Database) -> None:
    queue = Queue("small-pages", db, limit=1)
    queue.create_jobs([{"n": i} for i in range(5)])
    run_until_settled(queue, lambda job: job.data["n"], concurrency=2)
    assert queue.stats()["complete"] == 5


def test_view_option_chooses_the_pending_view(push_variant) -> None:
    """The seed's `view` option: a worker reads only what that view offers."""

    def add_urgent_view(ddoc: Path) -> None:
        urgent = ddoc / "views" / "urgent"
        shutil.copytree(ddoc / "views" / "pending", urgent)
        map_js = urgent / "map.js"
        map_js.write_text(
            map_js.read_text().replace(
                "if (!isJob(doc) || doc.state !== 'inactive') return;",
                "if (!isJob(doc) || doc.state !== 'inactive' || !(doc.priority >= 5)) return;",
            )
        )

    db = push_variant(add_urgent_view)
    queue = Queue("ops", db, view="urgent")
    waiting_routine = queue.create_job({"n": 1}, priority=0)
    worker = queue.create_worker(lambda job: "ran", poll_interval=0.2)
    with running(worker):
        # Jobs arriving while the worker runs reach it through the changes
        # feed, which must not offer it what its view leaves out.
        time.sleep(0.5)
        routine_id = queue.create_job({"n": 2}, priority=0)
        urgent_id = queue.create_job({"n": 3}, priority=5)
        wait_until(lambda: queue.get_job(urgent_id)["state"] == "complete")
        time.sleep(0.5)
    assert queue.get_job(routine_id)["state"] == "inactive"
    assert queue.get_job(waiting_routine)["state"] == "inactive"


def test_autoremove_deletes_completed_jobs_only(db: Database) -> None:
    queue = Queue("email", db, autoremove=True)
    done = queue.create_job({"ok": True})
    failing = queue.create_job({"ok": False})

    def handler(job):
        if not job.data["ok"]:
            raise RuntimeError("kept for inspection")

    run_until_settled(queue, handler)
    assert not queue.job_exists(done)
    assert queue.get_job(failing)["state"] == "failed"


def test_writeonly_queue_refuses_workers(db: Database) -> None:
    queue = Queue("email", db, writeonly=True)
    queue.create_job({"n": 1})
    with pytest.raises(QueueError, match="writeonly"):
        queue.create_worker(lambda job: None)


def test_seed_controls_pause_resume_sleep_wake(db: Database) -> None:
    queue = Queue("email", db)
    ran = threading.Event()
    worker = queue.create_worker(lambda job: ran.set(), poll_interval=30)
    with running(worker):
        worker.pause()
        queue.create_job({"n": 1})
        assert not ran.wait(1.0), "a paused worker claimed a job"
        worker.resume()
        assert ran.wait(5.0), "a resumed worker did not take the job"
        ran.clear()
        worker.go_to_sleep()
        worker.wake_up()
        queue.create_job({"n": 2})
        assert ran.wait(5.0), "a woken worker did not take the job"


def test_completion_against_a_changed_job_is_not_forced(db: Database) -> None:
    """A human edits the job while it runs: the worker's result must not
    overwrite it (409 -> abandoned, logged)."""
    queue = Queue("email", db)
    job_id = queue.create_job({"v": 1})
    started, edited = threading.Event(), threading.Event()

    def handler(job):
        started.set()
        edited.wait(10)
        return "worker result"

    worker = queue.create_worker(handler, poll_interval=0.2)
    with running(worker):
        assert started.wait(10)
        queue.set_job_data(job_id, {"v": "edited by a human"})
        edited.set()
        wait_until(lambda: worker.stats.abandoned == 1)
    doc = queue.get_job(job_id)
    assert doc["data"] == {"v": "edited by a human"}
    assert "result" not in doc
