"""The rough edges a new user meets first, each as it was seen: flags that were
silently ignored, tracebacks, a database nobody provisioned, noisy or
unhelpful log lines. Against the test server, in-process through
`queshot.cli.main` or as a real `queshot` subprocess where the process
itself matters (exit status, a closed pipe, stderr)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import REAL_COUCHDB, run_until_settled, wait_until

from queshot.cli import main
from queshot.couch import Couch, Database
from queshot.jobs import NotProvisioned, now_ms
from queshot.queue import Queue
from queshot.worker import Worker

QUESHOT = [sys.executable, "-m", "queshot.cli"]


def cli(server_url: str, db_name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QUESHOT, *args, "--url", server_url, "--db", db_name],
        capture_output=True,
        text=True,
        timeout=60,
    )


def run(capsys: pytest.CaptureFixture[str], server_url: str, db_name: str, *args: str) -> Any:
    """(exit status, stdout, stderr) of one in-process command."""
    status = main([*args, "--url", server_url, "--db", db_name])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- the command itself ----------------------------------------------------------------


def test_version() -> None:
    result = subprocess.run([*QUESHOT, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert re.fullmatch(r"queshot \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


def test_verbose_after_the_command_and_http_lines_only_with_vv(
    server_url: str, db: Database
) -> None:
    quiet = cli(server_url, db.name, "stats")
    verbose = cli(server_url, db.name, "stats", "-v")
    very = cli(server_url, db.name, "stats", "-vv")
    assert quiet.returncode == verbose.returncode == very.returncode == 0
    assert quiet.stdout == verbose.stdout == very.stdout == "no jobs\n"
    for chatty in ("httpx", "httpcore"):
        assert chatty not in quiet.stderr and chatty not in verbose.stderr
    assert "httpx" in very.stderr and "DEBUG httpcore" in very.stderr


def test_output_piped_into_head_ends_quietly(server_url: str, db: Database, tmp_path: Path) -> None:
    """A reader that goes away (head) ends the command as SIGPIPE would, with
    nothing on stderr: no BrokenPipeError traceback."""
    Queue("email", db).create_jobs([{"n": n, "pad": "x" * 200} for n in range(1500)])
    errors = tmp_path / "stderr"
    command = " ".join(
        [*QUESHOT, "jobs", "--json", "--limit", "2000", "--url", server_url, "--db", db.name]
    )
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} 2>{errors} | head -n 1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "[\n"
    assert errors.read_text() == ""
    assert result.returncode == 141  # queshot's own status: 128 + SIGPIPE


# -- enqueue: flags checked, nothing written on a refusal -------------------------------


def test_enqueue_of_a_missing_file_says_so(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.jsonl"
    status, out, err = run(capsys, server_url, db.name, "enqueue", "q", "--file", str(missing))
    assert (status, out) == (1, "")
    assert err == f"queshot: error: cannot read {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--max-attempts", "0"], "'max_attempts' must be a whole number from 1 to 1000"),
        (["--timeout", "0"], "'timeout' must be a number above 0 and at most 2592000"),
        (["--delay", "-5"], "delay must be >= 0 seconds (got -5.0)"),
        (["--backoff", "-1"], "backoff_seconds must be >= 0"),
        (["--delay", "5", "--run-at", "1"], "give --delay or --run-at, not both"),
    ],
)
def test_enqueue_refuses_nonsense_flags_with_a_reason(
    capsys: pytest.CaptureFixture[str],
    server_url: str,
    db: Database,
    flags: list[str],
    reason: str,
) -> None:
    status, out, err = run(capsys, server_url, db.name, "enqueue", "q", "{}", *flags)
    assert (status, out) == (1, "")
    assert err.startswith("queshot: error: ") and reason in err and len(err.splitlines()) == 1
    assert Queue("q", db).stats()["inactive"] == 0


def test_enqueue_run_at_and_backoff(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    later = datetime(2031, 1, 2, 3, 4, 5)
    args = ("enqueue", "q", "{}", "--run-at", later.isoformat(), "--backoff", "7")
    status, out, _ = run(capsys, server_url, db.name, *args)
    assert status == 0
    doc = db.get(out.strip())
    assert doc["run_at"] == int(later.timestamp() * 1000) and doc["backoff_seconds"] == 7
    status, out, _ = run(capsys, server_url, db.name, "enqueue", "q", "{}", "--run-at", "1e9")
    assert db.get(out.strip())["run_at"] == 10**12  # epoch seconds, as run_at= in the API


def test_jobs_limit_and_state_are_checked(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    status, _, err = run(capsys, server_url, db.name, "jobs", "--limit", "-1")
    assert (status, err) == (1, "queshot: error: limit must be a whole number >= 1 (got -1)\n")
    waiting = Queue("q", db).create_job({})
    status, out, _ = run(capsys, server_url, db.name, "jobs", "--state", "waiting", "--json")
    assert status == 0 and [j["id"] for j in json.loads(out)] == [waiting]


# -- a database nobody provisioned ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["enqueue", "q", "{}"],
        ["stats"],
        ["jobs"],
        ["show", "x"],
        ["requeue", "x"],
        ["clean", "--older-than", "1d"],
        ["workers"],
        ["worker", "recording:handle", "--queue", "q"],
    ],
    ids=lambda c: c[0],
)
def test_every_command_on_an_unprovisioned_database_says_run_push(
    capsys: pytest.CaptureFixture[str], server_url: str, couch: Couch, db_name: str, command: list
) -> None:
    status, out, err = run(capsys, server_url, db_name, *command)
    assert (status, out) == (1, "")
    assert f"database {db_name!r} does not exist: run `queshot push --db {db_name}`" in err
    couch.database(db_name).create()  # created by hand, never pushed
    status, _, err = run(capsys, server_url, db_name, *command)
    assert status == 1
    assert f"database {db_name!r} has no _design/queshot: run `queshot push" in err
    assert couch.database(db_name).info()["doc_count"] == 0  # no unvalidated job written


def test_the_library_refuses_to_enqueue_into_an_unprovisioned_database(
    couch: Couch, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = couch.database(db_name)
    db.create()
    queue = Queue("q", db)
    with pytest.raises(NotProvisioned, match="run `queshot push"):
        queue.create_job({})
    with pytest.raises(NotProvisioned):
        queue.create_jobs([{}, {}])
    assert db.info()["doc_count"] == 0

    from conftest import queue_database

    queue_database(couch, db_name)
    checks: list[Any] = []
    look = db.all_docs
    monkeypatch.setattr(db, "all_docs", lambda **kw: checks.append(kw) or look(**kw))
    for _ in range(3):
        queue.create_job({})
    queue.create_jobs([{}, {}])
    assert len(checks) == 1  # the cost: one request per process and database, then remembered


# -- show, clean ----------------------------------------------------------------------------


def test_show_refuses_what_is_not_a_job(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    status, out, err = run(capsys, server_url, db.name, "show", "_design/queshot")
    assert (status, out) == (1, "")
    assert err == "queshot: error: '_design/queshot' is a design document, not a job\n"
    db.save({"_id": "queshot-worker:w", "type": "queshot_worker", "name": "w", "last_seen": 1})
    status, _, err = run(capsys, server_url, db.name, "show", "queshot-worker:w")
    assert status == 1 and "is a worker's status document" in err


def test_clean_reports_once(server_url: str, db: Database) -> None:
    queue = Queue("q", db)
    queue.create_jobs([{}, {}])
    run_until_settled(queue, lambda job: None)
    result = cli(server_url, db.name, "clean", "--older-than", "0s")
    assert (result.returncode, result.stdout, result.stderr) == (0, "deleted 2 jobs\n", "")
    queue.create_job({})
    run_until_settled(queue, lambda job: None)
    result = cli(server_url, db.name, "clean", "--older-than", "0s", "--json")
    assert json.loads(result.stdout) == {"deleted": 1, "not_deleted": []}
    assert result.stderr == ""


# -- worker log lines say why ---------------------------------------------------------------


def job_lines(caplog: pytest.LogCaptureFixture, job_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"job {job_id}")]


def test_a_failure_names_its_error_and_a_retry_says_when(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="queshot.worker")
    queue = Queue("email", db, max_attempts=2, backoff_seconds=30)
    job_id = queue.create_job({})

    def handler(job: Any) -> None:
        raise LookupError("no such mailbox\nsecond line")

    worker = Worker(queue, handler, poll_interval=0.2)
    worker.start()
    try:
        wait_until(lambda: job_lines(caplog, job_id), timeout=20)
    finally:
        worker.stop(grace=1)
    [line] = job_lines(caplog, job_id)
    run_at = db.get(job_id)["run_at"]
    stamp = datetime.fromtimestamp(run_at / 1000).strftime("%H:%M:%S")
    match = re.fullmatch(
        rf"job {job_id} failed \(LookupError: no such mailbox\); "
        rf"attempt 2 of 2 at {stamp} \(in ([\d.]+) s\); ran [\d.]+ s",
        line,
    )
    assert match, line
    assert abs(float(match.group(1)) - (run_at - now_ms()) / 1000) < 5  # when, not how long

    db.save({**db.get(job_id), "run_at": None})  # due now: the last attempt
    caplog.clear()
    run_until_settled(queue, handler)
    [line] = job_lines(caplog, job_id)
    assert re.fullmatch(
        rf"job {job_id} failed \(LookupError: no such mailbox\); ran [\d.]+ s", line
    ), line


def held(db: Database, **fields: Any) -> str:
    """A running job whose lease ran out a minute ago (admin party may write it)."""
    at = now_ms() - 120_000
    doc = {
        "_id": uuid.uuid4().hex,
        "queues": "q",
        "state": "active",
        "worker_id": "gone-worker",
        "data": {},
        "created_at": at,
        "claimed_at": at,
        "lease_expires_at": at + 60_000,
        "attempts": 1,
        "max_attempts": 1,
        **fields,
    }
    db.save(doc)
    return doc["_id"]


def test_a_lease_that_ran_out_says_whether_the_job_was_requeued_or_failed(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="queshot.worker")
    requeued = held(db)
    stalled_out = held(db, stalls=2, max_stalls=2)
    timed_out = held(db, timeout=1)
    worker = Queue("q", db).create_worker(lambda job: None)
    assert worker.reap() == 3
    lines = {job_id: job_lines(caplog, job_id) for job_id in (requeued, stalled_out, timed_out)}
    assert lines[requeued] == [
        f"job {requeued}: lease of gone-worker ran out (stall 1); requeued, no attempt used"
    ]
    assert lines[stalled_out] == [
        f"job {stalled_out}: lease of gone-worker ran out (stall 3, more than max_stalls); "
        "failed for good"
    ]
    assert lines[timed_out] == [
        f"job {timed_out}: ran over its timeout while held by gone-worker; "
        "failed for good (no attempts left)"
    ]
    states = {job_id: db.get(job_id)["state"] for job_id in lines}
    assert states == {requeued: "inactive", stalled_out: "failed", timed_out: "failed"}


def test_push_says_to_log_in_first_where_the_page_needs_it(
    capsys: pytest.CaptureFixture[str], server_url: str, db_name: str
) -> None:
    """On CouchDB 3 the members-only database refuses the dashboard's page
    itself to a browser without a login, as JSON: push says what to do."""
    status, out, _ = run(capsys, server_url, db_name, "push")
    assert status == 0
    note = "dashboard: log in through Fauxton ("
    if REAL_COUCHDB:
        assert note in out and "_utils) in the same browser first" in out
    else:  # pouchdb-server: admin party, the page opens as it is
        assert note not in out
