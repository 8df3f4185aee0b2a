"""`queshot requeue|cancel|delete --queue Q --state S --all`: every job of a
queue in a state, in batches, with a count and each refusal's reason once;
and the log line every requeue and cancel leaves (who, and through what)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from test_admin_cli import MINUTE, put_job, run

from queshot import bulk
from queshot.cli import main
from queshot.couch import Database
from queshot.jobs import MAX_LOG_MSG_CHARS, now_ms
from queshot.queue import Queue


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "BATCH", 3)  # several batches out of a few jobs


def states(db: Database, ids: list[str]) -> set[Any]:
    return {db.get(i)["state"] if db.get_or_none(i) else None for i in ids}


def test_delete_all_failed_of_one_queue(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, small_batches: None
) -> None:
    failed = [put_job(db, "failed", at=now_ms() - i) for i in range(8)]
    other_queue = put_job(db, "failed", queues="sms")
    complete = put_job(db, "complete")
    args = ("delete", "--queue", "email", "--state", "failed", "--all", "--yes")
    status, out = run(capsys, server_url, db, *args)
    assert (status, out) == (0, "deleted 8 jobs\n")
    assert states(db, failed) == {None}
    assert states(db, [other_queue, complete]) == {"failed", "complete"}


def test_progress_goes_to_stderr_after_each_batch(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, small_batches: None
) -> None:
    for _ in range(7):
        put_job(db, "complete")
    args = ["delete", "--queue", "email", "--state", "complete", "--all", "--yes"]
    assert main([*args, "--url", server_url, "--db", db.name]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["  3 seen, 3 deleted", "  6 seen, 6 deleted", "  7 seen, 7 deleted"]


def test_each_refusal_reason_is_said_once_with_its_count(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, small_batches: None
) -> None:
    """Requeueing every running job: each is refused, for one reason, said once."""
    running = [put_job(db, "active") for _ in range(5)]
    args = ("requeue", "--queue", "email", "--state", "running", "--all", "--yes")
    status, out = run(capsys, server_url, db, *args)
    assert status == 1
    assert out.splitlines() == [
        "requeued 0 jobs",
        "  5 not requeued: job is running, not complete, failed or cancelled",
    ]
    assert states(db, running) == {"active"}
    status, data = run(capsys, server_url, db, *args, "--json")
    assert data == {
        "requeued": 0,
        "reasons": [{"reason": "job is running, not complete, failed or cancelled", "jobs": 5}],
    }


def test_cancel_all_waiting_leaves_scheduled_and_other_queues(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, small_batches: None
) -> None:
    waiting = [put_job(db, "inactive", at=now_ms() - MINUTE) for _ in range(4)]
    scheduled = put_job(db, "inactive", run_at=now_ms() + 60 * MINUTE)
    other = put_job(db, "inactive", queues="sms")
    args = ("cancel", "--queue", "email", "--state", "waiting", "--all", "--yes", "--json")
    assert run(capsys, server_url, db, *args) == (0, {"cancelled": 4, "reasons": []})
    assert states(db, waiting) == {"cancelled"}
    assert states(db, [scheduled, other]) == {"inactive"}
    args = ("cancel", "--queue", "email", "--state", "scheduled", "--all", "--yes", "--json")
    assert run(capsys, server_url, db, *args) == (0, {"cancelled": 1, "reasons": []})


def test_requeue_all_does_not_take_a_job_twice(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, small_batches: None
) -> None:
    """Jobs that failed before the command, requeued once each, whatever fails meanwhile."""
    failed = [put_job(db, "failed", at=now_ms() - MINUTE - i) for i in range(7)]
    args = ("requeue", "--queue", "email", "--state", "failed", "--all", "--yes", "--json")
    assert run(capsys, server_url, db, *args) == (0, {"requeued": 7, "reasons": []})
    assert states(db, failed) == {"inactive"}


def test_all_without_yes_and_without_a_terminal_is_refused(
    capsys: pytest.CaptureFixture[str],
    server_url: str,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = put_job(db, "failed")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    args = ["delete", "--queue", "email", "--state", "failed", "--all"]
    assert main([*args, "--url", server_url, "--db", db.name]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no terminal to type it: add --yes" in err
    assert states(db, [job]) == {"failed"}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("typed", "deleted"), [("2\n", True), ("yes\n", False)])
def test_all_on_a_terminal_asks_for_the_count(
    capsys: pytest.CaptureFixture[str],
    server_url: str,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    typed: str,
    deleted: bool,
) -> None:
    jobs = [put_job(db, "failed"), put_job(db, "failed")]
    monkeypatch.setattr("sys.stdin", Terminal(typed))
    args = ["delete", "--queue", "email", "--state", "failed", "--all"]
    assert main([*args, "--url", server_url, "--db", db.name]) == (0 if deleted else 1)
    assert "delete all 2 failed jobs of email? type 2 to go on" in capsys.readouterr().out
    assert states(db, jobs) == ({None} if deleted else {"failed"})


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["delete"], "give job ids, or --queue Q --state S --all"),
        (["delete", "x", "--all", "--queue", "q", "--state", "failed"], "give job ids, or"),
        (["cancel", "--all", "--queue", "q"], "--all needs --queue and --state"),
        (["requeue", "x", "--queue", "q"], "--queue, --state and --yes go with --all"),
        (["requeue", "--failed", "--all"], "--failed goes alone"),
    ],
)
def test_bad_selections_get_one_line(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database, args: list, said: str
) -> None:
    assert main([*args, "--url", server_url, "--db", db.name]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err


def test_delete_by_id_reports_each_job_not_deleted(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    done = put_job(db, "complete")
    status, out = run(capsys, server_url, db, "delete", done, "nope")
    assert (status, out) == (1, "deleted 1 job\n  nope: not deleted: no such job\n")
    assert db.get_or_none(done) is None


# -- who did it ----------------------------------------------------------------------------


def last_line(db: Database, job_id: str) -> str:
    return db.get(job_id)["log"][-1]["msg"]


def test_requeue_and_cancel_log_the_account_and_the_tool(
    capsys: pytest.CaptureFixture[str], server_url: str, db: Database
) -> None:
    email = Queue("email", db)
    failed, waiting, running = put_job(db, "failed"), put_job(db, "inactive"), put_job(db, "active")
    account = db.couch.session_user()
    who = "an admin party" if account is None else f'"{account}"'
    run(capsys, server_url, db, "requeue", failed)
    assert last_line(db, failed) == f"requeued (was failed) by {who} via cli"
    email.cancel(waiting)
    assert last_line(db, waiting) == f"cancelled by {who} via python"
    run(capsys, server_url, db, "cancel", running)
    assert last_line(db, running) == f"cancel asked by {who} via cli"
    email.requeue(waiting)
    assert last_line(db, waiting) == f"requeued (was cancelled) by {who} via python"


def test_the_tool_named_is_cut_to_its_bound(db: Database) -> None:
    job = put_job(db, "failed")
    db.update("queshot", "requeue", job, {"by": "x" * 5000})
    line = last_line(db, job)
    assert len(line) < 200 and "more characters cut" in line and len(line) <= MAX_LOG_MSG_CHARS
    other = put_job(db, "failed")
    db.update("queshot", "requeue", other, {"by": ["not", "text"]})
    assert last_line(db, other).startswith(
        "requeued (was failed) by "
    ) and " via " not in last_line(db, other)
