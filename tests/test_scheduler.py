"""Schedules on a real server: each slot's job is an ordinary job, made once
however many schedulers race for it, caught up only to the schedule's bound
after a scheduler was down, and the scheduler follows edits from the
`_changes` feed. The clock is a parameter where a test needs exact slots."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_database, running, wait_until
from recording import count_events

from queshot import Tasks, current_job, schedule_admin
from queshot.cli import main
from queshot.couch import Couch, Database, Forbidden
from queshot.jobs import NotProvisioned, now_ms
from queshot.queue import Queue
from queshot.scheduler import Scheduler, slot_job
from queshot.schedules import schedule_id

MINUTE = 60_000
T0 = 1_796_000_040_000  # a whole minute, epoch ms (2026-11-30 00:54 UTC)


def add(db: Database, name: str = "tick", **fields: Any) -> dict[str, Any]:
    doc = {"_id": schedule_id(name), "type": "queshot_schedule", "queue": "ticks", **fields}
    db.save(doc)
    return doc


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def loaded(db: Database, clock: Clock) -> Scheduler:
    """A scheduler that has read the schedules, as its run() does first."""
    scheduler = Scheduler(db, clock=clock)
    scheduler.load()
    return scheduler


def slot_jobs(db: Database, name: str = "tick") -> list[dict[str, Any]]:
    prefix = f"queshot-slot:{name}:"
    rows = db.all_docs(startkey=prefix, endkey=prefix + "\ufff0", include_docs=True)["rows"]
    return [row["doc"] for row in rows]


def test_a_slot_job_is_an_ordinary_job_that_says_which_slot_made_it(db: Database) -> None:
    add(db, every=60, task="report", args=[1], kwargs={"x": 2}, data={"n": 1}, priority=3)
    assert loaded(db, Clock(T0 + 5000)).run_once() == [
        ("queshot-slot:tick:20261130T005400Z", "created")
    ]
    [job] = slot_jobs(db)
    assert job["queues"] == "ticks" and job["state"] == "inactive" and job["priority"] == 3
    assert (job["schedule"], job["slot"], job["created_at"]) == (schedule_id("tick"), T0, T0)
    assert (job["task"], job["args"], job["kwargs"], job["data"]) == (
        "report",
        [1],
        {"x": 2},
        {"n": 1},
    )
    tasks = Tasks()
    ran = []

    @tasks.task
    def report(n: int, x: int = 0) -> int:
        ran.append((current_job().id, n, x))
        return n + x

    worker = Queue("ticks", db).create_worker(tasks, poll_interval=0.2)
    with running(worker):
        wait_until(lambda: db.get(job["_id"])["state"] == "complete", timeout=15)
    assert ran == [(job["_id"], 1, 2)]
    assert db.get(job["_id"])["result"] == 3


def test_two_schedulers_on_one_slot_make_one_job(db: Database) -> None:
    add(db, every=60)
    first, second = loaded(db, Clock(T0)), loaded(db, Clock(T0 + 10))
    assert [o for _, o in first.run_once()] == ["created"]
    assert [o for _, o in second.run_once()] == ["existed"]
    assert first.run_once() == []  # a slot it handled is not tried again
    assert len(slot_jobs(db)) == 1


def test_a_slot_job_someone_else_wrote_is_named_not_counted_as_done(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A queue admin (producers are refused) wrote the slot's id first with
    other content: the scheduler does not take it for its own job silently."""
    add(db, every=60, task="report", kwargs={"x": 1})
    scheduler = loaded(db, Clock(T0))
    own = slot_job(db, scheduler._schedules[schedule_id("tick")], T0)
    db.save({**own, "task": "other", "kwargs": {"x": 666}, "queues": "elsewhere"})
    with caplog.at_level("WARNING", logger="queshot.scheduler"):
        assert [o for _, o in scheduler.run_once()] == ["foreign"]
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert own["_id"] in line and "queues, task, kwargs" in line


def test_the_same_slot_builds_the_same_document_in_every_scheduler(db: Database) -> None:
    """What makes racing creates on a cluster store one revision: the content
    (hence CouchDB's revision id) depends only on the schedule and the slot."""
    add(db, every=60, data={"n": 1})
    first = loaded(db, Clock(T0))
    first.run_once()
    [job] = slot_jobs(db)
    other = db.couch.database(db.name + "_twin")
    other.create()
    try:
        twin = slot_job(other, first._schedules[schedule_id("tick")], T0)
        assert other.save(twin) == job["_rev"]
    finally:
        other.drop()


def test_a_scheduler_that_was_down_catches_up_only_to_the_bound(db: Database) -> None:
    add(db, every=60, catch_up=3)
    up = loaded(db, Clock(T0))
    assert len(up.run_once()) == 3  # the latest 3 at its start: T0-2m, T0-1m, T0
    up.run_once(T0 + MINUTE)
    # it goes down after T0+1m; a scheduler comes back ten minutes later
    back = loaded(db, Clock(T0 + 11 * MINUTE + 20_000))
    assert [o for _, o in back.run_once()] == ["created"] * 3
    slots = sorted(job["slot"] for job in slot_jobs(db))
    expected = [T0 + m * MINUTE for m in (-2, -1, 0, 1, 9, 10, 11)]
    assert slots == expected  # T0+2m .. T0+8m were missed, not flooded in


def test_by_default_only_the_latest_missed_slot_is_enqueued(db: Database) -> None:
    add(db, every=60)
    loaded(db, Clock(T0)).run_once()
    loaded(db, Clock(T0 + 30 * MINUTE)).run_once()
    assert sorted(job["slot"] for job in slot_jobs(db)) == [T0, T0 + 30 * MINUTE]


def test_a_removed_slot_job_is_not_made_again(db: Database) -> None:
    add(db, every=60, catch_up=2)
    loaded(db, Clock(T0)).run_once()
    for job in slot_jobs(db):
        db.delete(job["_id"], job["_rev"])  # autoremove, queshot clean
    again = loaded(db, Clock(T0 + 1000)).run_once()
    assert [o for _, o in again] == ["removed", "removed"]
    assert slot_jobs(db) == []


def test_paused_schedules_and_slots_before_enabled_at_do_not_fire(db: Database) -> None:
    add(db, "paused", every=60, enabled=False)
    add(db, "fresh", every=60, catch_up=10, enabled_at=T0 - MINUTE + 1)
    assert [job_id for job_id, _ in loaded(db, Clock(T0 + 1000)).run_once()] == [
        "queshot-slot:fresh:20261130T005400Z"
    ]


def test_a_schedule_whose_jobs_are_refused_is_reported_and_skipped(db: Database) -> None:
    add(db, every=60, timeout=5)
    scheduler = loaded(db, Clock(T0))
    scheduler._schedules[schedule_id("tick")].job_options["timeout"] = -1  # no valid job has it
    assert [o for _, o in scheduler.run_once()] == ["refused"]
    assert slot_jobs(db) == []


def test_the_scheduler_follows_schedule_edits_from_the_feed(db: Database) -> None:
    scheduler = Scheduler(db, feed_heartbeat=1)
    scheduler.start()
    try:
        add(db, every=1)
        wait_until(lambda: len(slot_jobs(db)) >= 2, timeout=15)
        assert schedule_admin.set_schedule_enabled(db, "tick", False)
        paused_at = len(slot_jobs(db))

        def made_since_pause() -> int:
            return len(slot_jobs(db)) - paused_at

        assert made_since_pause() <= 1  # at most the slot in flight as the pause landed
        add(db, "other", every=1)
        wait_until(lambda: slot_jobs(db, "other"), timeout=15)
        assert made_since_pause() <= 1
        schedule_admin.remove_schedule(db, "other")
        wait_until(lambda: schedule_id("other") not in scheduler._schedules, timeout=10)
    finally:
        stopping = threading.Thread(target=scheduler.stop)
        stopping.start()
        stopping.join(5)
        assert not stopping.is_alive(), "the scheduler did not stop"
    assert scheduler.error is None


def test_validate_refuses_a_broken_schedule_saved_as_in_fauxton(db: Database) -> None:
    with pytest.raises(Forbidden) as caught:
        add(db, cron="*/5 * * *")
    assert caught.value.reason == (
        "queshot: invalid schedule: "
        "'cron' must have 5 fields (minute hour day month weekday), got 4"
    )


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli(server_url: str, db: Database) -> Callable[..., int]:
    def run(*args: str) -> int:
        return main([*args, "--url", server_url, "--db", db.name])

    return run


def test_schedule_add_list_pause_resume_remove(
    db: Database, cli: Callable[..., int], capsys: Any
) -> None:
    assert (
        cli("schedule", "add", "nightly", "--queue", "reports", "--cron", "0 3 * * *",
            "--timezone", "Europe/Riga", "--task", "report", "--kwargs", '{"full": true}')
        == 0
    )  # fmt: skip
    added = capsys.readouterr().out
    assert "schedule nightly: 0 3 * * * (Europe/Riga), next run" in added
    assert " 03:00:00 Europe/Riga (in " in added  # in the schedule's own zone, labelled
    assert cli("schedules") == 0
    listing = capsys.readouterr().out
    assert "nightly" in listing and "task report" in listing and "on" in listing
    assert " 03:00:00 Europe/Riga (in " in listing
    assert cli("schedule", "pause", "nightly") == 0
    assert db.get(schedule_id("nightly"))["enabled"] is False
    assert cli("schedule", "resume", "nightly") == 0
    doc = db.get(schedule_id("nightly"))
    assert doc["enabled"] is True and doc["enabled_at"] >= now_ms() - 60_000
    assert cli("schedule", "remove", "nightly") == 0
    assert db.get_or_none(schedule_id("nightly")) is None
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "queshot: error: schedule queshot-schedule:x: bad cron"),
        (["--every", "5", "--timezone", "Nowhere/Land"], "unknown time zone 'Nowhere/Land'"),
        ([], "queshot: error: give --cron 'EXPR' or --every SECONDS"),
        (["--every", "5", "--data", "{nope"], "queshot: error: --data is not JSON"),
    ],
)
def test_bad_schedule_input_is_one_line_and_exit_1(
    cli: Callable[..., int], capsys: Any, args: list[str], message: str
) -> None:
    assert cli("schedule", "add", "x", "--queue", "q", *args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_an_unknown_schedule_is_one_line(
    db: Database, cli: Callable[..., int], capsys: Any
) -> None:
    assert cli("schedule", "pause", "nope") == 1
    assert capsys.readouterr().err == f"queshot: error: no schedule 'nope' in {db.name}\n"


# -- as processes ----------------------------------------------------------------------------


def test_a_worker_with_schedules_enqueues_and_runs_the_slots(
    db: Database, spawn_worker: Callable[..., subprocess.Popen], record_file: Path
) -> None:
    add(db, every=1, data={})
    worker = spawn_worker(db.name, "ticks", "--schedules", "--poll-interval", "1")
    wait_until(lambda: len(count_events(record_file, "start")) >= 2, timeout=30)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert "scheduler" in worker.stderr.read()
    assert all(
        job_id.startswith("queshot-slot:tick:") for job_id in count_events(record_file, "start")
    )


@pytest.mark.slow
def test_a_scheduler_rides_out_an_outage_without_a_flood(disk_server: Any, tmp_path: Path) -> None:
    """The server stops for several slots: the scheduler retries with backoff
    (one line when it starts, one when CouchDB answers), and afterwards goes
    on from the latest slot instead of enqueuing every one it missed."""
    with Couch(disk_server.url) as couch:
        db = queue_database(couch, "outage")
        add(db, every=1)
        log = tmp_path / "scheduler.log"
        with log.open("w") as stderr:
            scheduler = subprocess.Popen(
                [sys.executable, "-m", "queshot.cli", "scheduler", "--url", disk_server.url,
                 "--db", "outage"],
                stderr=stderr, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            wait_until(lambda: len(slot_jobs(db)) >= 2, timeout=30)
            disk_server.stop(keep_workdir=True)
            down_at = now_ms()
            wait_until(lambda: now_ms() - down_at > 5000, timeout=10)  # five slots go by
            disk_server.start()
            up_at = now_ms()
            wait_until(lambda: any(j["slot"] > up_at for j in slot_jobs(db)), timeout=30)
            scheduler.send_signal(signal.SIGTERM)
            assert scheduler.wait(30) == 0
        finally:
            if scheduler.poll() is None:
                scheduler.kill()
        during = [j["slot"] for j in slot_jobs(db) if down_at + 1000 < j["slot"] < up_at - 1000]
    assert len(during) <= 1, during  # the latest slot when it answered again, at most
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("unavailable") == 1 and text.count("answers again") == 1, text


def test_a_scheduler_refuses_a_database_without_the_design_docs(couch: Couch, db_name: str) -> None:
    couch.database(db_name).create()
    with pytest.raises(NotProvisioned, match="run `queshot push"):
        Scheduler(couch.database(db_name)).run()
