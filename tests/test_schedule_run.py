"""A schedule's "run now": the request's rules (in QuickJS), one job per
request whatever the schedulers do (a pass again, a restart, a removed job, a
paused schedule), and `queshot schedule run` / `queshot schedules`. The race
of several scheduler processes is in test_scheduler_race.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from designdoc_js import DesignDocJS

from queshot import schedule_admin
from queshot.cli import main
from queshot.couch import Database
from queshot.jobs import CREATION_FIELDS, now_ms
from queshot.scheduler import Scheduler, slot_job
from queshot.schedules import Schedule, schedule_id

ADMIN = {"name": "ops", "roles": ["queshot_admin"]}
WORKER = {"name": "runner", "roles": ["queshot_worker"]}
REQUESTED = 1764588900123


def schedule_doc(**fields: Any) -> dict[str, Any]:
    doc = {"_id": schedule_id("tick"), "type": "queshot_schedule", "queue": "ticks"}
    return {**doc, "every": 3600, **fields}


# -- the rules (QuickJS) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def js() -> DesignDocJS:
    return DesignDocJS()


def test_a_queue_admin_asks_for_a_run_with_a_time_and_a_name(js: DesignDocJS) -> None:
    asked = schedule_doc(run_requested_at=REQUESTED, run_requested_by="ops")
    assert js.validate(asked, schedule_doc(), ADMIN, {}) is None
    refused = js.validate(asked, schedule_doc(), WORKER, {})
    assert refused == ("forbidden", "queshot: only a queue admin may write schedules")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"run_requested_at": -1}, "'run_requested_at' must be a time in epoch milliseconds"),
        ({"run_requested_at": "now"}, "'run_requested_at' must be a time in epoch milliseconds"),
        ({"run_requested_at": 1e300}, "'run_requested_at' must be a time in epoch milliseconds"),
        ({"run_requested_by": ""}, "'run_requested_by' must be the name of who asked"),
        ({"run_requested_by": ["ops"]}, "'run_requested_by' must be the name of who asked"),
    ],
)
def test_a_broken_run_request_is_refused_with_one_reason(
    js: DesignDocJS, fields: dict[str, Any], reason: str
) -> None:
    error, message = js.validate(schedule_doc(**fields), schedule_doc(), ADMIN, {})
    assert error == "forbidden"
    assert message.startswith("queshot: invalid schedule: " + reason), message


def test_a_run_now_job_is_named_by_its_schedule_and_request(js: DesignDocJS) -> None:
    job_id = Schedule.from_doc(schedule_doc()).run_now_job_id(REQUESTED)
    assert job_id == f"queshot-slot:tick:now-{REQUESTED}"
    job = {"_id": job_id, "queues": "ticks", "state": "inactive", "created_at": REQUESTED}
    marked = {**job, "log": [], "schedule": schedule_id("tick"), "slot": REQUESTED}
    assert js.validate(marked, None, WORKER, {}) is None
    error, message = js.validate({**marked, "slot": REQUESTED + 1}, None, WORKER, {})
    assert message.startswith("queshot: invalid job: a schedule's job of that slot has the id")


# -- the scheduler ----------------------------------------------------------------------------


def loaded(db: Database) -> Scheduler:
    scheduler = Scheduler(db)
    scheduler.load()
    return scheduler


def run_now_jobs(db: Database) -> list[dict[str, Any]]:
    prefix = "queshot-slot:tick:now-"
    rows = db.all_docs(startkey=prefix, endkey=prefix + "\ufff0", include_docs=True)["rows"]
    return [row["doc"] for row in rows]


def test_a_request_made_while_no_scheduler_runs_makes_one_job_when_one_starts(
    db: Database,
) -> None:
    """Paused too (a person asked); the job is the schedule's slot job for the
    request's time: its task, arguments and queue."""
    db.save(schedule_doc(enabled=False, task="report", kwargs={"full": True}, priority=3))
    job_id = schedule_admin.request_run(db, "tick", by="ops")
    first = loaded(db)
    assert first.run_once() == [(job_id, "created")]
    [job] = run_now_jobs(db)
    requested = db.get(schedule_id("tick"))["run_requested_at"]
    expected = slot_job(db, first._schedules[schedule_id("tick")], requested, run_now=True)
    assert {f: job.get(f) for f in CREATION_FIELDS} == {f: expected.get(f) for f in CREATION_FIELDS}
    assert (job["task"], job["kwargs"], job["queues"], job["slot"]) == (
        "report",
        {"full": True},
        "ticks",
        requested,
    )
    assert first.run_once() == []  # seen again by the same scheduler: nothing
    assert loaded(db).run_once() == [(job_id, "existed")]  # a restart: its job is there
    db.delete(job_id, job["_rev"])  # autoremove, queshot clean
    assert loaded(db).run_once() == [(job_id, "removed")]
    assert run_now_jobs(db) == []


def test_each_new_request_makes_one_more_job(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    db.save(schedule_doc(enabled=False))
    scheduler = loaded(db)
    first = schedule_admin.request_run(db, "tick")
    scheduler.load()  # what the feed would bring
    with caplog.at_level(logging.INFO, logger="queshot.scheduler"):
        assert scheduler.run_once() == [(first, "created")]
    assert "run-now request" in caplog.text and f"of tick: enqueued {first}" in caplog.text
    second = schedule_admin.request_run(db, "tick")  # within the same millisecond, maybe
    assert second != first
    scheduler.load()
    assert scheduler.run_once() == [(second, "created")]
    assert sorted(job["_id"] for job in run_now_jobs(db)) == sorted([first, second])


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli(server_url: str, db: Database) -> Callable[..., int]:
    return lambda *args: main([*args, "--url", server_url, "--db", db.name])


def test_schedule_run_prints_the_job_id_and_schedules_shows_the_request(
    db: Database, cli: Callable[..., int], capsys: Any
) -> None:
    db.save(schedule_doc(timezone="Asia/Tokyo"))
    before = now_ms()
    assert cli("schedule", "run", "tick") == 0
    out = capsys.readouterr().out
    doc = db.get(schedule_id("tick"))
    assert doc["run_requested_at"] >= before
    assert out == f"queshot-slot:tick:now-{doc['run_requested_at']}\n"
    assert cli("schedules") == 0
    listing = capsys.readouterr().out
    assert "RUN NOW" in listing and " Asia/Tokyo (" in listing
    assert cli("schedules", "--json") == 0
    assert str(doc["run_requested_at"]) in capsys.readouterr().out


def test_schedule_run_of_an_unknown_schedule_is_one_line(
    db: Database, cli: Callable[..., int], capsys: Any
) -> None:
    assert cli("schedule", "run", "nope") == 1
    assert capsys.readouterr().err == f"queshot: error: no schedule 'nope' in {db.name}\n"
