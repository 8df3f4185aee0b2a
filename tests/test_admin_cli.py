"""`queshot stats/jobs/show/requeue/clean/workers` against the test server,
run in-process through `queshot.cli.main` (and once as a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from queshot import admin, bulk
from queshot.cli import main
from queshot.couch import Database
from queshot.jobs import now_ms
from queshot.queue import Queue
from queshot.worker import Worker

MINUTE = 60_000
DAY = 24 * 60 * MINUTE


def put_job(db: Database, state: str, queues: Any = "email", **fields: Any) -> str:
    """A job stored directly in `state` (admin party lets the test write any valid job)."""
    at = fields.pop("at", now_ms())
    doc: dict[str, Any] = {
        "_id": fields.pop("id", uuid.uuid4().hex),
        "queues": queues,
        "state": state,
        "worker_id": None,
        "priority": 0,
        "log": [],
        "data": {"n": 1},
        "created_at": at,
        "attempts": 0 if state == "inactive" else 1,
        "max_attempts": 1,
        "progress": 0,
    }
    if state == "active":
        doc.update(worker_id="w-1", claimed_at=at, lease_expires_at=now_ms() + MINUTE)
    elif state == "complete":
        doc.update(completed_at=at, progress=100, result={"ok": True})
    elif state == "failed":
        doc.update(failed_at=at, error={"message": "boom", "type": "RuntimeError", "attempt": 1})
    doc.update(fields)
    db.save(doc)
    return doc["_id"]


def run(capsys: pytest.CaptureFixture[str], server_url: str, db: Database, *args: str) -> Any:
    """Run one command; return (exit status, stdout), stdout parsed when --json."""
    status = main([*args, "--url", server_url, "--db", db.name])
    out = capsys.readouterr().out
    return status, json.loads(out) if "--json" in args else out


@pytest.fixture
def jobs(db: Database) -> dict[str, str]:
    """A queue in every state, and a second (path) queue with one waiting job."""
    return {
        "old_waiting": put_job(db, "inactive", at=now_ms() - 5 * MINUTE),
        "waiting": put_job(db, "inactive"),
        "running": put_job(db, "active"),
        "done_old": put_job(db, "complete", at=now_ms() - 8 * DAY),
        "done_1": put_job(db, "complete", at=now_ms() - 2 * MINUTE),
        "done_2": put_job(db, "complete", at=now_ms() - MINUTE),
        "failed": put_job(db, "failed", at=now_ms() - 3 * MINUTE),
        "report": put_job(db, "inactive", queues=["reports", "daily"], at=now_ms() - 2 * MINUTE),
    }


def test_stats(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, jobs: dict
) -> None:
    status, out = run(capsys, server_url, db, "stats")
    assert status == 0
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == [
        "QUEUE",
        "WAITING",
        "SCHEDULED",
        "BLOCKED",
        "RUNNING",
        "COMPLETE",
        "FAILED",
        "CANCELLED",
        "TOTAL",
        "OLDEST",
        "WAITING",
    ]
    # the age is read after the jobs were written: "5m", or "5m 1s" on a slow machine
    assert lines[1][:9] == ["email", "2", "0", "0", "1", "3", "1", "0", "7"]
    assert lines[2][:9] == ["reports/daily", "1", "0", "0", "0", "0", "0", "0", "1"]
    assert lines[3][:9] == ["total", "3", "0", "0", "1", "3", "1", "0", "8"]
    assert [line[9] for line in lines[1:]] == ["5m", "2m", "5m"]

    status, data = run(capsys, server_url, db, "stats", "--json")
    assert data["totals"] == {
        "waiting": 3,
        "scheduled": 0,
        "blocked": 0,
        "running": 1,
        "complete": 3,
        "failed": 1,
        "cancelled": 0,
    }
    email = data["queues"][0]
    assert email["queue"] == ["email"] and email["total"] == 7
    assert email["oldest_waiting_since"] == db.get(jobs["old_waiting"])["created_at"]


def test_stats_json_names_the_producers(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    """As the text form's ORIGIN table: jobs per producer (`origin`) and
    state; the replications' lags are a list (none set up here)."""
    queue = Queue("orders", db)
    db.bulk_docs([queue.new_job_doc({"n": n}) | {"origin": "shop-1"} for n in range(2)])
    queue.create_job({"n": 3})
    _, data = run(capsys, server_url, db, "stats", "--json")
    assert data["origins"] == {"shop-1": {"inactive": 2}}
    assert data["replications"] == []
    assert data["totals"]["waiting"] == 3


def test_jobs_due_later_are_scheduled_not_waiting(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    """A delayed job, and one waiting out a retry's backoff, are scheduled:
    in `stats`, in `jobs`, and under `--state scheduled`; the due one waits."""
    due = put_job(db, "inactive", at=now_ms() - MINUTE)
    delayed = put_job(db, "inactive", run_at=now_ms() + 60 * MINUTE)
    retrying = put_job(db, "inactive", attempts=1, max_attempts=3, run_at=now_ms() + MINUTE)
    _, data = run(capsys, server_url, db, "stats", "--json")
    email = data["queues"][0]
    assert (email["counts"]["waiting"], email["counts"]["scheduled"], email["total"]) == (1, 2, 3)
    assert email["oldest_waiting_since"] == db.get(due)["created_at"]

    _, out = run(capsys, server_url, db, "jobs", "--state", "scheduled")
    assert sorted(line.split()[0] for line in out.splitlines()[1:]) == sorted([delayed, retrying])
    assert all(line.split()[1] == "scheduled" for line in out.splitlines()[1:])
    _, listed = run(capsys, server_url, db, "jobs", "--state", "waiting", "--json")
    assert [job["id"] for job in listed] == [due]
    _, listed = run(capsys, server_url, db, "jobs", "--state", "inactive", "--json")
    assert len(listed) == 3


def test_stats_of_an_empty_queue(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    assert run(capsys, server_url, db, "stats") == (0, "no jobs\n")


def test_jobs_by_state_queue_and_limit(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, jobs: dict
) -> None:
    status, out = run(capsys, server_url, db, "jobs", "--state", "failed")
    assert status == 0
    row = out.splitlines()[1].split()
    assert row[:3] == [jobs["failed"], "failed", "email"] and row[-1] == "boom"

    _, listed = run(capsys, server_url, db, "jobs", "--queue", "reports/daily", "--json")
    assert [job["id"] for job in listed] == [jobs["report"]]
    assert listed[0]["queues"] == ["reports", "daily"] and listed[0]["state"] == "inactive"

    _, listed = run(capsys, server_url, db, "jobs", "--state", "complete", "--json")
    assert [job["id"] for job in listed] == [jobs["done_old"], jobs["done_1"], jobs["done_2"]]
    args = ("jobs", "--queue", "email", "--state", "complete", "--newest", "--limit", "2")
    _, listed = run(capsys, server_url, db, *args, "--json")
    assert [job["id"] for job in listed] == [jobs["done_2"], jobs["done_1"]]

    _, listed = run(capsys, server_url, db, "jobs", "--queue", "email", "--json")
    assert [job["state"] for job in listed] == [
        "active",
        *["complete"] * 3,
        "failed",
        *["inactive"] * 2,
    ]


def test_show(capsys: pytest.CaptureFixture[str], server_url: str, db: Database) -> None:
    job_id = put_job(
        db,
        "failed",
        data={"to": "a@example.org"},
        log=["seed line", {"at": now_ms(), "msg": "sending"}],
        error={
            "message": "smtp down",
            "type": "ConnectionError",
            "attempt": 1,
            "traceback": "Traceback (most recent call last):\nConnectionError: smtp down\n",
        },
    )
    status, out = run(capsys, server_url, db, "show", job_id)
    assert status == 0
    assert f"job {job_id}" in out
    assert "state        failed, since" in out
    assert '"to": "a@example.org"' in out
    assert "log (2 lines):" in out and "seed line" in out and "sending" in out
    assert "last error (attempt 1, ConnectionError):\n  smtp down" in out
    assert "  ConnectionError: smtp down" in out

    _, doc = run(capsys, server_url, db, "show", job_id, "--json")
    assert doc["_id"] == job_id and doc["error"]["message"] == "smtp down"


def test_show_of_an_id_that_starts_with_a_dash(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    """Options first, then '--': what follows is the id, whatever it looks like."""
    db.save({"_id": "-v", "queues": "email", "state": "inactive", "created_at": 1})
    assert main(["show", "--url", server_url, "--db", db.name, "--", "-v"]) == 0
    assert "job -v (rev 1-" in capsys.readouterr().out


def test_show_of_a_missing_job(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    assert main(["show", "nope", "--url", server_url, "--db", db.name]) == 1
    assert f"no job 'nope' in {db.name}" in capsys.readouterr().err


def test_requeue_by_id(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, jobs: dict
) -> None:
    status, out = run(capsys, server_url, db, "requeue", jobs["failed"], jobs["running"], "nope")
    assert status == 1
    assert out.splitlines() == [
        "requeued 1 job",
        f"  {jobs['running']}: not requeued: job is running, not complete, failed or cancelled",
        "  nope: not requeued: no such job",
    ]
    requeued = db.get(jobs["failed"])
    assert (requeued["state"], requeued["attempts"], requeued["worker_id"]) == ("inactive", 0, None)
    assert db.get(jobs["running"])["state"] == "active"


def test_requeue_every_failed_job_of_a_queue(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    email = [put_job(db, "failed") for _ in range(3)]
    other = put_job(db, "failed", queues="sms")
    status, data = run(capsys, server_url, db, "requeue", "--failed", "--queue", "email", "--json")
    assert (status, data) == (0, {"requeued": 3, "not_requeued": []})
    assert {db.get(job_id)["state"] for job_id in email} == {"inactive"}
    assert db.get(other)["state"] == "failed"
    assert main(["requeue", "--url", server_url, "--db", db.name]) == 1  # neither ids nor --failed
    assert "give job ids, or --queue Q --state S --all" in capsys.readouterr().err


def test_clean_deletes_old_finished_jobs_in_batches(
    capsys: pytest.CaptureFixture[str],
    server_url: str,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulk, "BATCH", 3)
    old = [put_job(db, "complete", at=now_ms() - 8 * DAY - i) for i in range(7)]
    young = put_job(db, "complete", at=now_ms() - DAY)
    old_failed = put_job(db, "failed", at=now_ms() - 8 * DAY)

    status, out = run(capsys, server_url, db, "clean", "--state", "complete", "--older-than", "7d")
    assert (status, out) == (0, "deleted 7 jobs\n")
    assert all(db.get_or_none(job_id) is None for job_id in old)
    assert db.get_or_none(young) and db.get_or_none(old_failed)

    args = ("clean", "--state", "failed", "--older-than", "1w", "--json")
    assert run(capsys, server_url, db, *args) == (0, {"deleted": 1, "not_deleted": []})
    assert db.get_or_none(old_failed) is None


def test_requeue_failed_pages_past_jobs_it_leaves(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH", 2)
    ids = sorted(put_job(db, "failed", at=now_ms() - MINUTE) for _ in range(5))
    outcomes = bulk.requeue_failed(db)
    assert sorted(o.id for o in outcomes) == ids and all(o.ok for o in outcomes)


def test_workers(capsys: pytest.CaptureFixture[str], server_url: str, db: Database) -> None:
    db.save(
        {
            "_id": "queshot-worker:old",
            "type": "queshot_worker",
            "name": "old",
            "queues": "email",
            "last_seen": now_ms() - 10 * MINUTE,
            "lease_seconds": 60,
        }
    )
    worker = Worker(Queue("email", db), lambda job: None, name="live", feed_heartbeat=0.5)
    worker.start()
    try:
        status, out = run(capsys, server_url, db, "workers")
        _, found = run(capsys, server_url, db, "workers", "--json")
    finally:
        worker.stop(grace=1)
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["live"][-1] == "alive" and rows["old"][-1] == "GONE"
    assert "own" in rows["live"] and "-" in rows["old"]  # its feed; the old one does not say
    by_name = {w["name"]: w for w in found}
    assert by_name["live"]["worker_id"] == worker.id and not by_name["live"]["gone"]
    assert by_name["old"]["gone"]
    assert [w.name for w in admin.workers(db)] == ["old"]  # a clean stop removes its document


def test_push_names_the_dashboard(
    capsys: pytest.CaptureFixture[str], server_url: str, db_name: str
) -> None:
    assert main(["push", "--url", server_url, "--db", db_name, "--dashboard-csp"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith(f"/{db_name}/_design/queshot/index.html")


def test_stats_as_a_subprocess(server_url: str, db: Database, jobs: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "queshot.cli", "stats", "--json", "--url", server_url],
        env={**os.environ, "QUESHOT_DB": db.name},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout)["total"] == 8


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("45s", 45), ("15m", 900), ("12h", 43200), ("7d", 604800)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert admin.parse_duration(text) == seconds


def test_parse_duration_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        admin.parse_duration("a week")
