"""Issue #4, "nothing lost, nothing stuck": leases and recovery after a
SIGKILL, retries with backoff, delays, priorities, timeouts, heartbeats, bad
input, and connection faults. Real server, real processes and signals; the
handler in tests/recording.py counts executions in a file that survives SIGKILL."""

from __future__ import annotations

import json
import logging
import queue as stdqueue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import queue_database, run_until_settled, running, wait_until
from recording import count_events, read_records

from queshot import Queue, QueueError, designdocs
from queshot.couch import Conflict, Couch, Database, Forbidden
from queshot.devserver import DevServer

CONTEXT = json.loads((designdocs.default_source() / "context.json").read_text())


def final_state(queue: Queue, job_id: str) -> str | None:
    """The job's state once it is complete or failed, else None (for wait_until)."""
    state = queue.get_job(job_id)["state"]
    return state if state in ("complete", "failed") else None


# -- leases and recovery ------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_workers_job_is_finished_by_another_after_its_lease(
    db: Database, db_name: str, spawn_worker: Callable, record_file: Path, tmp_path: Path
) -> None:
    queue = Queue("kill", db, max_attempts=3, backoff_seconds=0.2)
    slow = queue.create_job({"sleep": 3})
    a = spawn_worker(db_name, "kill", "--lease-seconds", "2", "--poll-interval", "0.5")
    wait_until(lambda: count_events(record_file, "start")[slow] == 1)
    # A (concurrency 1) is busy: these wait for B, and must each run exactly once.
    quick = queue.create_jobs([{"n": n} for n in range(10)])
    a.kill()
    a.wait()
    held = queue.get_job(slow)  # as A left it: its worker_id and last lease
    with (tmp_path / "b.log").open("w") as b_log:
        b = spawn_worker(
            db_name, "kill", "--lease-seconds", "2", "--concurrency", "2",
            "--poll-interval", "0.5", stderr=b_log,
        )  # fmt: skip
    wait_until(lambda: queue.stats()["complete"] == 11, timeout=60)
    b.terminate()
    assert b.wait(30) == 0

    doc = queue.get_job(slow)
    # A dead worker is not the job's failure: its attempt is given back, a stall counted.
    assert (doc["attempts"], doc["stalls"]) == (1, 1)
    assert "errors" not in doc
    [stalled] = [line["msg"] for line in doc["log"] if "stalled" in line["msg"]]
    assert f"worker {held['worker_id']} stopped renewing its lease" in stalled
    assert doc["claimed_at"] > held["lease_expires_at"], "taken back before the lease ran out"
    assert doc["worker_id"] != held["worker_id"]
    runs = [(r["event"], r["pid"]) for r in read_records(record_file) if r["id"] == slow]
    assert runs == [("start", a.pid), ("start", b.pid), ("end", b.pid)]
    starts = count_events(record_file, "start")
    assert {job_id: starts[job_id] for job_id in quick} == dict.fromkeys(quick, 1)
    assert f"job {slow}: lease of {held['worker_id']} ran out" in (tmp_path / "b.log").read_text()


def claim_with_a_lease_that_has_run_out(db: Database, job_id: str) -> None:
    """Claim the job as a worker that then dies: its lease (0.05 s) runs out."""
    db.update("queshot", "claim", job_id, {"worker_id": "dead-worker", "lease_seconds": 0.05})

    def expired() -> bool:
        """the expire handler takes the job back"""
        try:
            return bool(db.update("queshot", "expire", job_id, {}))
        except Conflict:  # not expired yet, by the server's clock
            return False

    wait_until(expired, timeout=5, every=0.02)


def test_a_job_whose_worker_died_waits_again_without_using_an_attempt(db: Database) -> None:
    queue = Queue("stall", db)  # max_attempts 1: a failed attempt would fail it for good
    job_id = queue.create_job({})
    for stall in (1, 2):
        claim_with_a_lease_that_has_run_out(db, job_id)
        doc = queue.get_job(job_id)
        assert (doc["state"], doc["attempts"], doc["stalls"]) == ("inactive", 0, stall)
        assert doc["worker_id"] is None and doc["lease_expires_at"] is None
        assert "error" not in doc
        assert f"stalled ({stall} of {CONTEXT['max_stalls']} allowed)" in doc["log"][-1]["msg"]
    claim_with_a_lease_that_has_run_out(db, job_id)
    doc = queue.get_job(job_id)
    assert (doc["state"], doc["stalls"]) == ("failed", 3)
    assert doc["error"]["type"] == "Stalled"
    assert doc["error"]["message"].startswith("stalled 3 times (max_stalls 2): worker dead-worker")


def test_max_stalls_is_set_per_queue_and_per_job(db: Database) -> None:
    strict = Queue("strict", db, max_stalls=0)
    job_id = strict.create_job({})
    lenient = strict.create_job({}, max_stalls=5)
    assert (strict.get_job(job_id)["max_stalls"], strict.get_job(lenient)["max_stalls"]) == (0, 5)
    claim_with_a_lease_that_has_run_out(db, job_id)
    assert strict.get_job(job_id)["state"] == "failed"
    claim_with_a_lease_that_has_run_out(db, lenient)
    assert strict.get_job(lenient)["state"] == "inactive"
    with pytest.raises(QueueError, match="max_stalls must be a whole number >= 0"):
        Queue("bad", db, max_stalls=-1)


@pytest.mark.slow
def test_heartbeats_keep_a_job_longer_than_its_lease(db: Database) -> None:
    queue = Queue("long", db, max_attempts=3)
    job_id = queue.create_job({})
    holder = queue.create_worker(
        lambda job: time.sleep(3.5) or "done", lease_seconds=1, poll_interval=0.2
    )
    watcher = queue.create_worker(lambda job: "stolen", lease_seconds=1, poll_interval=0.2)
    with running(holder):
        wait_until(lambda: queue.get_job(job_id)["state"] == "active")
        with running(watcher):  # its reaper looks for expired leases all along
            wait_until(lambda: final_state(queue, job_id), timeout=20)
    doc = queue.get_job(job_id)
    assert (doc["state"], doc["attempts"], doc["result"]) == ("complete", 1, "done")
    assert "errors" not in doc
    assert holder.stats.reaped == watcher.stats.reaped == 0


def test_a_worker_runs_only_its_own_queues_jobs_however_it_hears_of_them(
    db: Database,
) -> None:
    """The changes feed names every queue's claimable jobs; neither its hints
    nor a claim sent for another queue may take one."""
    email, sms = Queue("email", db), Queue("sms", db)
    ran: list[str] = []
    worker = email.create_worker(lambda job: ran.append(job.id), concurrency=2, poll_interval=30)
    with running(worker):
        time.sleep(0.5)  # idle, listening to the feed
        texts = [sms.create_job({"n": n}) for n in range(10)]
        welcome = Queue(["email", "welcome"], db).create_job({})
        wait_until(lambda: ran == [welcome], timeout=10)
        time.sleep(0.5)
    assert sms.stats()["inactive"] == len(texts)
    assert all(sms.get_job(job_id)["attempts"] == 0 for job_id in texts)
    with pytest.raises(Conflict, match='job is in queue "sms", not in \\["email"\\]'):
        db.update("queshot", "claim", texts[0], {"worker_id": "w", "queue": ["email"]})


# -- retries, delays, priorities, timeouts ---------------------------------------------------


def test_retries_back_off_exponentially_within_the_jitter_bounds(db: Database) -> None:
    base = 0.3
    queue = Queue("backoff", db, max_attempts=4, backoff_seconds=base)
    job_id = queue.create_job({})
    claimed: list[dict] = []

    def handler(job):
        claimed.append(job.doc)  # as claimed: run_at, claimed_at, earlier errors
        raise RuntimeError("try again")

    run_until_settled(queue, handler)
    assert (queue.get_job(job_id)["state"], len(claimed)) == ("failed", 4)
    delays = []
    for attempt, doc in enumerate(claimed[1:], start=2):
        delay = (doc["run_at"] - doc["errors"][-1]["at"]) / 1000
        expected = base * 2 ** (attempt - 2)
        assert 0.75 * expected - 0.001 <= delay <= 1.25 * expected + 0.001, (attempt, delay)
        assert doc["claimed_at"] >= doc["run_at"], "claimed before it was due"
        delays.append(delay)
    assert delays[0] < delays[1] < delays[2]


def test_after_max_attempts_the_job_fails_for_good_with_a_bounded_error_list(
    db: Database,
) -> None:
    kept = CONTEXT["max_kept_errors"]
    attempts = kept + 2
    queue = Queue("give-up", db, max_attempts=attempts, backoff_seconds=0.001)
    job_id = queue.create_job({})

    def handler(job):
        raise ValueError(f"attempt {job.attempts} failed")

    run_until_settled(queue, handler)
    doc = queue.get_job(job_id)
    assert (doc["state"], doc["attempts"], doc["worker_id"]) == ("failed", attempts, None)
    assert isinstance(doc["failed_at"], int)
    assert [error["attempt"] for error in doc["errors"]] == list(range(3, attempts + 1))
    assert doc["error"] == doc["errors"][-1]
    assert (doc["error"]["type"], doc["error"]["message"]) == (
        "ValueError",
        f"attempt {attempts} failed",
    )
    assert "Traceback" in doc["error"]["traceback"]


def test_a_delayed_job_is_not_started_early_and_starts_soon_after(db: Database) -> None:
    queue = Queue("later", db)
    started: list[float] = []
    job_id = queue.create_job({}, delay=2)
    created = queue.get_job(job_id)["created_at"] / 1000
    # A poll interval far beyond the delay: the worker must wake for the due time.
    worker = queue.create_worker(lambda job: started.append(time.time()), poll_interval=30)
    with running(worker):
        wait_until(lambda: started, timeout=10)
    assert started[0] - created >= 2.0, "started before its delay"
    assert started[0] - created < 3.5, "started long after its delay"
    doc = queue.get_job(job_id)
    assert doc["claimed_at"] - doc["created_at"] >= 2000  # by the server's clock


def test_one_worker_takes_higher_priority_first_then_oldest_first(db: Database) -> None:
    queue = Queue("ordered", db)
    priorities = [0, 5, 1, 5, -3, 0, 10, 1, 0]
    for n, priority in enumerate(priorities):
        queue.create_job({"n": n}, priority=priority)
        time.sleep(0.005)  # distinct created_at (milliseconds)
    order: list[int] = []
    run_until_settled(queue, lambda job: order.append(job.data["n"]), concurrency=1)
    assert order == sorted(range(len(priorities)), key=lambda n: (-priorities[n], n))


@pytest.mark.slow
def test_a_job_over_its_timeout_is_failed_by_the_server_retried_and_its_late_result_dropped(
    db: Database,
) -> None:
    """Attempt 1 overruns its timeout: the server fails it (TimeoutError) and
    schedules attempt 2, which this same worker runs in its second slot while
    attempt 1's code is still running; attempt 1's late result is discarded
    and must not disturb attempt 2 (which outlives a lease after it)."""
    queue = Queue("slowpoke", db, max_attempts=2, timeout=4, backoff_seconds=0.1)
    job_id = queue.create_job({})

    def handler(job):
        if job.attempts == 1:
            time.sleep(4.6)
            return "late result of attempt 1"
        time.sleep(3.0)
        return "result of attempt 2"

    worker = queue.create_worker(handler, concurrency=2, lease_seconds=1, poll_interval=0.2)
    with running(worker):
        wait_until(lambda: final_state(queue, job_id), timeout=30)
        wait_until(lambda: worker.stats.abandoned == 1)
    doc = queue.get_job(job_id)
    assert (doc["state"], doc["attempts"]) == ("complete", 2), doc.get("errors")
    assert doc["result"] == "result of attempt 2"
    [timed_out] = doc["errors"]
    assert (timed_out["type"], timed_out["attempt"]) == ("TimeoutError", 1)
    assert "timeout of 4 s" in timed_out["message"]


# -- bad input ----------------------------------------------------------------------------


def test_job_data_that_is_not_json_is_refused_before_anything_is_stored(db: Database) -> None:
    queue = Queue("bad", db)
    with pytest.raises(QueueError, match="job data is not JSON-serialisable"):
        queue.create_jobs([{"ok": 1}, {"when": datetime.now()}])
    with pytest.raises(QueueError, match="job data is not JSON-serialisable"):
        queue.create_job({"ratio": float("nan")})
    assert queue.stats()["inactive"] == 0


def test_unknown_options_are_refused_by_name(db: Database) -> None:
    queue = Queue("bad", db)
    with pytest.raises(TypeError, match="unexpected keyword argument 'prority'"):
        queue.create_job({}, prority=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_atempts'"):
        queue.create_jobs([{}], max_atempts=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'lease'"):
        queue.create_worker(lambda job: None, lease=5)
    with pytest.raises(QueueError, match="max_attempts must be >= 1"):
        Queue("bad", db, max_attempts=0)
    assert queue.stats()["inactive"] == 0


def test_a_job_edited_into_an_invalid_shape_is_refused_and_stays_intact(db: Database) -> None:
    queue = Queue("edit", db)
    job_id = queue.create_job({"n": 1})
    before = queue.get_job(job_id)
    for change, reason in [
        (
            {"state": "done"},
            "'state' must be one of inactive, blocked, active, complete, failed, cancelled",
        ),
        ({"state": "active"}, "an 'active' job needs the 'worker_id'"),
        ({"priority": "high"}, "'priority' must be a whole number from -1000000000"),
        ({"queues": []}, "'queues': a queue is a name"),
        ({"created_at": None}, "'created_at' must be a number"),
        ({"max_attempts": 0}, "'max_attempts' must be a whole number from 1 to 1000"),
        ({"log": ["fine", 42]}, "every 'log' entry must be a string or {at:"),
    ]:
        with pytest.raises(Forbidden) as refused:
            db.save({**before, **change})
        assert f"queshot: invalid job: {reason}" in refused.value.reason, change
        assert queue.get_job(job_id) == before
    run_until_settled(queue, lambda job: job.data["n"] + 1)
    assert queue.get_job(job_id)["result"] == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch.module:fn", "no module named 'nosuch' (is the folder that holds it on sys.path"),
        ("recording:nosuch", "recording has no attribute 'nosuch'"),
    ],
)
def test_a_handler_that_does_not_load_stops_the_worker_with_one_line(
    db: Database, spawn_worker: Callable, spec: str, message: str
) -> None:
    process = spawn_worker(db.name, "any", handler=spec)  # provisioned: else that is the line
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    [line] = stderr.splitlines()
    assert line.startswith(f"queshot: error: handler {spec!r}: ") and message in line


def test_wrong_credentials_stop_the_worker_with_a_clear_message(
    db: Database, db_name: str, spawn_worker: Callable, server_url: str
) -> None:
    parts = urlsplit(server_url)
    netloc = f"queshot-nobody:not-the-password@{parts.hostname}:{parts.port}"
    wrong = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    process = spawn_worker(db_name, "any", url=wrong)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert len(stderr.splitlines()) == 1, stderr
    assert "refused user 'queshot-nobody'" in stderr
    assert "not-the-password" not in stderr


# -- connection faults --------------------------------------------------------------------


def outage_lines(text: str) -> tuple[list[str], list[str]]:
    """The log lines that report an outage starting, and ending."""
    lines = text.splitlines()
    return (
        [line for line in lines if "unavailable (" in line],
        [line for line in lines if "answers again after" in line],
    )


@pytest.mark.slow
def test_a_worker_keeps_its_job_through_a_server_outage(
    disk_server: DevServer, spawn_worker: Callable, record_file: Path, tmp_path: Path
) -> None:
    """The server stops while a job runs, for longer than the job's lease, and
    the job finishes during the outage: its result waits, nobody takes the job
    back once the server returns, it completes exactly once, and one line each
    reports the outage and its end. Afterwards the resumed changes feed (not
    the 30 s poll) brings the next job."""
    with Couch(disk_server.url) as couch:
        queue = Queue("outage", queue_database(couch, "outage"))  # max_attempts 1
        first = queue.create_job({"sleep": 2})
        with (tmp_path / "worker.log").open("w") as worker_log:
            worker = spawn_worker(
                "outage", "outage", "--lease-seconds", "3", "--poll-interval", "30",
                url=disk_server.url, stderr=worker_log,
            )  # fmt: skip
        wait_until(lambda: count_events(record_file, "start")[first] == 1)
        disk_server.stop(keep_workdir=True)
        time.sleep(4)
        disk_server.start()
        wait_until(lambda: final_state(queue, first), timeout=30)
        second = queue.create_job({})
        wait_until(lambda: final_state(queue, second), timeout=15)
        worker.terminate()
        assert worker.wait(30) == 0
        for job_id in (first, second):
            doc = queue.get_job(job_id)
            assert (doc["state"], doc["attempts"]) == ("complete", 1)
    assert count_events(record_file, "start") == {first: 1, second: 1}
    assert count_events(record_file, "end") == {first: 1, second: 1}
    text = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in text
    down, back = outage_lines(text)
    assert 1 <= len(down) <= 2, down
    assert len(back) == len(down), back
    warnings = [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]
    assert sorted(warnings) == sorted(down + back), "warnings besides the outage's own"


@pytest.mark.slow
def test_a_worker_stopped_during_an_outage_exits_and_its_job_comes_back(
    disk_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler returns while the server is down, so its outcome waits;
    stop() must still end soon after its grace (it used to wait forever), and
    the job, left active, is taken back by its lease and run again."""
    with Couch(disk_server.url) as couch:
        db = queue_database(couch, "stopping")
        queue = Queue("stopping", db, max_attempts=2, backoff_seconds=0.1)
        job_id = queue.create_job({})
        started, finish = threading.Event(), threading.Event()

        def handler(job):
            started.set()
            finish.wait(10)
            return job.attempts

        first = queue.create_worker(handler, lease_seconds=1, poll_interval=0.2)
        first.start()
        assert started.wait(10)
        disk_server.stop(keep_workdir=True)
        finish.set()
        time.sleep(0.5)  # the handler has returned; its outcome waits for CouchDB
        stopper = threading.Thread(target=first.stop, kwargs={"grace": 1}, daemon=True)
        begun = time.monotonic()
        stopper.start()
        stopper.join(15)
        assert not stopper.is_alive(), "stop() hangs while CouchDB is down"
        assert time.monotonic() - begun < 8
        assert "outcome not recorded" in caplog.text
        disk_server.start()
        second = queue.create_worker(lambda job: job.attempts, lease_seconds=1, poll_interval=0.2)
        with running(second):
            wait_until(lambda: final_state(queue, job_id), timeout=30)
        doc = queue.get_job(job_id)
    assert (doc["state"], doc["attempts"], doc["result"], doc["stalls"]) == ("complete", 1, 1, 1)
    assert "errors" not in doc


def test_the_changes_feed_resumes_from_the_last_seq_after_a_restart(
    disk_server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="queshot.couch")
    with Couch(disk_server.url) as couch:
        db = couch.database("feed")
        db.create()
        seen: stdqueue.Queue[str] = stdqueue.Queue()
        stop = threading.Event()

        def follow() -> None:
            for row in db.changes(since=0, heartbeat=0.5, stop=stop):
                seen.put(row["id"])

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        db.save({"_id": "before"})
        assert seen.get(timeout=10) == "before"
        disk_server.restart()
        db.save({"_id": "after"})  # most likely before the feed has reconnected
        assert seen.get(timeout=20) == "after"
        time.sleep(1)
        stop.set()
        thread.join(5)
    assert seen.empty(), "rows replayed after the reconnect"
    down, back = outage_lines(caplog.text)
    assert (len(down), len(back)) == (1, 1), caplog.text
